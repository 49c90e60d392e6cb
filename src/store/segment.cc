// Segments: building, encoding and decoding (merges are in segment_merge.cc).
#include "store/segment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <span>

#include "common/memory.h"
#include "store/codec.h"

namespace sibyl {
namespace {

// Format 2 codes sessions against event times (below); format 1 (older stores) as deltas
// between rows. Both are read.
constexpr std::string_view kMagic = "SIBYLSG2";
constexpr std::string_view kMagicV1 = "SIBYLSG1";

// Session column codes (format 2), per row: the row's session is the previous row's, or
// none (-1), or given as the event's time minus the session id (the time since the
// session started: small, where the id itself is an epoch time).
enum : uint8_t { kSessionSame = 0, kSessionNone = 1, kSessionSinceStart = 2 };

// Value codes in a property column's kind stream.
enum : uint8_t { kCodeNull = 0, kCodeFalse = 1, kCodeDouble = 2, kCodeString = 3, kCodeArray = 4,
                 kCodeCents = 5, kCodeTrue = 6 };

void EncodeValues(const SegmentExtras::Column& column, std::string* raw) {
  ByteWriter w(raw);
  w.Varint(column.rows.size());
  uint32_t previous = 0;
  for (uint32_t row : column.rows) {
    w.Varint(row - previous);
    previous = row;
  }
  std::string values;
  ByteWriter v(&values);
  for (const StoredValue& value : column.values) {
    switch (value.kind) {
      case ValueKind::kNull: w.U8(kCodeNull); break;
      case ValueKind::kBool: w.U8(value.number != 0 ? kCodeTrue : kCodeFalse); break;
      case ValueKind::kString: w.U8(kCodeString); v.Varint(value.string); break;
      case ValueKind::kArray: w.U8(kCodeArray); v.Varint(value.string); break;
      case ValueKind::kNumber: {
        // Prices and counts are mostly whole cents: a varint of cents is far smaller
        // than 8 bytes of double, and exact when it round-trips.
        double cents = std::round(value.number * 100);
        if (std::fabs(cents) < 1e15 && cents / 100 == value.number) {
          w.U8(kCodeCents);
          v.SignedVarint(static_cast<int64_t>(cents));
        } else {
          w.U8(kCodeDouble);
          v.F64(value.number);
        }
        break;
      }
    }
  }
  raw->append(values);
}

Status DecodeValues(std::string_view raw, std::string_view what, SegmentExtras::Column& column) {
  ByteReader r(raw);
  uint64_t n = r.Varint();
  if (!r.ok() || n > raw.size()) return Corruption("{}: bad property column", what);
  // Big fresh vectors: prefault instead of faulting page by page (see common/memory.h).
  ResizePrefaulted(column.rows, n);
  ResizePrefaulted(column.values, n);
  uint32_t row = 0;
  for (uint64_t i = 0; i < n; ++i) column.rows[i] = row += static_cast<uint32_t>(r.Varint());
  // The value codes, read in place (a copy would be one more pass over fresh memory).
  const auto* codes = reinterpret_cast<const uint8_t*>(r.View(n).data());
  if (!r.ok()) return Corruption("{}: truncated property column", what);
  for (uint64_t i = 0; i < n; ++i) {
    StoredValue& value = column.values[i];
    switch (codes[i]) {
      case kCodeNull: value.kind = ValueKind::kNull; break;
      case kCodeFalse: value = {ValueKind::kBool, 0, kNoDictId}; break;
      case kCodeTrue: value = {ValueKind::kBool, 1, kNoDictId}; break;
      case kCodeString: value = {ValueKind::kString, 0, static_cast<DictId>(r.Varint())}; break;
      case kCodeArray: value = {ValueKind::kArray, 0, static_cast<DictId>(r.Varint())}; break;
      case kCodeCents:
        value = {ValueKind::kNumber, static_cast<double>(r.SignedVarint()) / 100, kNoDictId};
        break;
      case kCodeDouble: value = {ValueKind::kNumber, r.F64(), kNoDictId}; break;
      default: return Corruption("{}: bad value code {}", what, codes[i]);
    }
  }
  if (!r.ok()) return Corruption("{}: truncated property column", what);
  return Status::Ok();
}

// Skips one compressed block without decompressing it.
Status SkipCompressedBlock(ByteReader& r, std::string_view what) {
  r.Varint();
  uint64_t compressed = r.Varint();
  r.U32();
  if (!r.ok() || compressed > r.remaining()) return Corruption("{}: truncated block header", what);
  r.Skip(compressed);
  return Status::Ok();
}

// The SessionMark of row i with session `current`, after a row with `previous`.
uint8_t MarkOf(size_t i, int64_t current, int64_t previous) {
  return current == -1 ? kNoSession : (i > 0 && current == previous) ? kSameSession : kNewSession;
}

}  // namespace

std::vector<uint8_t> SessionMarks(const std::vector<int64_t>& session) {
  std::vector<uint8_t> marks(session.size());
  for (size_t i = 0; i < session.size(); ++i) marks[i] = MarkOf(i, session[i], i > 0 ? session[i - 1] : 0);
  return marks;
}

namespace {

// Decodes sessions (when `sessions`: ids and marks) and the property columns whose key is
// in `keys` (sorted; nullptr means all). Scans need the ids too: the feature query counts
// distinct sessions, which the marks alone cannot tell apart.
Result<std::shared_ptr<const SegmentExtras>> DecodeExtras(std::string_view bytes,
                                                          std::string_view what, bool sessions,
                                                          const std::vector<DictId>* keys,
                                                          int format,
                                                          const std::vector<int64_t>& time) {
  auto extras = std::make_shared<SegmentExtras>();
  ByteReader r(bytes);
  if (sessions) {
    ASSIGN_OR_RETURN(std::string session_raw, ReadCompressedBlock(r, what));
    ByteReader s(session_raw);
    uint64_t n = s.Varint();
    if (n > session_raw.size() || (format >= 2 && n != 0 && n != time.size()))
      return Corruption("{}: bad session column", what);
    ResizePrefaulted(extras->session, n);
    ResizePrefaulted(extras->session_marks, n);
    int64_t previous = 0;
    for (uint64_t i = 0; i < n; ++i) {
      int64_t current = previous;
      if (format < 2) {
        current = previous + s.SignedVarint();
      } else {
        switch (s.U8()) {
          case kSessionSame: break;
          case kSessionNone: current = -1; break;
          case kSessionSinceStart:
            // Unsigned arithmetic: wraps the same way the encoder's did.
            current = static_cast<int64_t>(static_cast<uint64_t>(time[i]) - static_cast<uint64_t>(s.SignedVarint()));
            break;
          default: return Corruption("{}: bad session code", what);
        }
      }
      extras->session_marks[i] = MarkOf(i, current, previous);
      extras->session[i] = current;
      previous = current;
    }
    if (!s.ok()) return Corruption("{}: truncated session column", what);
  } else {
    RETURN_IF_ERROR(SkipCompressedBlock(r, what));
  }
  uint64_t columns = r.Varint();
  if (!r.ok() || columns > bytes.size()) return Corruption("{}: bad property index", what);
  for (uint64_t c = 0; c < columns; ++c) {
    DictId key = static_cast<DictId>(r.Varint());
    if (keys != nullptr && !std::binary_search(keys->begin(), keys->end(), key)) {
      RETURN_IF_ERROR(SkipCompressedBlock(r, what));
      continue;
    }
    SegmentExtras::Column column;
    column.key = key;
    ASSIGN_OR_RETURN(std::string raw, ReadCompressedBlock(r, what));
    RETURN_IF_ERROR(DecodeValues(raw, what, column));
    extras->properties.push_back(std::move(column));
  }
  return std::shared_ptr<const SegmentExtras>(std::move(extras));
}

}  // namespace

namespace {
bool ByActorThenTime(const EncodedEvent& a, const EncodedEvent& b) {
  return a.actor != b.actor ? a.actor < b.actor : a.time < b.time;
}
// Stable. Input cut from a file sorted by user arrives sorted: one pass checks that.
void SortByActorThenTime(std::vector<EncodedEvent>& events) {
  if (!std::is_sorted(events.begin(), events.end(), ByActorThenTime))
    std::stable_sort(events.begin(), events.end(), ByActorThenTime);
}
}  // namespace

std::shared_ptr<const Segment> Segment::Build(std::vector<EncodedEvent> events,
                                              const std::vector<EncodedProperty>& properties) {
  SortByActorThenTime(events);
  return BuildSorted(events, properties);
}

std::vector<std::shared_ptr<const Segment>> Segment::BuildEncoded(std::vector<EncodedEvent> events,
                                                                  const std::vector<EncodedProperty>& properties,
                                                                  int64_t partition_ms, int level) {
  std::vector<std::shared_ptr<const Segment>> out;
  if (events.empty()) return out;
  SortByActorThenTime(events);
  // The partitions present, and the events of each in (actor, time) order: a stable
  // counting sort by partition, usually of one partition (time-ordered input) or a few
  // weeks (a file cut by user).
  std::vector<int64_t> partitions;
  partitions.reserve(events.size());
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (const EncodedEvent& e : events) {
    partitions.push_back(PartitionOf(e.time, partition_ms));
    lo = std::min(lo, partitions.back());
    hi = std::max(hi, partitions.back());
  }
  std::vector<int64_t> present;
  if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) < 4096) {
    // A few weeks apart (always, but for years of sparse data): marked, not sorted.
    std::vector<char> seen(static_cast<size_t>(hi - lo) + 1, 0);
    for (int64_t p : partitions) seen[static_cast<size_t>(p - lo)] = 1;
    for (size_t k = 0; k < seen.size(); ++k)
      if (seen[k]) present.push_back(lo + static_cast<int64_t>(k));
  } else {
    present = partitions;
    std::sort(present.begin(), present.end());
    present.erase(std::unique(present.begin(), present.end()), present.end());
  }
  auto build = [&](std::span<const EncodedEvent> rows) {
    std::shared_ptr<Segment> segment = BuildSorted(rows, properties);
    size_t extras_at = 0;
    auto bytes = std::make_shared<std::string>(segment->EncodeWithExtrasAt(level, &extras_at));
    segment->extras_.reset();
    segment->encoded_extras_ = std::string_view(*bytes).substr(extras_at);
    segment->encoded_ = std::move(bytes);
    out.push_back(std::move(segment));
  };
  if (present.size() == 1) {
    build(events);
    return out;
  }
  std::vector<uint32_t> start(present.size() + 1, 0);
  std::vector<uint32_t> index_of(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    index_of[i] = static_cast<uint32_t>(std::lower_bound(present.begin(), present.end(), partitions[i]) - present.begin());
    ++start[index_of[i] + 1];
  }
  for (size_t k = 1; k < start.size(); ++k) start[k] += start[k - 1];
  std::vector<EncodedEvent> by_partition(events.size());
  std::vector<uint32_t> next(start.begin(), start.end() - 1);
  for (size_t i = 0; i < events.size(); ++i) by_partition[next[index_of[i]]++] = events[i];
  for (size_t k = 0; k < present.size(); ++k)
    build(std::span<const EncodedEvent>(by_partition).subspan(start[k], start[k + 1] - start[k]));
  return out;
}

std::shared_ptr<Segment> Segment::BuildSorted(std::span<const EncodedEvent> events,
                                              const std::vector<EncodedProperty>& properties) {
  auto segment = std::shared_ptr<Segment>(new Segment());
  auto extras = std::make_shared<SegmentExtras>();
  size_t n = events.size();
  segment->actor_.resize(n);
  segment->time_.resize(n);
  segment->type_.resize(n);
  extras->session.resize(n);
  // Property columns by key, each allocated once. Keys are dictionary ids, usually few
  // and small: index them directly (sorting every property's key cost a measurable part
  // of each batch); a batch of rare huge ids falls back to a sorted key list. Only the
  // properties of `events` count: they may be one partition of a batch.
  auto each_property = [&](auto&& f) {
    for (const EncodedEvent& e : events)
      for (uint32_t p = e.properties_begin; p < e.properties_end; ++p) f(properties[p]);
  };
  DictId max_key = 0;
  size_t property_count = 0;
  each_property([&](const EncodedProperty& p) {
    max_key = std::max(max_key, p.key);
    ++property_count;
  });
  bool dense = property_count == 0 || max_key < 4 * property_count + 4096;
  std::vector<DictId> keys;
  std::vector<uint32_t> column_index, column_count;
  if (dense) {
    column_count.assign(property_count == 0 ? 0 : size_t{max_key} + 1, 0);
    each_property([&](const EncodedProperty& p) { ++column_count[p.key]; });
    column_index.assign(column_count.size(), UINT32_MAX);
    for (size_t key = 0; key < column_count.size(); ++key) {
      if (column_count[key] == 0) continue;
      column_index[key] = static_cast<uint32_t>(keys.size());
      keys.push_back(static_cast<DictId>(key));
    }
  } else {
    each_property([&](const EncodedProperty& p) { keys.push_back(p.key); });
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  }
  extras->properties.resize(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) {
    extras->properties[k].key = keys[k];
    if (dense) {
      extras->properties[k].rows.reserve(column_count[keys[k]]);
      extras->properties[k].values.reserve(column_count[keys[k]]);
    }
  }
  auto column_of = [&](DictId key) -> SegmentExtras::Column& {
    if (dense) return extras->properties[column_index[key]];
    auto it = std::lower_bound(keys.begin(), keys.end(), key);
    return extras->properties[static_cast<size_t>(it - keys.begin())];
  };
  for (size_t i = 0; i < n; ++i) {
    const EncodedEvent& e = events[i];
    segment->actor_[i] = e.actor;
    segment->time_[i] = e.time;
    segment->type_[i] = e.type;
    extras->session[i] = e.session;
    segment->min_time_ = std::min(segment->min_time_, e.time);
    segment->max_time_ = std::max(segment->max_time_, e.time);
    for (uint32_t p = e.properties_begin; p < e.properties_end; ++p) {
      auto& column = column_of(properties[p].key);
      column.rows.push_back(static_cast<uint32_t>(i));
      column.values.push_back(properties[p].value);
    }
  }
  extras->session_marks = SessionMarks(extras->session);
  segment->extras_ = std::move(extras);
  return segment;
}

std::string Segment::Encode(int level) const {
  size_t extras_at = 0;
  return EncodeWithExtrasAt(level, &extras_at);
}

std::string Segment::EncodeWithExtrasAt(int level, size_t* extras_at) const {
  std::string out(kMagic);
  ByteWriter w(&out);
  std::string raw;
  ByteWriter r(&raw);
  r.Varint(size());
  r.SignedVarint(min_time_);
  r.SignedVarint(max_time_);
  AppendCompressedBlock(raw, level, &out);

  // Actors as runs; times as deltas within a run (non-negative: sorted by time), each
  // split into a varint of its high part and its low byte in a second stream: the high
  // parts are small and skewed, which zstd's entropy coder shrinks, where whole varints
  // of millisecond gaps hardly compressed (2.6 bytes an event; 2.0 split).
  raw.clear();
  std::string times_high, times_low;
  ByteWriter t(&times_high);
  auto put_time = [&](uint64_t delta) {
    t.Varint(delta >> 8);
    times_low.push_back(static_cast<char>(delta & 0xff));
  };
  size_t runs = 0;
  for (size_t i = 0; i < size(); ++i) runs += (i == 0 || actor_[i] != actor_[i - 1]);
  r.Varint(runs);
  ActorId previous_actor = 0;
  for (size_t i = 0; i < size();) {
    size_t j = i;
    while (j < size() && actor_[j] == actor_[i]) ++j;
    r.Varint(actor_[i] - previous_actor);
    r.Varint(j - i);
    previous_actor = actor_[i];
    put_time(static_cast<uint64_t>(time_[i] - min_time_));
    for (size_t k = i + 1; k < j; ++k) put_time(static_cast<uint64_t>(time_[k] - time_[k - 1]));
    i = j;
  }
  AppendCompressedBlock(raw, level, &out);
  std::string times;
  ByteWriter(&times).Bytes(times_high);
  times.append(times_low);
  AppendCompressedBlock(times, level, &out);
  AppendCompressedBlock(std::string_view(reinterpret_cast<const char*>(type_.data()),
                                         type_.size() * sizeof(EventTypeId)),
                        level, &out);

  std::string extras_bytes;
  auto extras_or = Extras();
  SegmentExtras empty;
  const SegmentExtras& x = extras_or.ok() ? **extras_or : empty;
  raw.clear();
  r.Varint(x.session.size());
  for (size_t i = 0; i < x.session.size(); ++i) {
    int64_t session = x.session[i];
    if (i > 0 && session == x.session[i - 1]) {
      r.U8(kSessionSame);
    } else if (session == -1) {
      r.U8(kSessionNone);
    } else {
      r.U8(kSessionSinceStart);
      r.SignedVarint(static_cast<int64_t>(static_cast<uint64_t>(time_[i]) -
                                          static_cast<uint64_t>(session)));
    }
  }
  AppendCompressedBlock(raw, level, &extras_bytes);
  ByteWriter e(&extras_bytes);
  e.Varint(x.properties.size());
  for (const auto& column : x.properties) {
    e.Varint(column.key);
    raw.clear();
    EncodeValues(column, &raw);
    AppendCompressedBlock(raw, level, &extras_bytes);
  }
  w.Varint(extras_bytes.size());
  *extras_at = out.size();
  out.append(extras_bytes);
  return out;
}

namespace {

Status DecodeCore(std::string_view bytes, std::string_view what, std::vector<ActorId>& actor,
                  std::vector<int64_t>& time, std::vector<EventTypeId>& type, int64_t& min_time,
                  int64_t& max_time, std::string_view& extras, int& format) {
  std::string_view magic = bytes.substr(0, kMagic.size());
  if (magic != kMagic && magic != kMagicV1) return Corruption("{}: not a sibyl segment", what);
  format = magic == kMagicV1 ? 1 : 2;
  ByteReader r(bytes.substr(kMagic.size()));
  ASSIGN_OR_RETURN(std::string header, ReadCompressedBlock(r, what));
  ByteReader h(header);
  uint64_t n = h.Varint();
  min_time = h.SignedVarint();
  max_time = h.SignedVarint();
  if (!h.ok() || n > (1ull << 34)) return Corruption("{}: bad segment header", what);
  ASSIGN_OR_RETURN(std::string runs_raw, ReadCompressedBlock(r, what));
  ASSIGN_OR_RETURN(std::string times_raw, ReadCompressedBlock(r, what));
  ASSIGN_OR_RETURN(std::string types_raw, ReadCompressedBlock(r, what));
  if (types_raw.size() != n * sizeof(EventTypeId)) return Corruption("{}: bad type column", what);
  ResizePrefaulted(actor, n);
  ResizePrefaulted(time, n);
  ResizePrefaulted(type, n);
  std::memcpy(type.data(), types_raw.data(), types_raw.size());
  ByteReader runs(runs_raw), times(times_raw);
  // Format 2: high parts (a length-prefixed stream) then one low byte per event.
  std::string_view times_low;
  if (format >= 2) {
    ByteReader whole(times_raw);
    std::string_view high = whole.Bytes();
    if (!whole.ok() || whole.remaining() != n) return Corruption("{}: bad time column", what);
    times_low = std::string_view(times_raw).substr(whole.pos());
    times = ByteReader(high);
  }
  size_t at = 0;
  auto next_time = [&]() -> uint64_t {
    if (format < 2) return times.Varint();
    return times.Varint() << 8 | static_cast<uint8_t>(times_low[at]);
  };
  uint64_t run_count = runs.Varint();
  ActorId current = 0;
  for (uint64_t k = 0; k < run_count && runs.ok(); ++k) {
    current += static_cast<ActorId>(runs.Varint());
    uint64_t length = runs.Varint();
    if (length > n - at) return Corruption("{}: bad actor runs", what);
    int64_t t = min_time;
    for (uint64_t j = 0; j < length; ++j) {
      t += static_cast<int64_t>(next_time());
      actor[at] = current;
      time[at] = t;
      ++at;
    }
  }
  if (!runs.ok() || !times.ok() || at != n) return Corruption("{}: truncated core columns", what);
  uint64_t extras_size = r.Varint();
  if (!r.ok() || extras_size != r.remaining()) return Corruption("{}: bad extras size", what);
  extras = bytes.substr(kMagic.size() + r.pos());
  return Status::Ok();
}

}  // namespace

std::string Segment::EncodePart(int level) const {
  size_t extras_at = 0;
  return EncodePart(level, &extras_at);
}

std::string Segment::EncodePart(int level, size_t* extras_at) const {
  std::string bytes = EncodeWithExtrasAt(level, extras_at);
  uint32_t crc = Crc32c(bytes);
  bytes.append(reinterpret_cast<const char*>(&crc), 4);
  return bytes;
}

Result<std::shared_ptr<const Segment>> Segment::Decode(std::shared_ptr<const MappedFile> file) {
  std::string_view data = file->data();
  if (data.size() < 4) return Corruption("{}: truncated part file", file->path());
  uint32_t crc;
  std::memcpy(&crc, data.data() + data.size() - 4, 4);
  data.remove_suffix(4);
  if (Crc32c(data) != crc)
    return Corruption("{}: checksum mismatch (the part file is damaged)", file->path());
  auto segment = std::shared_ptr<Segment>(new Segment());
  RETURN_IF_ERROR(DecodeCore(data, file->path(), segment->actor_, segment->time_,
                             segment->type_, segment->min_time_, segment->max_time_,
                             segment->encoded_extras_, segment->format_));
  segment->file_ = std::move(file);
  return std::shared_ptr<const Segment>(std::move(segment));
}

Result<std::shared_ptr<const Segment>> Segment::OfWrittenPart(std::shared_ptr<const Segment> segment,
                                                              std::shared_ptr<const MappedFile> file,
                                                              size_t extras_at) {
  // The file holds the encoding and a 4-byte checksum; the optional columns end there.
  if (file->data().size() < extras_at + 4)
    return Corruption("{}: shorter than the part just written", file->path());
  auto part = std::shared_ptr<Segment>(new Segment());
  if (segment.use_count() == 1) {
    // The last reference: its columns move (14 bytes an event that need no fresh memory).
    // Every Segment is created non-const (new Segment()), so this is a sound cast.
    auto& owned = const_cast<Segment&>(*segment);
    part->actor_ = std::move(owned.actor_);
    part->time_ = std::move(owned.time_);
    part->type_ = std::move(owned.type_);
  } else {
    part->actor_ = segment->actor_;
    part->time_ = segment->time_;
    part->type_ = segment->type_;
  }
  part->min_time_ = segment->min_time_;
  part->max_time_ = segment->max_time_;
  part->encoded_extras_ = file->data().substr(extras_at, file->data().size() - 4 - extras_at);
  part->file_ = std::move(file);
  return std::shared_ptr<const Segment>(std::move(part));
}

Result<std::shared_ptr<const Segment>> Segment::DecodeBytes(std::string_view bytes,
                                                            std::string_view what) {
  auto segment = std::shared_ptr<Segment>(new Segment());
  std::string_view extras;
  RETURN_IF_ERROR(DecodeCore(bytes, what, segment->actor_, segment->time_, segment->type_,
                             segment->min_time_, segment->max_time_, extras, segment->format_));
  ASSIGN_OR_RETURN(segment->extras_, DecodeExtras(extras, what, true, nullptr, segment->format_, segment->time_));
  if (segment->extras_->session.size() != segment->size())
    return Corruption("{}: session column has the wrong length", what);
  return std::shared_ptr<const Segment>(std::move(segment));
}

Result<std::shared_ptr<const Segment>> Segment::DecodeEncoded(std::shared_ptr<const std::string> bytes,
                                                              std::string_view what) {
  auto segment = std::shared_ptr<Segment>(new Segment());
  RETURN_IF_ERROR(DecodeCore(*bytes, what, segment->actor_, segment->time_, segment->type_,
                             segment->min_time_, segment->max_time_, segment->encoded_extras_,
                             segment->format_));
  segment->encoded_ = std::move(bytes);
  return std::shared_ptr<const Segment>(std::move(segment));
}

std::string_view Segment::SourceName() const {
  return file_ ? std::string_view(file_->path()) : std::string_view("in-memory segment");
}

Result<std::shared_ptr<const SegmentExtras>> Segment::Extras() const {
  if (extras_) return extras_;
  if (!file_ && !encoded_) return std::make_shared<const SegmentExtras>();
  return DecodeExtras(encoded_extras_, SourceName(), true, nullptr, format_, time_);
}

Result<std::shared_ptr<const SegmentExtras>> Segment::Extras(bool sessions,
                                                             const std::vector<DictId>& keys) const {
  if (extras_) return extras_;
  if (!file_ && !encoded_) return std::make_shared<const SegmentExtras>();
  return DecodeExtras(encoded_extras_, SourceName(), sessions, &keys, format_, time_);
}

size_t Segment::MemoryBytes() const {
  size_t bytes = size() * (sizeof(ActorId) + sizeof(int64_t) + sizeof(EventTypeId));
  if (encoded_) bytes += encoded_->size();
  if (extras_) {
    bytes += extras_->session.size() * sizeof(int64_t);
    for (const auto& c : extras_->properties)
      bytes += c.rows.size() * (sizeof(uint32_t) + sizeof(StoredValue));
  }
  return bytes;
}

}  // namespace sibyl

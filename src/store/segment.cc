#include "store/segment.h"

#include <atomic>
#include <thread>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <queue>
#include <span>
#include <tuple>

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

// Decodes sessions (when `sessions`) and the property columns whose key is in `keys`
// (sorted; nullptr means all). A whole decode (nullptr) gives session ids and marks; a
// scan's decode (keys given) only the marks, an eighth of the memory.
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
    const bool ids = keys == nullptr;
    if (ids) ResizePrefaulted(extras->session, n);
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
      if (ids) extras->session[i] = current;
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
// The partition of time t: floor(t / partition_ms).
int64_t PartitionOf(int64_t t, int64_t partition_ms) {
  return t >= 0 ? t / partition_ms : -((-t + partition_ms - 1) / partition_ms);
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

std::vector<std::shared_ptr<const Segment>> Segment::FromRows(
    const std::vector<std::shared_ptr<const Segment>>& inputs, const std::vector<RowRef>& order,
    const std::vector<uint32_t>& group_of, uint32_t groups) {
  std::vector<std::shared_ptr<const SegmentExtras>> extras;
  for (const auto& s : inputs) {
    auto x = s->Extras();
    // A part's extras passed their checksum at open; decoding them again cannot fail
    // unless the file changed underneath, which the format does not allow.
    extras.push_back(x.ok() ? *x : std::make_shared<const SegmentExtras>());
    if (extras.back()->session.size() != s->size()) {
      auto filled = std::make_shared<SegmentExtras>(*extras.back());
      filled->session.assign(s->size(), -1);
      extras.back() = filled;
    }
  }
  std::vector<std::shared_ptr<Segment>> out(groups);
  std::vector<std::shared_ptr<SegmentExtras>> out_extras(groups);
  std::vector<uint32_t> group_size(groups, 0);
  for (size_t i = 0; i < order.size(); ++i) ++group_size[group_of.empty() ? 0 : group_of[i]];
  for (uint32_t g = 0; g < groups; ++g) {
    out[g] = std::shared_ptr<Segment>(new Segment());
    out_extras[g] = std::make_shared<SegmentExtras>();
    ReservePrefaulted(out[g]->actor_, group_size[g]);
    ReservePrefaulted(out[g]->time_, group_size[g]);
    ReservePrefaulted(out[g]->type_, group_size[g]);
    ReservePrefaulted(out_extras[g]->session, group_size[g]);
  }
  // Where each input row goes: its index in `order` (UINT32_MAX: not in this merge), and
  // for each index its row in its group. Four bytes an input row and an output row, where a
  // group and a row for every input row took eight.
  std::vector<std::vector<uint32_t>> new_index(inputs.size());
  size_t input_rows = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    ResizePrefaulted(new_index[k], inputs[k]->size());
    std::fill(new_index[k].begin(), new_index[k].end(), UINT32_MAX);
    input_rows += inputs[k]->size();
  }
  const bool grouped = !group_of.empty() && groups > 1;
  std::vector<uint32_t> row_in_group;
  if (grouped) ResizePrefaulted(row_in_group, order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const RowRef& ref = order[i];
    const Segment& s = *inputs[ref.input];
    uint32_t g = group_of.empty() ? 0 : group_of[i];
    Segment& o = *out[g];
    new_index[ref.input][ref.row] = static_cast<uint32_t>(i);
    if (grouped) row_in_group[i] = static_cast<uint32_t>(o.time_.size());
    o.actor_.push_back(s.actor_[ref.row]);
    o.time_.push_back(s.time_[ref.row]);
    o.type_.push_back(s.type_[ref.row]);
    o.min_time_ = std::min(o.min_time_, s.time_[ref.row]);
    o.max_time_ = std::max(o.max_time_, s.time_[ref.row]);
    out_extras[g]->session.push_back(extras[ref.input]->session[ref.row]);
  }
  // The group and row of output index i.
  auto group_at = [&](uint32_t i) -> uint32_t { return group_of.empty() ? 0 : group_of[i]; };
  auto row_at = [&](uint32_t i) -> uint32_t { return grouped ? row_in_group[i] : i; };
  // Every row goes to the one group (a plain merge), or some rows are left out (a
  // partition or a wave of MergeEachPartition) and columns are counted row by row.
  const bool every_row_to_one = groups == 1 && order.size() == input_rows;
  // Property columns, key by key, through the row maps: no per-row allocation.
  std::vector<DictId> keys;
  for (const auto& x : extras)
    for (const auto& column : x->properties) keys.push_back(column.key);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  // A gathered cell: its output row and where its value is (input, index in the input's
  // column). Twelve bytes, where the row and a copy of the value took 24: half the
  // scratch memory (fresh pages are dear on VMs) and half the bytes the merges move.
  struct Entry {
    uint32_t row;
    uint32_t input;
    uint32_t at;
  };
  auto by_row = [](const Entry& a, const Entry& b) { return a.row < b.row; };
  // Keys are independent: two threads take them in turns (a checkpoint otherwise spends
  // most of its merge on one core while the other waits), each with its own scratch.
  // columns_of[key index][group] collects the results, appended in key order below.
  std::vector<std::vector<SegmentExtras::Column>> columns_of(keys.size());
  struct Scratch {
    std::vector<std::vector<Entry>> gathered;
    std::vector<size_t> run_start, merge_work, group_count;
    std::vector<char> needs_sort;
    std::vector<const SegmentExtras::Column*> columns;
  };
  auto merge_key = [&](size_t key_index, Scratch& x) {
    DictId key = keys[key_index];
    x.gathered.resize(groups);
    x.run_start.assign(groups, 0);
    x.merge_work.assign(groups, 0);
    x.group_count.assign(groups, 0);
    x.needs_sort.assign(groups, 0);
    for (uint32_t g = 0; g < groups; ++g) x.gathered[g].clear();
    // The inputs' columns of this key, and how many values each group gets: fresh pages
    // fault in one by one at great cost on VMs, so each list is reserved prefaulted once.
    x.columns.assign(extras.size(), nullptr);
    for (size_t k = 0; k < extras.size(); ++k) {
      auto it = std::lower_bound(extras[k]->properties.begin(), extras[k]->properties.end(), key,
                                 [](const SegmentExtras::Column& c, DictId d) { return c.key < d; });
      if (it == extras[k]->properties.end() || it->key != key) continue;
      x.columns[k] = &*it;
      if (every_row_to_one) {
        x.group_count[0] += it->rows.size();
      } else {
        for (uint32_t row : it->rows)
          if (uint32_t i = new_index[k][row]; i != UINT32_MAX) ++x.group_count[group_at(i)];
      }
    }
    for (uint32_t g = 0; g < groups; ++g) ReservePrefaulted(x.gathered[g], x.group_count[g]);
    // Each input's rows arrive in ascending output order (the merge keeps an input's
    // order), so a group's list is a sequence of ascending runs. Inputs usually hold
    // disjoint actor ranges (a file is cut into chunks), so each run is merged into place
    // over just the part it overlaps; when runs interleave a lot, one sort at the end is
    // cheaper.
    for (size_t k = 0; k < extras.size(); ++k) {
      const SegmentExtras::Column* it = x.columns[k];
      if (it == nullptr) continue;
      for (uint32_t g = 0; g < groups; ++g) x.run_start[g] = x.gathered[g].size();
      for (size_t j = 0; j < it->rows.size(); ++j) {
        uint32_t i = new_index[k][it->rows[j]];
        if (i == UINT32_MAX) continue;
        x.gathered[group_at(i)].push_back({row_at(i), static_cast<uint32_t>(k), static_cast<uint32_t>(j)});
      }
      for (uint32_t g = 0; g < groups; ++g) {
        auto& list = x.gathered[g];
        size_t start = x.run_start[g];
        if (x.needs_sort[g] || start == 0 || start == list.size() ||
            list[start - 1].row < list[start].row)
          continue;
        auto from = std::upper_bound(list.begin(), list.begin() + static_cast<ptrdiff_t>(start),
                                     list[start], by_row);
        x.merge_work[g] += static_cast<size_t>(list.end() - from);
        if (x.merge_work[g] > 4 * list.size() + 4096) {
          x.needs_sort[g] = 1;  // runs interleave: sort once instead
          continue;
        }
        std::inplace_merge(from, list.begin() + static_cast<ptrdiff_t>(start), list.end(), by_row);
      }
    }
    columns_of[key_index].resize(groups);
    for (uint32_t g = 0; g < groups; ++g) {
      auto& list = x.gathered[g];
      if (list.empty()) continue;
      // Ties (an event with a key twice) keep input order, as the merges above do.
      if (x.needs_sort[g])
        std::sort(list.begin(), list.end(), [](const Entry& a, const Entry& b) {
          return std::tie(a.row, a.input, a.at) < std::tie(b.row, b.input, b.at);
        });
      SegmentExtras::Column& column = columns_of[key_index][g];
      column.key = key;
      ResizePrefaulted(column.rows, list.size());
      ResizePrefaulted(column.values, list.size());
      for (size_t e = 0; e < list.size(); ++e) {
        column.rows[e] = list[e].row;
        column.values[e] = x.columns[list[e].input]->values[list[e].at];
      }
    }
  };
  std::atomic<size_t> next_key{0};
  auto merge_keys = [&] {
    Scratch scratch;
    for (size_t i; (i = next_key.fetch_add(1)) < keys.size();) merge_key(i, scratch);
  };
  {
    // Small merges (a few HTTP batches) are not worth a thread.
    std::jthread helper;
    if (order.size() >= (1u << 16) && keys.size() > 1) helper = std::jthread(merge_keys);
    merge_keys();
  }
  for (auto& per_group : columns_of)
    for (uint32_t g = 0; g < groups; ++g)
      if (!per_group[g].rows.empty()) out_extras[g]->properties.push_back(std::move(per_group[g]));
  std::vector<std::shared_ptr<const Segment>> result;
  for (uint32_t g = 0; g < groups; ++g) {
    out_extras[g]->session_marks = SessionMarks(out_extras[g]->session);
    out[g]->extras_ = std::move(out_extras[g]);
    result.push_back(std::move(out[g]));
  }
  return result;
}

std::vector<RowRef> Segment::MergeOrder(const std::vector<std::shared_ptr<const Segment>>& inputs) {
  // k-way merge of inputs already sorted by (actor, time); ties keep input order.
  size_t total = 0;
  for (const auto& s : inputs) total += s->size();
  std::vector<RowRef> order;
  order.reserve(total);
  using Head = std::tuple<ActorId, int64_t, uint32_t, uint32_t>;  // actor, time, input, row
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  for (uint32_t k = 0; k < inputs.size(); ++k)
    if (inputs[k]->size() > 0) heap.emplace(inputs[k]->actor_[0], inputs[k]->time_[0], k, 0);
  while (!heap.empty()) {
    auto [a, t, k, row] = heap.top();
    heap.pop();
    const Segment& s = *inputs[k];
    // Take the run of this input that stays below the next head, without heap work.
    uint32_t end = row + 1;
    if (heap.empty()) {
      end = static_cast<uint32_t>(s.size());
    } else {
      const Head& next = heap.top();
      while (end < s.size() && Head(s.actor_[end], s.time_[end], k, end) < next) ++end;
    }
    for (uint32_t r = row; r < end; ++r) order.push_back({k, r});
    if (end < s.size()) heap.emplace(s.actor_[end], s.time_[end], k, end);
  }
  return order;
}

std::shared_ptr<const Segment> Segment::Merge(
    const std::vector<std::shared_ptr<const Segment>>& inputs) {
  return FromRows(inputs, MergeOrder(inputs), {}, 1)[0];
}

std::vector<std::shared_ptr<const Segment>> Segment::MergeByPartition(
    const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms) {
  std::vector<std::shared_ptr<const Segment>> out;
  (void)MergeInWaves(inputs, partition_ms, SIZE_MAX, [&](std::shared_ptr<const Segment> partition) {
    out.push_back(std::move(partition));
    return Status::Ok();
  });
  return out;
}

Status Segment::MergeInWaves(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                             size_t wave_rows, const std::function<Status(std::shared_ptr<const Segment>)>& each) {
  std::vector<RowRef> order = MergeOrder(inputs);
  // The partitions present, in time order, and each row's index among them (four bytes
  // a row: this runs over every row of a checkpoint, once per wave, where an 8-byte
  // partition per row and a std::map lookup per row and wave were a tenth of the merge).
  std::vector<int64_t> partitions;
  // Inputs spanning very many partitions (years of sparse data) make the list from the
  // partitions rows fall in instead.
  const size_t limit = inputs.size() * 4 + 1024;
  bool listed_all = true;
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    const int64_t lo = PartitionOf(s->min_time_, partition_ms), hi = PartitionOf(s->max_time_, partition_ms);
    if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) >= limit) listed_all = false;
    for (int64_t p = lo; listed_all && p <= hi; ++p) partitions.push_back(p);
    if (partitions.size() > 4 * limit) {
      std::sort(partitions.begin(), partitions.end());
      partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
      listed_all = listed_all && partitions.size() <= limit;
    }
    if (!listed_all) break;
  }
  if (!listed_all) {
    partitions.clear();
    for (const RowRef& ref : order) partitions.push_back(PartitionOf(inputs[ref.input]->time_[ref.row], partition_ms));
  }
  std::sort(partitions.begin(), partitions.end());
  partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
  // Consecutive partitions (the usual case) are found by subtraction, others by search.
  const bool consecutive = partitions.empty() ||
                           static_cast<uint64_t>(partitions.back()) - static_cast<uint64_t>(partitions.front()) + 1 ==
                               partitions.size();
  std::vector<uint32_t> partition_index(order.size());
  std::vector<size_t> rows_of(partitions.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t p = PartitionOf(inputs[order[i].input]->time_[order[i].row], partition_ms);
    const auto at = static_cast<uint32_t>(
        consecutive ? p - partitions.front()
                    : std::lower_bound(partitions.begin(), partitions.end(), p) - partitions.begin());
    partition_index[i] = at;
    ++rows_of[at];
  }
  for (size_t first = 0; first < partitions.size();) {
    while (first < partitions.size() && rows_of[first] == 0) ++first;  // no row falls in it
    if (first == partitions.size()) break;
    // The wave: consecutive partitions up to `wave_rows` rows (at least one partition).
    size_t in_wave = 0, last = first;
    for (; last < partitions.size() && (in_wave == 0 || in_wave + rows_of[last] <= wave_rows); ++last)
      in_wave += rows_of[last];
    // Group numbers of the wave's partitions that hold rows, in time order.
    std::vector<uint32_t> group_of_partition(last - first, UINT32_MAX);
    uint32_t groups = 0;
    for (size_t p = first; p < last; ++p)
      if (rows_of[p] > 0) group_of_partition[p - first] = groups++;
    std::vector<RowRef> wave;
    std::vector<uint32_t> group_of;
    if (in_wave == order.size()) {
      wave = std::move(order);  // everything in one wave: no copy
      group_of.resize(wave.size());
      for (size_t i = 0; i < wave.size(); ++i) group_of[i] = group_of_partition[partition_index[i] - first];
    } else {
      wave.reserve(in_wave);
      group_of.reserve(in_wave);
      for (size_t i = 0; i < order.size(); ++i) {
        const uint32_t at = partition_index[i];
        if (at < first || at >= last) continue;
        wave.push_back(order[i]);
        group_of.push_back(group_of_partition[at - first]);
      }
    }
    for (auto& partition : FromRows(inputs, wave, group_of, groups)) RETURN_IF_ERROR(each(std::move(partition)));
    first = last;
  }
  return Status::Ok();
}

Status Segment::MergeEachPartition(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                                   const std::function<Status(std::shared_ptr<const Segment>)>& each) {
  // Merging partition by partition merges each input once for every partition its time
  // range touches; past twice the rows (inputs that each span many weeks), merge all
  // inputs once instead and build the partitions in waves of about a quarter of the rows:
  // each wave scans the inputs' property cells once more, but only a quarter of the
  // merged copy is in memory at a time.
  size_t rows = 0, work = 0;
  bool spread = false;
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    rows += s->size();
    const uint64_t span = static_cast<uint64_t>(PartitionOf(s->max_time_, partition_ms) -
                                                PartitionOf(s->min_time_, partition_ms)) + 1;
    if (span > 2 * inputs.size() + 2) spread = true;  // also bounds the loop below
    work += s->size() * std::min<uint64_t>(span, 2 * inputs.size() + 2);
  }
  if (spread || work > 2 * rows + (size_t{1} << 16))
    return MergeInWaves(inputs, partition_ms, std::max<size_t>(1, rows / 4), each);
  std::map<int64_t, std::vector<std::shared_ptr<const Segment>>> inputs_of;  // in input order
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    for (int64_t p = PartitionOf(s->min_time_, partition_ms); p <= PartitionOf(s->max_time_, partition_ms); ++p)
      inputs_of[p].push_back(s);
  }
  for (const auto& [partition, members] : inputs_of) {
    // A subset of the inputs in their original order merges its rows in the same order
    // as the whole (the merge order is by actor, time, input, row), so the partition is
    // the one MergeByPartition builds.
    std::vector<RowRef> order = MergeOrder(members);
    std::erase_if(order, [&, p = partition](const RowRef& ref) {
      return PartitionOf(members[ref.input]->time_[ref.row], partition_ms) != p;
    });
    if (order.empty()) continue;
    RETURN_IF_ERROR(each(std::move(FromRows(members, order, {}, 1)[0])));
  }
  return Status::Ok();
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

#include "store/catalog.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <thread>

#include "common/memory.h"
#include "common/time.h"
#include "store/codec.h"

namespace sibyl {
namespace {
uint64_t NonZero(uint64_t h) { return h == 0 ? 1 : h; }

// Sorts uniformly distributed 64-bit hashes: one counting pass on the top 16 bits, then
// small buckets (std::sort of millions of hashes was most of a checkpoint's index cost).
void SortHashes(std::vector<uint64_t>& v) {
  if (v.size() < 65536) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<uint32_t> start(65537, 0);
  for (uint64_t h : v) ++start[(h >> 48) + 1];
  for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::vector<uint64_t> out(v.size());
  std::vector<uint32_t> at(start.begin(), start.end() - 1);
  for (uint64_t h : v) out[at[h >> 48]++] = h;
  for (size_t b = 0; b + 1 < start.size(); ++b)
    std::sort(out.begin() + start[b], out.begin() + start[b + 1]);
  v.swap(out);
}

// Elias-Fano code of `n` ascending 64-bit values, the largest `max`, which
// each_value(emit) emits in order: the low `low_bits` of each packed, the high parts as a
// unary bit vector (bit high_i + i set). About 2 + 64 - log2(n) bits each.
template <typename EachValue>
void PutEliasFano(size_t n, uint64_t max, EachValue&& each_value, ByteWriter& w) {
  int low_bits = n == 0 ? 0 : 64 - std::bit_width(n);
  uint64_t mask = low_bits == 0 ? 0 : (uint64_t{1} << low_bits) - 1;
  uint64_t high_bits = n == 0 ? 0 : n + (max >> low_bits) + 1;
  std::vector<uint64_t> low((n * low_bits + 63) / 64 + 1, 0), high((high_bits + 63) / 64, 0);
  // Grown once: the code is most of a users file, and doubling up to it copied every size.
  w.out()->reserve(w.out()->size() + 24 + (n * low_bits + 7) / 8 + (high_bits + 7) / 8);
  size_t i = 0;
  each_value([&](uint64_t value) {
    uint64_t v = value & mask;
    size_t bit = i * static_cast<size_t>(low_bits);
    size_t word = bit / 64, shift = bit % 64;
    low[word] |= v << shift;
    if (shift + low_bits > 64) low[word + 1] |= v >> (64 - shift);
    uint64_t h = (value >> low_bits) + i;
    high[h / 64] |= uint64_t{1} << (h % 64);
    ++i;
  });
  w.Varint(n);
  w.U8(static_cast<uint8_t>(low_bits));
  w.Varint(high_bits);
  w.Raw(low.data(), (n * low_bits + 7) / 8);
  w.Raw(high.data(), (high_bits + 7) / 8);
}

void PutEliasFano(const std::vector<uint64_t>& sorted, ByteWriter& w) {
  PutEliasFano(sorted.size(), sorted.empty() ? 0 : sorted.back(), [&](auto&& emit) {
    for (uint64_t v : sorted) emit(v);
  }, w);
}

bool GetEliasFano(ByteReader& r, std::vector<uint64_t>& out) {
  uint64_t n = r.Varint();
  int low_bits = r.U8();
  uint64_t high_bits = r.Varint();
  if (!r.ok() || low_bits > 63 || n > high_bits || high_bits / 8 > r.remaining() ||
      n * low_bits / 8 > r.remaining())
    return false;
  std::vector<uint64_t> low((n * low_bits + 63) / 64 + 1, 0), high((high_bits + 63) / 64, 0);
  r.Raw(low.data(), (n * low_bits + 7) / 8);
  r.Raw(high.data(), (high_bits + 7) / 8);
  if (!r.ok()) return false;
  uint64_t mask = low_bits == 0 ? 0 : (uint64_t{1} << low_bits) - 1;
  out.clear();
  out.reserve(n);
  for (size_t word = 0; word < high.size(); ++word) {
    for (uint64_t bits = high[word]; bits != 0; bits &= bits - 1) {
      size_t i = out.size();
      if (i == n) return false;
      uint64_t h = word * 64 + static_cast<uint64_t>(std::countr_zero(bits)) - i;
      size_t bit = i * static_cast<size_t>(low_bits), w = bit / 64, shift = bit % 64;
      uint64_t v = low[w] >> shift;
      if (shift + low_bits > 64) v |= low[w + 1] << (64 - shift);
      uint64_t value = (h << low_bits) | (v & mask);
      if (i > 0 && value <= out.back()) return false;
      out.push_back(value);
    }
  }
  return out.size() == n;
}

}  // namespace

namespace {
// A segment's highest load: 3/4. Linear probing over 8-byte slots stays short (about four
// slots, one or two cache lines, for a new id at the loads a segment sees between
// doublings) and 10M ids take 16M slots, not 32M: on the VMs measured here fresh memory
// costs ~2 s a GiB.
bool OverLoad(size_t used, size_t slots) { return used * 4 > slots * 3; }

// The smallest segment: 8 slots (6 ids), so that an index of a few ids spread over every
// segment stays small (1024 segments of 8 slots: 64 KB).
constexpr int kMinSegmentBits = 3;

constexpr uintptr_t kPage = 4096;  // the smallest page: rounding to it covers bigger ones

// The fewest slot bits that hold `ids` entries at most 3/4 full.
int BitsFor(size_t ids) {
  int bits = kMinSegmentBits;
  while (OverLoad(ids, size_t{1} << bits)) ++bits;
  return bits;
}
}  // namespace

template <typename F>
void DedupIndex::ForEachSorted(F&& f) const {
  // Segments hold the hashes of one top-bits prefix each, in order. Within one, probing
  // never wraps, so a cluster (a run of occupied slots) holds exactly the hashes whose
  // home slot lies in it, and clusters come in ascending order of home: sorting each
  // cluster, a few slots, gives every hash in ascending order.
  std::vector<uint64_t> cluster;
  for (const Segment& s : segments_) {
    const uint64_t* slots = s.slots.get();
    for (size_t i = 0; i <= s.size; ++i) {
      if (i < s.size && slots[i] != 0) {
        cluster.push_back(slots[i]);
        continue;
      }
      if (cluster.empty()) continue;
      std::sort(cluster.begin(), cluster.end());
      for (uint64_t h : cluster) f(h);
      cluster.clear();
    }
  }
}

void DedupIndex::EncodeTo(std::string* out, size_t from, size_t to) const {
  to = std::min(to, hashes_.size());
  from = std::min(from, to);
  // Group by ingestion day; each group remembers its latest ingestion time.
  auto day_of = [](int64_t at) {
    return at >= 0 ? at / kMsPerDay : -((-at + kMsPerDay - 1) / kMsPerDay);
  };
  ByteWriter w(out);
  bool one_day = !time_runs_.empty() && from == 0 && to == hashes_.size();
  int64_t latest = INT64_MIN;
  for (size_t r = 0; r < time_runs_.size(); ++r) {
    one_day = one_day && day_of(time_runs_[r].second) == day_of(time_runs_.front().second);
    latest = std::max(latest, time_runs_[r].second);
  }
  if (one_day) {
    // Every id in one group (a bulk load; a store younger than a day): read in order from
    // the table, with no copy and no sort of millions of hashes. The largest is in the
    // last cluster of the last segment that holds any.
    uint64_t max = 0;
    for (size_t k = segments_.size(); k-- > 0 && max == 0;) {
      const uint64_t* slots = segments_[k].slots.get();
      for (size_t i = segments_[k].size; i-- > 0 && (max == 0 || slots[i] != 0);) max = std::max(max, slots[i]);
    }
    w.Varint(1);
    w.SignedVarint(latest);
    PutEliasFano(hashes_.size(), max, [&](auto&& emit) { ForEachSorted(emit); }, w);
    return;
  }
  std::map<int64_t, std::pair<int64_t, std::vector<uint64_t>>> days;  // day -> latest, hashes
  std::map<int64_t, size_t> counts;
  auto run_end = [&](size_t r) { return std::min(RunEnd(r), to); };
  auto run_begin = [&](size_t r) { return std::max(time_runs_[r].first, from); };
  // The first run holding an entry at or after `from`: the last run starting at or before
  // it (runs start in order).
  size_t first_run = 0;
  for (size_t lo = 0, hi = time_runs_.size(); lo < hi;) {
    const size_t mid = lo + (hi - lo) / 2;
    if (time_runs_[mid].first <= from) {
      first_run = mid;
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  while (first_run < time_runs_.size() && run_end(first_run) <= from) ++first_run;
  size_t last_run = first_run;  // one past the last run holding an entry before `to`
  while (last_run < time_runs_.size() && time_runs_[last_run].first < to) ++last_run;
  for (size_t r = first_run; r < last_run; ++r)
    counts[day_of(time_runs_[r].second)] += run_end(r) - run_begin(r);
  for (const auto& [day, count] : counts) ReservePrefaulted(days[day].second, count);
  for (size_t r = first_run; r < last_run; ++r) {
    const int64_t at = time_runs_[r].second;
    auto& group = days[day_of(at)];
    group.first = group.second.empty() ? at : std::max(group.first, at);
    hashes_.ForEachSpan(run_begin(r), run_end(r),
                        [&](const uint64_t* p, size_t n) { group.second.insert(group.second.end(), p, p + n); });
  }
  w.Varint(days.size());
  for (auto& [day, group] : days) {
    SortHashes(group.second);
    w.SignedVarint(group.first);
    PutEliasFano(group.second, w);
  }
}

Status DedupIndex::DecodeFrom(std::string_view bytes, std::string_view what) {
  ByteReader r(bytes);
  uint64_t groups = r.Varint();
  std::vector<uint64_t> hashes;
  for (uint64_t g = 0; g < groups && r.ok(); ++g) {
    int64_t at = r.SignedVarint();
    if (!GetEliasFano(r, hashes)) return Corruption("{}: bad de-duplication index", what);
    std::unique_ptr<bool[]> added(new bool[hashes.size() + 1]);
    InsertMany(hashes.data(), hashes.size(), at, added.get());
  }
  if (!r.ok() || !r.done()) return Corruption("{}: truncated de-duplication index", what);
  return Status::Ok();
}

bool DedupIndex::Contains(uint64_t hash) const {
  if (segments_.empty()) return false;
  const uint64_t h = NonZero(hash);
  const Segment& s = SegmentOf(h);
  if (s.size == 0) return false;
  for (size_t i = Home(s, h); i < s.size && s.slots[i] != 0; ++i)
    if (s.slots[i] == h) return true;
  return false;
}

bool DedupIndex::Insert(uint64_t hash, int64_t ingested_ms) {
  if (segments_.empty()) segments_.resize(kSegments);
  const uint64_t h = NonZero(hash);
  Segment& s = SegmentOf(h);
  if (OverLoad(s.used + 1, Slots(s))) Grow(s);
  size_t i = Home(s, h);
  for (; i < s.size && s.slots[i] != 0; ++i)
    if (s.slots[i] == h) return false;
  if (i < s.size) s.slots[i] = h;
  else Place(s, i, h);
  ++s.used;
  if (time_runs_.empty() || time_runs_.back().second != ingested_ms) time_runs_.emplace_back(hashes_.size(), ingested_ms);
  hashes_.push_back(hash);
  return true;
}

std::vector<std::pair<uint64_t, int64_t>> DedupIndex::entries() const {
  std::vector<std::pair<uint64_t, int64_t>> out;
  out.reserve(hashes_.size());
  for (size_t r = 0; r < time_runs_.size(); ++r)
    for (size_t i = time_runs_[r].first, end = RunEnd(r); i < end; ++i) out.emplace_back(hashes_[i], time_runs_[r].second);
  return out;
}

void DedupIndex::InsertMany(const uint64_t* hashes, size_t n, int64_t ingested_ms, bool* added) {
  constexpr size_t kAhead = 16;
  if (segments_.empty()) segments_.resize(kSegments);
  // A batch at least as big as the index (a reopen's first de-dup files) sizes every
  // segment for itself first instead of doubling each of them many times. Only then: a
  // reservation grows every segment at once, the stall the segments are there to avoid.
  if (n >= (size_t{64} << 10) && n >= size()) Reserve(size() + n);
  for (size_t i = 0; i < n; ++i) {
    // The directory is in the caches; the table, far bigger, is not. A segment that grows
    // before the insert reaches it makes this prefetch useless, nothing worse.
    if (i + kAhead < n) __builtin_prefetch(HomeAddress(NonZero(hashes[i + kAhead])), 1);
    added[i] = Insert(hashes[i], ingested_ms);
  }
}

void DedupIndex::EraseSlot(Segment& s, size_t slot) {
  // Backward-shift deletion keeps linear probing correct without tombstones.
  size_t hole = slot;
  for (size_t i = slot + 1; i < s.size && s.slots[i] != 0; ++i) {
    // Move slots[i] into the hole unless its home lies after the hole.
    if (Home(s, s.slots[i]) <= hole) {
      s.slots[hole] = s.slots[i];
      hole = i;
    }
  }
  s.slots[hole] = 0;
  --s.used;
}

void DedupIndex::Erase(uint64_t h) {
  Segment& s = SegmentOf(h);
  if (s.size == 0) return;
  for (size_t i = Home(s, h); i < s.size && s.slots[i] != 0; ++i) {
    if (s.slots[i] == h) {
      EraseSlot(s, i);
      return;
    }
  }
}

void DedupIndex::TruncateTo(size_t size) {
  while (hashes_.size() > size) {
    const uint64_t h = NonZero(hashes_.back());
    hashes_.pop_back();
    if (time_runs_.back().first == hashes_.size()) time_runs_.pop_back();
    Erase(h);
  }
}

void DedupIndex::Reserve(size_t ids) {
  if (segments_.empty()) segments_.resize(kSegments);
  // Hashes are uniform, so each segment gets ids / kSegments give or take a few standard
  // deviations: sized for three more, few segments still double during the load.
  const double per_segment = static_cast<double>(ids) / kSegments;
  const int bits = BitsFor(static_cast<size_t>(per_segment + 3 * std::sqrt(per_segment)) + 1);
  // Each segment on its own, the halves on two threads when it is big: the memory is
  // fresh and the kernel clears it, so two cores halve the wait (the other core idles
  // while a bulk load's reservation is made, before parsing starts).
  size_t grown = 0;
  for (const Segment& s : segments_) grown += s.size == 0 || Bits(s) < bits;
  auto grow = [&](size_t begin, size_t end) {
    size_t largest = 0;
    for (size_t k = begin; k < end; ++k)
      if (segments_[k].size == 0 || Bits(segments_[k]) < bits) largest = std::max(largest, Rehash(segments_[k], bits));
    return largest;
  };
  size_t largest = 0, helper_largest = 0;
  if (grown * (size_t{1} << bits) * sizeof(uint64_t) >= (size_t{64} << 20)) {
    std::thread helper([&] { helper_largest = grow(kSegments / 2, kSegments); });
    largest = grow(0, kSegments / 2);
    hashes_.reserve(ids);
    helper.join();
  } else {
    largest = grow(0, kSegments);
    hashes_.reserve(ids);
  }
  largest_growth_ = std::max({largest_growth_, largest, helper_largest});
  growths_ += grown;
}

void DedupIndex::Grow(Segment& s) {
  largest_growth_ = std::max(largest_growth_, Rehash(s, s.size == 0 ? kMinSegmentBits : Bits(s) + 1));
  ++growths_;
}

namespace {
// `n` slots, zeroed. One call maps their pages, cheaper than a fault each (tens of
// microseconds a 4 KB page here: common/memory.h). Whole pages: slots with extended overflow room end inside a
// page, and a page shared with another allocation is mapped already, so populating it
// changes nothing.
std::unique_ptr<uint64_t[]> ZeroedSlots(size_t n) {
  auto slots = std::make_unique_for_overwrite<uint64_t[]>(n);
  if (n * sizeof(uint64_t) >= kPage) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(slots.get()) & ~(kPage - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(slots.get() + n) + kPage - 1) & ~(kPage - 1);
    Prefault(reinterpret_cast<void*>(begin), end - begin);
  }
  std::fill_n(slots.get(), n, 0);
  return slots;
}
}  // namespace

void DedupIndex::Place(Segment& s, size_t slot, uint64_t h) {
  while (slot < s.size && s.slots[slot] != 0) ++slot;
  if (slot == s.size) {
    // Past the last slot: more overflow room (slots are never wrapped around). The
    // segment holds at most 3/4 of 2^bits entries, so its last one lies under
    // 2^bits + 3/4 of that, and the size stays under 2^(bits+1).
    const size_t slots = Slots(s), size = std::min<size_t>(2 * slots - 1, s.size + Room(slots));
    std::unique_ptr<uint64_t[]> grown = ZeroedSlots(size);
    std::copy_n(s.slots.get(), s.size, grown.get());
    s.slots = std::move(grown);
    s.size = static_cast<uint32_t>(size);
  }
  s.slots[slot] = h;
}

size_t DedupIndex::Rehash(Segment& s, int bits) {
  const std::unique_ptr<uint64_t[]> old = std::move(s.slots);
  const size_t old_size = s.size;
  s.size = static_cast<uint32_t>(size_t{1} << bits);
  s.slots = ZeroedSlots(s.size);
  // The old slots hold the hashes nearly in order, so this pass writes the new segment
  // front to back instead of at random.
  size_t moved = 0;
  for (size_t k = 0; k < old_size; ++k) {
    if (old[k] == 0) continue;
    Place(s, Home(s, old[k]), old[k]);
    ++moved;
  }
  return moved;
}

DedupIndex::Shape DedupIndex::shape() const {
  Shape shape;
  for (const Segment& s : segments_) {
    shape.slots += s.size;
    shape.largest_segment_slots = std::max<size_t>(shape.largest_segment_slots, s.size);
  }
  shape.largest_growth = largest_growth_;
  shape.growths = growths_;
  return shape;
}

size_t DedupIndex::ExpiredCount(int64_t oldest_ms) const {
  size_t expired = 0;
  for (size_t r = 0; r < time_runs_.size(); ++r) {
    if (time_runs_[r].second >= oldest_ms) continue;
    expired += RunEnd(r) - time_runs_[r].first;
  }
  return expired;
}

void DedupIndex::Expire(int64_t oldest_ms) {
  if (ExpiredCount(oldest_ms) == 0) return;
  // RunEnd(r) stays right through both passes: the sizes change only after them, and the
  // compaction writes run entries at or before the one it reads.
  const size_t runs = time_runs_.size();
  // The expired ids leave the table one by one (no table is rebuilt whole), their slots
  // fetched ahead as InsertMany's are ...
  constexpr size_t kAhead = 16;
  for (size_t r = 0; r < runs; ++r) {
    if (time_runs_[r].second >= oldest_ms) continue;
    for (size_t i = time_runs_[r].first, end = RunEnd(r); i < end; ++i) {
      if (i + kAhead < end) __builtin_prefetch(HomeAddress(NonZero(hashes_[i + kAhead])), 1);
      Erase(NonZero(hashes_[i]));
    }
  }
  // ... and the kept ones move up in insertion order, in place: what is written trails
  // what is read. Runs that become neighbours with one time merge, as Insert would have.
  size_t kept = 0, kept_runs = 0;
  for (size_t r = 0; r < runs; ++r) {
    const auto [begin, at] = time_runs_[r];
    const size_t end = RunEnd(r);
    if (at < oldest_ms) continue;
    if (kept_runs == 0 || time_runs_[kept_runs - 1].second != at) time_runs_[kept_runs++] = {kept, at};
    for (size_t i = begin; i < end; ++i) hashes_[kept++] = hashes_[i];
  }
  hashes_.truncate(kept);
  hashes_.shrink_to_fit();
  time_runs_.truncate(kept_runs);
  time_runs_.shrink_to_fit();
  // Segments that would fit in half their slots or fewer are rebuilt at the size a fresh
  // table of what remains would have, each on its own (the memory goes back to the heap a
  // segment at a time).
  for (Segment& s : segments_) {
    if (s.used == 0) {
      s = Segment();
    } else if (const int bits = BitsFor(s.used); bits < Bits(s)) {
      Rehash(s, bits);
    }
  }
}

}  // namespace sibyl

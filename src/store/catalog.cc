#include "store/catalog.h"

#include <algorithm>
#include <bit>
#include <map>

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

template <typename F>
void DedupIndex::ForEachSorted(F&& f) const {
  // Probing never wraps, so a cluster (a run of occupied slots) holds exactly the hashes
  // whose home slot lies in it, and clusters come in ascending order of home (the top
  // bits): sorting each cluster, a few slots, gives every hash in ascending order.
  std::vector<uint64_t> cluster;
  for (size_t i = 0; i <= slots_.size(); ++i) {
    if (i < slots_.size() && slots_[i] != 0) {
      cluster.push_back(slots_[i]);
      continue;
    }
    if (cluster.empty()) continue;
    std::sort(cluster.begin(), cluster.end());
    for (uint64_t h : cluster) f(h);
    cluster.clear();
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
  for (const auto& run : time_runs_) {
    one_day = one_day && day_of(run.second) == day_of(time_runs_.front().second);
    latest = std::max(latest, run.second);
  }
  if (one_day) {
    // Every id in one group (a bulk load; a store younger than a day): read in order from
    // the table, with no copy and no sort of millions of hashes.
    uint64_t max = 0;
    for (size_t i = slots_.size(); i-- > 0 && (max == 0 || slots_[i] != 0);) max = std::max(max, slots_[i]);
    w.Varint(1);
    w.SignedVarint(latest);
    PutEliasFano(used_, max, [&](auto&& emit) { ForEachSorted(emit); }, w);
    return;
  }
  std::map<int64_t, std::pair<int64_t, std::vector<uint64_t>>> days;  // day -> latest, hashes
  std::map<int64_t, size_t> counts;
  auto run_end = [&](size_t r) { return std::min(r + 1 < time_runs_.size() ? time_runs_[r + 1].first : hashes_.size(), to); };
  auto run_begin = [&](size_t r) { return std::max(time_runs_[r].first, from); };
  // The first run holding an entry at or after `from`.
  size_t first_run = static_cast<size_t>(
      std::upper_bound(time_runs_.begin(), time_runs_.end(), from, [](size_t at, const auto& run) { return at < run.first; }) -
      time_runs_.begin());
  if (first_run > 0) --first_run;  // the run that holds entry `from` (runs start in order)
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
    group.second.insert(group.second.end(), hashes_.begin() + static_cast<std::ptrdiff_t>(run_begin(r)),
                        hashes_.begin() + static_cast<std::ptrdiff_t>(run_end(r)));
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
  if (slots_.empty()) return false;
  hash = NonZero(hash);
  for (size_t i = Home(hash); i < slots_.size() && slots_[i] != 0; ++i)
    if (slots_[i] == hash) return true;
  return false;
}

namespace {
// The table's highest load: 3/4. Linear probing over 8-byte slots stays short (about four
// slots, one or two cache lines, for a new id at the loads a table sees between doublings)
// and the table of 10M ids takes 16M slots, not 32M: on the VMs measured here fresh
// memory costs ~2 s a GiB, and the last doubling at 1/2 faulted in 0.4 GB more.
bool OverLoad(size_t used, size_t slots) { return used * 4 > slots * 3; }
}  // namespace

bool DedupIndex::Insert(uint64_t hash, int64_t ingested_ms) {
  if (OverLoad(used_ + 1, table_size())) Grow();
  uint64_t h = NonZero(hash);
  size_t i = Home(h);
  for (; i < slots_.size() && slots_[i] != 0; ++i)
    if (slots_[i] == h) return false;
  // Past the last slot: the overflow grows (slots are never wrapped around).
  if (i == slots_.size()) slots_.push_back(0);
  slots_[i] = h;
  ++used_;
  if (time_runs_.empty() || time_runs_.back().second != ingested_ms) time_runs_.emplace_back(hashes_.size(), ingested_ms);
  hashes_.push_back(hash);
  return true;
}

std::vector<std::pair<uint64_t, int64_t>> DedupIndex::entries() const {
  std::vector<std::pair<uint64_t, int64_t>> out;
  out.reserve(hashes_.size());
  for (size_t r = 0; r < time_runs_.size(); ++r) {
    const size_t end = r + 1 < time_runs_.size() ? time_runs_[r + 1].first : hashes_.size();
    for (size_t i = time_runs_[r].first; i < end; ++i) out.emplace_back(hashes_[i], time_runs_[r].second);
  }
  return out;
}

void DedupIndex::InsertMany(const uint64_t* hashes, size_t n, int64_t ingested_ms, bool* added) {
  constexpr size_t kAhead = 16;
  while (OverLoad(used_ + n, table_size())) Grow();
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&slots_[Home(NonZero(hashes[i + kAhead]))], 1);
    added[i] = Insert(hashes[i], ingested_ms);
  }
}

void DedupIndex::EraseSlot(size_t slot) {
  // Backward-shift deletion keeps linear probing correct without tombstones.
  size_t hole = slot;
  for (size_t i = slot + 1; i < slots_.size() && slots_[i] != 0; ++i) {
    // Move slots_[i] into the hole unless its home lies after the hole.
    if (Home(slots_[i]) <= hole) {
      slots_[hole] = slots_[i];
      hole = i;
    }
  }
  slots_[hole] = 0;
  --used_;
}

void DedupIndex::TruncateTo(size_t size) {
  while (hashes_.size() > size) {
    uint64_t h = NonZero(hashes_.back());
    hashes_.pop_back();
    if (time_runs_.back().first == hashes_.size()) time_runs_.pop_back();
    for (size_t i = Home(h); i < slots_.size() && slots_[i] != 0; ++i) {
      if (slots_[i] == h) {
        EraseSlot(i);
        break;
      }
    }
  }
}

void DedupIndex::Reserve(size_t ids) {
  size_t slots = std::max<size_t>(1024, table_size());
  while (OverLoad(ids, slots)) slots *= 2;
  if (slots > table_size()) GrowTo(slots);
}

void DedupIndex::GrowTo(size_t size) {
  std::vector<uint64_t> old = std::move(slots_);
  // Room for the overflow of the last clusters, so that it rarely reallocates.
  ResizePrefaulted(slots_, size + 64);
  home_bits_ = std::countr_zero(size);
  ReservePrefaulted(hashes_, size / 4 * 3);
  // The old slots hold the hashes nearly in order, so this pass writes the new table
  // front to back instead of at random.
  for (uint64_t h : old) {
    if (h == 0) continue;
    size_t i = Home(h);
    while (i < slots_.size() && slots_[i] != 0) ++i;
    if (i == slots_.size()) slots_.push_back(0);
    slots_[i] = h;
  }
}

size_t DedupIndex::ExpiredCount(int64_t oldest_ms) const {
  size_t expired = 0;
  for (size_t r = 0; r < time_runs_.size(); ++r) {
    if (time_runs_[r].second >= oldest_ms) continue;
    expired += (r + 1 < time_runs_.size() ? time_runs_[r + 1].first : hashes_.size()) - time_runs_[r].first;
  }
  return expired;
}

void DedupIndex::Expire(int64_t oldest_ms) {
  if (std::all_of(time_runs_.begin(), time_runs_.end(), [&](const auto& r) { return r.second >= oldest_ms; })) return;
  std::vector<std::pair<uint64_t, int64_t>> kept;
  for (const auto& e : entries())
    if (e.second >= oldest_ms) kept.push_back(e);
  hashes_.clear();
  time_runs_.clear();
  slots_.clear();
  home_bits_ = 0;
  used_ = 0;
  for (const auto& e : kept) Insert(e.first, e.second);
}

}  // namespace sibyl

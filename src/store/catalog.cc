#include "store/catalog.h"

#include <algorithm>

#include "common/memory.h"

namespace sibyl {
namespace {
uint64_t NonZero(uint64_t h) { return h == 0 ? 1 : h; }
}  // namespace

bool DedupIndex::Contains(uint64_t hash) const {
  if (slots_.empty()) return false;
  hash = NonZero(hash);
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    if (slots_[i] == hash) return true;
    if (slots_[i] == 0) return false;
  }
}

bool DedupIndex::Insert(uint64_t hash, int64_t ingested_ms) {
  if ((used_ + 1) * 2 > slots_.size()) Grow();
  uint64_t h = NonZero(hash);
  size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i] != 0) {
    if (slots_[i] == h) return false;
    i = (i + 1) & mask;
  }
  slots_[i] = h;
  ++used_;
  entries_.emplace_back(hash, ingested_ms);
  return true;
}

void DedupIndex::InsertMany(const uint64_t* hashes, size_t n, int64_t ingested_ms, bool* added) {
  constexpr size_t kAhead = 16;
  if ((used_ + n) * 2 > slots_.size()) {
    while ((used_ + n) * 2 > slots_.size()) Grow();
  }
  size_t mask = slots_.size() - 1;
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&slots_[NonZero(hashes[i + kAhead]) & mask], 1);
    added[i] = Insert(hashes[i], ingested_ms);
  }
}

void DedupIndex::EraseSlot(size_t slot) {
  // Backward-shift deletion keeps linear probing correct without tombstones.
  size_t mask = slots_.size() - 1;
  size_t hole = slot;
  for (size_t i = (slot + 1) & mask; slots_[i] != 0; i = (i + 1) & mask) {
    size_t home = slots_[i] & mask;
    // Move slots_[i] into the hole unless its home lies cyclically in (hole, i].
    bool home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (!home_after_hole) {
      slots_[hole] = slots_[i];
      hole = i;
    }
  }
  slots_[hole] = 0;
  --used_;
}

void DedupIndex::TruncateTo(size_t size) {
  size_t mask = slots_.size() - 1;
  while (entries_.size() > size) {
    uint64_t h = NonZero(entries_.back().first);
    entries_.pop_back();
    for (size_t i = h & mask; slots_[i] != 0; i = (i + 1) & mask) {
      if (slots_[i] == h) {
        EraseSlot(i);
        break;
      }
    }
  }
}

void DedupIndex::Grow() {
  std::vector<uint64_t> old = std::move(slots_);
  size_t size = std::max<size_t>(1024, old.size() * 2);
  slots_.reserve(size);
  Prefault(slots_.data(), size * sizeof(uint64_t));
  slots_.assign(size, 0);
  ReservePrefaulted(entries_, size / 2);
  size_t mask = slots_.size() - 1;
  for (uint64_t h : old) {
    if (h == 0) continue;
    size_t i = h & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = h;
  }
}

void DedupIndex::Expire(int64_t oldest_ms) {
  auto keep = [&](const std::pair<uint64_t, int64_t>& e) { return e.second >= oldest_ms; };
  if (std::all_of(entries_.begin(), entries_.end(), keep)) return;
  std::vector<std::pair<uint64_t, int64_t>> kept;
  for (const auto& e : entries_)
    if (keep(e)) kept.push_back(e);
  entries_.clear();
  slots_.clear();
  used_ = 0;
  for (const auto& e : kept) Insert(e.first, e.second);
}

}  // namespace sibyl

// Dictionary: an append-only mapping between strings and dense ids. One writer adds names;
// readers look names up concurrently. Ids are never reused, so a snapshot that knows
// the size it saw can read names without locks.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "store/reader.h"

namespace sibyl {

// Names are short (ids, keys, categories): comparing 8 bytes at a time inline beats a
// call to memcmp, which was the ingest writer's single hottest function. The last word
// (or the last 4 bytes, or for 1-3 bytes the first, middle and last) is compared with a
// load that overlaps the one before instead of a byte loop: a loop over the tail was
// most of this function's time in Prepare.
inline bool SameName(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  if (n >= 8) {
    uint64_t x, y;
    for (size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&x, p + i, 8);
      std::memcpy(&y, q + i, 8);
      if (x != y) return false;
    }
    std::memcpy(&x, p + n - 8, 8);
    std::memcpy(&y, q + n - 8, 8);
    return x == y;
  }
  if (n >= 4) {
    uint32_t x0, y0, x1, y1;
    std::memcpy(&x0, p, 4);
    std::memcpy(&y0, q, 4);
    std::memcpy(&x1, p + n - 4, 4);
    std::memcpy(&y1, q + n - 4, 4);
    return x0 == y0 && x1 == y1;
  }
  return n == 0 || (p[0] == q[0] && p[n / 2] == q[n / 2] && p[n - 1] == q[n - 1]);
}

class Dictionary {
 public:
  Dictionary();
  Dictionary(const Dictionary&) = delete;
  Dictionary& operator=(const Dictionary&) = delete;

  // The id of `name`, adding it if new (writer only). `added` tells whether it was new.
  DictId Intern(std::string_view name, bool* added = nullptr);
  std::optional<DictId> Find(std::string_view name) const;
  // Valid for id < size() as seen by the caller; the view stays valid for the dictionary's life.
  std::string_view name(DictId id) const { return chunks_[id >> kChunkBits][id & kChunkMask]; }
  size_t size() const { return size_.load(std::memory_order_acquire); }

  // Appends the names from `first` on to `out` as [count][len, bytes]*.
  void EncodeFrom(DictId first, std::string* out) const;

 private:
  static constexpr int kChunkBits = 14;
  static constexpr DictId kChunkMask = (1u << kChunkBits) - 1;
  std::string_view Store(std::string_view name);
  // Slot of `name` (holding it, or the empty slot where it would go).
  size_t Probe(std::string_view name, uint64_t hash) const;
  std::vector<uint64_t> Grown() const;  // the table at twice the size

  // Names live in fixed-size chunks that never move; the chunk table is reserved up front
  // so that it never reallocates while readers index it.
  std::vector<std::unique_ptr<std::string_view[]>> chunks_;
  std::vector<std::unique_ptr<char[]>> arenas_;
  size_t arena_used_ = 0, arena_size_ = 0;
  std::atomic<size_t> size_{0};
  mutable std::shared_mutex map_mutex_;
  // Open addressing with linear probing: each slot is (32 bits of hash << 32 | id + 1),
  // 0 when empty, so most mismatches are rejected without touching the string.
  std::vector<uint64_t> slots_;
};

// A snapshot's view of a dictionary: only the ids that existed when it was taken.
class DictionarySnapshot final : public DictionaryView {
 public:
  DictionarySnapshot(const Dictionary* dict, size_t size) : dict_(dict), size_(size) {}
  size_t size() const override { return size_; }
  std::string_view name(DictId id) const override { return dict_->name(id); }
  std::optional<DictId> Find(std::string_view name) const override {
    auto id = dict_->Find(name);
    if (id && *id < size_) return id;
    return std::nullopt;
  }

 private:
  const Dictionary* dict_;
  size_t size_;
};

}  // namespace sibyl

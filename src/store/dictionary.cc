#include "store/dictionary.h"

#include <cstring>

#include "store/codec.h"

namespace sibyl {

Dictionary::Dictionary() { chunks_.reserve((1ull << 32) >> kChunkBits); }

std::string_view Dictionary::Store(std::string_view name) {
  if (name.empty()) return {};
  if (arena_used_ + name.size() > arena_size_) {
    arena_size_ = std::max<size_t>(1 << 20, name.size());
    arenas_.push_back(std::make_unique<char[]>(arena_size_));
    arena_used_ = 0;
  }
  char* p = arenas_.back().get() + arena_used_;
  std::memcpy(p, name.data(), name.size());
  arena_used_ += name.size();
  return {p, name.size()};
}

size_t Dictionary::Probe(std::string_view name, uint64_t hash) const {
  size_t mask = slots_.size() - 1;
  uint64_t tag = hash >> 32;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    uint64_t slot = slots_[i];
    if (slot == 0) return i;
    if ((slot >> 32) == tag && SameName(this->name(static_cast<DictId>((slot & 0xffffffffu) - 1)), name))
      return i;
  }
}

std::vector<uint64_t> Dictionary::Grown() const {
  std::vector<uint64_t> grown(std::max<size_t>(64, slots_.size() * 2), 0);
  size_t mask = grown.size() - 1;
  for (uint64_t slot : slots_) {
    if (slot == 0) continue;
    DictId id = static_cast<DictId>((slot & 0xffffffffu) - 1);
    uint64_t hash = std::hash<std::string_view>{}(name(id));
    size_t i = hash & mask;
    while (grown[i] != 0) i = (i + 1) & mask;
    grown[i] = slot;
  }
  return grown;
}

DictId Dictionary::Intern(std::string_view name, bool* added) {
  // Only the single writer mutates the table, so its own lookups need no lock.
  uint64_t hash = std::hash<std::string_view>{}(name);
  if (!slots_.empty()) {
    uint64_t slot = slots_[Probe(name, hash)];
    if (slot != 0) {
      if (added) *added = false;
      return static_cast<DictId>((slot & 0xffffffffu) - 1);
    }
  }
  DictId id = static_cast<DictId>(size_.load(std::memory_order_relaxed));
  if ((id & kChunkMask) == 0) chunks_.push_back(std::make_unique<std::string_view[]>(kChunkMask + 1));
  chunks_[id >> kChunkBits][id & kChunkMask] = Store(name);
  // The bigger table is built before taking the lock (readers go on using the old one;
  // only this writer changes it): rehashing millions of names under the lock held every
  // reader's Find, a real-time score's actor lookup among them, for up to a second.
  std::vector<uint64_t> grown;
  if ((id + 1) * 2 > slots_.size()) grown = Grown();
  {
    std::unique_lock lock(map_mutex_);
    if (!grown.empty()) slots_.swap(grown);
    slots_[Probe(name, hash)] = (hash >> 32 << 32) | (static_cast<uint64_t>(id) + 1);
  }
  std::vector<uint64_t>().swap(grown);  // the old table, freed outside the lock
  size_.store(id + 1, std::memory_order_release);
  if (added) *added = true;
  return id;
}

std::optional<DictId> Dictionary::Find(std::string_view name) const {
  std::shared_lock lock(map_mutex_);
  if (slots_.empty()) return std::nullopt;
  uint64_t slot = slots_[Probe(name, std::hash<std::string_view>{}(name))];
  if (slot == 0) return std::nullopt;
  DictId id = static_cast<DictId>((slot & 0xffffffffu) - 1);
  // A reader may see the slot before the size is published; ids past it are not there yet.
  if (id >= size()) return std::nullopt;
  return id;
}

void Dictionary::EncodeFrom(DictId first, std::string* out) const {
  ByteWriter w(out);
  size_t n = size();
  w.Varint(n - first);
  for (size_t id = first; id < n; ++id) w.Bytes(name(static_cast<DictId>(id)));
}

}  // namespace sibyl

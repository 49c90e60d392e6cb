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

DictId Dictionary::Intern(std::string_view name, bool* added) {
  // Only the single writer mutates the map, so its own lookups need no lock.
  auto it = ids_.find(name);
  if (it != ids_.end()) {
    if (added) *added = false;
    return it->second;
  }
  DictId id = static_cast<DictId>(size_.load(std::memory_order_relaxed));
  if ((id & kChunkMask) == 0) chunks_.push_back(std::make_unique<std::string_view[]>(kChunkMask + 1));
  std::string_view stored = Store(name);
  chunks_[id >> kChunkBits][id & kChunkMask] = stored;
  {
    std::unique_lock lock(map_mutex_);
    ids_.emplace(stored, id);
  }
  size_.store(id + 1, std::memory_order_release);
  if (added) *added = true;
  return id;
}

std::optional<DictId> Dictionary::Find(std::string_view name) const {
  std::shared_lock lock(map_mutex_);
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void Dictionary::EncodeFrom(DictId first, std::string* out) const {
  ByteWriter w(out);
  size_t n = size();
  w.Varint(n - first);
  for (size_t id = first; id < n; ++id) w.Bytes(name(static_cast<DictId>(id)));
}

}  // namespace sibyl

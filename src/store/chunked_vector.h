// ChunkedVector: a vector whose elements live in fixed-size chunks that never move. Growing
// it allocates one chunk and copies nothing: the de-dup index's insertion order (8 bytes an
// id, hundreds of MB) grew as one std::vector, whose doubling copied all of it at once on
// the writer's commit path while real-time reads waited (issue 18).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "common/memory.h"

namespace sibyl {

template <typename T, int kChunkBits>
class ChunkedVector {
 public:
  static constexpr size_t kChunk = size_t{1} << kChunkBits;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }
  const T& operator[](size_t i) const { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }
  const T& front() const { return (*this)[0]; }

  void push_back(const T& value) {
    if (size_ == chunks_.size() * kChunk) AddChunk();
    (*this)[size_++] = value;
  }
  template <typename... Args>
  void emplace_back(Args&&... args) {
    push_back(T(std::forward<Args>(args)...));
  }
  void pop_back() { --size_; }
  // Keeps the first `n` elements (n <= size()); the chunks stay for reuse.
  void truncate(size_t n) { size_ = std::min(size_, n); }
  // Allocates the chunks for `n` elements now (a bulk load's expected count).
  void reserve(size_t n) {
    while (chunks_.size() * kChunk < n) AddChunk();
  }
  // Frees the chunks past the last element.
  void shrink_to_fit() { chunks_.resize((size_ + kChunk - 1) / kChunk); }
  void clear() {
    chunks_.clear();
    size_ = 0;
  }
  // Calls f(pointer, count) on the pieces of [begin, end) that lie in one chunk each, in
  // order: copies of ranges go a chunk at a time, not an index computation an element.
  template <typename F>
  void ForEachSpan(size_t begin, size_t end, F&& f) const {
    while (begin < end) {
      const size_t in_chunk = begin & (kChunk - 1);
      const size_t n = std::min(end - begin, kChunk - in_chunk);
      f(&chunks_[begin >> kChunkBits][in_chunk], n);
      begin += n;
    }
  }

 private:
  void AddChunk() {
    auto chunk = std::make_unique_for_overwrite<T[]>(kChunk);
    // One call maps the chunk's pages instead of a fault each as it fills (fresh pages are
    // dear on the VMs sibyl runs on: common/memory.h).
    if (kChunk * sizeof(T) >= (size_t{64} << 10)) Prefault(chunk.get(), kChunk * sizeof(T));
    chunks_.push_back(std::move(chunk));
  }

  std::vector<std::unique_ptr<T[]>> chunks_;
  size_t size_ = 0;
};

}  // namespace sibyl

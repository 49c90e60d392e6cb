// AppendOnlyVector: a vector that one writer appends to while readers read the prefix they
// know about. Elements live in fixed chunks that never move.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace sibyl {

template <typename T, int kChunkBits = 16>
class AppendOnlyVector {
 public:
  AppendOnlyVector() { chunks_.reserve(size_t{1} << (32 - kChunkBits)); }
  void push_back(const T& value) {
    size_t n = size_.load(std::memory_order_relaxed);
    if ((n & kMask) == 0) chunks_.push_back(std::make_unique<T[]>(kMask + 1));
    chunks_[n >> kChunkBits][n & kMask] = value;
    size_.store(n + 1, std::memory_order_release);
  }
  // push_back of each value, copied a chunk at a time and published once.
  void append(std::span<const T> values) {
    size_t n = size_.load(std::memory_order_relaxed);
    for (size_t done = 0; done < values.size();) {
      if ((n & kMask) == 0) chunks_.push_back(std::make_unique<T[]>(kMask + 1));
      size_t take = std::min(values.size() - done, kMask + 1 - (n & kMask));
      std::copy_n(values.data() + done, take, &chunks_[n >> kChunkBits][n & kMask]);
      done += take;
      n += take;
    }
    size_.store(n, std::memory_order_release);
  }
  const T& operator[](size_t i) const { return chunks_[i >> kChunkBits][i & kMask]; }
  size_t size() const { return size_.load(std::memory_order_acquire); }

 private:
  static constexpr size_t kMask = (size_t{1} << kChunkBits) - 1;
  std::vector<std::unique_ptr<T[]>> chunks_;
  std::atomic<size_t> size_{0};
};

}  // namespace sibyl

// Prefaulting memory. On the virtual machines sibyl runs on, a first touch of a fresh page
// costs several microseconds (a 1.6 GB buffer took 9.8 s to touch page by page, 0.3 s to
// prefault with MADV_POPULATE_WRITE). Code that fills big fresh buffers prefaults them.
#pragma once

#include <cstddef>
#include <vector>

namespace sibyl {

// Maps the pages of [data, data + bytes) writable in one system call. A hint: failures
// (old kernels) are ignored and the pages fault in on first touch as usual. Only worth it
// for buffers of a megabyte or more.
void Prefault(void* data, size_t bytes);

// Resizes `v` to `n` elements, prefaulting the new storage first when it is large.
template <typename T>
void ResizePrefaulted(std::vector<T>& v, size_t n) {
  if (n > v.capacity() && n * sizeof(T) >= (size_t{1} << 20)) {
    std::vector<T> fresh;
    fresh.reserve(n);
    Prefault(fresh.data(), n * sizeof(T));
    fresh.assign(v.begin(), v.end());
    v.swap(fresh);
  }
  v.resize(n);
}

// Reserves room for `n` elements, prefaulting it when large.
template <typename T>
void ReservePrefaulted(std::vector<T>& v, size_t n) {
  if (n <= v.capacity()) return;
  std::vector<T> fresh;
  fresh.reserve(n);
  if (n * sizeof(T) >= (size_t{1} << 20)) Prefault(fresh.data(), n * sizeof(T));
  fresh.insert(fresh.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  v.swap(fresh);
}

}  // namespace sibyl

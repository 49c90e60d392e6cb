// Prefaulting memory. On the virtual machines sibyl runs on, a first touch of a fresh page
// costs several microseconds (a 1.6 GB buffer took 9.8 s to touch page by page, 0.3 s to
// prefault with MADV_POPULATE_WRITE). Code that fills big fresh buffers prefaults them.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace sibyl {

// The heap settings of every sibyl process (the binary and the benchmarks, so that they
// measure the same program): ingest and queries allocate and free large buffers over and
// over, and keeping freed memory in the heap instead of returning it to the kernel avoids
// re-faulting it page by page. Call first thing in main().
//
// Release builds link jemalloc (SIBYL_JEMALLOC), configured in memory.cc to back its
// memory with transparent huge pages and to keep freed pages: on this VM a first touch of
// a 4 KB page costs ~40 us (1 GB touched page by page: 10 s; in huge pages: 0.1-0.2 s),
// and that was a third of a scoring run. Sanitizer and fuzz builds keep glibc's malloc
// (ASan replaces the allocator), tuned here with mallopt.
void UseSibylHeapSettings();

// Gives the heap's free pages back to the kernel. For long-lived processes (`sibyl serve`)
// after a big job: batch verbs keep freed memory for reuse and exit.
void ReleaseFreeHeapMemory();

// Which allocator this build uses and how it is set up, for `--version`-style reports and
// the test that checks the release build really runs on huge pages.
struct HeapInfo {
  std::string allocator;          // "jemalloc" or "glibc"
  std::string transparent_huge;   // jemalloc's opt.thp ("always"), or "" for glibc
  long dirty_decay_ms = 0;        // jemalloc: -1 = freed pages are kept
};
HeapInfo CurrentHeapInfo();

// Maps the pages of [data, data + bytes) writable in one system call. A hint: failures
// (old kernels) are ignored and the pages fault in on first touch as usual. Only worth it
// for buffers of a megabyte or more.
void Prefault(void* data, size_t bytes);
// Prefault in steps of `bytes` instead of one call (default: one call). The call holds the
// address-space lock for reading while it faults pages in; a thread that maps memory (any
// allocation reaching the kernel) waits for it, and every page fault after that thread. A
// server sets steps (2 MB): one call over 128 MB held a real-time score for 300 ms
// (docs/BENCHMARKS.md, abuse benchmark). Batch verbs keep one call (6% faster bulk ingest).
void SetPrefaultStep(size_t bytes);
// The same, the halves on two threads when it is big (64 MB or more): the kernel clears
// the pages, so two cores halve the wait where the other core would otherwise idle.
void PrefaultOnTwoThreads(void* data, size_t bytes);

// Resizes `v` to `n` elements, prefaulting the new storage first when it is large (on two
// threads when it is very large: a bulk load's de-dup table is sized before parsing starts,
// while the other core idles).
template <typename T>
void ResizePrefaulted(std::vector<T>& v, size_t n) {
  if (n > v.capacity() && n * sizeof(T) >= (size_t{1} << 20)) {
    std::vector<T> fresh;
    fresh.reserve(n);
    PrefaultOnTwoThreads(fresh.data(), n * sizeof(T));
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
  if (n * sizeof(T) >= (size_t{1} << 20)) PrefaultOnTwoThreads(fresh.data(), n * sizeof(T));
  fresh.insert(fresh.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
  v.swap(fresh);
}

// Memory straight from the kernel, zero-filled, backed by huge pages where the kernel
// allows, optionally prefaulted. For big write-once outputs (feature matrices): on this
// VM, writes into 4 KB pages of a fresh heap block cost several times more than into
// huge pages (TLB misses walk two levels of page tables), and a heap block would be
// zeroed or faulted page by page anyway.
class PageBuffer {
 public:
  PageBuffer() = default;
  // `bytes` may be 0 (no mapping). Throws std::bad_alloc when the kernel refuses.
  explicit PageBuffer(size_t bytes, bool prefault);
  ~PageBuffer();
  PageBuffer(PageBuffer&& other) noexcept;
  PageBuffer& operator=(PageBuffer&& other) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace sibyl

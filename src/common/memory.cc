#include "common/memory.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <thread>
#include <utility>

#ifdef SIBYL_JEMALLOC
#include <jemalloc/jemalloc.h>

// jemalloc reads this at its first allocation, before main(); MALLOC_CONF in the
// environment still overrides it (for experiments).
//  - thp:always: every extent is madvise(MADV_HUGEPAGE)d (the kernel's THP mode here is
//    "madvise", so nothing else gets huge pages);
//  - dirty/muzzy decay -1: freed pages stay mapped for the next buffer instead of being
//    returned and faulted in again (ReleaseFreeHeapMemory returns them on request);
//  - oversize_threshold 0: big allocations (feature slabs, decoded columns, hash tables)
//    come from the same arenas and are reused too, not from a separate eagerly purged one;
//  - narenas 2: one per core, so freed memory of one thread is found by the next.
extern "C" {
const char* malloc_conf =
    "thp:always,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0,narenas:2";
}
#endif

namespace sibyl {

void UseSibylHeapSettings() {
#ifndef SIBYL_JEMALLOC
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_ARENA_MAX, 1);  // per-thread arenas would return memory to the kernel on their own
#endif
}

void ReleaseFreeHeapMemory() {
#ifdef SIBYL_JEMALLOC
  // "arena.<MALLCTL_ARENAS_ALL>.purge" (4096): every arena's unused dirty pages.
  static_assert(MALLCTL_ARENAS_ALL == 4096);
  mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
#else
  malloc_trim(0);
#endif
}

HeapInfo CurrentHeapInfo() {
  HeapInfo info;
#ifdef SIBYL_JEMALLOC
  info.allocator = "jemalloc";
  const char* thp = nullptr;
  size_t size = sizeof(thp);
  if (mallctl("opt.thp", &thp, &size, nullptr, 0) == 0 && thp != nullptr) info.transparent_huge = thp;
  ssize_t decay = 0;
  size = sizeof(decay);
  if (mallctl("opt.dirty_decay_ms", &decay, &size, nullptr, 0) == 0) info.dirty_decay_ms = decay;
#else
  info.allocator = "glibc";
#endif
  return info;
}

namespace {
std::atomic<uintptr_t> g_prefault_step{UINTPTR_MAX};  // one call for the whole range
}  // namespace

void SetPrefaultStep(size_t bytes) { g_prefault_step.store(std::max<size_t>(bytes, 4096)); }

void Prefault(void* data, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(page - 1);
  const uintptr_t step = g_prefault_step.load(std::memory_order_relaxed);
  for (uintptr_t at = begin; at < end;) {
    const uintptr_t length = std::min(step, end - at);  // never past `end` (step may be "all")
    madvise(reinterpret_cast<void*>(at), length, MADV_POPULATE_WRITE);
    at += length;
  }
#else
  (void)data;
  (void)bytes;
#endif
}

void PrefaultOnTwoThreads(void* data, size_t bytes) {
  if (bytes < (size_t{64} << 20)) {
    Prefault(data, bytes);
    return;
  }
  char* p = static_cast<char*>(data);
  std::thread helper([&] { Prefault(p, bytes / 2); });
  Prefault(p + bytes / 2, bytes - bytes / 2);
  helper.join();
}

PageBuffer::PageBuffer(size_t bytes, bool prefault) : bytes_(bytes) {
  if (bytes == 0) return;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (bytes >= (size_t{2} << 20)) madvise(p, bytes, MADV_HUGEPAGE);  // advisory
  data_ = p;
  if (prefault) Prefault(p, bytes);
}

PageBuffer::~PageBuffer() {
  if (data_ != nullptr) munmap(data_, bytes_);
}

PageBuffer::PageBuffer(PageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PageBuffer& PageBuffer::operator=(PageBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, bytes_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

}  // namespace sibyl

// touch_memory: how cold this machine's memory is, and a way to warm it before a benchmark.
//
//   touch_memory [GIB]      (default: 3/4 of the machine's memory)
//
// Maps GIB gibibytes on transparent huge pages, writes every page once, frees them, and
// prints the seconds each gibibyte took. On the virtual machines sibyl is measured on, the
// first write to guest memory the guest has not used since boot faults on the host:
// ~2 s a GiB (seen 1.4-6.2 s), against ~0.1 s a GiB for memory touched before. A process
// that allocates 3 GB on a freshly booted VM pays seconds that a long-running machine
// never does, so benchmark figures say whether they were taken before or after this.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  const size_t gib_total = argc > 1 ? std::strtoull(argv[1], nullptr, 10)
                                    : static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) *
                                          static_cast<size_t>(sysconf(_SC_PAGESIZE)) / (size_t{1} << 30) * 3 / 4;
  if (gib_total == 0) {
    std::fprintf(stderr, "touch_memory: nothing to touch (usage: touch_memory [GIB])\n");
    return 2;
  }
  const size_t gib = size_t{1} << 30, bytes = gib_total * gib;
  void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) {
    std::perror("touch_memory: mmap");
    return 1;
  }
  madvise(map, bytes, MADV_HUGEPAGE);
  auto* p = static_cast<char*>(map);
  double total = 0, slowest = 0;
  for (size_t g = 0; g < gib_total; ++g) {
    auto start = std::chrono::steady_clock::now();
    std::memset(p + g * gib, 1, gib);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    total += s;
    if (s > slowest) slowest = s;
    std::printf("GiB %zu: %.3f s\n", g, s);
    std::fflush(stdout);
  }
  munmap(map, bytes);
  std::printf("touched %zu GiB in %.2f s (%.3f s a GiB, slowest %.3f s)\n", gib_total, total, total / gib_total,
              slowest);
  return 0;
}

#include "common/memory.h"

#include <sys/mman.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace sibyl {
namespace {

#ifdef SIBYL_JEMALLOC
// The kernel's transparent-huge-page mode: the bracketed word of
// /sys/kernel/mm/transparent_hugepage/enabled ("always", "madvise" or "never").
std::string KernelThpMode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  size_t open = line.find('['), close = line.find(']');
  if (open == std::string::npos || close == std::string::npos) return "";
  return line.substr(open + 1, close - open - 1);
}

// AnonHugePages (kB) of the mapping that holds `address`, from /proc/self/smaps.
long HugePagesKbAt(const void* address) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  while (std::getline(in, line)) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 && line.find(':') > line.find('-')) {
      inside = begin <= a && a < end;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::strtol(line.c_str() + 14, nullptr, 10);
  }
  return -1;
}

long ResidentKb() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
#endif

TEST(HeapTest, ReleaseBuildRunsOnJemallocWithHugePagesAndKeptPages) {
  HeapInfo info = CurrentHeapInfo();
#ifdef SIBYL_JEMALLOC
  EXPECT_EQ(info.allocator, "jemalloc");
  EXPECT_EQ(info.transparent_huge, "always");
  EXPECT_EQ(info.dirty_decay_ms, -1);
#else
  EXPECT_EQ(info.allocator, "glibc");
  EXPECT_EQ(info.transparent_huge, "");
#endif
}

#ifdef SIBYL_JEMALLOC
TEST(HeapTest, BigAllocationsAreBackedByHugePagesWhenTheKernelAllowsThem) {
  const std::string mode = KernelThpMode();
  constexpr size_t kBytes = 64 << 20;
  auto* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBytes);
  const long huge_kb = HugePagesKbAt(p + kBytes / 2);
  if (mode == "always" || mode == "madvise") {
    // At least half of the block: its ends may share 4 KB-paged extents with others.
    EXPECT_GE(huge_kb, static_cast<long>(kBytes / 1024 / 2)) << "THP mode " << mode;
  } else {
    EXPECT_EQ(huge_kb, 0) << "THP mode " << mode;
  }
  std::free(p);
}

TEST(HeapTest, FreedPagesStayUntilReleased) {
  constexpr size_t kBytes = 256 << 20;
  auto* p = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBytes);
  const long touched = ResidentKb();
  std::free(p);
  const long after_free = ResidentKb();
  // Kept for the next allocation: not returned to the kernel on free.
  EXPECT_GT(after_free, touched - static_cast<long>(kBytes / 1024 / 4));
  ReleaseFreeHeapMemory();
  const long after_release = ResidentKb();
  EXPECT_LT(after_release, touched - static_cast<long>(kBytes / 1024 / 2));
}
#endif

TEST(PrefaultTest, ResizePrefaultedKeepsContentsAndGrows) {
  std::vector<int> v = {1, 2, 3};
  ResizePrefaulted(v, size_t{1} << 20);  // 4 MB: the prefaulted path
  ASSERT_EQ(v.size(), size_t{1} << 20);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[2], 3);
  EXPECT_EQ(v.back(), 0);
  ReservePrefaulted(v, size_t{2} << 20);
  EXPECT_GE(v.capacity(), size_t{2} << 20);
  EXPECT_EQ(v[1], 2);
}

// Prefault maps every page of the range, in one call or in steps (a server's), and ends:
// a step larger than what is left must not step past the end (a first version looped for
// ever with the default "all" step).
TEST(PrefaultTest, InOneCallOrInStepsEveryPageIsMapped) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t step : {SIZE_MAX, size_t{2} << 20, size_t{3} * page}) {
    SetPrefaultStep(step);
    PageBuffer buffer((size_t{5} << 20) + 7 * page, /*prefault=*/false);
    Prefault(buffer.data(), buffer.size());
    std::vector<unsigned char> resident(buffer.size() / page);
    ASSERT_EQ(mincore(buffer.data(), buffer.size(), resident.data()), 0);
    size_t mapped = 0;
    for (unsigned char r : resident) mapped += r & 1;
    EXPECT_EQ(mapped, resident.size()) << "step " << step;
  }
  SetPrefaultStep(SIZE_MAX);
}

TEST(PageBufferTest, ZeroFilledAndMovable) {
  PageBuffer a(4 << 20, /*prefault=*/true);
  ASSERT_NE(a.data(), nullptr);
  const auto* bytes = static_cast<const unsigned char*>(a.data());
  EXPECT_EQ(bytes[0], 0);
  EXPECT_EQ(bytes[a.size() - 1], 0);
  PageBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), size_t{4} << 20);
}

}  // namespace
}  // namespace sibyl

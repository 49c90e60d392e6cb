#include "common/progress.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>

#include <fmt/format.h>

namespace sibyl {
namespace {
// -1: decide from isatty; 0: off; 1: on.
std::atomic<int> g_enabled{-1};
}  // namespace

void Progress::SetEnabled(bool enabled) { g_enabled = enabled ? 1 : 0; }

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)) {
  int mode = g_enabled.load();
  active_ = mode == -1 ? ::isatty(STDERR_FILENO) == 1 : mode == 1;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Finish(); }

void Progress::Update(uint64_t done) {
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  double seconds = std::chrono::duration<double>(now - start_).count();
  double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  std::string line;
  if (total_ > 0) {
    line = fmt::format("\r{}: {}/{} {} ({:.0f}%), {:.0f} {}/s", label_, done, total_, unit_,
                       100.0 * static_cast<double>(done) / static_cast<double>(total_), rate, unit_);
  } else {
    line = fmt::format("\r{}: {} {}, {:.0f} {}/s", label_, done, unit_, rate, unit_);
  }
  std::fputs(line.c_str(), stderr);
  std::fputs("\x1b[K", stderr);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (active_ && drawn_) {
    std::fputs("\r\x1b[K", stderr);
    std::fflush(stderr);
  }
  drawn_ = false;
  active_ = false;
}

}  // namespace sibyl

// Hands freed heap memory back to the operating system once the server goes idle
// (issue 18: after an ingest burst RSS stayed at its peak). The allocator keeps freed
// pages on purpose (src/common/memory.cc: touching fresh pages is slow on the VMs sibyl
// runs on), so trimming while requests run would only make them fault the pages in
// again; after a quiet spell the memory is better given back, once. "Idle" is: no request
// in flight and none begun or ended for `idle`, and nothing else busy (the caller says,
// e.g. a scheduler run). A timer calls Poll; the trim runs at most once per idle period.
//
//   IdleTrimmer trimmer(std::chrono::seconds(2), [] { ReleaseFreeHeapMemory(); });
//   trimmer.Begin(now); ... trimmer.End(now);     // around every request
//   trimmer.Poll(now, scheduler_busy);            // from a timer
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace sibyl::server {

class IdleTrimmer {
 public:
  using Clock = std::chrono::steady_clock;

  IdleTrimmer(std::chrono::milliseconds idle, std::function<void()> trim) : idle_(idle), trim_(std::move(trim)) {}

  // A request (or any work that allocates) begins / ends. Thread-safe, lock-free.
  void Begin(Clock::time_point now);
  void End(Clock::time_point now);

  // Trims (calls the trim function, on this thread) when nothing has been in flight for
  // `idle`, `busy_elsewhere` is false, and there was activity since the last trim. True
  // when it trimmed. Calls are serialised.
  bool Poll(Clock::time_point now, bool busy_elsewhere = false);

  uint64_t trims() const { return trims_.load(); }

 private:
  void Touch(Clock::time_point now);

  const std::chrono::milliseconds idle_;
  const std::function<void()> trim_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> last_activity_{0};  // Clock ticks
  std::atomic<uint64_t> activity_{0};      // Begin/End calls so far
  std::mutex poll_mutex_;
  uint64_t trimmed_at_activity_ = 0;  // activity_ when the last trim ran (0: none yet)
  std::atomic<uint64_t> trims_{0};
};

}  // namespace sibyl::server

// A fixed set of threads running jobs from a bounded queue. A job offered while the
// queue is full is refused, not queued: the HTTP server answers 429/503 at once instead
// of letting waiting requests (and their bodies) pile up in memory.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sibyl::server {

class WorkerPool {
 public:
  // `capacity`: jobs that may wait beside the `threads` running ones.
  WorkerPool(int threads, size_t capacity);
  ~WorkerPool();  // Stop()

  // False (and `job` dropped) when `capacity` jobs are waiting already, or after Stop.
  bool TryPost(std::function<void()> job);
  // Queues `job` whatever the queue holds; false only after Stop. For the next step of a
  // request already admitted (a streamed answer's next chunk), which must not be refused
  // halfway through.
  bool Post(std::function<void()> job);
  bool Full() const;
  size_t queued() const;

  // Runs every job already queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sibyl::server

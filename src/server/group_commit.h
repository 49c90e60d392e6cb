// Group commit: request threads parse and validate their bodies in parallel, then hand
// the batches here; one committer thread stages every waiting batch in one store
// transaction and commits it with one fsync, then wakes each request with its own counts.
// A request is acknowledged only after the commit that holds its batch returned OK.
// Concurrent requests share fsyncs, which is what makes many small requests fast.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "event/event.h"
#include "store/event_store.h"

namespace sibyl::server {

struct GroupCommitOptions {
  // Backpressure: a request whose events would take the waiting total over this is
  // refused (ResourceExhausted, HTTP 429) instead of queueing without bound.
  uint64_t max_pending_events = 200'000;
  // At most this many events go into one transaction (bounds one commit's latency).
  uint64_t max_group_events = 100'000;
};

class GroupCommitter {
 public:
  GroupCommitter(EventStore& store, GroupCommitOptions options);
  ~GroupCommitter();  // Stop()

  // Blocks until `batch` is durable (OK, with its counts) or failed. ResourceExhausted when
  // the queue is full, FailedPrecondition after Stop. On any error nothing of the batch
  // was written. `batch` must stay alive until this returns.
  Result<AppendResult> Submit(const EventBatch& batch);

  // Commits everything already queued, then refuses new batches. Idempotent.
  void Stop();

  uint64_t pending_events() const;
  uint64_t pending_requests() const;
  uint64_t commits() const;  // transactions committed so far

 private:
  struct Waiter {
    const EventBatch* batch;
    Result<AppendResult> result = Status(StatusCode::kInternal, "not committed");
    bool done = false;
  };
  void Loop();
  void CommitGroup(std::vector<Waiter*>& group);

  EventStore& store_;
  GroupCommitOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Waiter*> queue_;
  uint64_t pending_events_ = 0;
  uint64_t commits_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sibyl::server

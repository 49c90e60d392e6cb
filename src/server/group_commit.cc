#include "server/group_commit.h"

#include <vector>

namespace sibyl::server {

GroupCommitter::GroupCommitter(EventStore& store, GroupCommitOptions options)
    : store_(store), options_(options), thread_([this] { Loop(); }) {}

GroupCommitter::~GroupCommitter() { Stop(); }

Result<AppendResult> GroupCommitter::Submit(const EventBatch& batch) {
  Waiter waiter{&batch};
  const uint64_t events = batch.events.size();
  std::unique_lock lock(mutex_);
  if (stopping_) return FailedPrecondition("the server is shutting down");
  // A single request larger than the whole queue is still let in when the queue is empty,
  // so the limit can never refuse a request forever.
  if (pending_events_ > 0 && pending_events_ + events > options_.max_pending_events)
    return ResourceExhausted("ingest queue full ({} events waiting for commit, limit {})", pending_events_,
                             options_.max_pending_events);
  pending_events_ += events;
  queue_.push_back(&waiter);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return waiter.done; });
  return std::move(waiter.result);
}

void GroupCommitter::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    work_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t GroupCommitter::pending_events() const {
  std::lock_guard lock(mutex_);
  return pending_events_;
}

uint64_t GroupCommitter::pending_requests() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

uint64_t GroupCommitter::commits() const {
  std::lock_guard lock(mutex_);
  return commits_;
}

void GroupCommitter::Loop() {
  std::vector<Waiter*> group;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      uint64_t events = 0;
      group.clear();
      while (!queue_.empty() && (group.empty() || events + queue_.front()->batch->events.size() <= options_.max_group_events)) {
        events += queue_.front()->batch->events.size();
        group.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    CommitGroup(group);
    std::lock_guard lock(mutex_);
    for (Waiter* w : group) {
      pending_events_ -= w->batch->events.size();
      w->done = true;
    }
    done_cv_.notify_all();
  }
}

void GroupCommitter::CommitGroup(std::vector<Waiter*>& group) {
  // Stage every batch in one transaction. If staging one fails (the store refuses it),
  // that request fails alone: the transaction is dropped and the others are staged again
  // without it, so one bad request never fails or half-writes its neighbours.
  std::vector<Waiter*> remaining = group;
  while (!remaining.empty()) {
    auto txn = store_.Begin();
    if (!txn.ok()) {
      for (Waiter* w : remaining) w->result = txn.status();
      return;
    }
    std::vector<AppendResult> counts;
    size_t failed = remaining.size();
    for (size_t i = 0; i < remaining.size(); ++i) {
      auto added = (*txn)->Add(*remaining[i]->batch);
      if (!added.ok()) {
        remaining[i]->result = added.status();
        failed = i;
        break;
      }
      counts.push_back(*added);
    }
    if (failed < remaining.size()) {
      txn->reset();  // discards everything staged
      remaining.erase(remaining.begin() + static_cast<ptrdiff_t>(failed));
      continue;
    }
    Status committed = (*txn)->Commit();
    for (size_t i = 0; i < remaining.size(); ++i) {
      if (committed.ok()) remaining[i]->result = counts[i];
      else remaining[i]->result = committed;
    }
    if (committed.ok()) {
      std::lock_guard lock(mutex_);
      ++commits_;
    }
    return;
  }
}

}  // namespace sibyl::server

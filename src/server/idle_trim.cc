#include "server/idle_trim.h"

namespace sibyl::server {

void IdleTrimmer::Touch(Clock::time_point now) {
  last_activity_.store(now.time_since_epoch().count());
  activity_.fetch_add(1);
}

void IdleTrimmer::Begin(Clock::time_point now) {
  in_flight_.fetch_add(1);
  Touch(now);
}

void IdleTrimmer::End(Clock::time_point now) {
  Touch(now);
  in_flight_.fetch_sub(1);
}

bool IdleTrimmer::Poll(Clock::time_point now, bool busy_elsewhere) {
  std::lock_guard lock(poll_mutex_);
  if (busy_elsewhere || in_flight_.load() > 0) return false;
  const uint64_t activity = activity_.load();
  // Nothing happened since the last trim (or since start): the heap holds nothing new to
  // give back, and trimming again would cost a pass over the arenas for nothing.
  if (activity == trimmed_at_activity_) return false;
  const Clock::time_point last{Clock::duration(last_activity_.load())};
  if (now - last < idle_) return false;
  trimmed_at_activity_ = activity;
  trim_();
  trims_.fetch_add(1);
  return true;
}

}  // namespace sibyl::server

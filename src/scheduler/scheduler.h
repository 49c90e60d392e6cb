// The scheduler: when each prediction trains and scores, and the durable history of those
// runs (docs/SCHEDULER.md). Time comes from an injected Clock, so tests drive cadence,
// retries and restart catch-up with a ManualClock and RunDueNow(); production calls
// Start() and the work runs on worker threads.
//
// Rules it enforces: a cadence per (prediction, kind); runs of one prediction never
// overlap (any kinds); due runs of the same kind collapse into one; failures retry with
// exponential backoff up to max_attempts; history persists in state_dir and survives
// kill -9; after a restart, at most one catch-up run per (prediction, kind); a run that was
// queued or running when the process died is recorded "aborted" and re-run once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace sibyl::scheduler {

enum class JobKind { kTrain, kScoreActive, kScoreFull };  // "train", "score_active", "score_full"
std::string_view JobKindName(JobKind kind);
std::optional<JobKind> ParseJobKind(std::string_view name);

// How often one prediction runs (from PredictionDefinition::refresh). An interval <= 0
// disables that kind for the prediction.
struct Cadence {
  std::string prediction;
  int64_t train_every_ms = 24 * 3600 * 1000LL;
  int64_t score_every_ms = 3600 * 1000LL;  // hourly: users active since the last score run
  int64_t full_score_every_ms = 24 * 3600 * 1000LL;  // daily full scoring
};

// The cadence of a definition's `refresh` block: train every `train_every_hours`, score
// active users every `score_every_hours`, full scoring daily.
Cadence CadenceFromHours(std::string prediction, int train_every_hours, int score_every_hours);

// One run, as persisted in the run history.
struct RunRecord {
  uint64_t id = 0;
  std::string prediction;
  JobKind kind = JobKind::kTrain;
  std::string trigger;  // "new", "schedule", "manual", "retry", "catch_up"
  int attempt = 1;
  int64_t due_ms = 0, started_ms = 0, finished_ms = 0;  // scheduler clock
  std::string state;      // "queued", "running", "succeeded", "failed", "aborted"
  std::string error;      // failed/aborted: one line
  nlohmann::json detail;  // what the job returned (version, users scored, timings)
};
nlohmann::json ToJson(const RunRecord& run);
// The inverse of ToJson; InvalidArgument on a missing or mistyped field.
Result<RunRecord> RunRecordFromJson(const nlohmann::json& j);

// What a job needs to know; `since_ms` is the previous successful run of the same kind
// (score_active scores users active in [since_ms, now)), 0 if none.
struct JobContext {
  const RunRecord& run;
  int64_t now_ms;
  int64_t since_ms;
  const std::atomic<bool>& cancel;  // set on shutdown: jobs should stop early and return Aborted
};

// The server implements this (train = pipeline::TrainPrediction, score = scoring::RunScoring).
// Run is called from scheduler threads, never twice at once for one prediction. A
// FailedPrecondition result (e.g. "not trained") fails the run without retries.
class JobRunner {
 public:
  virtual ~JobRunner() = default;
  virtual Result<nlohmann::json> Run(const JobContext& context) = 0;
};

struct SchedulerOptions {
  std::string state_dir;           // <data>/scheduler : run history persisted here (durable)
  int64_t retry_base_ms = 60'000;  // failure backoff: base * 2^(attempt-1), capped
  int64_t retry_max_ms = 3'600'000;
  int max_attempts = 4;
  int workers = 1;                // concurrent runs (different predictions only)
  size_t history_limit = 10'000;  // finished runs kept; older ones are compacted away
};

class Scheduler {
 public:
  // Replays the history in state_dir (created if missing): runs left queued or running
  // become "aborted" ("process restarted") and are re-queued once as "catch_up".
  static Result<std::unique_ptr<Scheduler>> Open(SchedulerOptions options, const Clock& clock,
                                                 JobRunner& runner);
  ~Scheduler();  // Stop(true)
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Replaces the set of scheduled predictions. A prediction never trained before gets a
  // train run at once; a removed one loses its queued runs.
  void SetCadences(std::vector<Cadence> cadences);
  // Queues a manual run; its id. NotFound for an unknown prediction.
  Result<uint64_t> Trigger(const std::string& prediction, JobKind kind);

  // Deterministic step for tests: queues everything due at clock.NowMs() and runs it on
  // the calling thread until nothing is runnable. Returns how many runs it executed.
  size_t RunDueNow();
  // Production: a thread that wakes every `poll_ms` (and on Trigger) and dispatches due
  // runs to `workers` threads.
  void Start(int64_t poll_ms = 1000);
  // Graceful stop: no new runs; sets cancel for running ones when `abort_running`, else
  // waits for them. Idempotent.
  void Stop(bool abort_running);

  std::vector<RunRecord> Runs(const std::string& prediction = "",
                              size_t limit = 100) const;  // newest first
  std::optional<RunRecord> GetRun(uint64_t id) const;
  size_t QueueDepth() const;
  size_t RunningCount() const;

  // When (prediction, kind) last succeeded (scheduler clock); nullopt if never.
  std::optional<int64_t> LastSuccessMs(const std::string& prediction, JobKind kind) const;
  // When the next scheduled run of (prediction, kind) is due; nullopt if unknown or disabled.
  std::optional<int64_t> NextDueMs(const std::string& prediction, JobKind kind) const;
  // The first failure to persist the history since Open (runs go on in memory); OK if none.
  Status PersistStatus() const;

 private:
  struct Impl;
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sibyl::scheduler

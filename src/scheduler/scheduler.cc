#include "scheduler/scheduler.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "scheduler/run_log.h"

namespace sibyl::scheduler {

Cadence CadenceFromHours(std::string prediction, int train_every_hours, int score_every_hours) {
  Cadence cadence;
  cadence.prediction = std::move(prediction);
  cadence.train_every_ms = train_every_hours * kMsPerHour;
  cadence.score_every_ms = score_every_hours * kMsPerHour;
  cadence.full_score_every_ms = kMsPerDay;
  return cadence;
}

namespace {

// At equal due times, train first (scores then use the fresh model), then full scoring.
int KindPriority(JobKind kind) {
  switch (kind) {
    case JobKind::kTrain:
      return 0;
    case JobKind::kScoreFull:
      return 1;
    case JobKind::kScoreActive:
      return 2;
  }
  return 3;
}

int64_t IntervalMs(const Cadence& cadence, JobKind kind) {
  switch (kind) {
    case JobKind::kTrain:
      return cadence.train_every_ms;
    case JobKind::kScoreActive:
      return cadence.score_every_ms;
    case JobKind::kScoreFull:
      return cadence.full_score_every_ms;
  }
  return 0;
}

bool IsFinished(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "aborted";
}

// Errors are shown in one table cell: one line, bounded.
std::string OneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  constexpr size_t kMaxError = 1000;
  if (text.size() > kMaxError) text = text.substr(0, kMaxError) + "...";
  return text;
}

// base * 2^(attempt-1), capped, without overflow for any attempt.
int64_t BackoffMs(const SchedulerOptions& options, int failed_attempt) {
  int64_t delay = std::max<int64_t>(options.retry_base_ms, 0);
  for (int i = 1; i < failed_attempt && delay < options.retry_max_ms; ++i) delay *= 2;
  return std::min(delay, options.retry_max_ms);
}

// Errors of runs stopped by Stop(true) start with this, so the next Open re-runs them.
constexpr std::string_view kShutdownError = "shutdown";
constexpr std::string_view kRestartError = "process restarted";

}  // namespace

struct Scheduler::Impl {
  Impl(SchedulerOptions options_in, const Clock& clock_in, JobRunner& runner_in)
      : options(std::move(options_in)), clock(clock_in), runner(runner_in) {}

  // A run taken off the queue, with what its job is told.
  struct Claimed {
    RunRecord run;
    int64_t since_ms = 0;
  };

  const SchedulerOptions options;
  const Clock& clock;
  JobRunner& runner;
  int64_t opened_ms = 0;  // runs due before this were missed while the process was down

  mutable std::mutex mu;
  std::condition_variable changed;  // the queue, the running set or the stop state changed
  std::unique_ptr<RunLog> log;
  RunMap runs;  // the retained history plus every queued and running run
  ScheduleMap schedules;
  std::map<std::string, Cadence> cadences;
  std::map<ScheduleKey, uint64_t> queued;     // at most one queued run per (prediction, kind)
  std::set<std::string> running_predictions;  // one run at a time per prediction
  size_t finished_count = 0;
  uint64_t next_id = 1;
  bool stopping = false;
  std::atomic<bool> cancel{false};
  std::vector<std::thread> workers;
  Status persist_status;

  // --- persistence (mu held) ---

  void NotePersist(const Status& status) {
    if (!status.ok() && persist_status.ok()) persist_status = status;
  }
  void PersistRun(const RunRecord& run) { NotePersist(log->AppendRun(run)); }
  void PersistSchedule(const ScheduleKey& key) {
    NotePersist(log->AppendSchedule(key, schedules[key]));
  }

  // Keeps history_limit finished runs in memory and rewrites the log once it holds
  // several times that many records.
  void TrimLocked() {
    for (auto it = runs.begin(); finished_count > options.history_limit && it != runs.end();) {
      if (IsFinished(it->second.state)) {
        it = runs.erase(it);
        --finished_count;
      } else {
        ++it;
      }
    }
    if (log->records() > 4 * options.history_limit + 64) NotePersist(log->Rewrite(runs, schedules));
  }

  // --- the queue (mu held) ---

  uint64_t NewRunLocked(const std::string& prediction, JobKind kind, std::string trigger,
                        int attempt, int64_t due_ms) {
    RunRecord run;
    run.id = next_id++;
    run.prediction = prediction;
    run.kind = kind;
    run.trigger = std::move(trigger);
    run.attempt = attempt;
    run.due_ms = due_ms;
    run.state = "queued";
    PersistRun(run);
    const uint64_t id = run.id;
    queued[{prediction, kind}] = id;
    runs[id] = std::move(run);
    changed.notify_all();
    return id;
  }

  bool HasRunningLocked(const ScheduleKey& key) const {
    if (!running_predictions.count(key.first)) return false;
    for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
      if (it->second.state == "running" && it->second.prediction == key.first)
        return it->second.kind == key.second;
    }
    return false;
  }

  void FinishLocked(RunRecord& run, std::string state, std::string error, int64_t now) {
    if (run.state == "queued") queued.erase({run.prediction, run.kind});
    run.state = std::move(state);
    run.error = OneLine(std::move(error));
    run.finished_ms = now;
    ++finished_count;
    PersistRun(run);
  }

  // Moves the cadence of `key` to the latest period boundary at or before `now` and
  // queues one run for it; missed periods collapse into that one run.
  void AdvanceCadenceLocked(const ScheduleKey& key, int64_t interval, int64_t now) {
    ScheduleState& state = schedules[key];
    if (interval <= 0 || !state.anchor_ms || now < *state.anchor_ms + interval) return;
    // A due time passed while the process was down: this run catches up on those.
    const bool missed_while_down = *state.anchor_ms + interval < opened_ms;
    const int64_t latest_due = *state.anchor_ms + (now - *state.anchor_ms) / interval * interval;
    state.anchor_ms = latest_due;
    PersistSchedule(key);
    if (queued.count(key)) return;  // collapses into the run already waiting
    NewRunLocked(key.first, key.second, missed_while_down ? "catch_up" : "schedule", 1, latest_due);
  }

  void QueueDueLocked(int64_t now) {
    for (const auto& [name, cadence] : cadences) {
      const ScheduleKey train_key{name, JobKind::kTrain};
      ScheduleState& train = schedules[train_key];
      if (!train.anchor_ms) {
        // Never scheduled: train at once (once; if that fails for good the cadence goes on).
        train.anchor_ms = now;
        PersistSchedule(train_key);
        if (!queued.count(train_key) && !HasRunningLocked(train_key))
          NewRunLocked(name, JobKind::kTrain, "new", 1, now);
      } else {
        AdvanceCadenceLocked(train_key, cadence.train_every_ms, now);
      }
      // Scoring needs a model.
      if (!schedules[train_key].last_success_ms) continue;
      for (JobKind kind : {JobKind::kScoreFull, JobKind::kScoreActive}) {
        const ScheduleKey key{name, kind};
        const int64_t interval = IntervalMs(cadence, kind);
        if (schedules[key].anchor_ms) {
          AdvanceCadenceLocked(key, interval, now);
          continue;
        }
        // The first model: score everyone at once (full scoring, or active scoring when
        // full scoring is off); the other kind's cadence starts now.
        schedules[key].anchor_ms = now;
        PersistSchedule(key);
        const bool first_scoring =
            interval > 0 && (kind == JobKind::kScoreFull || cadence.full_score_every_ms <= 0);
        if (first_scoring && !queued.count(key)) NewRunLocked(name, kind, "new", 1, now);
      }
    }
  }

  // Takes the runnable queued run due earliest (train first at equal times), whose
  // prediction is scheduled and has nothing running, and marks it running.
  std::optional<Claimed> ClaimRunnableLocked(int64_t now) {
    const RunRecord* best = nullptr;
    for (const auto& [key, id] : queued) {
      const RunRecord& run = runs.at(id);
      if (run.due_ms > now || !cadences.count(run.prediction) ||
          running_predictions.count(run.prediction))
        continue;
      if (!best || std::tuple(run.due_ms, KindPriority(run.kind), run.id) <
                       std::tuple(best->due_ms, KindPriority(best->kind), best->id)) {
        best = &run;
      }
    }
    if (!best) return std::nullopt;
    RunRecord& run = runs.at(best->id);
    queued.erase({run.prediction, run.kind});
    running_predictions.insert(run.prediction);
    run.state = "running";
    run.started_ms = now;
    PersistRun(run);
    const ScheduleState& state = schedules[{run.prediction, run.kind}];
    return Claimed{run, state.last_success_ms.value_or(0)};
  }

  // Runs a claimed job without the lock, then records its outcome.
  void Execute(const Claimed& claimed) {
    JobContext context{claimed.run, claimed.run.started_ms, claimed.since_ms, cancel};
    Result<nlohmann::json> result = Internal("job did not run");
    try {
      result = runner.Run(context);
    } catch (const std::exception& e) {
      result = Internal("job threw: {}", e.what());
    } catch (...) {
      result = Internal("job threw a non-standard exception");
    }
    std::lock_guard lock(mu);
    const int64_t now = clock.NowMs();
    RunRecord& run = runs.at(claimed.run.id);
    running_predictions.erase(run.prediction);
    const ScheduleKey key{run.prediction, run.kind};
    if (result.ok()) {
      run.detail = std::move(result).value();
      // A prediction removed while this ran has forgotten its schedule; it stays forgotten.
      if (cadences.count(run.prediction)) {
        schedules[key].last_success_ms = run.started_ms;
        PersistSchedule(key);
      }
      FinishLocked(run, "succeeded", "", now);
    } else if (cancel.load() || result.status().code() == StatusCode::kCancelled) {
      std::string error = cancel.load()
                              ? fmt::format("{}: {}", kShutdownError, result.status().ToString())
                              : result.status().ToString();
      FinishLocked(run, "aborted", std::move(error), now);
    } else {
      FinishLocked(run, "failed", result.status().ToString(), now);
      // A precondition ("not trained") does not change by waiting: no retry storm.
      const bool retryable = result.status().code() != StatusCode::kFailedPrecondition;
      if (retryable && run.attempt < options.max_attempts && cadences.count(run.prediction) &&
          !stopping && !queued.count(key)) {
        const int attempt = run.attempt + 1;
        NewRunLocked(key.first, key.second, "retry", attempt,
                     now + BackoffMs(options, run.attempt));
      }
    }
    TrimLocked();
    changed.notify_all();
  }

  // Open: runs left queued or running by a dead process are aborted; the newest run of
  // each (prediction, kind), if it was interrupted that way or by a shutdown, runs once more.
  void RecoverLocked(int64_t now) {
    std::map<ScheduleKey, uint64_t> newest;
    for (const auto& [id, run] : runs) {
      newest[{run.prediction, run.kind}] = id;
      if (IsFinished(run.state)) ++finished_count;
      next_id = std::max(next_id, id + 1);
    }
    std::vector<RunRecord> rerun;
    for (auto& [id, run] : runs) {
      const bool interrupted = !IsFinished(run.state);
      if (interrupted) FinishLocked(run, "aborted", std::string(kRestartError), now);
      const bool by_shutdown = run.state == "aborted" && run.error.starts_with(kShutdownError);
      if ((interrupted || by_shutdown) && newest[{run.prediction, run.kind}] == id)
        rerun.push_back(run);
    }
    for (const RunRecord& run : rerun)
      NewRunLocked(run.prediction, run.kind, "catch_up", run.attempt, run.due_ms);
    TrimLocked();
  }

  void WorkerLoop(int64_t poll_ms) {
    std::unique_lock lock(mu);
    while (!stopping) {
      const int64_t now = clock.NowMs();
      QueueDueLocked(now);
      std::optional<Claimed> claimed = ClaimRunnableLocked(now);
      if (claimed) {
        lock.unlock();
        Execute(*claimed);
        lock.lock();
        continue;
      }
      changed.wait_for(lock, std::chrono::milliseconds(WaitMsLocked(now, poll_ms)));
    }
  }

  // Until the earliest queued run that is not yet due, at most poll_ms (cadences are
  // re-checked then). Due runs waiting for their prediction are woken by `changed`.
  int64_t WaitMsLocked(int64_t now, int64_t poll_ms) const {
    int64_t wait = std::max<int64_t>(poll_ms, 1);
    for (const auto& [key, id] : queued) {
      const int64_t due = runs.at(id).due_ms;
      if (due > now) wait = std::min(wait, due - now);
    }
    return wait;
  }
};

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Scheduler::~Scheduler() { Stop(true); }

Result<std::unique_ptr<Scheduler>> Scheduler::Open(SchedulerOptions options, const Clock& clock,
                                                   JobRunner& runner) {
  if (options.state_dir.empty()) return InvalidArgument("scheduler: state_dir is empty");
  if (options.max_attempts < 1)
    return InvalidArgument("scheduler: max_attempts must be at least 1");
  if (options.workers < 1) return InvalidArgument("scheduler: workers must be at least 1");
  if (options.history_limit < 1)
    return InvalidArgument("scheduler: history_limit must be at least 1");
  auto opened = RunLog::Open(options.state_dir);
  if (!opened.ok()) return opened.status().WithContext("scheduler");
  auto impl = std::make_unique<Impl>(std::move(options), clock, runner);
  {
    std::lock_guard lock(impl->mu);
    impl->log = std::move(opened->log);
    impl->runs = std::move(opened->state.runs);
    impl->schedules = std::move(opened->state.schedules);
    impl->opened_ms = clock.NowMs();
    impl->RecoverLocked(impl->opened_ms);
    if (!impl->persist_status.ok()) return impl->persist_status.WithContext("scheduler");
  }
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(impl)));
}

void Scheduler::SetCadences(std::vector<Cadence> cadences) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  std::map<std::string, Cadence> next;
  for (Cadence& cadence : cadences) next[cadence.prediction] = std::move(cadence);
  const int64_t now = s.clock.NowMs();
  // A removed prediction forgets its schedule: if it comes back it is new.
  for (const auto& [name, cadence] : s.cadences) {
    if (next.count(name)) continue;
    for (JobKind kind : {JobKind::kTrain, JobKind::kScoreActive, JobKind::kScoreFull}) {
      const ScheduleKey key{name, kind};
      if (s.schedules.erase(key)) s.NotePersist(s.log->AppendSchedule(key, ScheduleState{}));
    }
  }
  // Queued runs of predictions not scheduled any more (also ones recovered at Open) go.
  std::vector<uint64_t> dropped;
  for (const auto& [key, id] : s.queued) {
    if (!next.count(key.first)) dropped.push_back(id);
  }
  for (uint64_t id : dropped) s.FinishLocked(s.runs.at(id), "aborted", "prediction removed", now);
  s.cadences = std::move(next);
  s.QueueDueLocked(now);
  s.TrimLocked();
  s.changed.notify_all();
}

Result<uint64_t> Scheduler::Trigger(const std::string& prediction, JobKind kind) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (s.stopping) return FailedPrecondition("scheduler is stopping");
  if (!s.cadences.count(prediction))
    return NotFound("no scheduled prediction named \"{}\"", prediction);
  const int64_t now = s.clock.NowMs();
  auto it = s.queued.find({prediction, kind});
  if (it != s.queued.end()) {
    // Collapses into the waiting run, which now runs as soon as the prediction is free.
    RunRecord& run = s.runs.at(it->second);
    if (run.due_ms > now) {
      run.due_ms = now;
      s.PersistRun(run);
    }
    s.changed.notify_all();
    return run.id;
  }
  return s.NewRunLocked(prediction, kind, "manual", 1, now);
}

size_t Scheduler::RunDueNow() {
  Impl& s = *impl_;
  size_t executed = 0;
  for (;;) {
    std::optional<Impl::Claimed> claimed;
    {
      std::lock_guard lock(s.mu);
      if (s.stopping) break;
      const int64_t now = s.clock.NowMs();
      s.QueueDueLocked(now);
      claimed = s.ClaimRunnableLocked(now);
    }
    if (!claimed) break;
    s.Execute(*claimed);
    ++executed;
  }
  return executed;
}

void Scheduler::Start(int64_t poll_ms) {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (s.stopping || !s.workers.empty()) return;
  for (int i = 0; i < s.options.workers; ++i) {
    s.workers.emplace_back([&s, poll_ms] { s.WorkerLoop(poll_ms); });
  }
}

void Scheduler::Stop(bool abort_running) {
  Impl& s = *impl_;
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(s.mu);
    s.stopping = true;
    if (abort_running) s.cancel.store(true);
    workers.swap(s.workers);
    s.changed.notify_all();
  }
  for (std::thread& worker : workers) worker.join();
  // Runs executing on RunDueNow callers' threads finish (or abort) too.
  std::unique_lock lock(s.mu);
  s.changed.wait(lock, [&s] { return s.running_predictions.empty(); });
}

std::vector<RunRecord> Scheduler::Runs(const std::string& prediction, size_t limit) const {
  const Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  std::vector<RunRecord> out;
  for (auto it = s.runs.rbegin(); it != s.runs.rend() && out.size() < limit; ++it) {
    if (prediction.empty() || it->second.prediction == prediction) out.push_back(it->second);
  }
  return out;
}

std::optional<RunRecord> Scheduler::GetRun(uint64_t id) const {
  const Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  auto it = s.runs.find(id);
  if (it == s.runs.end()) return std::nullopt;
  return it->second;
}

size_t Scheduler::QueueDepth() const {
  std::lock_guard lock(impl_->mu);
  return impl_->queued.size();
}

size_t Scheduler::RunningCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->running_predictions.size();
}

std::optional<int64_t> Scheduler::LastSuccessMs(const std::string& prediction, JobKind kind) const {
  const Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  auto it = s.schedules.find({prediction, kind});
  if (it == s.schedules.end()) return std::nullopt;
  return it->second.last_success_ms;
}

std::optional<int64_t> Scheduler::NextDueMs(const std::string& prediction, JobKind kind) const {
  const Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  auto cadence = s.cadences.find(prediction);
  if (cadence == s.cadences.end()) return std::nullopt;
  const int64_t interval = IntervalMs(cadence->second, kind);
  auto it = s.schedules.find({prediction, kind});
  if (interval <= 0 || it == s.schedules.end() || !it->second.anchor_ms) return std::nullopt;
  return *it->second.anchor_ms + interval;
}

Status Scheduler::PersistStatus() const {
  std::lock_guard lock(impl_->mu);
  return impl_->persist_status;
}

}  // namespace sibyl::scheduler

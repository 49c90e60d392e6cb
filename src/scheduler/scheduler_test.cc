#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/file.h"
#include "scheduler/run_log.h"

namespace sibyl::scheduler {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
constexpr auto kGenerousWait = std::chrono::seconds(30);

// ManualClock is for one thread; tests where runs execute on other threads use this.
class AtomicClock final : public Clock {
 public:
  explicit AtomicClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void Advance(int64_t ms) { now_ms_ += ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

// Records every call; can fail a (prediction, kind) on demand, or block a prediction's
// runs until released (or cancelled).
class FakeRunner final : public JobRunner {
 public:
  struct Call {
    uint64_t id;
    std::string prediction;
    JobKind kind;
    std::string trigger;
    int attempt;
    int64_t now_ms;
    int64_t since_ms;
  };

  Result<nlohmann::json> Run(const JobContext& context) override {
    std::unique_lock lock(mu_);
    const RunRecord& run = context.run;
    calls_.push_back({run.id, run.prediction, run.kind, run.trigger, run.attempt, context.now_ms,
                      context.since_ms});
    changed_.notify_all();
    // An overlapping call is counted and never blocks, so a broken scheduler fails the
    // test instead of hanging it.
    const bool overlapping = !active_.insert(run.prediction).second;
    if (overlapping) ++overlaps_;
    struct Leave {
      FakeRunner* self;
      std::string prediction;
      bool overlapping;
      ~Leave() {
        if (!overlapping) self->active_.erase(prediction);
      }
    } leave{this, run.prediction, overlapping};
    while (!overlapping && blocked_.count(run.prediction)) {
      if (context.cancel.load()) return Status(StatusCode::kCancelled, "stopped early");
      changed_.wait_for(lock, std::chrono::milliseconds(2));
    }
    auto failure = failures_.find({run.prediction, run.kind});
    if (failure != failures_.end() && failure->second.remaining != 0) {
      if (failure->second.remaining > 0) --failure->second.remaining;
      return Status(failure->second.code, "injected failure");
    }
    return nlohmann::json{{"prediction", run.prediction}, {"kind", JobKindName(run.kind)}};
  }

  // Fails the next `times` runs of (prediction, kind); -1: always.
  void Fail(const std::string& prediction, JobKind kind, int times,
            StatusCode code = StatusCode::kInternal) {
    std::lock_guard lock(mu_);
    failures_[{prediction, kind}] = {times, code};
  }
  void Block(const std::string& prediction) {
    std::lock_guard lock(mu_);
    blocked_.insert(prediction);
  }
  void Release(const std::string& prediction) {
    std::lock_guard lock(mu_);
    blocked_.erase(prediction);
    changed_.notify_all();
  }
  // Calls that started while another call of the same prediction was running.
  size_t Overlaps() const {
    std::lock_guard lock(mu_);
    return overlaps_;
  }
  std::vector<Call> Calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t Count(const std::string& prediction, JobKind kind) const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const Call& call : calls_) n += call.prediction == prediction && call.kind == kind;
    return n;
  }
  // Waits until `prediction` has been called `n` times in all; false on timeout.
  bool WaitForCalls(const std::string& prediction, size_t n) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, kGenerousWait, [&] {
      size_t count = 0;
      for (const Call& call : calls_) count += call.prediction == prediction;
      return count >= n;
    });
  }

 private:
  struct Failure {
    int remaining = 0;
    StatusCode code = StatusCode::kInternal;
  };
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Call> calls_;
  std::map<std::pair<std::string, JobKind>, Failure> failures_;
  std::set<std::string> blocked_;
  std::set<std::string> active_;  // predictions with a call in progress
  size_t overlaps_ = 0;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("sibyl_scheduler_") + info->name() + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    options_.state_dir = dir_.string();
  }
  void TearDown() override {
    EXPECT_EQ(runner_.Overlaps(), 0u) << "two runs of one prediction overlapped";
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Scheduler> OpenWith(const Clock& clock) {
    auto opened = Scheduler::Open(options_, clock, runner_);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }
  std::unique_ptr<Scheduler> OpenScheduler() { return OpenWith(clock_); }

  std::string LogPath() const { return (dir_ / "runs.log").string(); }

  std::filesystem::path dir_;
  SchedulerOptions options_;
  ManualClock clock_{kT0};
  FakeRunner runner_;
};

std::vector<std::string> Triggers(const std::vector<FakeRunner::Call>& calls) {
  std::vector<std::string> out;
  for (const auto& call : calls)
    out.push_back(std::string(JobKindName(call.kind)) + ":" + call.trigger);
  return out;
}

TEST(JobKindTest, NamesRoundTrip) {
  for (JobKind kind : {JobKind::kTrain, JobKind::kScoreActive, JobKind::kScoreFull}) {
    EXPECT_EQ(ParseJobKind(JobKindName(kind)), kind);
  }
  EXPECT_FALSE(ParseJobKind("score").has_value());
}

TEST(RunRecordTest, JsonRoundTrip) {
  RunRecord run{7,  "p",      JobKind::kScoreFull, "retry",       3, 10, 20,
                30, "failed", "internal: x",       {{"users", 5}}};
  auto back = RunRecordFromJson(ToJson(run));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ToJson(*back), ToJson(run));
  EXPECT_EQ(ToJson(run)["kind"], "score_full");
  EXPECT_FALSE(RunRecordFromJson(nlohmann::json{{"id", 1}}).ok());
}

TEST(CadenceTest, FromHoursMapsTheRefreshBlock) {
  Cadence cadence = CadenceFromHours("p", 12, 2);
  EXPECT_EQ(cadence.prediction, "p");
  EXPECT_EQ(cadence.train_every_ms, 12 * kMsPerHour);
  EXPECT_EQ(cadence.score_every_ms, 2 * kMsPerHour);
  EXPECT_EQ(cadence.full_score_every_ms, kMsPerDay);
}

TEST_F(SchedulerTest, NewPredictionTrainsAtOnceThenScoresEveryone) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  EXPECT_EQ(scheduler->QueueDepth(), 1u);  // the train, before anything runs
  EXPECT_EQ(scheduler->RunDueNow(), 2u);
  EXPECT_EQ(Triggers(runner_.Calls()), (std::vector<std::string>{"train:new", "score_full:new"}));
  EXPECT_EQ(scheduler->LastSuccessMs("p", JobKind::kTrain), kT0);
  EXPECT_EQ(scheduler->NextDueMs("p", JobKind::kTrain), kT0 + kMsPerDay);
  EXPECT_EQ(scheduler->NextDueMs("p", JobKind::kScoreActive), kT0 + kMsPerHour);
  EXPECT_EQ(scheduler->RunDueNow(), 0u);
}

TEST_F(SchedulerTest, CadenceOverThreeDaysRunsExactCounts) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  for (int hour = 1; hour <= 72; ++hour) {
    clock_.Advance(kMsPerHour);
    scheduler->RunDueNow();
  }
  EXPECT_EQ(runner_.Count("p", JobKind::kTrain), 4u);         // t0, +24h, +48h, +72h
  EXPECT_EQ(runner_.Count("p", JobKind::kScoreFull), 4u);     // likewise
  EXPECT_EQ(runner_.Count("p", JobKind::kScoreActive), 72u);  // every hour after the first model
  // Active scoring covers [previous active run, now) with no gap; at a day boundary the
  // train runs first.
  int64_t previous_active = 0;
  auto calls = runner_.Calls();
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].kind != JobKind::kScoreActive) continue;
    EXPECT_EQ(calls[i].since_ms, previous_active);
    previous_active = calls[i].now_ms;
  }
  EXPECT_EQ(calls[calls.size() - 3].kind, JobKind::kTrain);
  EXPECT_EQ(calls[calls.size() - 3].trigger, "schedule");
  EXPECT_EQ(calls.back().kind, JobKind::kScoreActive);
}

TEST_F(SchedulerTest, MissedPeriodsCollapseIntoOneRun) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  clock_.Advance(5 * kMsPerHour + 10);
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  auto runs = scheduler->Runs("p", 1);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].kind, JobKind::kScoreActive);
  EXPECT_EQ(runs[0].trigger, "schedule");
  EXPECT_EQ(runs[0].due_ms, kT0 + 5 * kMsPerHour);  // the cadence keeps its phase
  EXPECT_EQ(scheduler->NextDueMs("p", JobKind::kScoreActive), kT0 + 6 * kMsPerHour);
}

TEST_F(SchedulerTest, ScoringWaitsForASuccessfulTrain) {
  options_.max_attempts = 1;
  runner_.Fail("p", JobKind::kTrain, 1);
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  for (int hour = 1; hour < 24; ++hour) {
    clock_.Advance(kMsPerHour);
    EXPECT_EQ(scheduler->RunDueNow(), 0u) << "hour " << hour;
  }
  clock_.Advance(kMsPerHour);  // the next day's train succeeds, then scoring starts
  EXPECT_EQ(scheduler->RunDueNow(), 2u);
  EXPECT_EQ(Triggers(runner_.Calls()),
            (std::vector<std::string>{"train:new", "train:schedule", "score_full:new"}));
}

TEST_F(SchedulerTest, NotTrainedFailsWithoutRetries) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  runner_.Fail("p", JobKind::kTrain, -1);
  runner_.Fail("p", JobKind::kScoreFull, -1, StatusCode::kFailedPrecondition);
  scheduler->RunDueNow();  // the train fails; its retry waits
  auto id = scheduler->Trigger("p", JobKind::kScoreFull);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  auto run = scheduler->GetRun(*id);
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->state, "failed");
  EXPECT_NE(run->error.find("injected failure"), std::string::npos);
  clock_.Advance(2 * kMsPerHour);
  scheduler->RunDueNow();
  EXPECT_EQ(runner_.Count("p", JobKind::kScoreFull), 1u);
}

TEST_F(SchedulerTest, RetriesWithExponentialBackoffThenGivesUp) {
  options_.retry_base_ms = 60'000;
  options_.retry_max_ms = 3'600'000;
  options_.max_attempts = 4;
  runner_.Fail("p", JobKind::kTrain, -1);
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  EXPECT_EQ(scheduler->RunDueNow(), 1u);  // attempt 1 at t0
  // Attempt n+1 is due base * 2^(n-1) after attempt n failed: +60 s, +120 s, +240 s.
  for (int64_t delay : {60'000, 120'000, 240'000}) {
    clock_.Advance(delay - 1);
    EXPECT_EQ(scheduler->RunDueNow(), 0u);
    clock_.Advance(1);
    EXPECT_EQ(scheduler->RunDueNow(), 1u);
  }
  auto calls = runner_.Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[1].now_ms, kT0 + 60'000);
  EXPECT_EQ(calls[2].now_ms, kT0 + 180'000);
  EXPECT_EQ(calls[3].now_ms, kT0 + 420'000);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(calls[i].attempt, i + 1);
  EXPECT_EQ(calls[3].trigger, "retry");
  EXPECT_EQ(scheduler->QueueDepth(), 0u);  // gave up
  clock_.Advance(kMsPerDay - 420'000 - 1);
  EXPECT_EQ(scheduler->RunDueNow(), 0u);
  clock_.Advance(1);  // the cadence goes on: the next day's train
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  EXPECT_EQ(runner_.Calls().back().trigger, "schedule");
  EXPECT_EQ(runner_.Calls().back().attempt, 1);
}

TEST_F(SchedulerTest, BackoffIsCapped) {
  options_.retry_base_ms = 60'000;
  options_.retry_max_ms = 100'000;
  runner_.Fail("p", JobKind::kTrain, -1);
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  for (int64_t delay : {60'000, 100'000, 100'000}) {
    clock_.Advance(delay - 1);
    EXPECT_EQ(scheduler->RunDueNow(), 0u);
    clock_.Advance(1);
    EXPECT_EQ(scheduler->RunDueNow(), 1u);
  }
  EXPECT_EQ(runner_.Count("p", JobKind::kTrain), 4u);
}

TEST_F(SchedulerTest, RetryThatSucceedsEndsTheChain) {
  runner_.Fail("p", JobKind::kTrain, 1);
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  clock_.Advance(options_.retry_base_ms);
  EXPECT_EQ(scheduler->RunDueNow(), 2u);  // the retry, then the first scoring
  auto runs = scheduler->Runs("p");
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[2].state, "failed");
  EXPECT_EQ(runs[1].state, "succeeded");
  EXPECT_EQ(runs[1].trigger, "retry");
  EXPECT_EQ(runs[1].attempt, 2);
  EXPECT_EQ(scheduler->QueueDepth(), 0u);
}

TEST_F(SchedulerTest, TriggerUnknownPredictionIsNotFound) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  auto id = scheduler->Trigger("nope", JobKind::kTrain);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, TriggerCollapsesIntoTheWaitingRunOfThatKind) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  auto first = scheduler->Trigger("p", JobKind::kTrain);  // the new-prediction train waits
  auto second = scheduler->Trigger("p", JobKind::kTrain);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(scheduler->QueueDepth(), 1u);
  scheduler->RunDueNow();
  auto manual = scheduler->Trigger("p", JobKind::kTrain);
  ASSERT_TRUE(manual.ok());
  EXPECT_NE(*manual, *first);
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  EXPECT_EQ(scheduler->GetRun(*manual)->trigger, "manual");
  EXPECT_EQ(scheduler->GetRun(*manual)->state, "succeeded");
}

TEST_F(SchedulerTest, RemovedPredictionLosesQueuedRunsAndComesBackNew) {
  auto scheduler = OpenScheduler();
  scheduler->SetCadences({Cadence{"p"}});
  auto queued = scheduler->Runs("p");
  ASSERT_EQ(queued.size(), 1u);
  scheduler->SetCadences({});
  EXPECT_EQ(scheduler->QueueDepth(), 0u);
  EXPECT_EQ(scheduler->GetRun(queued[0].id)->state, "aborted");
  EXPECT_EQ(scheduler->GetRun(queued[0].id)->error, "prediction removed");
  EXPECT_EQ(scheduler->RunDueNow(), 0u);
  scheduler->SetCadences({Cadence{"p"}});
  EXPECT_EQ(scheduler->RunDueNow(), 2u);
  EXPECT_EQ(Triggers(runner_.Calls()), (std::vector<std::string>{"train:new", "score_full:new"}));
}

TEST_F(SchedulerTest, PredictionRemovedWhileRunningStaysForgotten) {
  AtomicClock clock(kT0);
  auto scheduler = OpenWith(clock);
  runner_.Block("p");
  scheduler->SetCadences({Cadence{"p"}});
  std::thread busy([&] { scheduler->RunDueNow(); });
  ASSERT_TRUE(runner_.WaitForCalls("p", 1));
  scheduler->SetCadences({});  // deleted while its first train runs
  runner_.Release("p");
  busy.join();
  EXPECT_EQ(scheduler->Runs("p")[0].state, "succeeded");  // left to finish
  EXPECT_FALSE(scheduler->LastSuccessMs("p", JobKind::kTrain).has_value());
  EXPECT_EQ(runner_.Count("p", JobKind::kScoreFull), 0u);
  scheduler->SetCadences({Cadence{"p"}});  // created again: a new prediction
  EXPECT_EQ(scheduler->RunDueNow(), 2u);
  EXPECT_EQ(runner_.Calls()[1].trigger, "new");
}

TEST_F(SchedulerTest, RunsOfOnePredictionNeverOverlap) {
  AtomicClock clock(kT0);
  auto scheduler = OpenWith(clock);
  scheduler->SetCadences({Cadence{"a"}, Cadence{"b"}});
  scheduler->RunDueNow();  // both trained and fully scored
  clock.Advance(kMsPerDay);
  runner_.Block("a");
  std::thread first([&] { scheduler->RunDueNow(); });  // runs a's train, then blocks in it
  ASSERT_TRUE(runner_.WaitForCalls("a", 3));
  // While a's train runs, time moves on: a's scoring is due but must wait; b runs.
  clock.Advance(kMsPerHour);
  const size_t a_calls = runner_.Calls().size();
  scheduler->RunDueNow();
  size_t a_started = 0;
  auto calls = runner_.Calls();
  for (size_t i = a_calls; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].prediction, "b");
    a_started += calls[i].prediction == "a";
  }
  EXPECT_EQ(a_started, 0u);
  EXPECT_EQ(runner_.Overlaps(), 0u);
  EXPECT_EQ(runner_.Count("b", JobKind::kScoreActive), 1u);
  EXPECT_EQ(scheduler->RunningCount(), 1u);
  EXPECT_GE(scheduler->QueueDepth(), 1u);  // a's due runs collapse into one per kind
  runner_.Release("a");
  first.join();
  scheduler->RunDueNow();
  EXPECT_EQ(runner_.Count("a", JobKind::kTrain), 2u);
  EXPECT_EQ(runner_.Count("a", JobKind::kScoreActive), 1u);
  EXPECT_EQ(runner_.Count("a", JobKind::kScoreFull), 2u);
  EXPECT_EQ(scheduler->QueueDepth(), 0u);
  // a's train and its scorings never ran at once: each started after the previous finished.
  auto runs = scheduler->Runs("a");
  for (size_t i = 0; i + 1 < runs.size(); ++i)
    EXPECT_GE(runs[i].started_ms, runs[i + 1].finished_ms);
}

TEST_F(SchedulerTest, TwoWorkersRunOtherPredictionsWhileOneIsBusy) {
  options_.workers = 2;
  AtomicClock clock(kT0);
  auto scheduler = OpenWith(clock);
  runner_.Block("a");
  scheduler->SetCadences({Cadence{"a"}, Cadence{"b"}});
  scheduler->Start(/*poll_ms=*/5);
  ASSERT_TRUE(runner_.WaitForCalls("a", 1));
  ASSERT_TRUE(runner_.WaitForCalls("b", 2));  // b trains and scores while a's train is blocked
  EXPECT_EQ(runner_.Count("a", JobKind::kTrain), 1u);
  EXPECT_EQ(runner_.Count("a", JobKind::kScoreFull), 0u);
  runner_.Release("a");
  ASSERT_TRUE(runner_.WaitForCalls("a", 2));
  scheduler->Stop(/*abort_running=*/false);
  EXPECT_EQ(runner_.Count("a", JobKind::kTrain), 1u);
  for (const RunRecord& run : scheduler->Runs()) EXPECT_EQ(run.state, "succeeded") << ToJson(run);
}

TEST_F(SchedulerTest, BackgroundThreadExecutesATriggerWithTheSystemClock) {
  auto scheduler = OpenWith(SystemClock::Instance());
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->Start(/*poll_ms=*/20);
  ASSERT_TRUE(runner_.WaitForCalls("p", 2));  // train, full scoring
  auto id = scheduler->Trigger("p", JobKind::kScoreActive);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(runner_.WaitForCalls("p", 3));
  scheduler->Stop(/*abort_running=*/false);
  EXPECT_EQ(scheduler->GetRun(*id)->state, "succeeded");
}

TEST_F(SchedulerTest, HistoryPersistsAcrossOpen) {
  runner_.Fail("p", JobKind::kTrain, 1);
  std::vector<RunRecord> before;
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
    clock_.Advance(options_.retry_base_ms);
    scheduler->RunDueNow();
    before = scheduler->Runs();
  }
  ASSERT_EQ(before.size(), 3u);
  auto scheduler = OpenScheduler();
  auto after = scheduler->Runs();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(ToJson(after[i]), ToJson(before[i]));
  EXPECT_EQ(scheduler->LastSuccessMs("p", JobKind::kTrain), kT0 + options_.retry_base_ms);
  scheduler->SetCadences({Cadence{"p"}});
  auto id = scheduler->Trigger("p", JobKind::kScoreActive);
  ASSERT_TRUE(id.ok());
  EXPECT_GT(*id, before[0].id);  // ids continue
}

TEST_F(SchedulerTest, RestartAfterThreeDaysCatchesUpOncePerKind) {
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
    clock_.Advance(kMsPerHour);
    scheduler->RunDueNow();
  }
  const int64_t last_active = clock_.NowMs();
  clock_.Advance(3 * kMsPerDay);  // the process was down
  FakeRunner after_restart;
  auto opened = Scheduler::Open(options_, clock_, after_restart);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& scheduler = *opened;
  scheduler->SetCadences({Cadence{"p"}});
  EXPECT_EQ(scheduler->RunDueNow(), 3u);
  EXPECT_EQ(
      Triggers(after_restart.Calls()),
      (std::vector<std::string>{"train:catch_up", "score_full:catch_up", "score_active:catch_up"}));
  EXPECT_EQ(after_restart.Calls().back().since_ms, last_active);  // no gap in active scoring
  clock_.Advance(kMsPerHour);
  EXPECT_EQ(scheduler->RunDueNow(), 1u);
  EXPECT_EQ(after_restart.Calls().back().trigger, "schedule");
}

TEST_F(SchedulerTest, RunningAtCrashIsAbortedAndRerunOnce) {
  AtomicClock clock(kT0);
  const std::string crashed_dir = dir_.string() + "_crashed";
  std::filesystem::remove_all(crashed_dir);
  uint64_t interrupted_id = 0;
  {
    auto scheduler = OpenWith(clock);
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
    clock.Advance(kMsPerDay);
    runner_.Block("p");
    std::thread busy([&] { scheduler->RunDueNow(); });
    ASSERT_TRUE(runner_.WaitForCalls("p", 3));
    interrupted_id = runner_.Calls().back().id;
    // What a kill -9 now would leave on disk: the log as synced so far.
    std::filesystem::copy(dir_, crashed_dir);
    runner_.Release("p");
    busy.join();
  }
  options_.state_dir = crashed_dir;
  FakeRunner after_crash;
  auto opened = Scheduler::Open(options_, clock, after_crash);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  auto& scheduler = *opened;
  auto interrupted = scheduler->GetRun(interrupted_id);
  ASSERT_TRUE(interrupted.has_value());
  EXPECT_EQ(interrupted->state, "aborted");
  EXPECT_EQ(interrupted->error, "process restarted");
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  // The running train and the two scorings queued behind it each run once more; the
  // re-run train also stands for the day's scheduled one.
  EXPECT_EQ(
      Triggers(after_crash.Calls()),
      (std::vector<std::string>{"train:catch_up", "score_full:catch_up", "score_active:catch_up"}));
  EXPECT_EQ(after_crash.Calls()[0].attempt, 1);
  size_t aborted = 0;
  for (const RunRecord& run : scheduler->Runs()) aborted += run.state == "aborted";
  EXPECT_EQ(aborted, 3u);
  std::filesystem::remove_all(crashed_dir);
}

TEST_F(SchedulerTest, TornTailOfTheHistoryIsDropped) {
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
  }
  auto good_size = FileSize(LogPath());
  ASSERT_TRUE(good_size.ok());
  {
    std::ofstream out(LogPath(), std::ios::app | std::ios::binary);
    out << "1234abcd {\"type\":\"run\",\"id\":9";  // a write cut short by a crash
  }
  auto scheduler = OpenScheduler();
  EXPECT_EQ(scheduler->Runs().size(), 2u);
  EXPECT_EQ(*FileSize(LogPath()), *good_size);
  // The cut bytes are kept aside, not destroyed.
  auto cut = ReadFile(LogPath() + ".cut-at-" + std::to_string(*good_size));
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();
  EXPECT_EQ(*cut, "1234abcd {\"type\":\"run\",\"id\":9");
  scheduler->SetCadences({Cadence{"p"}});
  ASSERT_TRUE(scheduler->Trigger("p", JobKind::kScoreActive).ok());
  scheduler->RunDueNow();
  scheduler.reset();
  EXPECT_EQ(OpenScheduler()->Runs().size(), 3u);
}

TEST_F(SchedulerTest, DamageBeforeTheTailIsCorruption) {
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
  }
  auto data = ReadFile(LogPath());
  ASSERT_TRUE(data.ok());
  std::string damaged = *data;
  damaged[damaged.find("\"prediction\"") + 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(LogPath(), damaged).ok());
  auto opened = Scheduler::Open(options_, clock_, runner_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kCorruption);
  EXPECT_NE(opened.status().message().find("byte 0"), std::string::npos) << opened.status().message();
  // Repair keeps every other line; the damaged one (the first) is set aside with the file.
  auto repaired = RunLog::Repair(dir_.string());
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  ASSERT_EQ(repaired->damaged.size(), 1u);
  EXPECT_EQ(repaired->damaged[0].offset, 0u);
  EXPECT_EQ(repaired->damaged[0].bytes, data->find('\n') + 1);
  EXPECT_EQ(*ReadFile(LogPath() + ".before-repair"), damaged);
  EXPECT_EQ(*ReadFile(LogPath()), data->substr(data->find('\n') + 1));
  ASSERT_TRUE(Scheduler::Open(options_, clock_, runner_).ok());
}

TEST_F(SchedulerTest, ZeroFilledTailOfTheHistoryIsDropped) {
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
  }
  auto good_size = FileSize(LogPath());
  ASSERT_TRUE(good_size.ok());
  {
    // A power loss after the file grew but before its new pages reached the disk.
    std::ofstream out(LogPath(), std::ios::app | std::ios::binary);
    out << std::string(4096, '\0');
  }
  auto scheduler = OpenScheduler();
  ASSERT_NE(scheduler, nullptr);
  EXPECT_EQ(scheduler->Runs().size(), 2u);
  EXPECT_EQ(*FileSize(LogPath()), *good_size);
}

TEST_F(SchedulerTest, FlippedBitInTheLastSyncedLineRefusesToLoadThenRepairKeepsTheRest) {
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    scheduler->RunDueNow();
  }
  auto data = ReadFile(LogPath());
  ASSERT_TRUE(data.ok());
  size_t last_line = data->rfind('\n', data->size() - 2) + 1;
  for (size_t flip : {data->size() - 3, data->size() - 1}) {  // inside the JSON; the newline
    std::string damaged = *data;
    damaged[flip] ^= 0x01;
    ASSERT_TRUE(WriteFileAtomic(LogPath(), damaged).ok());
    auto opened = Scheduler::Open(options_, clock_, runner_);
    ASSERT_FALSE(opened.ok()) << "flip at " << flip;
    EXPECT_EQ(opened.status().code(), StatusCode::kCorruption);
    EXPECT_NE(opened.status().message().find(LogPath()), std::string::npos) << opened.status().message();
    EXPECT_NE(opened.status().message().find("byte " + std::to_string(last_line)), std::string::npos)
        << opened.status().message();
    EXPECT_EQ(*ReadFile(LogPath()), damaged);  // refused, unchanged
  }
  auto repaired = RunLog::Repair(dir_.string());
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  ASSERT_EQ(repaired->damaged.size(), 1u);
  EXPECT_EQ(repaired->damaged[0].offset, last_line);
  EXPECT_EQ(repaired->damaged[0].bytes, data->size() - last_line);
  EXPECT_EQ(*ReadFile(LogPath()), data->substr(0, last_line));
  // It loads again; the run whose last state was dropped is recovered as interrupted.
  auto scheduler = OpenScheduler();
  ASSERT_NE(scheduler, nullptr);
  EXPECT_GE(scheduler->Runs().size(), 2u);
}

TEST_F(SchedulerTest, StopWithAbortCancelsTheRunAndRecordsItAborted) {
  AtomicClock clock(kT0);
  uint64_t id = 0;
  {
    auto scheduler = OpenWith(clock);
    runner_.Block("p");
    scheduler->SetCadences({Cadence{"p"}});
    std::thread busy([&] { scheduler->RunDueNow(); });
    ASSERT_TRUE(runner_.WaitForCalls("p", 1));
    id = runner_.Calls()[0].id;
    scheduler->Stop(/*abort_running=*/true);  // the fake returns once it sees cancel
    busy.join();
    auto run = scheduler->GetRun(id);
    EXPECT_EQ(run->state, "aborted");
    EXPECT_EQ(run->error.rfind("shutdown", 0), 0u) << run->error;
    EXPECT_EQ(scheduler->RunningCount(), 0u);
    EXPECT_EQ(runner_.Count("p", JobKind::kTrain), 1u);  // no retry of a cancelled run
    EXPECT_FALSE(scheduler->Trigger("p", JobKind::kTrain).ok());
  }
  runner_.Release("p");
  auto scheduler = OpenWith(clock);  // the interrupted train runs again at the next start
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->RunDueNow();
  auto calls = runner_.Calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls[1].kind, JobKind::kTrain);
  EXPECT_EQ(calls[1].trigger, "catch_up");
  EXPECT_EQ(runner_.Count("p", JobKind::kTrain), 2u);
}

TEST_F(SchedulerTest, StopWithoutAbortLetsTheRunFinish) {
  AtomicClock clock(kT0);
  auto scheduler = OpenWith(clock);
  runner_.Block("p");
  scheduler->SetCadences({Cadence{"p"}});
  scheduler->Start(/*poll_ms=*/5);
  ASSERT_TRUE(runner_.WaitForCalls("p", 1));
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    runner_.Release("p");
  });
  scheduler->Stop(/*abort_running=*/false);
  release.join();
  auto runs = scheduler->Runs("p");
  ASSERT_FALSE(runs.empty());
  EXPECT_EQ(runs.back().state, "succeeded");
  EXPECT_EQ(runner_.Count("p", JobKind::kScoreFull), 0u);  // nothing new started after Stop
}

TEST_F(SchedulerTest, HistoryIsBounded) {
  options_.history_limit = 5;
  {
    auto scheduler = OpenScheduler();
    scheduler->SetCadences({Cadence{"p"}});
    for (int i = 0; i < 60; ++i) {
      clock_.Advance(kMsPerHour);
      scheduler->RunDueNow();
    }
    EXPECT_EQ(scheduler->Runs("", 1000).size(), 5u);
    EXPECT_EQ(scheduler->Runs("", 2).size(), 2u);
  }
  auto data = ReadFile(LogPath());
  ASSERT_TRUE(data.ok());
  EXPECT_LE(std::count(data->begin(), data->end(), '\n'), 4 * 5 + 64 + 1);
  auto scheduler = OpenScheduler();
  auto runs = scheduler->Runs("", 1000);
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_GT(runs[0].id, 60u);  // the newest survive
  EXPECT_TRUE(scheduler->LastSuccessMs("p", JobKind::kScoreActive).has_value());
}

}  // namespace
}  // namespace sibyl::scheduler

// Flags and progress display shared by `sibyl train` and `sibyl backtest`.
#pragma once

#include <charconv>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "cli/commands.h"
#include "common/progress.h"
#include "common/time.h"
#include "pipeline/train_run.h"

namespace sibyl {

// Flags shared by train and backtest.
struct TrainFlags {
  std::string as_of;
  std::string stack = "auto";
  uint64_t seed = 42;
  int threads = 0;
  uint64_t max_users = 5'000'000;
  uint64_t min_positives = 100, min_negatives = 100;
  int min_history_days = 49;
  int top_events = 50;
  bool no_seasonal_shift = false;
  double sample_percent = 100;  // on a cluster: the share of users pulled
};

inline void AddTrainFlags(CLI::App& cmd, TrainFlags& f) {
  cmd.add_option("--as-of", f.as_of,
                 "the time the model is for (ISO-8601 or epoch ms); default: the store's last event. "
                 "Training uses labels in [T_train, T_train + H) with T_train = floor_hour(as_of - H)");
  cmd.add_option("--seed", f.seed, "seed for the sample, the split and the learners")->capture_default_str();
  cmd.add_option("--threads", f.threads, "learner threads (0: all cores; 1: byte-identical models)")
      ->capture_default_str();
  cmd.add_option("--max-users", f.max_users, "at most this many users per cutoff (deterministic hash sample)")
      ->capture_default_str();
  cmd.add_option("--min-positives", f.min_positives, "eligibility: users with the outcome needed")
      ->capture_default_str();
  cmd.add_option("--min-negatives", f.min_negatives, "eligibility: users without the outcome needed")
      ->capture_default_str();
  cmd.add_option("--min-history-days", f.min_history_days, "eligibility: days of events needed before T_train")
      ->capture_default_str();
  cmd.add_option("--top-events", f.top_events, "event types that get feature columns")->capture_default_str();
  cmd.add_option("--sample", f.sample_percent,
                 "on a ClickHouse cluster: pull this percent of users (a hash sample, the same every run) to train on")
      ->check(CLI::Range(0.1, 100.0))
      ->capture_default_str();
  cmd.add_flag("--no-seasonal-shift", f.no_seasonal_shift,
               "do not shift the calibration by last year's change between the training and the scoring time "
               "(docs/ML.md, \"Seasonal shift\")");
}

inline pipeline::TrainRequest MakeTrainRequest(const TrainFlags& f) {
  pipeline::TrainRequest request;
  if (!f.as_of.empty()) {
    auto t = ParseTime(f.as_of);
    if (!t.ok()) throw CommandFailed(InvalidArgument("--as-of: cannot parse \"{}\"", f.as_of));
    request.as_of_ms = *t;
  }
  if (f.stack == "auto") {
    request.set.stack = pipeline::TrainingSetOptions::kAutoStack;
  } else {
    int stack = -1;
    auto [end, error] = std::from_chars(f.stack.data(), f.stack.data() + f.stack.size(), stack);
    if (error != std::errc() || end != f.stack.data() + f.stack.size() || stack < 0 || stack > 52)
      throw CommandFailed(InvalidArgument("--stack must be \"auto\" or a number of weeks from 0 to 52, not \"{}\"", f.stack));
    request.set.stack = stack;
  }
  request.set.seed = f.seed;
  request.set.max_users = f.max_users;
  request.set.eligibility = {.min_positives = f.min_positives, .min_negatives = f.min_negatives,
                             .min_history_days = f.min_history_days};
  request.set.taxonomy.top_events = f.top_events;
  request.num_threads = f.threads;
  request.seasonal_shift = !f.no_seasonal_shift;
  return request;
}

// Shows the current stage on a terminal: one progress line per stage.
class StageProgress {
 public:
  explicit StageProgress(std::string prefix) : prefix_(std::move(prefix)) {}
  void operator()(std::string_view stage) {
    progress_.reset();
    progress_ = std::make_unique<Progress>(fmt::format("{}: {}", prefix_, stage), 0, "");
    progress_->Update(0);
  }
  void Finish() { progress_.reset(); }

 private:
  std::string prefix_;
  std::unique_ptr<Progress> progress_;
};

}  // namespace sibyl

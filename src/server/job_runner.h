// The scheduler's JobRunner for `sibyl serve`: a train run is pipeline::TrainPrediction on
// a fresh snapshot of the store; a score run is scoring::RunScoring against the live store
// (write-back in one transaction), hourly runs over the users active since the previous
// successful one. Each finished run is counted in the metrics and logged.
#pragma once

#include <functional>
#include <string>

#include "pipeline/registry.h"
#include "scheduler/scheduler.h"
#include "server/log.h"
#include "server/metrics.h"
#include "store/event_store.h"

namespace sibyl::server {

struct JobRunnerOptions {
  int train_threads = 0;  // learner threads (0: all cores)
  // Called after a run that may have changed what real-time scoring should load.
  std::function<void(const std::string& prediction)> on_model_change;
};

class ServerJobRunner final : public scheduler::JobRunner {
 public:
  ServerJobRunner(std::string data_dir, EventStore& store, Metrics& metrics, JsonLog& log, JobRunnerOptions options);
  Result<nlohmann::json> Run(const scheduler::JobContext& context) override;

 private:
  Result<nlohmann::json> Train(const scheduler::JobContext& context);
  Result<nlohmann::json> Score(const scheduler::JobContext& context, bool full);

  pipeline::PredictionRegistry registry_;
  EventStore& store_;
  Metrics& metrics_;
  JsonLog& log_;
  JobRunnerOptions options_;
};

}  // namespace sibyl::server

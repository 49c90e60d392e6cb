// The scheduler's JobRunner for `sibyl serve`: a train run is pipeline::TrainPrediction on
// a fresh snapshot of the store; a score run is scoring::RunScoring against the live store
// (write-back in one transaction), hourly runs over the users active since the previous
// successful one. Each finished run is counted in the metrics and logged.
// On a ClickHouse cluster the runs do what `sibyl train` and `sibyl score` do there: a
// training pulls the cluster into a private store, a full run scores shard by shard
// (scoring::RunScoringInParts), an hourly run pulls the cluster and writes its scores back
// to it (docs/SCALE_OUT.md).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "pipeline/registry.h"
#include "scheduler/scheduler.h"
#include "server/log.h"
#include "server/metrics.h"
#include "store/event_store.h"

namespace sibyl::clickhouse {
class Cluster;
}

namespace sibyl::server {

struct JobRunnerOptions {
  int train_threads = 0;  // learner threads (0: all cores)
  // Called after a run that may have changed what real-time scoring should load.
  std::function<void(const std::string& prediction)> on_model_change;
  // Null: the runs read `store`. Else they pull from this cluster into private stores
  // under `temp_dir`, and `store` is not read.
  std::shared_ptr<const clickhouse::Cluster> cluster;
  std::string temp_dir;
};

class ServerJobRunner final : public scheduler::JobRunner {
 public:
  ServerJobRunner(std::string data_dir, EventStore& store, Metrics& metrics, JsonLog& log, JobRunnerOptions options);
  Result<nlohmann::json> Run(const scheduler::JobContext& context) override;

 private:
  Result<nlohmann::json> Train(const scheduler::JobContext& context);
  Result<nlohmann::json> Score(const scheduler::JobContext& context, bool full);
  // On the cluster: the whole cluster pulled into a private store (train, hourly runs).
  Result<std::unique_ptr<EventStore>> PullAll(nlohmann::json* detail) const;

  pipeline::PredictionRegistry registry_;
  EventStore& store_;
  Metrics& metrics_;
  JsonLog& log_;
  JobRunnerOptions options_;
};

}  // namespace sibyl::server

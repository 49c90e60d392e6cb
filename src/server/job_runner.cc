#include "server/job_runner.h"

#include <chrono>

#include <fmt/format.h>

#include "clickhouse/cluster_writer.h"
#include "clickhouse/slice_store.h"
#include "common/file.h"
#include "common/memory.h"
#include "pipeline/train_run.h"
#include "scoring/score_run.h"

namespace sibyl::server {

ServerJobRunner::ServerJobRunner(std::string data_dir, EventStore& store, Metrics& metrics, JsonLog& log,
                                 JobRunnerOptions options)
    : registry_(std::move(data_dir)), store_(store), metrics_(metrics), log_(log), options_(std::move(options)) {}

Result<nlohmann::json> ServerJobRunner::Run(const scheduler::JobContext& context) {
  const std::string kind(scheduler::JobKindName(context.run.kind));
  if (context.cancel.load()) return Status(StatusCode::kCancelled, "aborted: the server is shutting down");
  auto started = std::chrono::steady_clock::now();
  Result<nlohmann::json> result = context.run.kind == scheduler::JobKind::kTrain
                                      ? Train(context)
                                      : Score(context, context.run.kind == scheduler::JobKind::kScoreFull);
  // A resident server keeps freed heap pages for reuse (common/memory.h). A training or a
  // full scoring run frees gigabytes at its end, which would otherwise stay mapped until
  // the next one; hourly runs are small and run every hour, so their pages are kept (on
  // this VM a re-faulted page costs more than the hourly run's own work).
  if (context.run.kind != scheduler::JobKind::kScoreActive) ReleaseFreeHeapMemory();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string outcome = result.ok() ? "succeeded" : "failed";
  const std::string labels = fmt::format("kind=\"{}\",outcome=\"{}\"", kind, outcome);
  metrics_.Add("sibyl_runs_total", labels);
  metrics_.Observe("sibyl_run_duration_seconds", labels, seconds);
  nlohmann::json line = {{"event", "run"}, {"run_id", context.run.id}, {"prediction", context.run.prediction},
                         {"kind", kind}, {"trigger", context.run.trigger}, {"attempt", context.run.attempt},
                         {"outcome", outcome}, {"seconds", seconds}};
  if (!result.ok()) line["error"] = result.status().ToString();
  log_.Write(std::move(line));
  if (result.ok() && options_.on_model_change) options_.on_model_change(context.run.prediction);
  return result;
}

Result<std::unique_ptr<EventStore>> ServerJobRunner::PullAll(nlohmann::json* detail) const {
  RETURN_IF_ERROR(CreateDirs(options_.temp_dir));
  clickhouse::SliceStats stats;
  ASSIGN_OR_RETURN(std::unique_ptr<EventStore> slice,
                   clickhouse::OpenSlice(*options_.cluster, clickhouse::SliceSpec{},
                                         clickhouse::SliceOptions{.temp_dir = options_.temp_dir}, &stats));
  (*detail)["pulled"] = {{"rows", stats.rows_pulled}, {"bytes", stats.bytes_pulled}, {"seconds", stats.pull_seconds}};
  return slice;
}

Result<nlohmann::json> ServerJobRunner::Train(const scheduler::JobContext& context) {
  ASSIGN_OR_RETURN(pipeline::PredictionDefinition definition, registry_.Get(context.run.prediction));
  // On a cluster, all of it in a private store for this run (as `sibyl train` without
  // --sample), deleted when the run ends.
  nlohmann::json pulled;
  std::unique_ptr<EventStore> slice;
  if (options_.cluster) {
    ASSIGN_OR_RETURN(slice, PullAll(&pulled));
  }
  auto reader = slice ? slice->Snapshot() : store_.Snapshot();
  if (reader->event_count() == 0) return FailedPrecondition("the store holds no events yet");
  pipeline::TrainRequest request;  // as of the store's last event, like `sibyl train`
  request.num_threads = options_.train_threads;
  ASSIGN_OR_RETURN(pipeline::TrainedVersion trained, pipeline::TrainPrediction(registry_, *reader, definition, request));
  const nlohmann::json& s = trained.summary;
  nlohmann::json detail = {{"version", trained.version}, {"model_type", s.value("model_type", "")},
                           {"metrics", s.value("metrics", nlohmann::json::object())},
                           {"rows", s.value("rows", nlohmann::json::object())},
                           {"seconds", s.value("total_seconds", 0.0)}};
  if (s.contains("stage_times")) detail["stage_times"] = s["stage_times"];
  if (!pulled.is_null()) detail["pulled"] = pulled["pulled"];
  return detail;
}

Result<nlohmann::json> ServerJobRunner::Score(const scheduler::JobContext& context, bool full) {
  ASSIGN_OR_RETURN(pipeline::PredictionDefinition definition, registry_.Get(context.run.prediction));
  ASSIGN_OR_RETURN(std::vector<int> versions, registry_.Versions(definition.name));
  if (versions.empty()) return FailedPrecondition("prediction \"{}\" has no trained version yet", definition.name);
  scoring::ScoreRequest request;
  if (!full) {
    // Users active since the previous successful hourly run; the first one looks back one
    // scoring interval.
    const int64_t window = context.since_ms > 0 && context.now_ms > context.since_ms
                               ? context.now_ms - context.since_ms
                               : static_cast<int64_t>(definition.score_every_hours) * kMsPerHour;
    request.active_within_ms = std::max<int64_t>(window, kMsPerHour);
  }
  nlohmann::json pulled;
  scoring::ScoreRunResult run;
  if (options_.cluster && full) {
    // As `sibyl score NAME` on a cluster: one shard's users at a time, percentiles over
    // everyone, one write-back to the cluster (memory: one shard's slice).
    const clickhouse::Cluster& cluster = *options_.cluster;
    RETURN_IF_ERROR(CreateDirs(options_.temp_dir));
    scoring::ScoreParts parts;
    parts.count = cluster.shards();
    parts.workers = 1;
    uint64_t rows = 0;
    parts.open = [&](size_t i) -> Result<std::unique_ptr<EventStore>> {
      clickhouse::SliceStats stats;
      auto store = clickhouse::OpenSlice(cluster, {.kind = clickhouse::SliceSpec::Kind::kShard, .shard = i},
                                         clickhouse::SliceOptions{.temp_dir = options_.temp_dir}, &stats);
      rows += stats.rows_pulled;
      return store;
    };
    parts.begin_write = [&](std::function<std::string(ActorId)> names) -> Result<std::unique_ptr<Transaction>> {
      return clickhouse::BeginClusterTransaction(cluster, {.actor_name = std::move(names), .what = "scores"});
    };
    ASSIGN_OR_RETURN(run, scoring::RunScoringInParts(registry_, definition.name, request, parts));
    pulled["pulled"] = {{"rows", rows}, {"shards", cluster.shards()}};
  } else if (options_.cluster) {
    // An hourly run, as `sibyl score --active-within` on a cluster: the cluster pulled,
    // the active users' scores written back to it through the slice.
    ASSIGN_OR_RETURN(std::unique_ptr<EventStore> slice, PullAll(&pulled));
    ASSIGN_OR_RETURN(run, scoring::RunScoring(registry_, *slice, definition.name, request));
  } else {
    ASSIGN_OR_RETURN(run, scoring::RunScoring(registry_, store_, definition.name, request));
  }
  nlohmann::json detail = run.record;
  if (!pulled.is_null()) detail["pulled"] = pulled["pulled"];
  detail.erase("quantiles");  // long; in the run file
  detail["run_file"] = run.run_file;
  return detail;
}

}  // namespace sibyl::server

#include "server/job_runner.h"

#include <chrono>

#include <fmt/format.h>

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

Result<nlohmann::json> ServerJobRunner::Train(const scheduler::JobContext& context) {
  ASSIGN_OR_RETURN(pipeline::PredictionDefinition definition, registry_.Get(context.run.prediction));
  auto reader = store_.Snapshot();
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
  ASSIGN_OR_RETURN(scoring::ScoreRunResult run, scoring::RunScoring(registry_, store_, definition.name, request));
  nlohmann::json detail = run.record;
  detail.erase("quantiles");  // long; in the run file
  detail["run_file"] = run.run_file;
  return detail;
}

}  // namespace sibyl::server

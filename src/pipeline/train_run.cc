#include "pipeline/train_run.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/checked_json.h"
#include "common/file.h"
#include "common/time.h"
#include "pipeline/fallback.h"
#include "pipeline/feature_words.h"
#include "query/query_engine.h"

namespace sibyl::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr const char* kVersionFormat = "sibyl.prediction_version/1";
// The report page needs the held-out predictions; beyond this many rows a curve does not
// change, so larger runs keep an evenly spaced subset.
constexpr size_t kMaxHoldoutRows = 50'000;

Result<nlohmann::json> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return Corruption("{}: not valid JSON", path);
  return j;
}

nlohmann::json DataWindow(const FittedPrediction& fitted, const TrainingSetOptions& options) {
  const int64_t horizon_ms = static_cast<int64_t>(fitted.definition.horizon_days) * kMsPerDay;
  nlohmann::json cutoffs = nlohmann::json::array();
  for (int64_t c : fitted.set.cutoffs) cutoffs.push_back(FormatTime(c));
  const int64_t earliest = fitted.set.cutoffs.back();
  return {{"as_of", FormatTime(fitted.as_of_ms)},
          {"train_cutoff", FormatTime(fitted.train_cutoff_ms)},
          {"train_cutoff_ms", fitted.train_cutoff_ms},
          {"cutoffs", cutoffs},
          {"horizon_days", fitted.definition.horizon_days},
          // Features look back over the 8 weekly windows; labels forward over the horizon.
          {"features_from", FormatTime(earliest - 8 * kMsPerWeek)},
          {"labels_until", FormatTime(fitted.train_cutoff_ms + horizon_ms)}};
}

}  // namespace

nlohmann::json StageTimesJson(const std::vector<StageSeconds>& times) {
  nlohmann::json out = nlohmann::json::array();
  for (const StageSeconds& t : times) out.push_back({{"stage", t.stage}, {"seconds", t.seconds}});
  return out;
}

Result<FittedPrediction> FitPrediction(const EventReader& reader, const PredictionDefinition& definition,
                                       const TrainRequest& request) {
  FittedPrediction fitted;
  fitted.definition = definition;
  if (reader.event_count() == 0) return FailedPrecondition("not eligible: the store holds no events (ingest some first)");
  fitted.as_of_ms = request.as_of_ms.value_or(DefaultAsOf(reader, SystemClock::Instance().NowMs()));
  fitted.train_cutoff_ms = TrainCutoff(fitted.as_of_ms, definition.horizon_days);

  // The reader is owned by the caller; the engine only borrows it for this run.
  std::shared_ptr<const EventReader> borrowed(&reader, [](const EventReader*) {});
  auto engine = MakeEmbeddedQueryEngine(borrowed, request.parallel_queries);

  TrainingSetOptions set_options = request.set;
  set_options.on_stage = request.on_stage;
  const auto candidate_cutoffs = CandidateCutoffs(fitted.train_cutoff_ms, definition.horizon_days, set_options);
  auto set = BuildTrainingSet(reader, *engine, definition, candidate_cutoffs, set_options);
  if (!set.ok()) {
    // Not eligible (too little history or too few labels): BG/NBD needs no labels.
    if (set.status().code() != StatusCode::kFailedPrecondition || !request.bgnbd_fallback) return set.status();
    return FitBgNbdFallback(reader, *engine, definition, fitted.as_of_ms, set.status(), request);
  }
  fitted.set = std::move(set).value();
  fitted.stage_times = fitted.set.stage_times;

  ml::TrainOptions options = request.ml;
  options.seed = set_options.seed;
  options.num_threads = request.num_threads;
  options.split.max_users = set_options.max_users;
  options.on_stage = request.on_stage;
  if (request.bgnbd_candidate)
    options.bgnbd = BgNbdCandidateFor(fitted.set.spec, definition.kind, fitted.set.data.values);
  options.outcome_columns = OutcomeColumnsOf(fitted.set.spec);
  // Drivers per behaviour too, in the explanations' topics (docs/SCORING.md).
  for (const std::string& column : fitted.set.data.feature_names) options.column_topics.push_back(TopicOf(column).title);
  ASSIGN_OR_RETURN(fitted.result, ml::Train(fitted.set.data, options));
  for (const ml::StageTime& t : fitted.result.stage_times) fitted.stage_times.push_back({t.stage, t.seconds});
  if (request.seasonal_shift && fitted.result.task == ml::TaskKind::kClassification) {
    if (request.on_stage) request.on_stage("seasonal shift");
    const auto begun = std::chrono::steady_clock::now();
    SeasonalShiftOptions seasonal_options;
    seasonal_options.min_history_days = set_options.eligibility.min_history_days;
    seasonal_options.seed = set_options.seed;
    const ml::TrainResult& result = fitted.result;
    ASSIGN_OR_RETURN(fitted.seasonal,
                     EstimateSeasonalShift(reader, *engine, definition, fitted.set.spec, fitted.train_cutoff_ms,
                                           fitted.as_of_ms,
                                           [&result](std::span<const float> rows) { return result.Predict(rows); },
                                           seasonal_options));
    if (fitted.seasonal.applied)
      fitted.result.calibration = ShiftLogOdds(fitted.result.calibration, fitted.seasonal.delta);
    fitted.stage_times.push_back(
        {"seasonal shift", std::chrono::duration<double>(std::chrono::steady_clock::now() - begun).count()});
  }
  // The matrix is the bulk of the memory; the summaries, ids and keys stay.
  if (!request.keep_matrix) {
    fitted.set.data.values = {};
    fitted.set.data.values.shrink_to_fit();
  }
  return fitted;
}

Status WriteVersion(const std::string& version_dir, int version, FittedPrediction& fitted,
                    const TrainRequest& request, nlohmann::json& summary) {
  auto start = std::chrono::steady_clock::now();
  const fs::path final_path = fs::path(version_dir).lexically_normal();
  const std::string parent = final_path.parent_path().string();
  if (FileExists(final_path.string())) return AlreadyExists("version directory {} already exists", version_dir);
  RETURN_IF_ERROR(CreateDirs(parent));
  const std::string temp =
      (fs::path(parent) / (".tmp-" + final_path.filename().string() + "-" + std::to_string(getpid()))).string();
  std::error_code ec;
  fs::remove_all(temp, ec);
  RETURN_IF_ERROR(CreateDirs(temp));
  auto fail = [&](Status st) {
    fs::remove_all(temp, ec);
    return st;
  };

  const nlohmann::json window = DataWindow(fitted, request.set);
  // Held-out predictions for the report page, before the result is moved into the bundle.
  nlohmann::json holdout = {{"predictions", nlohmann::json::array()}, {"labels", nlohmann::json::array()}};
  const auto& preds = fitted.result.test_predictions;
  const size_t step = preds.size() > kMaxHoldoutRows ? (preds.size() + kMaxHoldoutRows - 1) / kMaxHoldoutRows : 1;
  for (size_t i = 0; i < preds.size(); i += step) {
    holdout["predictions"].push_back(preds[i]);
    holdout["labels"].push_back(fitted.result.test_labels[i]);
  }

  const size_t candidates = fitted.result.candidates.size();
  const std::string winner =
      candidates ? ml::ModelTypeName(fitted.result.candidates[fitted.result.selected].type) : "";
  const uint64_t users = fitted.result.num_users, sampled_out = fitted.result.num_users_sampled_out;
  const size_t fit_rows = fitted.result.num_fit_rows, validation_rows = fitted.result.num_validation_rows,
               test_rows = fitted.result.num_test_rows;
  const ml::TaskKind task = fitted.result.task;
  nlohmann::json metrics = task == ml::TaskKind::kClassification ? nlohmann::json(fitted.result.metrics)
                                                                 : nlohmann::json(fitted.result.regression_metrics);
  ml::ModelBundle bundle =
      ml::MakeBundle(std::move(fitted.result), fitted.set.data.feature_names, request.set.seed);
  bundle.extra = {{"format", "sibyl.prediction_model/1"},
                  {"prediction", fitted.definition.name},
                  {"definition", ToJson(fitted.definition)},
                  {"feature_spec", ToJson(fitted.set.spec)},
                  {"data_window", window}};
  Status st = ml::WriteBundle((fs::path(temp) / "model").string(), bundle);
  if (!st.ok()) return fail(st);

  nlohmann::json per_cutoff = nlohmann::json::array();
  for (const CutoffSummary& s : fitted.set.summaries) {
    per_cutoff.push_back({{"cutoff", FormatTime(s.cutoff_ms)}, {"cohort_users", s.cohort_users},
                          {"rows", s.rows}, {"positives", s.positives}, {"label_sum", s.label_sum}});
  }
  std::vector<StageSeconds> times = fitted.stage_times;
  times.push_back({"write", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  double total = 0;
  for (const StageSeconds& t : times) total += t.seconds;
  summary = {{"format", kVersionFormat},
             {"prediction", fitted.definition.name},
             {"version", version},
             {"trained_at", FormatTime(SystemClock::Instance().NowMs())},
             {"definition", ToJson(fitted.definition)},
             {"data_window", window},
             {"seed", request.set.seed},
             {"threads", request.num_threads},
             {"stack", request.set.stack == TrainingSetOptions::kAutoStack ? nlohmann::json("auto")
                                                                            : nlohmann::json(request.set.stack)},
             {"max_users", request.set.max_users},
             {"eligibility", {{"min_positives", request.set.eligibility.min_positives},
                              {"min_negatives", request.set.eligibility.min_negatives},
                              {"min_history_days", request.set.eligibility.min_history_days}}},
             {"rows", {{"total", fitted.set.data.num_rows()},
                       {"positives", fitted.set.positives},
                       {"negatives", fitted.set.negatives},
                       {"users", users},
                       {"users_sampled_out", sampled_out},
                       {"fit", fit_rows},
                       {"validation", validation_rows},
                       {"test", test_rows},
                       {"per_cutoff", per_cutoff}}},
             {"features", fitted.set.data.num_columns()},
             {"outcome_model", fitted.set.outcome_model_note},
             {"seasonal_shift", fitted.seasonal.ToJson()},
             {"fallback", fitted.fallback_reason.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json{{"model", "bg_nbd"},
                                                                          {"reason", fitted.fallback_reason}}},
             {"task", ml::TaskKindName(task)},
             {"model_type", winner},
             {"metrics", metrics},
             {"stage_times", StageTimesJson(times)},
             {"total_seconds", total}};
  for (const auto& [name, data] : {std::pair<const char*, std::string>{"version.json", summary.dump(1)},
                                   std::pair<const char*, std::string>{"holdout.json", holdout.dump()}}) {
    st = WriteChecksummedFile((fs::path(temp) / name).string(), data);
    if (!st.ok()) return fail(st);
  }
  st = SyncDir(temp);
  if (!st.ok()) return fail(st);
  if (std::rename(temp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) return fail(AlreadyExists("version directory {} already exists", version_dir));
    return fail(IoError("rename {} to {}: {}", temp, final_path.string(), std::strerror(err)));
  }
  return SyncDir(parent);
}

Result<TrainedVersion> TrainPrediction(const PredictionRegistry& registry, const EventReader& reader,
                                       const PredictionDefinition& definition, const TrainRequest& request) {
  ASSIGN_OR_RETURN(FittedPrediction fitted, FitPrediction(reader, definition, request));
  if (request.on_stage) request.on_stage("write");
  // Two trainings finishing at once both aim for the next number; the loser takes the one
  // after (the rename refuses to replace a non-empty directory).
  for (int attempt = 0; attempt < 100; ++attempt) {
    ASSIGN_OR_RETURN(std::vector<int> versions, registry.Versions(definition.name));
    TrainedVersion out;
    out.version = versions.empty() ? 1 : versions.back() + 1;
    out.dir = registry.VersionDir(definition.name, out.version);
    Status st = WriteVersion(out.dir, out.version, fitted, request, out.summary);
    if (st.ok()) return out;
    if (st.code() != StatusCode::kAlreadyExists || !fitted.result.model) return st;
  }
  return Internal("could not find a free version number for \"{}\"", definition.name);
}

Result<LoadedVersion> LoadVersion(const PredictionRegistry& registry, const std::string& name, int version) {
  const std::string dir = registry.VersionDir(name, version);
  if (!FileExists(dir)) return NotFound("prediction \"{}\" has no version {}", name, version);
  LoadedVersion out;
  out.version = version;
  ASSIGN_OR_RETURN(out.summary, ReadJsonFile((fs::path(dir) / "version.json").string()));
  ASSIGN_OR_RETURN(out.bundle, ml::ReadBundle((fs::path(dir) / "model").string()));
  ASSIGN_OR_RETURN(nlohmann::json holdout, ReadJsonFile((fs::path(dir) / "holdout.json").string()));
  try {
    out.holdout_predictions = holdout.at("predictions").get<std::vector<double>>();
    out.holdout_labels = holdout.at("labels").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    return Corruption("{}/holdout.json: {}", dir, e.what());
  }
  return out;
}

Result<nlohmann::json> ReadVersionSummary(const PredictionRegistry& registry, const std::string& name, int version) {
  return ReadJsonFile((fs::path(registry.VersionDir(name, version)) / "version.json").string());
}

Result<FeatureSpec> SpecOf(const ml::ModelBundle& bundle) {
  auto it = bundle.extra.find("feature_spec");
  if (it == bundle.extra.end()) return Corruption("the model has no feature spec in extra.json");
  return FeatureSpecFromJson(*it);
}

nlohmann::json DriversJson(const ml::ModelBundle& bundle) {
  const bool regression = bundle.task == ml::TaskKind::kRegression;
  nlohmann::json drivers = nlohmann::json::array();
  for (const ml::Driver& d : bundle.drivers) {
    drivers.push_back({{"feature", d.feature}, {"words", DescribeFeature(d.feature)},
                       {"importance", d.importance}, {"direction", d.direction},
                       {"direction_words", DescribeDirection(d.direction, regression)}});
  }
  return drivers;
}

nlohmann::json TopicDriversJson(const ml::ModelBundle& bundle) {
  const bool regression = bundle.task == ml::TaskKind::kRegression;
  nlohmann::json drivers = nlohmann::json::array();
  for (const ml::Driver& d : bundle.topic_drivers) {
    const std::string lead = d.column < bundle.feature_names.size() ? bundle.feature_names[d.column] : "";
    drivers.push_back({{"topic", d.feature}, {"feature", lead}, {"words", DescribeFeature(lead)},
                       {"importance", d.importance}, {"direction", d.direction},
                       {"direction_words", DescribeDirection(d.direction, regression)}});
  }
  return drivers;
}

ml::ReportInput ReportInputOf(const LoadedVersion& loaded, std::string title) {
  ml::ReportInput input;
  input.title = std::move(title);
  input.task = loaded.bundle.task;
  input.predictions = loaded.holdout_predictions;
  input.labels = loaded.holdout_labels;
  // The behaviours when the version has them (a column's own sign can mislead among
  // collinear columns, docs/SCORING.md), else the columns in words.
  // The direction is the lead column's, so a behaviour reads with it.
  const bool topics = !loaded.bundle.topic_drivers.empty();
  input.drivers = topics ? loaded.bundle.topic_drivers : loaded.bundle.drivers;
  for (ml::Driver& d : input.drivers) {
    if (!topics) {
      d.feature = DescribeFeature(d.feature);
    } else if (d.column < loaded.bundle.feature_names.size()) {
      d.feature = fmt::format("{} (led by {})", d.feature, DescribeFeature(loaded.bundle.feature_names[d.column]));
    }
  }
  input.candidates = loaded.bundle.candidates;
  return input;
}

}  // namespace sibyl::pipeline

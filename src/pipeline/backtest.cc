#include "pipeline/backtest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "common/checked_json.h"
#include "common/file.h"
#include "common/time.h"
#include "ml/linear_model.h"
#include "ml/metrics.h"
#include "ml/model.h"
#include "pipeline/baseline.h"
#include "query/query_engine.h"

namespace sibyl::pipeline {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBacktestFormat = "sibyl.backtest/1";

// The recency-frequency baseline fitted on every training row and applied to the rows
// scored at E (`scored`: the training matrix's columns): whether the model beats what a
// team would build by hand, on the same users at the same cutoff.
Result<std::vector<double>> BaselineScores(const ml::Dataset& training, ml::Dataset scored) {
  ASSIGN_OR_RETURN(ml::Dataset fit, RecencyFrequencyColumns(training));
  std::vector<uint32_t> rows(fit.num_rows());
  std::iota(rows.begin(), rows.end(), 0u);
  ml::LinearOptions options;
  options.num_threads = 1;
  // The regression a team writes by hand: least squares (the candidates' log link is sibyl's).
  options.amount_link = ml::LinearOptions::AmountLink::kIdentity;
  ASSIGN_OR_RETURN(auto model, ml::LinearModel::Train(fit, rows, {}, options));
  ASSIGN_OR_RETURN(ml::Dataset at_e, RecencyFrequencyColumns(scored));
  ASSIGN_OR_RETURN(std::vector<double> out, model->PredictMargin(at_e.values));
  for (double& v : out) v = ml::MarginToOutput(training.kind, v);
  return out;
}

void AddBaseline(const PredictionDefinition& definition, const FittedPrediction& fitted,
                 std::vector<float> scored_values, const std::vector<float>& labels, BacktestRow& row) {
  ml::Dataset scored;
  scored.kind = fitted.set.data.kind;
  scored.feature_names = fitted.set.data.feature_names;
  scored.values = std::move(scored_values);
  scored.labels = labels;
  auto baseline = BaselineScores(fitted.set.data, std::move(scored));
  if (!baseline.ok()) {
    row.baseline_error = baseline.status().message();
    return;
  }
  if (definition.kind == PredictionKind::kRevenue) {
    ml::RegressionMetrics m = ml::EvaluateRegressor(*baseline, labels);
    row.baseline_mae = m.mae;
    row.baseline_spearman = m.spearman;
    row.baseline_top_decile_share = m.top_decile_share;
  } else {
    ml::ClassificationMetrics m = ml::EvaluateClassifier(*baseline, labels);
    row.baseline_roc_auc = m.roc_auc;
    row.baseline_log_loss = m.log_loss;
    row.baseline_ece = m.ece;
  }
}

std::string BacktestsDir(const PredictionRegistry& registry, const std::string& name) {
  return (fs::path(registry.PredictionDir(name)) / "backtests").string();
}

}  // namespace

Result<std::vector<BacktestRow>> RunBacktest(const EventReader& reader, const PredictionDefinition& definition,
                                             const BacktestOptions& options) {
  if (options.cutoffs < 1 || options.cutoffs > 52)
    return InvalidArgument("--cutoffs must be between 1 and 52, got {}", options.cutoffs);
  if (options.step_days < 1) return InvalidArgument("the step between cutoffs must be at least one day");
  RETURN_IF_ERROR(ValidateAgainstStore(definition, reader));
  if (reader.event_count() == 0) return FailedPrecondition("the store holds no events (ingest some first)");
  const int64_t as_of = options.train.as_of_ms.value_or(reader.max_time_ms());
  const int64_t newest = TrainCutoff(as_of, definition.horizon_days);
  std::shared_ptr<const EventReader> borrowed(&reader, [](const EventReader*) {});
  auto engine = MakeEmbeddedQueryEngine(borrowed, options.train.parallel_queries);

  std::vector<BacktestRow> rows;
  for (int k = 0; k < options.cutoffs; ++k) {
    auto start = std::chrono::steady_clock::now();
    BacktestRow row;
    row.eval_cutoff_ms = newest - static_cast<int64_t>(k) * options.step_days * kMsPerDay;
    row.train_cutoff_ms = TrainCutoff(row.eval_cutoff_ms, definition.horizon_days);
    TrainRequest request = options.train;
    request.bgnbd_fallback = false;  // a backtest measures trained models
    request.as_of_ms = row.eval_cutoff_ms;
    request.keep_matrix = true;  // the baseline is fitted on the same rows
    auto fitted = FitPrediction(reader, definition, request);
    if (!fitted.ok()) {
      row.error = fitted.status().message();
      rows.push_back(row);
      continue;
    }
    // The chosen candidate's name: a cross-validated model is the mean of its fold models.
    row.model_type = ml::ModelTypeName(fitted->result.candidates[fitted->result.selected].type);
    row.holdout_roc_auc = fitted->result.metrics.roc_auc;
    auto scoring = BuildScoringRows(reader, *engine, definition, fitted->set.spec, row.eval_cutoff_ms, true);
    if (!scoring.ok()) {
      row.error = scoring.status().message();
      rows.push_back(row);
      continue;
    }
    auto scores = fitted->result.Predict(scoring->values);
    if (!scores.ok()) {
      row.error = scores.status().message();
      rows.push_back(row);
      continue;
    }
    row.users = scoring->labels.size();
    double score_sum = 0;
    for (double s : *scores) score_sum += s;
    row.mean_score = row.users ? score_sum / row.users : 0;
    for (float y : scoring->labels) row.positives += y != 0.0f;
    if (definition.kind == PredictionKind::kRevenue) {
      ml::RegressionMetrics m = ml::EvaluateRegressor(*scores, scoring->labels);
      row.mae = m.mae;
      row.rmse = m.rmse;
      row.spearman = m.spearman;
      row.top_decile_share = m.top_decile_share;
      row.base_rate = m.mean_actual;
    } else {
      ml::ClassificationMetrics m = ml::EvaluateClassifier(*scores, scoring->labels);
      row.base_rate = m.base_rate;
      row.roc_auc = m.roc_auc;
      row.pr_auc = m.pr_auc;
      row.log_loss = m.log_loss;
      row.ece = m.ece;
      row.lift_top_decile = m.lift_top_decile;
    }
    AddBaseline(definition, *fitted, std::move(scoring->values), scoring->labels, row);
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rows.push_back(row);
  }
  return rows;
}

nlohmann::json BacktestToJson(const PredictionDefinition& definition, const std::vector<BacktestRow>& rows) {
  nlohmann::json out = {{"prediction", definition.name}, {"kind", PredictionKindName(definition.kind)},
                        {"horizon_days", definition.horizon_days}, {"cutoffs", nlohmann::json::array()}};
  for (const BacktestRow& r : rows) {
    nlohmann::json j = {{"eval_cutoff", FormatTime(r.eval_cutoff_ms)}, {"train_cutoff", FormatTime(r.train_cutoff_ms)}};
    if (!r.error.empty()) {
      j["error"] = r.error;
    } else {
      j.update({{"model_type", r.model_type}, {"users", r.users}, {"positives", r.positives},
                {"mean_score", r.mean_score}, {"seconds", r.seconds}});
      const bool revenue = definition.kind == PredictionKind::kRevenue;
      if (revenue) {
        j.update({{"mean_actual", r.base_rate}, {"mae", r.mae}, {"rmse", r.rmse}, {"spearman", r.spearman}});
        if (std::isfinite(r.top_decile_share)) j["top_decile_share"] = r.top_decile_share;
      } else {
        j.update({{"base_rate", r.base_rate}, {"roc_auc", r.roc_auc}, {"pr_auc", r.pr_auc},
                  {"log_loss", r.log_loss}, {"ece", r.ece}, {"lift_top_decile", r.lift_top_decile},
                  {"holdout_roc_auc", r.holdout_roc_auc}});
      }
      if (!r.baseline_error.empty()) {
        j["baseline"] = {{"error", r.baseline_error}};
      } else if (revenue) {
        j["baseline"] = {{"model", "recency_frequency"}, {"mae", r.baseline_mae}, {"spearman", r.baseline_spearman}};
        if (std::isfinite(r.baseline_top_decile_share))
          j["baseline"]["top_decile_share"] = r.baseline_top_decile_share;
      } else {
        j["baseline"] = {{"model", "recency_frequency"}, {"roc_auc", r.baseline_roc_auc},
                         {"log_loss", r.baseline_log_loss}, {"ece", r.baseline_ece}};
      }
    }
    out["cutoffs"].push_back(j);
  }
  return out;
}

Result<std::string> SaveBacktest(const PredictionRegistry& registry, const PredictionDefinition& definition,
                                 const BacktestOptions& options, const std::vector<BacktestRow>& rows,
                                 int64_t ran_at_ms) {
  nlohmann::json out = BacktestToJson(definition, rows);
  const std::string ran_at = FormatTime(ran_at_ms);
  out.update({{"format", kBacktestFormat},
              {"ran_at", ran_at},
              {"definition", ToJson(definition)},
              {"options", {{"cutoffs", options.cutoffs},
                           {"step_days", options.step_days},
                           {"seed", options.train.set.seed},
                           {"as_of", options.train.as_of_ms ? nlohmann::json(FormatTime(*options.train.as_of_ms))
                                                             : nlohmann::json(nullptr)}}}});
  const std::string dir = BacktestsDir(registry, definition.name);
  RETURN_IF_ERROR(CreateDirs(dir));
  // Named by the time it ran ("20240301T120000.250Z"), so names sort by time; two in the
  // same millisecond get "-2", "-3".
  std::string stem = ran_at;
  std::erase_if(stem, [](char c) { return c == '-' || c == ':'; });
  std::string path = (fs::path(dir) / (stem + ".json")).string();
  for (int n = 2; FileExists(path); ++n) path = (fs::path(dir) / fmt::format("{}-{}.json", stem, n)).string();
  RETURN_IF_ERROR(WriteChecksummedFile(path, out.dump(1)));
  return path;
}

Result<std::vector<nlohmann::json>> ListBacktests(const PredictionRegistry& registry, const std::string& name,
                                                  size_t limit) {
  std::vector<nlohmann::json> out;
  const std::string dir = BacktestsDir(registry, name);
  if (!FileExists(dir)) return out;
  ASSIGN_OR_RETURN(std::vector<std::string> entries, ListDir(dir));
  // By name without ".json" (the time it ran; "X" before "X-2"). Only finished files:
  // WriteFileAtomic's temporary ends in ".tmp".
  std::vector<std::string> stems;
  for (const std::string& e : entries)
    if (e.ends_with(".json")) stems.push_back(e.substr(0, e.size() - 5));
  std::sort(stems.begin(), stems.end());
  for (auto it = stems.rbegin(); it != stems.rend() && out.size() < limit; ++it) {
    const std::string path = (fs::path(dir) / (*it + ".json")).string();
    ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Corruption("{}: not a JSON object", path);
    j["id"] = *it;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace sibyl::pipeline

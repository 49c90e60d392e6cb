#include "pipeline/backtest.h"

#include <chrono>

#include "common/time.h"
#include "ml/metrics.h"
#include "query/query_engine.h"

namespace sibyl::pipeline {

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
    auto fitted = FitPrediction(reader, definition, request);
    if (!fitted.ok()) {
      row.error = fitted.status().message();
      rows.push_back(row);
      continue;
    }
    row.model_type = ml::ModelTypeName(fitted->result.model->type());
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
      if (definition.kind == PredictionKind::kRevenue) {
        j.update({{"mean_actual", r.base_rate}, {"mae", r.mae}, {"rmse", r.rmse}, {"spearman", r.spearman}});
      } else {
        j.update({{"base_rate", r.base_rate}, {"roc_auc", r.roc_auc}, {"pr_auc", r.pr_auc},
                  {"log_loss", r.log_loss}, {"ece", r.ece}, {"lift_top_decile", r.lift_top_decile},
                  {"holdout_roc_auc", r.holdout_roc_auc}});
      }
    }
    out["cutoffs"].push_back(j);
  }
  return out;
}

}  // namespace sibyl::pipeline

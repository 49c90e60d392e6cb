// Backtests: how would this prediction have done? For each of K earlier evaluation cutoffs
// E_k (one week apart, the newest being the last cutoff whose horizon is fully observed),
// train a model as of E_k (so its training cutoff is E_k - H and it never sees anything at
// or after E_k), score the cohort at E_k, and compare the scores with what then happened
// in [E_k, E_k + H), and with the recency-frequency baseline (baseline.h) fitted on the same
// training rows. Each backtest is kept as a file of the prediction:
//
//   <data>/predictions/<name>/backtests/<UTC time of the run>.json   (checksummed)
//
// See docs/PREDICTIONS.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "pipeline/registry.h"
#include "pipeline/train_run.h"

namespace sibyl::pipeline {

struct BacktestOptions {
  int cutoffs = 4;
  int step_days = 7;
  // The newest evaluation cutoff is TrainCutoff(as_of, H); default as_of: the last event.
  TrainRequest train;
};

struct BacktestRow {
  int64_t eval_cutoff_ms = 0;
  int64_t train_cutoff_ms = 0;
  std::string error;          // non-empty when this cutoff could not be trained or scored
  std::string model_type;
  uint64_t users = 0;         // scored at E_k
  uint64_t positives = 0;     // rows with the outcome (revenue: a non-zero amount)
  double base_rate = 0;
  double mean_score = 0;      // mean calibrated probability (or predicted amount)
  double roc_auc = 0, log_loss = 0, ece = 0, pr_auc = 0, lift_top_decile = 0;  // classification
  double mae = 0, rmse = 0, spearman = 0;                                       // revenue
  // Revenue: the share of the actual amount held by the tenth of users predicted highest
  // (ml::TopShare); NaN when nothing was spent.
  double top_decile_share = 0;
  double holdout_roc_auc = 0;  // the model's own held-out AUC at training time
  // The recency-frequency baseline on the same users at E_k (baseline_error when it could
  // not be fitted, e.g. no "hours since last event" column).
  std::string baseline_error;
  double baseline_roc_auc = 0, baseline_log_loss = 0, baseline_ece = 0;  // classification
  double baseline_mae = 0, baseline_spearman = 0, baseline_top_decile_share = 0;  // revenue
  double seconds = 0;
};

// Runs every cutoff; a cutoff that fails (for instance not eligible) is reported in its
// row and the others still run. Fails only when the definition itself is unusable.
Result<std::vector<BacktestRow>> RunBacktest(const EventReader& reader, const PredictionDefinition& definition,
                                             const BacktestOptions& options);

nlohmann::json BacktestToJson(const PredictionDefinition& definition, const std::vector<BacktestRow>& rows);

// Keeps a finished backtest: BacktestToJson plus when it ran, its options and the
// definition, in a new file of the prediction's backtests/ folder (never replacing one),
// written atomically with a checksum. Returns the file's path.
Result<std::string> SaveBacktest(const PredictionRegistry& registry, const PredictionDefinition& definition,
                                 const BacktestOptions& options, const std::vector<BacktestRow>& rows,
                                 int64_t ran_at_ms);
// The kept backtests of `name`, newest first, at most `limit`; each with "id" (its file's
// name without .json). A damaged file is Corruption naming it.
Result<std::vector<nlohmann::json>> ListBacktests(const PredictionRegistry& registry, const std::string& name,
                                                  size_t limit);

}  // namespace sibyl::pipeline

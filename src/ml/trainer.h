// Training without humans: split users, fit every candidate, calibrate, measure on
// held-out users, pick the winner and explain it. The entry point of ml/ for pipelines.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "ml/bgnbd_model.h"
#include "ml/dataset.h"
#include "ml/drivers.h"
#include "ml/isotonic.h"
#include "ml/linear_model.h"
#include "ml/metrics.h"
#include "ml/model.h"
#include "ml/split.h"
#include "ml/tree_model.h"

namespace sibyl::ml {

struct TrainOptions {
  uint64_t seed = 42;  // also overrides split.seed
  // Threads for every learner; 0 = all hardware threads. With 1 thread the same data
  // and seed give byte-identical models.
  int num_threads = 0;
  SplitOptions split;
  bool train_linear = true;
  bool train_random_forest = true;
  bool train_gradient_boosting = true;
  // Reweights classes so that positives and negatives carry equal total weight.
  bool balance_classes = true;
  LinearOptions linear;
  RandomForestOptions random_forest;
  GradientBoostingOptions gradient_boosting;
  // Below this many distinct users, k-fold cross-validation by user replaces the single
  // fit / validation / test split (docs/ML.md, "Small data"); 0: never. It costs about 5.5
  // fits per candidate: at 6,000 users (up to 24,000 stacked rows) a run stays under the
  // single split's time at 100,000 users, while the split's 20% held out is then only
  // ~1,200 users, too few to choose a winner or fit a calibration on.
  uint64_t cross_validation_below_users = 6'000;
  // ... and, whatever the users, while the data has fewer cells (rows x columns) than this;
  // 0: never. Cost follows cells, not users: 20,000 customers of a purchase log (80,000
  // stacked rows x 302 columns, 24M cells) cross-validate in 15 s on one thread (2.7 s on
  // the split), and the split would calibrate on ~3,000 newest-cutoff rows instead of
  // 20,000 (docs/ML.md, "Small data"). A wide generated app (~800 columns) stays on the
  // split from ~31,000 rows; 100,000 users (121M cells) are far above.
  uint64_t cross_validation_below_cells = 25'000'000;
  int cross_validation_folds = 5;
  // Cross-validated training also tries the mean of the two best candidates' margins.
  bool consider_blend = true;
  // On the single split, below this many rows the winner is fitted again on the fit and
  // the held-out users together (84% of the users instead of 64%) once it is chosen, and
  // its calibration map fitted again on the validation users (docs/ML.md, "The final model
  // on mid-size data"); 0: never. The same bound as automatic stacking's: below it the
  // learners are still short of rows, above it the refit would cost a second training
  // for little.
  uint64_t refit_below_rows = 150'000;
  // The BG/NBD model as a candidate (bgnbd_model.h): it fits nothing, it reads the
  // outcome family's columns, and it is calibrated and judged like the others. Set by the
  // pipeline, which knows where the columns are.
  struct BgNbdCandidate {
    BgNbdModel::Output output = BgNbdModel::Output::kProbability;
    BgNbdModel::Columns columns;
    double prior = 0;
  };
  std::optional<BgNbdCandidate> bgnbd;
  // The outcome family's columns (set by the pipeline): cross-validated training adds the
  // linear model on these alone as the candidate "outcome_linear".
  std::vector<uint32_t> outcome_columns;
  // Held-out rows on which the winner's SHAP values are computed for the drivers.
  size_t driver_sample_rows = 2000;
  // Per column, the behaviour it describes (set by the pipeline: pipeline::TopicOf's
  // titles); when set, the drivers are also summarised per topic (drivers.h).
  std::vector<std::string> column_topics;
  // Called as each stage starts ("split", "linear", ...), for progress display.
  std::function<void(std::string_view stage)> on_stage;
};

// One candidate's outcome on the held-out users.
struct CandidateResult {
  ModelType type = ModelType::kLinear;
  std::string error;                        // non-empty when training failed
  ClassificationMetrics metrics;            // after calibration (classification)
  double uncalibrated_log_loss = 0;         // the reweighted model's raw probabilities
  // The loss selection compared when it is not the reported metrics' (cross-validation on
  // stacked cutoffs: out of fold on every cutoff's rows, the metrics on the newest's).
  std::optional<double> selection_loss;
  RegressionMetrics regression_metrics;     // regression
  double train_seconds = 0;
  nlohmann::json training;                  // parameters and what training chose
  bool selected = false;
};

struct StageTime {
  std::string stage;
  double seconds = 0;
};

struct TrainResult {
  TaskKind task = TaskKind::kClassification;
  std::unique_ptr<Model> model;       // the winner
  IsotonicCalibration calibration;    // the winner's map (identity for regression)
  std::vector<CandidateResult> candidates;
  size_t selected = 0;                // index into candidates
  ClassificationMetrics metrics;      // the winner's, on held-out users
  RegressionMetrics regression_metrics;
  // The winner's calibrated predictions on the held-out rows, with their labels (for
  // the report page) and which rows of the dataset they are (ascending): the split's test
  // rows, or with cross-validation the rows the calibration and metrics use (every user
  // at the newest cutoff, each scored by a model that did not see it).
  std::vector<double> test_predictions;
  std::vector<float> test_labels;
  std::vector<uint32_t> test_rows;
  std::vector<Driver> drivers;        // by decreasing importance
  std::vector<Driver> topic_drivers;  // the same per topic (TrainOptions::column_topics)
  size_t num_fit_rows = 0, num_validation_rows = 0, num_test_rows = 0;
  uint64_t num_users = 0, num_users_sampled_out = 0;
  std::vector<StageTime> stage_times;
  nlohmann::json parameters;          // every option that shaped the result

  // Scores rows with the winner: calibrated probability, or predicted amount.
  Result<std::vector<double>> Predict(std::span<const float> rows) const;
};

// Trains every candidate and keeps the best: by k-fold cross-validation by user below
// `cross_validation_below_users` users or `cross_validation_below_cells` cells, else on one
// split (docs/ML.md).
Result<TrainResult> Train(const Dataset& data, const TrainOptions& options);

// The k-fold path of Train, callable directly (tests, benchmarks).
Result<TrainResult> TrainCrossValidated(const Dataset& data, const TrainOptions& options);

// The fold (0..folds-1) of every row in TrainCrossValidated with this seed: users
// stratified by whether any of their rows is positive, dealt round-robin in seeded hash
// order, all rows of a user in one fold. Benchmarks fit their baselines on the same folds.
std::vector<uint8_t> CrossValidationFolds(const Dataset& data, int folds, uint64_t seed);

// The candidate table as JSON (one object per candidate, metrics included).
nlohmann::json CandidatesToJson(const TrainResult& result);

}  // namespace sibyl::ml

// Quality measures on held-out users, and the curves the report page draws. All inputs
// are parallel vectors (score or prediction, label); none of them is modified.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sibyl::ml {

struct ClassificationMetrics {
  size_t count = 0;
  size_t positives = 0;
  double base_rate = 0;
  double roc_auc = 0.5;        // Mann-Whitney with average ranks for ties
  double pr_auc = 0;           // average precision (step-wise, as scikit-learn)
  double log_loss = 0;         // natural log, probabilities clipped to [1e-15, 1 - 1e-15]
  double brier = 0;
  double ece = 0;              // 10 equal-width bins, weighted by bin size
  double lift_top_decile = 0;  // positive rate in the top 10% of scores / base rate
  std::string grade;           // see GradeClassifier
  // 95% bootstrap interval of roc_auc over users (RocAucInterval), when computed (small
  // cohorts, where a user should know how much to trust the number); NaN otherwise.
  double roc_auc_low = std::numeric_limits<double>::quiet_NaN();
  double roc_auc_high = std::numeric_limits<double>::quiet_NaN();
  // The ECE a perfectly calibrated model with these scores would show on these users
  // (CalibratedEceFloor), computed beside the AUC interval; NaN otherwise.
  double ece_floor = std::numeric_limits<double>::quiet_NaN();
};

// Scores are probabilities in [0, 1]; labels are 0/1.
ClassificationMetrics EvaluateClassifier(std::span<const double> scores,
                                         std::span<const float> labels);

// Plain words for a model's usefulness, from AUC and top-decile lift:
//   "not useful"  AUC < 0.55 or lift < 1.1
//   "poor"        AUC < 0.65
//   "fair"        AUC < 0.75
//   "good"        AUC < 0.85, or AUC >= 0.85 with lift < 1.5
//   "excellent"   AUC >= 0.85 and lift >= 1.5
std::string GradeClassifier(double roc_auc, double lift_top_decile);

double RocAuc(std::span<const double> scores, std::span<const float> labels);
// The 2.5% and 97.5% quantiles of RocAuc over `resamples` bootstrap resamples of the rows
// (deterministic for a seed). O(n log n + resamples x n).
std::pair<double, double> RocAucInterval(std::span<const double> scores, std::span<const float> labels,
                                         int resamples = 1000, uint64_t seed = 1);
// The mean ECE (10 bins) of a perfectly calibrated model with these probabilities: labels
// drawn as Bernoulli(p), `draws` times (deterministic for a seed). Ten bins over a few
// hundred users hold a few dozen each, so ECE has a floor of its own (about 0.04 on 400
// users): an ECE near it cannot tell a calibrated model from a miscalibrated one.
double CalibratedEceFloor(std::span<const double> probabilities, int draws = 200, uint64_t seed = 1);
double AveragePrecision(std::span<const double> scores, std::span<const float> labels);
double LogLoss(std::span<const double> probabilities, std::span<const float> labels);
double BrierScore(std::span<const double> probabilities, std::span<const float> labels);
double ExpectedCalibrationError(std::span<const double> probabilities,
                                std::span<const float> labels, int num_bins = 10);
// Positive rate among the top `fraction` of scores over the overall rate. Rows tied with
// the boundary score count fractionally, so the result does not depend on row order.
double Lift(std::span<const double> scores, std::span<const float> labels, double fraction);

// The share of the actual total held by the `fraction` of rows predicted highest (the top
// decile a team would target: "the tenth we rank first hold 56% of next quarter's revenue").
// Rows tied at the cut count pro rata, as in Lift. NaN when the actuals sum to 0 or less.
double TopShare(std::span<const double> predictions, std::span<const float> actuals, double fraction);

// Average ranks (1-based) with ties sharing the mean of their positions.
std::vector<double> AverageRanks(std::span<const double> values);

struct DecileCalibration {
  double mean_prediction = 0;
  double mean_actual = 0;
  size_t count = 0;
};

struct RegressionMetrics {
  size_t count = 0;
  double mean_actual = 0;
  double mae = 0;
  double rmse = 0;
  double r2 = 0;
  double spearman = 0;
  // Mean Poisson deviance 2 [y log(y / mu) - (y - mu)], mu = max(prediction, 1e-3 x the mean
  // actual) so that a prediction of 0 for a buyer costs much but not infinitely; NaN when an
  // actual is below 0. A proper score for the mean of amounts >= 0 that grows like y log y,
  // not y^2, in the tail (RegressionSelectionLoss).
  double poisson_deviance = std::numeric_limits<double>::quiet_NaN();
  // TopShare over the top 10%: unlike Spearman over every user, not moved by predictions tied
  // where most actuals tie at 0 (docs/ML.md, "Metrics"). NaN when the actuals sum to <= 0.
  double top_decile_share = std::numeric_limits<double>::quiet_NaN();
  std::vector<DecileCalibration> deciles;  // ten equal-count groups by prediction
  std::string grade;                       // see GradeRegressor
};

RegressionMetrics EvaluateRegressor(std::span<const double> predictions,
                                    std::span<const float> actuals);

// The loss regression candidates are chosen on: the Poisson deviance when the amounts are
// all >= 0, else RMSE. Both are minimised in expectation by the true mean, but RMSE over
// spend is decided by a few customers' largest amounts: one fold's RMSE on Online Retail was
// four times the others'. The deviance weighs the tail like y log y, so the choice is less
// noisy, for the same target (docs/ML.md, "Amounts").
double RegressionSelectionLoss(const RegressionMetrics& m);

// Plain words from the Spearman rank correlation (ordering users is what the predictions
// are used for): >= 0.7 "excellent", >= 0.5 "good", >= 0.3 "fair", >= 0.1 "poor", else
// "not useful".
std::string GradeRegressor(double spearman);

// Curves for the report page.
struct CurvePoint {
  double x = 0, y = 0;
};
// ROC: (false positive rate, true positive rate), one point per distinct score.
std::vector<CurvePoint> RocCurve(std::span<const double> scores, std::span<const float> labels);
// Reliability: per non-empty equal-width bin, (mean predicted, observed rate).
std::vector<CurvePoint> ReliabilityCurve(std::span<const double> probabilities,
                                         std::span<const float> labels, int num_bins = 10);
// Cumulative lift at each percentile 1..100 of users ordered by score: (percent, lift).
std::vector<CurvePoint> LiftCurve(std::span<const double> scores, std::span<const float> labels);

void to_json(nlohmann::json& j, const ClassificationMetrics& m);
void to_json(nlohmann::json& j, const RegressionMetrics& m);

// The loss a candidate with these recorded metrics (as in metrics.json) was chosen on, in
// words for `predict show` and the report: "log loss", "Poisson deviance" or "RMSE".
const char* SelectionLossName(const nlohmann::json& metrics);

}  // namespace sibyl::ml

// Logistic regression (classification) and ridge regression (amounts) on standardised
// features with an L2 penalty, fitted by L-BFGS. Written here rather than borrowed so
// that it is deterministic, weight-aware and needs no standardised copy of the data.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "ml/model.h"

namespace sibyl::ml {

struct LinearOptions {
  // Penalty (l2 / 2) * |w|^2 added to the weighted mean loss; w are coefficients of
  // standardised features, so one value suits every feature scale.
  double l2 = 1e-4;
  // L-BFGS stops on the tolerance below, or here (the summary says which). 100 iterations
  // stopped some real-data fits short of convergence (issue 16); one iteration costs a
  // pass over the sparse fit rows, so the cap only bounds a pathological case.
  int max_iterations = 500;

  // Stop when the objective improves by less than this, relative, over one iteration.
  double tolerance = 1e-7;
  int num_threads = 0;  // 0 = all hardware threads; the result is the same for any count
  // Each value enters as sign(x) * log(1 + |x|) before standardising. Event features are
  // counts, sums and hours with heavy right tails: on the raw scale one heavy user
  // dominates a coefficient, and the log-odds of buying grow with the log of past
  // activity far more than with its level (as in the recency-frequency models that
  // use log counts). Trees are invariant to the transform; the linear model is not.
  bool log_transform = true;
  // Learn from these columns only (empty: all); the others get a zero coefficient, as a
  // constant column does. The model still reads rows of every column.
  std::vector<uint32_t> only_columns;
  // Regression only. kLog: the amount is exp(w . x + b), fitted by the Poisson
  // quasi-likelihood (valid for any non-negative amount, not only counts). Spend is
  // multiplicative (how often x how much x whether still around) and zero for most users;
  // a straight line through log-scaled features predicts it badly (docs/ML.md, "Amounts").
  // kAuto: kLog when every training amount is >= 0 and some is > 0, else kIdentity
  // (least squares, ridge), which net amounts with refunds need.
  enum class AmountLink { kAuto, kIdentity, kLog };
  AmountLink amount_link = AmountLink::kAuto;
};

class LinearModel : public Model {
 public:
  // Fits on rows `rows` of `data` with per-row weights `row_weights` (parallel to
  // `rows`, or empty for all 1). Columns with zero variance get a zero coefficient; NaN
  // values count as the column mean.
  static Result<std::unique_ptr<LinearModel>> Train(const Dataset& data,
                                                    std::span<const uint32_t> rows,
                                                    std::span<const float> row_weights,
                                                    const LinearOptions& options);
  static Result<std::unique_ptr<LinearModel>> Load(std::string_view bytes);

  // kLinear, or kOutcomeLinear for the one fitted on the outcome family's columns: the
  // same model, listed under its own name.
  ModelType type() const override { return type_; }
  void set_type(ModelType type) { type_ = type; }
  TaskKind task() const override { return task_; }
  size_t num_features() const override { return means_.size(); }
  Result<std::vector<double>> PredictMargin(std::span<const float> rows) const override;
  // Contribution j is w_j * (x_j - mean_j) / sd_j; the bias is the intercept. Under the
  // log link these log-scale terms t_j (bias b) are turned into amounts that add up:
  // bias exp(b), term j t_j * exp(b) * (exp(T) - 1) / T with T = sum of t_j, so each
  // keeps its sign and its share of the log-scale effect.
  Result<std::vector<double>> Contributions(std::span<const float> rows) const override;
  Result<std::string> Serialize() const override;
  void SetNumThreads(int num_threads) override {}

  // Coefficients on the standardised scale, and the intercept (the margin of an
  // all-average row).
  const std::vector<double>& coefficients() const { return coefficients_; }
  double intercept() const { return intercept_; }
  const std::vector<double>& means() const { return means_; }
  const std::vector<double>& scales() const { return scales_; }
  const nlohmann::json& training_summary() const { return summary_; }
  // Regression: whether the margin w . x + b is the log of the amount.
  bool log_link() const { return log_link_; }
  // Log link: the largest log-amount predicted, the largest over the rows it was fitted on
  // (models written before that bound: kMaxLogAmount, near double's limit).
  double max_margin() const { return max_margin_; }
  static constexpr double kMaxLogAmount = 700;

 private:
  double Margin(const float* row) const;

  TaskKind task_ = TaskKind::kClassification;
  ModelType type_ = ModelType::kLinear;
  bool log_transform_ = false;          // models written before it existed: off
  bool log_link_ = false;               // likewise (identity)
  std::vector<double> means_, scales_;  // of the (transformed) values; scale 0 marks a constant column
  std::vector<double> coefficients_;
  double intercept_ = 0;
  double max_margin_ = kMaxLogAmount;  // log link only; see max_margin()
  nlohmann::json summary_;
};

}  // namespace sibyl::ml

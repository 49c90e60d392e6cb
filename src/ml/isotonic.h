// Calibration: a monotone, piecewise-linear map from a model's score to a probability,
// fitted on scores the model was not trained on, with pool-adjacent-violators (isotonic)
// or as a sampled Platt sigmoid (FitPlatt).
#pragma once

#include <optional>
#include <span>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"

namespace sibyl::ml {

class IsotonicCalibration {
 public:
  // The identity map (used when there is nothing to calibrate, e.g. regression).
  IsotonicCalibration() = default;

  // Fits a non-decreasing step function of `scores` to `labels` (0/1) by weighted
  // pool-adjacent-violators; `weights` may be empty (all 1). Outputs are kept within
  // [floor, 1 - floor] with floor = 0.5 / (n + 1): half an observation, so that a block
  // without a single positive does not claim certainty it cannot have seen.
  static IsotonicCalibration Fit(std::span<const double> scores, std::span<const float> labels,
                                 std::span<const float> weights = {});

  // Platt scaling on the log-odds of the scores, p' = sigmoid(a logit(p) + b), fitted by
  // Newton's method on Platt's smoothed targets ((n+ + 1)/(n+ + 2) and 1/(n- + 2)) and
  // stored as 257 knots over the scores' range, so that it applies, serialises and scores
  // exactly like an isotonic map (beyond the range, as Apply says: the sigmoid is not
  // extrapolated). Two parameters instead of one per block: on a few thousand rows its
  // log loss is often lower than isotonic's (Niculescu-Mizil & Caruana 2005);
  // cross-validated training picks between the two out of fold. Nullopt when it would
  // not be increasing (a <= 0) or the scores are all equal.
  static std::optional<IsotonicCalibration> FitPlatt(std::span<const double> scores, std::span<const float> labels);

  // Linear interpolation between knots; scores outside the knots get the first or last
  // knot's value moved by less than 1e-6 (further out, further moved), so the map is
  // strictly increasing there and keeps the model's order. NaN gets the first knot's.
  double Apply(double score) const;
  void ApplyInPlace(std::span<double> scores) const;

  bool is_identity() const { return knots_x_.empty(); }
  const std::vector<double>& knots_x() const { return knots_x_; }
  const std::vector<double>& knots_y() const { return knots_y_; }

  // {"knots_x": [...], "knots_y": [...]}; doubles round-trip exactly.
  nlohmann::json ToJson() const;
  static Result<IsotonicCalibration> FromJson(const nlohmann::json& json);

 private:
  std::vector<double> knots_x_;  // strictly increasing
  std::vector<double> knots_y_;  // non-decreasing
};

}  // namespace sibyl::ml

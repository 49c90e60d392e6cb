#include "ml/isotonic.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

namespace sibyl::ml {
namespace {

struct Block {
  double x_min, x_max;
  double sum_w, sum_wy;
  double mean() const { return sum_wy / sum_w; }
};

}  // namespace

IsotonicCalibration IsotonicCalibration::Fit(std::span<const double> scores,
                                             std::span<const float> labels,
                                             std::span<const float> weights) {
  IsotonicCalibration result;
  std::vector<size_t> order;
  order.reserve(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isfinite(scores[i]) && (weights.empty() || weights[i] > 0)) order.push_back(i);
  }
  if (order.empty()) return result;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });

  // Equal scores are pooled first so that every block has a strictly larger x range.
  std::vector<Block> blocks;
  for (size_t i : order) {
    double w = weights.empty() ? 1.0 : weights[i];
    if (!blocks.empty() && blocks.back().x_max == scores[i]) {
      blocks.back().sum_w += w;
      blocks.back().sum_wy += w * labels[i];
    } else {
      blocks.push_back({scores[i], scores[i], w, w * labels[i]});
    }
    // Pool while the newest block violates monotonicity with its predecessor.
    while (blocks.size() >= 2 && blocks[blocks.size() - 2].mean() >= blocks.back().mean()) {
      Block last = blocks.back();
      blocks.pop_back();
      Block& prev = blocks.back();
      prev.x_max = last.x_max;
      prev.sum_w += last.sum_w;
      prev.sum_wy += last.sum_wy;
    }
  }

  const double floor = 0.5 / (static_cast<double>(order.size()) + 1.0);
  // A flat block would tie every score inside it and so lower the ranking quality (AUC)
  // of the calibrated output; its ends are tilted by a tiny amount instead (at most 1e-6
  // and a quarter of the smallest step between blocks), which keeps the map strictly
  // increasing and the raw model's order intact without a visible change in calibration.
  std::vector<double> means(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) means[b] = std::clamp(blocks[b].mean(), floor, 1.0 - floor);
  double tilt = 1e-6;
  for (size_t b = 1; b < means.size(); ++b) {
    if (means[b] > means[b - 1]) tilt = std::min(tilt, 0.25 * (means[b] - means[b - 1]));
  }
  for (size_t b = 0; b < blocks.size(); ++b) {
    const Block& block = blocks[b];
    const bool flat = block.x_max > block.x_min;
    const bool strict = (b == 0 || means[b] > means[b - 1]) &&
                        (b + 1 == blocks.size() || means[b + 1] > means[b]);
    const double t = flat && strict ? tilt : 0;
    result.knots_x_.push_back(block.x_min);
    result.knots_y_.push_back(std::max(floor, means[b] - t));
    if (flat) {
      result.knots_x_.push_back(block.x_max);
      result.knots_y_.push_back(std::min(1.0 - floor, means[b] + t));
    }
  }
  return result;
}

double IsotonicCalibration::Apply(double score) const {
  if (knots_x_.empty()) return score;
  if (!(score > knots_x_.front())) return knots_y_.front();  // also catches NaN
  if (score >= knots_x_.back()) return knots_y_.back();
  size_t hi = std::upper_bound(knots_x_.begin(), knots_x_.end(), score) - knots_x_.begin();
  size_t lo = hi - 1;
  double t = (score - knots_x_[lo]) / (knots_x_[hi] - knots_x_[lo]);
  return knots_y_[lo] + t * (knots_y_[hi] - knots_y_[lo]);
}

void IsotonicCalibration::ApplyInPlace(std::span<double> scores) const {
  for (double& s : scores) s = Apply(s);
}

nlohmann::json IsotonicCalibration::ToJson() const {
  return nlohmann::json{{"kind", "isotonic"}, {"knots_x", knots_x_}, {"knots_y", knots_y_}};
}

Result<IsotonicCalibration> IsotonicCalibration::FromJson(const nlohmann::json& json) {
  IsotonicCalibration result;
  try {
    result.knots_x_ = json.at("knots_x").get<std::vector<double>>();
    result.knots_y_ = json.at("knots_y").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    return Corruption("calibration map: {}", e.what());
  }
  if (result.knots_x_.size() != result.knots_y_.size()) {
    return Corruption("calibration map has {} x knots and {} y knots", result.knots_x_.size(),
                      result.knots_y_.size());
  }
  for (size_t i = 1; i < result.knots_x_.size(); ++i) {
    if (!(result.knots_x_[i] > result.knots_x_[i - 1]) ||
        result.knots_y_[i] < result.knots_y_[i - 1]) {
      return Corruption("calibration map is not monotone at knot {}", i);
    }
  }
  return result;
}

}  // namespace sibyl::ml

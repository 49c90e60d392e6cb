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

std::optional<IsotonicCalibration> IsotonicCalibration::FitPlatt(std::span<const double> scores,
                                                                 std::span<const float> labels) {
  constexpr double kEdge = 1e-6;
  std::vector<double> z;
  std::vector<double> t;
  double positives = 0, negatives = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) continue;
    (labels[i] > 0.5f ? positives : negatives) += 1;
  }
  if (positives == 0 || negatives == 0) return std::nullopt;
  const double hi = (positives + 1) / (positives + 2), lo = 1 / (negatives + 2);
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) continue;
    const double p = std::clamp(scores[i], kEdge, 1 - kEdge);
    z.push_back(std::log(p / (1 - p)));
    t.push_back(labels[i] > 0.5f ? hi : lo);
  }
  const auto [z_min, z_max] = std::minmax_element(z.begin(), z.end());
  if (!(*z_max > *z_min)) return std::nullopt;
  // Newton's method on (a, b), with step halving when the loss does not fall.
  auto loss = [&](double a, double b) {
    double l = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      const double m = a * z[i] + b;
      l += std::log1p(std::exp(-std::abs(m))) + std::max(m, 0.0) - t[i] * m;  // stable log-loss
    }
    return l;
  };
  double a = 1, b = 0, current = loss(a, b);
  for (int iteration = 0; iteration < 100; ++iteration) {
    double ga = 0, gb = 0, haa = 0, hab = 0, hbb = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      const double q = 1 / (1 + std::exp(-(a * z[i] + b)));
      const double r = q - t[i], w = std::max(q * (1 - q), 1e-12);
      ga += r * z[i];
      gb += r;
      haa += w * z[i] * z[i];
      hab += w * z[i];
      hbb += w;
    }
    const double det = haa * hbb - hab * hab;
    if (!(det > 0)) break;
    double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
    double step = 1, next = current;
    for (int tries = 0; tries < 30; ++tries, step *= 0.5) {
      next = loss(a - step * da, b - step * db);
      if (next <= current) break;
    }
    if (!(next <= current)) break;
    a -= step * da;
    b -= step * db;
    const double gain = current - next;
    current = next;
    if (gain < 1e-10 * std::max(1.0, std::abs(current))) break;
  }
  if (!(a > 0) || !std::isfinite(b)) return std::nullopt;
  IsotonicCalibration map;
  constexpr int kKnots = 257;
  for (int k = 0; k < kKnots; ++k) {
    const double zk = *z_min + (*z_max - *z_min) * k / (kKnots - 1);
    map.knots_x_.push_back(1 / (1 + std::exp(-zk)));
    map.knots_y_.push_back(1 / (1 + std::exp(-(a * zk + b))));
  }
  // Knots must be strictly increasing in x: near 0 or 1 the sigmoid of nearby z can round
  // to the same double.
  size_t kept = 1;
  for (size_t k = 1; k < map.knots_x_.size(); ++k) {
    if (map.knots_x_[k] <= map.knots_x_[kept - 1]) continue;
    map.knots_x_[kept] = map.knots_x_[k];
    map.knots_y_[kept] = std::max(map.knots_y_[k], map.knots_y_[kept - 1]);
    ++kept;
  }
  map.knots_x_.resize(kept);
  map.knots_y_.resize(kept);
  if (kept < 2) return std::nullopt;
  return map;
}

double IsotonicCalibration::Apply(double score) const {
  if (knots_x_.empty()) return score;
  if (std::isnan(score)) return knots_y_.front();
  // Outside the knots: the end knot's value, moved by less than 1e-6 so that the map stays
  // strictly increasing and keeps the model's order among users beyond the fitted range
  // (as the tilt of flat blocks does inside it).
  constexpr double kTailTilt = 1e-6;
  if (score <= knots_x_.front()) {
    const double gap = knots_x_.front() - score;
    return std::max(0.0, knots_y_.front() - kTailTilt * gap / (1 + gap));
  }
  if (score >= knots_x_.back()) {
    const double gap = score - knots_x_.back();
    return std::min(1.0, knots_y_.back() + kTailTilt * gap / (1 + gap));
  }
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

#include "ml/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

#include "common/mix.h"

namespace sibyl::ml {
namespace {

// Indices ordered by score, highest first; ties keep index order so results are stable.
std::vector<size_t> OrderByScoreDescending(std::span<const double> scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  return order;
}

size_t CountPositives(std::span<const float> labels) {
  size_t positives = 0;
  for (float y : labels) positives += y > 0.5f;
  return positives;
}

double Pearson(std::span<const double> a, std::span<const double> b) {
  const size_t n = a.size();
  if (n < 2) return 0;
  double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / n;
  double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - mean_a) * (b[i] - mean_b);
    saa += (a[i] - mean_a) * (a[i] - mean_a);
    sbb += (b[i] - mean_b) * (b[i] - mean_b);
  }
  if (saa <= 0 || sbb <= 0) return 0;
  return sab / std::sqrt(saa * sbb);
}

}  // namespace

std::vector<double> AverageRanks(std::span<const double> values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    // Positions i..j (0-based) share the mean 1-based rank.
    double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

double RocAuc(std::span<const double> scores, std::span<const float> labels) {
  assert(scores.size() == labels.size());
  const size_t positives = CountPositives(labels);
  const size_t negatives = labels.size() - positives;
  if (positives == 0 || negatives == 0) return 0.5;
  std::vector<double> ranks = AverageRanks(scores);
  double positive_rank_sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] > 0.5f) positive_rank_sum += ranks[i];
  }
  const double p = static_cast<double>(positives), n = static_cast<double>(negatives);
  return (positive_rank_sum - p * (p + 1) / 2) / (p * n);
}

double AveragePrecision(std::span<const double> scores, std::span<const float> labels) {
  const size_t positives = CountPositives(labels);
  if (positives == 0) return 0;
  std::vector<size_t> order = OrderByScoreDescending(scores);
  double ap = 0, previous_recall = 0;
  size_t true_positives = 0, seen = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      true_positives += labels[order[j]] > 0.5f;
      ++j;
    }
    seen = j;
    double recall = static_cast<double>(true_positives) / positives;
    double precision = static_cast<double>(true_positives) / seen;
    ap += (recall - previous_recall) * precision;
    previous_recall = recall;
    i = j;
  }
  return ap;
}

double LogLoss(std::span<const double> probabilities, std::span<const float> labels) {
  constexpr double kEps = 1e-15;
  if (labels.empty()) return 0;
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    // Clipping the probability of the observed class (not p and 1 - p separately)
    // keeps the bound exact on both sides.
    double p_observed = labels[i] > 0.5f ? probabilities[i] : 1.0 - probabilities[i];
    total -= std::log(std::clamp(p_observed, kEps, 1.0));
  }
  return total / labels.size();
}

double BrierScore(std::span<const double> probabilities, std::span<const float> labels) {
  if (labels.empty()) return 0;
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    double d = probabilities[i] - labels[i];
    total += d * d;
  }
  return total / labels.size();
}

namespace {

// Equal-width probability bins: per bin the sum of predictions, of labels, and the count.
struct ProbabilityBins {
  std::vector<double> sum_p, sum_y;
  std::vector<size_t> count;
};

ProbabilityBins BinByProbability(std::span<const double> probabilities,
                                 std::span<const float> labels, int num_bins) {
  ProbabilityBins bins{std::vector<double>(num_bins, 0), std::vector<double>(num_bins, 0),
                       std::vector<size_t>(num_bins, 0)};
  for (size_t i = 0; i < labels.size(); ++i) {
    double p = std::clamp(probabilities[i], 0.0, 1.0);
    int bin = std::min(num_bins - 1, static_cast<int>(p * num_bins));
    bins.sum_p[bin] += p;
    bins.sum_y[bin] += labels[i];
    ++bins.count[bin];
  }
  return bins;
}

}  // namespace

double ExpectedCalibrationError(std::span<const double> probabilities,
                                std::span<const float> labels, int num_bins) {
  if (labels.empty()) return 0;
  auto [sum_p, sum_y, count] = BinByProbability(probabilities, labels, num_bins);
  double ece = 0;
  for (int b = 0; b < num_bins; ++b) {
    if (count[b] == 0) continue;
    ece += std::abs(sum_p[b] - sum_y[b]) / labels.size();  // = n_b/N * |mean_p - mean_y|
  }
  return ece;
}

namespace {

// The rows taken and the sum of `values` over the `fraction` of rows with the highest
// scores. Rows tied at the cut count pro rata: a tie is worth what a random order inside it
// gives on average, so a model cannot gain by tying its scores.
std::pair<double, double> TopFraction(std::span<const double> scores, std::span<const double> values,
                                      double fraction) {
  const double wanted = fraction * values.size();
  std::vector<size_t> order = OrderByScoreDescending(scores);
  double taken = 0, sum = 0;
  for (size_t i = 0; i < order.size() && taken < wanted;) {
    size_t j = i;
    double group_sum = 0;
    for (; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) group_sum += values[order[j]];
    const double group_size = static_cast<double>(j - i);
    const double share = std::min(1.0, (wanted - taken) / group_size);
    taken += share * group_size;
    sum += share * group_sum;
    i = j;
  }
  return {taken, sum};
}

}  // namespace

double Lift(std::span<const double> scores, std::span<const float> labels, double fraction) {
  const size_t positives = CountPositives(labels);
  if (positives == 0 || labels.empty()) return 0;
  const double base_rate = static_cast<double>(positives) / labels.size();
  std::vector<double> is_positive(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) is_positive[i] = labels[i] > 0.5f;
  const auto [taken, taken_positives] = TopFraction(scores, is_positive, fraction);
  if (taken <= 0) return 0;
  return (taken_positives / taken) / base_rate;
}

double TopShare(std::span<const double> predictions, std::span<const float> actuals, double fraction) {
  const std::vector<double> amounts(actuals.begin(), actuals.end());
  double total = 0;
  for (double a : amounts) total += a;
  if (!(total > 0)) return std::numeric_limits<double>::quiet_NaN();
  return TopFraction(predictions, amounts, fraction).second / total;
}

std::string GradeClassifier(double roc_auc, double lift_top_decile) {
  if (roc_auc < 0.55 || lift_top_decile < 1.1) return "not useful";
  if (roc_auc < 0.65) return "poor";
  if (roc_auc < 0.75) return "fair";
  if (roc_auc < 0.85 || lift_top_decile < 1.5) return "good";
  return "excellent";
}

ClassificationMetrics EvaluateClassifier(std::span<const double> scores,
                                         std::span<const float> labels) {
  assert(scores.size() == labels.size());
  ClassificationMetrics m;
  m.count = labels.size();
  m.positives = CountPositives(labels);
  m.base_rate = m.count ? static_cast<double>(m.positives) / m.count : 0;
  m.roc_auc = RocAuc(scores, labels);
  m.pr_auc = AveragePrecision(scores, labels);
  m.log_loss = LogLoss(scores, labels);
  m.brier = BrierScore(scores, labels);
  m.ece = ExpectedCalibrationError(scores, labels, 10);
  m.lift_top_decile = Lift(scores, labels, 0.1);
  m.grade = GradeClassifier(m.roc_auc, m.lift_top_decile);
  return m;
}

std::string GradeRegressor(double spearman) {
  if (spearman >= 0.7) return "excellent";
  if (spearman >= 0.5) return "good";
  if (spearman >= 0.3) return "fair";
  if (spearman >= 0.1) return "poor";
  return "not useful";
}

RegressionMetrics EvaluateRegressor(std::span<const double> predictions,
                                    std::span<const float> actuals) {
  assert(predictions.size() == actuals.size());
  RegressionMetrics m;
  const size_t n = actuals.size();
  m.count = n;
  if (n == 0) return m;
  double sum_y = 0;
  for (float y : actuals) sum_y += y;
  m.mean_actual = sum_y / n;
  double abs_err = 0, sq_err = 0, total_sq = 0;
  for (size_t i = 0; i < n; ++i) {
    double e = predictions[i] - actuals[i];
    abs_err += std::abs(e);
    sq_err += e * e;
    total_sq += (actuals[i] - m.mean_actual) * (actuals[i] - m.mean_actual);
  }
  m.mae = abs_err / n;
  m.rmse = std::sqrt(sq_err / n);
  if (std::all_of(actuals.begin(), actuals.end(), [](float y) { return y >= 0; })) {
    const double floor = 1e-3 * std::max(m.mean_actual, 1e-12);
    double deviance = 0;
    for (size_t i = 0; i < n; ++i) {
      const double y = actuals[i], mu = std::max(predictions[i], floor);
      deviance += 2 * ((y > 0 ? y * std::log(y / mu) : 0.0) - (y - mu));
    }
    m.poisson_deviance = deviance / n;
  }
  m.r2 = total_sq > 0 ? 1 - sq_err / total_sq : 0;
  std::vector<double> actual_d(actuals.begin(), actuals.end());
  std::vector<double> rank_p = AverageRanks(predictions), rank_a = AverageRanks(actual_d);
  m.spearman = Pearson(rank_p, rank_a);
  m.top_decile_share = TopShare(predictions, actuals, 0.1);

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return predictions[a] < predictions[b]; });
  for (int d = 0; d < 10; ++d) {
    size_t begin = n * d / 10, end = n * (d + 1) / 10;
    DecileCalibration bin;
    bin.count = end - begin;
    for (size_t k = begin; k < end; ++k) {
      bin.mean_prediction += predictions[order[k]];
      bin.mean_actual += actuals[order[k]];
    }
    if (bin.count) {
      bin.mean_prediction /= bin.count;
      bin.mean_actual /= bin.count;
    }
    m.deciles.push_back(bin);
  }
  m.grade = GradeRegressor(m.spearman);
  return m;
}

std::vector<CurvePoint> RocCurve(std::span<const double> scores, std::span<const float> labels) {
  const size_t positives = CountPositives(labels);
  const size_t negatives = labels.size() - positives;
  std::vector<CurvePoint> curve{{0, 0}};
  if (positives == 0 || negatives == 0) {
    curve.push_back({1, 1});
    return curve;
  }
  std::vector<size_t> order = OrderByScoreDescending(scores);
  size_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) {
      (labels[order[j]] > 0.5f ? tp : fp)++;
      ++j;
    }
    curve.push_back({static_cast<double>(fp) / negatives, static_cast<double>(tp) / positives});
    i = j;
  }
  return curve;
}

std::vector<CurvePoint> ReliabilityCurve(std::span<const double> probabilities,
                                         std::span<const float> labels, int num_bins) {
  auto [sum_p, sum_y, count] = BinByProbability(probabilities, labels, num_bins);
  std::vector<CurvePoint> curve;
  for (int b = 0; b < num_bins; ++b) {
    if (count[b]) curve.push_back({sum_p[b] / count[b], sum_y[b] / count[b]});
  }
  return curve;
}

std::vector<CurvePoint> LiftCurve(std::span<const double> scores, std::span<const float> labels) {
  std::vector<CurvePoint> curve;
  const size_t n = labels.size();
  const size_t positives = CountPositives(labels);
  if (n == 0 || positives == 0) return curve;
  const double base_rate = static_cast<double>(positives) / n;
  std::vector<size_t> order = OrderByScoreDescending(scores);
  size_t taken = 0, taken_positives = 0;
  for (int percent = 1; percent <= 100; ++percent) {
    size_t until = std::max<size_t>(1, (n * percent + 99) / 100);
    for (; taken < until; ++taken) taken_positives += labels[order[taken]] > 0.5f;
    curve.push_back({static_cast<double>(percent),
                     (static_cast<double>(taken_positives) / taken) / base_rate});
  }
  return curve;
}

double CalibratedEceFloor(std::span<const double> probabilities, int draws, uint64_t seed) {
  if (probabilities.empty() || draws < 1) return std::numeric_limits<double>::quiet_NaN();
  SplitMix64Stream random(seed * kGoldenGamma + 7);
  std::vector<float> labels(probabilities.size());
  double total = 0;
  for (int d = 0; d < draws; ++d) {
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = random.Unit() < probabilities[i] ? 1.0f : 0.0f;
    total += ExpectedCalibrationError(probabilities, labels);
  }
  return total / draws;
}

std::pair<double, double> RocAucInterval(std::span<const double> scores, std::span<const float> labels,
                                         int resamples, uint64_t seed) {
  const size_t n = scores.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (n < 2 || resamples < 10) return {nan, nan};
  std::vector<uint32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  std::vector<double> aucs;
  std::vector<uint32_t> count(n);
  SplitMix64Stream random(seed * kGoldenGamma + 1);
  for (int b = 0; b < resamples; ++b) {
    std::fill(count.begin(), count.end(), 0);
    for (size_t i = 0; i < n; ++i) ++count[random.Next() % n];
    // Mann-Whitney over the sorted scores with multiplicities; ties count one half.
    double negatives_below = 0, pairs = 0, positives = 0, negatives = 0;
    for (size_t i = 0; i < n;) {
      size_t j = i;
      double tie_pos = 0, tie_neg = 0;
      for (; j < n && scores[order[j]] == scores[order[i]]; ++j) {
        const double c = count[order[j]];
        (labels[order[j]] > 0.5f ? tie_pos : tie_neg) += c;
      }
      pairs += tie_pos * (negatives_below + 0.5 * tie_neg);
      negatives_below += tie_neg;
      positives += tie_pos;
      negatives += tie_neg;
      i = j;
    }
    if (positives > 0 && negatives > 0) aucs.push_back(pairs / (positives * negatives));
  }
  if (aucs.size() < 10) return {nan, nan};
  std::sort(aucs.begin(), aucs.end());
  auto quantile = [&](double q) { return aucs[static_cast<size_t>(q * static_cast<double>(aucs.size() - 1) + 0.5)]; };
  return {quantile(0.025), quantile(0.975)};
}

void to_json(nlohmann::json& j, const ClassificationMetrics& m) {
  j = nlohmann::json{{"count", m.count},
                     {"positives", m.positives},
                     {"base_rate", m.base_rate},
                     {"roc_auc", m.roc_auc},
                     {"pr_auc", m.pr_auc},
                     {"log_loss", m.log_loss},
                     {"brier", m.brier},
                     {"ece", m.ece},
                     {"lift_top_decile", m.lift_top_decile},
                     {"grade", m.grade}};
  if (std::isfinite(m.roc_auc_low)) j["roc_auc_interval"] = {m.roc_auc_low, m.roc_auc_high};
  if (std::isfinite(m.ece_floor)) j["ece_floor"] = m.ece_floor;
}

void to_json(nlohmann::json& j, const RegressionMetrics& m) {
  nlohmann::json deciles = nlohmann::json::array();
  for (const auto& d : m.deciles) {
    deciles.push_back(
        {{"mean_prediction", d.mean_prediction}, {"mean_actual", d.mean_actual}, {"count", d.count}});
  }
  j = nlohmann::json{{"count", m.count}, {"mean_actual", m.mean_actual}, {"mae", m.mae},
                     {"rmse", m.rmse},   {"r2", m.r2},                   {"spearman", m.spearman},
                     {"deciles", deciles}, {"grade", m.grade}};
  if (std::isfinite(m.poisson_deviance)) j["poisson_deviance"] = m.poisson_deviance;
  if (std::isfinite(m.top_decile_share)) j["top_decile_share"] = m.top_decile_share;
}

const char* SelectionLossName(const nlohmann::json& metrics) {
  if (metrics.contains("roc_auc")) return "log loss";
  return metrics.contains("poisson_deviance") ? "Poisson deviance" : "RMSE";
}

double RegressionSelectionLoss(const RegressionMetrics& m) {
  return std::isfinite(m.poisson_deviance) ? m.poisson_deviance : m.rmse;
}

}  // namespace sibyl::ml

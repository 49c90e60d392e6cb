// Internal to ml/: pieces shared by the two ways of training (trainer.cc: one split
// into fit / validation / test users; cross_validation.cc: k folds of users).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <stdlib.h>  // getloadavg

#include "ml/trainer.h"

namespace sibyl::ml::trainer_internal {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Records how long each stage took and tells the caller when one starts.
class StageTimer {
 public:
  StageTimer(std::vector<StageTime>& times, const std::function<void(std::string_view)>& on_stage)
      : times_(times), on_stage_(on_stage) {}
  void Start(std::string stage) {
    Stop();
    if (on_stage_) on_stage_(stage);
    current_ = std::move(stage);
    start_ = Clock::now();
  }
  void Stop() {
    if (!current_.empty()) times_.push_back({current_, SecondsSince(start_)});
    current_.clear();
  }

 private:
  std::vector<StageTime>& times_;
  const std::function<void(std::string_view)>& on_stage_;
  std::string current_;
  Clock::time_point start_;
};

// Weights giving positives and negatives equal total weight while keeping the total
// equal to the row count (so min_child_weight and the L2 penalty keep their meaning).
inline std::pair<float, float> BalancingWeights(std::span<const float> labels) {
  size_t positives = 0;
  for (float y : labels) positives += y > 0.5f;
  const size_t negatives = labels.size() - positives;
  if (positives == 0 || negatives == 0) return {1.0f, 1.0f};
  const double n = static_cast<double>(labels.size());
  return {static_cast<float>(n / (2.0 * negatives)), static_cast<float>(n / (2.0 * positives))};
}

inline std::vector<float> WeightsFor(std::span<const float> labels, std::pair<float, float> w) {
  std::vector<float> weights(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) weights[i] = labels[i] > 0.5f ? w.second : w.first;
  return weights;
}

// XGBoost's OpenMP workers meet at a barrier in every histogram and split step; on a
// machine whose cores are already busy, a descheduled worker stalls the others (and
// libgomp's spinning takes the core from whoever holds it), so two workers measured up
// to 4x slower than one. With an automatic thread count the tree learners therefore use
// all hardware threads only when the machine has that many idle: the one-minute load
// average plus one (this run) at most the hardware thread count.
//
// The load average also counts this process's own last minute: the feature queries that
// just ran on every core, or the prediction trained before this one (a scheduler's
// refresh, the accuracy benchmark), which alone put a 2-core machine over the line. So a
// load that says busy is checked against the CPU the machine uses right now, over 100 ms
// while this thread sleeps; the trees keep every thread when that is idle enough.
inline int TreeThreads(int requested) {
  if (requested > 0) return requested;
  const int hardware = ResolveThreads(0);
  double load[1] = {0};
  if (hardware > 1 && getloadavg(load, 1) == 1 && load[0] + 1.0 > hardware) {
    const std::optional<double> busy = BusyCoresNow(std::chrono::milliseconds(100));
    if (!busy || *busy + 1.0 > hardware) return 1;
  }
  return hardware;
}

// Isotonic and Platt maps cross-fitted over `parts` groups: entry j of `scores` is mapped
// by maps fitted on the entries of the other groups (part[j] in 0..parts-1). `platt_ok`
// is false when Platt could not be fitted on some group. Both training paths choose their
// calibration by these out-of-sample outputs' log loss.
struct CrossFittedCalibration {
  std::vector<double> by_isotonic, by_platt;
  bool platt_ok = true;
  // Platt when it fitted everywhere and has the lower log loss (isotonic on a tie).
  bool PlattWins(std::span<const float> labels) const {
    return platt_ok && LogLoss(by_platt, labels) < LogLoss(by_isotonic, labels);
  }
};
inline CrossFittedCalibration CrossFitCalibration(std::span<const double> scores, std::span<const float> labels,
                                                  std::span<const uint8_t> part, int parts) {
  CrossFittedCalibration out;
  out.by_isotonic.resize(scores.size());
  out.by_platt.resize(scores.size());
  for (int g = 0; g < parts; ++g) {
    std::vector<double> fx;
    std::vector<float> fy;
    for (size_t j = 0; j < scores.size(); ++j)
      if (part[j] != g) {
        fx.push_back(scores[j]);
        fy.push_back(labels[j]);
      }
    IsotonicCalibration isotonic = IsotonicCalibration::Fit(fx, fy);
    std::optional<IsotonicCalibration> platt = IsotonicCalibration::FitPlatt(fx, fy);
    out.platt_ok = out.platt_ok && platt.has_value();
    for (size_t j = 0; j < scores.size(); ++j) {
      if (part[j] != g) continue;
      out.by_isotonic[j] = isotonic.Apply(scores[j]);
      if (platt) out.by_platt[j] = platt->Apply(scores[j]);
    }
  }
  return out;
}

// A candidate's held-out loss, the one selection compares: calibrated log loss, or for
// amounts RegressionSelectionLoss (the Poisson deviance; RMSE with amounts below 0); on
// every stacked cutoff's rows when cross-validation measured it there.
inline double HeldOutLoss(const CandidateResult& c, TaskKind task) {
  if (c.selection_loss) return *c.selection_loss;
  return task == TaskKind::kClassification ? c.metrics.log_loss : RegressionSelectionLoss(c.regression_metrics);
}

// The blend's parts (both training paths): the two candidates that did not fail with the
// lowest held-out losses (on a tie the earlier); none when fewer than two.
inline std::vector<size_t> TwoLowestLosses(const std::vector<CandidateResult>& candidates, TaskKind task) {
  std::vector<size_t> ok;
  for (size_t c = 0; c < candidates.size(); ++c)
    if (candidates[c].error.empty()) ok.push_back(c);
  std::stable_sort(ok.begin(), ok.end(), [&](size_t a, size_t b) {
    return HeldOutLoss(candidates[a], task) < HeldOutLoss(candidates[b], task);
  });
  if (ok.size() < 2) return {};
  return {ok[0], ok[1]};
}

// Training fails only when every candidate did; the error lists why each one failed.
inline Status EveryCandidateFailed(const std::vector<CandidateResult>& candidates) {
  std::string errors;
  for (const auto& c : candidates) errors += fmt::format("{}: {}; ", ModelTypeName(c.type), c.error);
  return Internal("every candidate failed: {}", errors);
}

// Raw margins (log-odds or amounts) of `model` on `rows` of `data`.
Result<std::vector<double>> MarginsOn(const Model& model, const Dataset& data, std::span<const uint32_t> rows,
                                      int threads);

// One candidate fitted on `fit` rows; boosting stops early on `stop` rows, the others
// learn from both (they have nothing to stop; pass no `stop` rows to keep them out).
// `tree_threads`: the tree learners' threads, TreeThreads() decided once per training.
struct CandidateFit {
  std::unique_ptr<Model> model;
  nlohmann::json training;
};
Result<CandidateFit> FitCandidate(ModelType type, const Dataset& data, std::vector<uint32_t> fit,
                                  const std::vector<uint32_t>& stop, const TrainOptions& options, int tree_threads);

}  // namespace sibyl::ml::trainer_internal

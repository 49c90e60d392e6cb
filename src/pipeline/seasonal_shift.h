// The seasonal shift of a probability prediction's calibration (docs/ML.md, "Seasonal
// shift").
//
// A model trained "as of T" learns at T - H and is used at T. When the outcome is
// seasonal (purchases before Christmas), the base rate at T differs from the one the
// calibration was fitted on, and no feature measured before T - H can tell. Where the
// history reaches a year back, last year shows how the same model's calibration moved
// between the two moments: the finished model scores the cohorts at T - H - 52 weeks
// and at T - 52 weeks (labels there are observed before T: no leakage), a log-odds
// intercept is fitted at each so that the mean score matches the labels, and their
// difference, shrunk by its own standard error, is added to the calibrated log-odds.
// 52 weeks, not 365 days, keep weekdays aligned.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "ml/isotonic.h"
#include "pipeline/prediction.h"
#include "query/query_engine.h"

namespace sibyl::pipeline {

struct SeasonalShiftOptions {
  // Each year-ago cutoff needs this many days of history before it (as training does).
  int min_history_days = 49;
  // And at least this many rows with and without the outcome, else the intercepts are
  // too noisy to mean anything.
  uint64_t min_class_rows = 30;
  // The year-ago cohorts are sampled to at most this many users (a seeded hash), which
  // bounds the two extra feature queries on large cohorts; the intercept's standard
  // error at 20,000 rows is about 0.015 log-odds.
  uint64_t max_users = 20'000;
  uint64_t seed = 42;
};

// One year-ago cutoff: the intercept c that makes mean(sigmoid(logit(p) + c)) match the
// labels, with its standard error (Fisher information of c).
struct InterceptFit {
  int64_t cutoff_ms = 0;
  uint64_t rows = 0;
  double label_rate = 0, mean_score = 0;
  double intercept = 0, standard_error = 0;
};

struct SeasonalShift {
  bool applied = false;      // delta != 0 was added to the calibration
  std::string note;          // what was done, or why not, in words
  InterceptFit at_train;     // T - H - 52 weeks
  InterceptFit at_scoring;   // T - 52 weeks
  double raw_delta = 0;      // at_scoring.intercept - at_train.intercept
  double standard_error = 0;
  double delta = 0;          // raw_delta shrunk: raw * max(0, 1 - se^2 / raw^2)

  nlohmann::json ToJson() const;
};

// Newton's method on the intercept of a logistic model with offsets logit(scores).
InterceptFit FitIntercept(std::span<const double> scores, std::span<const float> labels);

// Empirical-Bayes shrinkage toward 0: the posterior mean under a normal prior whose
// variance is estimated as max(0, estimate^2 - se^2), i.e. estimate * max(0, 1 - se^2 /
// estimate^2). An estimate within one standard error of 0 becomes 0.
double ShrinkTowardZero(double estimate, double standard_error);

// Estimates the shift for a model trained with `train_cutoff_ms` and used at `as_of_ms`.
// `score` gives calibrated probabilities for rows in `spec`'s layout. Not applicable
// (returned with applied = false and a note, not an error) for revenue, a horizon over
// 52 weeks, or too little history or too few labels a year back.
using RowScorer = std::function<Result<std::vector<double>>(std::span<const float> rows)>;
Result<SeasonalShift> EstimateSeasonalShift(const EventReader& reader, const QueryEngine& engine,
                                            const PredictionDefinition& definition, const FeatureSpec& spec,
                                            int64_t train_cutoff_ms, int64_t as_of_ms, const RowScorer& score,
                                            const SeasonalShiftOptions& options);

// `calibration` with `delta` added to the log-odds of every knot (monotone, so still a
// calibration map). The identity map becomes a two-knot map over [0, 1].
ml::IsotonicCalibration ShiftLogOdds(const ml::IsotonicCalibration& calibration, double delta);

}  // namespace sibyl::pipeline

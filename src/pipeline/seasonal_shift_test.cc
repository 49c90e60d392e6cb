#include "pipeline/seasonal_shift.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "common/time.h"
#include "pipeline/pipeline_test_util.h"
#include "pipeline/train_run.h"
#include "pipeline/training_set.h"

namespace sibyl::pipeline {
namespace {

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Labels drawn from sigmoid(logit(score) + true_c): the fitted intercept recovers true_c
// within a few standard errors, and the standard error is the Fisher information's.
TEST(FitInterceptTest, RecoversAKnownOffset) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0.02, 0.9);
  for (double true_c : {-0.8, 0.0, 0.5}) {
    std::vector<double> scores(40000);
    std::vector<float> labels(scores.size());
    for (size_t i = 0; i < scores.size(); ++i) {
      scores[i] = uniform(rng);
      const double p = Sigmoid(std::log(scores[i] / (1 - scores[i])) + true_c);
      labels[i] = std::uniform_real_distribution<double>(0, 1)(rng) < p ? 1.f : 0.f;
    }
    InterceptFit fit = FitIntercept(scores, labels);
    EXPECT_EQ(fit.rows, scores.size());
    EXPECT_GT(fit.standard_error, 0.005);
    EXPECT_LT(fit.standard_error, 0.03);
    EXPECT_NEAR(fit.intercept, true_c, 4 * fit.standard_error) << "true offset " << true_c;
  }
}

// At the fitted intercept the mean shifted score equals the label rate (the score
// equation of the intercept), whatever the scores.
TEST(FitInterceptTest, MatchesTheLabelRate) {
  std::vector<double> scores = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
  std::vector<float> labels = {1, 1, 1, 0, 1, 1, 1, 1};
  InterceptFit fit = FitIntercept(scores, labels);
  double mean = 0;
  for (double s : scores) mean += Sigmoid(std::log(s / (1 - s)) + fit.intercept);
  EXPECT_NEAR(mean / scores.size(), 7.0 / 8.0, 1e-9);
  EXPECT_GT(fit.intercept, 0);
  EXPECT_DOUBLE_EQ(fit.label_rate, 7.0 / 8.0);
}

TEST(ShrinkTowardZeroTest, EmpiricalBayesPosteriorMean) {
  EXPECT_EQ(ShrinkTowardZero(0.05, 0.1), 0.0);   // within one standard error: nothing
  EXPECT_EQ(ShrinkTowardZero(-0.1, 0.1), 0.0);
  EXPECT_NEAR(ShrinkTowardZero(0.5, 0.1), 0.5 * (1 - 0.04), 1e-12);
  EXPECT_NEAR(ShrinkTowardZero(-0.5, 0.1), -0.5 * (1 - 0.04), 1e-12);
  EXPECT_EQ(ShrinkTowardZero(0.0, 0.1), 0.0);
  EXPECT_EQ(ShrinkTowardZero(0.3, INFINITY), 0.0);
}

// The shifted map moves every probability by the same log-odds and stays monotone.
TEST(ShiftLogOddsTest, ShiftsEveryKnotsLogOdds) {
  std::vector<double> scores, y;
  std::vector<float> labels;
  for (int i = 0; i < 200; ++i) {
    scores.push_back(i / 200.0);
    labels.push_back(i % 3 == 0 || i > 150 ? 1.f : 0.f);
  }
  ml::IsotonicCalibration map = ml::IsotonicCalibration::Fit(scores, labels);
  ml::IsotonicCalibration shifted = ShiftLogOdds(map, 0.7);
  ASSERT_EQ(shifted.knots_x(), map.knots_x());
  for (double s : {0.0, 0.1, 0.33, 0.5, 0.77, 0.99}) {
    const double before = map.Apply(s);
    const double at_knot_level = Sigmoid(std::log(before / (1 - before)) + 0.7);
    // Between knots the map is linear in probability, not log-odds: close, not equal.
    EXPECT_NEAR(shifted.Apply(s), at_knot_level, 0.02) << s;
    EXPECT_GT(shifted.Apply(s), before);
  }
  for (size_t i = 1; i < shifted.knots_y().size(); ++i) EXPECT_GE(shifted.knots_y()[i], shifted.knots_y()[i - 1]);

  ml::IsotonicCalibration identity;
  ml::IsotonicCalibration from_identity = ShiftLogOdds(identity, -1.0);
  EXPECT_NEAR(from_identity.Apply(0.5), Sigmoid(-1.0), 1e-3);
  EXPECT_NEAR(from_identity.Apply(0.9), Sigmoid(std::log(9.0) - 1.0), 2e-3);
}

// End to end on simulated BG/NBD buyers over three years, training "as of" 60 days before
// the seasonal peak (the rate climbs fastest there): the shift estimated a year back is
// positive and moves the mean score at T toward the rate realised in [T, T + H). Without
// seasonality the estimate is small and, when applied, shrunk.
struct SeasonalCase {
  double amplitude;
};

class SeasonalShiftEndToEndTest : public ::testing::TestWithParam<SeasonalCase> {};

TEST_P(SeasonalShiftEndToEndTest, FollowsTheSeasonWhenThereIsOne) {
  sim::SimOptions sim;
  sim.regime = sim::Regime::kBgNbd;
  sim.users = 20000;
  sim.days = 1095;
  sim.seed = 3;
  sim.threads = 1;
  sim.start_ms = ParseTime("2023-01-01").value();
  sim.bgnbd.seasonal_amplitude = GetParam().amplitude;
  testing_util::GeneratedStore store(sim);
  ASSERT_TRUE(store.status().ok()) << store.status().ToString();
  auto reader = store.Snapshot();
  const PredictionDefinition definition = ParsePredictionDefinition(nlohmann::json::parse(R"({
      "name": "purchase_30d", "kind": "propensity", "outcome": {"event": "Purchase"},
      "horizon_days": 30, "cohort": {"performed": {"event": "Purchase"}}})"))
                                              .value();
  TrainRequest request;
  request.as_of_ms = ParseTime("2025-09-27").value();
  request.num_threads = 1;
  request.keep_matrix = false;
  auto fitted = FitPrediction(*reader, definition, request);
  ASSERT_TRUE(fitted.ok()) << fitted.status().ToString();
  const SeasonalShift& shift = fitted->seasonal;
  SCOPED_TRACE(shift.ToJson().dump());
  ASSERT_GT(shift.at_train.rows, 1000u);
  ASSERT_GT(shift.at_scoring.rows, 1000u);
  EXPECT_EQ(shift.at_train.cutoff_ms, fitted->train_cutoff_ms - 52 * kMsPerWeek);
  EXPECT_EQ(shift.at_scoring.cutoff_ms, *request.as_of_ms - 52 * kMsPerWeek);

  std::shared_ptr<const EventReader> borrowed(reader.get(), [](const EventReader*) {});
  auto engine = MakeEmbeddedQueryEngine(borrowed, false);
  auto rows = BuildScoringRows(*reader, *engine, definition, fitted->set.spec, *request.as_of_ms, true);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  auto scores = fitted->result.Predict(rows->values);
  ASSERT_TRUE(scores.ok());
  double shifted = 0, unshifted = 0, realised = 0;
  for (size_t i = 0; i < scores->size(); ++i) {
    const double p = (*scores)[i];
    shifted += p;
    unshifted += Sigmoid(std::log(p / (1 - p)) - shift.delta);
    realised += rows->labels[i];
  }
  const double n = static_cast<double>(scores->size());
  shifted /= n, unshifted /= n, realised /= n;
  if (GetParam().amplitude > 0) {
    EXPECT_TRUE(shift.applied);
    EXPECT_GT(shift.delta, 0.05);
    EXPECT_LT(std::abs(shifted - realised), std::abs(unshifted - realised))
        << "mean score " << shifted << " (unshifted " << unshifted << ") vs realised " << realised;
  } else {
    EXPECT_LT(std::abs(shift.raw_delta), 3 * shift.standard_error);
    EXPECT_LE(std::abs(shift.delta), std::abs(shift.raw_delta));
  }
}

INSTANTIATE_TEST_SUITE_P(Seasons, SeasonalShiftEndToEndTest,
                         ::testing::Values(SeasonalCase{0.9}, SeasonalCase{0.0}),
                         [](const auto& info) { return info.param.amplitude > 0 ? "Seasonal" : "Stationary"; });

}  // namespace
}  // namespace sibyl::pipeline

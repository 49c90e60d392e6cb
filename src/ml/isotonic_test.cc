#include "ml/isotonic.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ml/metrics.h"

namespace sibyl::ml {
namespace {

TEST(IsotonicTest, PoolsAdjacentViolators) {
  std::vector<double> s = {1, 2, 3, 4};
  std::vector<float> y = {1, 0, 1, 1};
  IsotonicCalibration iso = IsotonicCalibration::Fit(s, y);
  // {1, 2} pool to 0.5; {3, 4} pool to 1, clamped to 1 - 0.5 / 5. Flat blocks are
  // tilted by at most 1e-6 so that the map stays strictly increasing.
  EXPECT_NEAR(iso.Apply(1), 0.5, 2e-6);
  EXPECT_NEAR(iso.Apply(2), 0.5, 2e-6);
  EXPECT_LT(iso.Apply(1), iso.Apply(2));
  EXPECT_NEAR(iso.Apply(3), 0.9, 2e-6);
  EXPECT_NEAR(iso.Apply(2.5), 0.7, 2e-6);  // interpolated between knots
  EXPECT_NEAR(iso.Apply(-5), 0.5, 2e-6);   // the first knot's value below
  EXPECT_NEAR(iso.Apply(50), 0.9, 2e-6);   // the last knot's above
}

// Beyond its knots the map moves by less than 1e-6 but stays strictly increasing, so users
// scored outside the fitted range keep the model's order (no ties at the ends).
TEST(IsotonicTest, KeepsTheOrderBeyondItsKnots) {
  std::vector<double> s = {1, 2, 3, 4};
  std::vector<float> y = {1, 0, 1, 1};
  IsotonicCalibration iso = IsotonicCalibration::Fit(s, y);
  EXPECT_LT(iso.Apply(-5), iso.Apply(0));
  EXPECT_LT(iso.Apply(0), iso.Apply(1));
  EXPECT_LT(iso.Apply(4), iso.Apply(50));
  EXPECT_LT(iso.Apply(50), iso.Apply(60));
  EXPECT_GT(iso.Apply(-1e9), iso.Apply(1) - 1e-6);
  EXPECT_LT(iso.Apply(1e9), iso.Apply(4) + 1e-6);
  EXPECT_EQ(iso.Apply(std::nan("")), iso.Apply(1));
}

TEST(IsotonicTest, MonotoneAndReducesEceOnMiscalibratedScores) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0, 1);
  // Overconfident scores: the true probability pushed towards 0 and 1.
  auto make = [&](size_t n, std::vector<double>& scores, std::vector<float>& labels) {
    for (size_t i = 0; i < n; ++i) {
      double p = uniform(rng);
      double logit = std::log(p / (1 - p));
      scores.push_back(1 / (1 + std::exp(-3 * logit - 1)));
      labels.push_back(uniform(rng) < p ? 1.0f : 0.0f);
    }
  };
  std::vector<double> fit_s, test_s;
  std::vector<float> fit_y, test_y;
  make(20000, fit_s, fit_y);
  make(20000, test_s, test_y);
  IsotonicCalibration iso = IsotonicCalibration::Fit(fit_s, fit_y);

  double previous = -1;
  for (double x = -0.1; x <= 1.1; x += 0.001) {
    double y = iso.Apply(x);
    EXPECT_GE(y, previous) << "at " << x;
    EXPECT_GE(y, 0);
    EXPECT_LE(y, 1);
    previous = y;
  }
  double before = ExpectedCalibrationError(test_s, test_y);
  std::vector<double> calibrated = test_s;
  iso.ApplyInPlace(calibrated);
  double after = ExpectedCalibrationError(calibrated, test_y);
  EXPECT_GT(before, 0.1);
  EXPECT_LT(after, 0.02);
  EXPECT_LT(LogLoss(calibrated, test_y), LogLoss(test_s, test_y));
}

TEST(IsotonicTest, JsonRoundTripIsExact) {
  std::vector<double> s = {0.11, 0.23, 0.37, 0.41, 0.58, 0.77};
  std::vector<float> y = {0, 1, 0, 1, 1, 1};
  IsotonicCalibration iso = IsotonicCalibration::Fit(s, y);
  auto back = IsotonicCalibration::FromJson(nlohmann::json::parse(iso.ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (double x = 0; x < 1; x += 0.013) EXPECT_EQ(back->Apply(x), iso.Apply(x));
  EXPECT_FALSE(IsotonicCalibration::FromJson(nlohmann::json{{"knots_x", {2, 1}}, {"knots_y", {0, 1}}}).ok());
}

// Scores whose true probability is sigmoid(2 logit(s) - 0.5).
double KnownSigmoid(double p) { return 1 / (1 + std::exp(-(2 * std::log(p / (1 - p)) - 0.5))); }

// Platt fitted on 40,000 scores drawn uniformly from [lo, hi], each labelled 1 with
// KnownSigmoid(score).
std::optional<IsotonicCalibration> PlattOnKnownSigmoid(double lo, double hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(lo, hi), unit(0, 1);
  std::vector<double> s;
  std::vector<float> y;
  for (int i = 0; i < 40000; ++i) {
    const double p = uniform(rng);
    s.push_back(p);
    y.push_back(unit(rng) < KnownSigmoid(p) ? 1.0f : 0.0f);
  }
  return IsotonicCalibration::FitPlatt(s, y);
}

// Platt scaling recovers that map, stored as knots that are strictly increasing and
// survive a JSON round trip.
TEST(IsotonicTest, PlattRecoversAKnownSigmoid) {
  auto platt = PlattOnKnownSigmoid(0.02, 0.98, 7);
  ASSERT_TRUE(platt.has_value());
  for (double p = 0.05; p < 0.95; p += 0.05) EXPECT_NEAR(platt->Apply(p), KnownSigmoid(p), 0.02) << p;
  for (size_t k = 1; k < platt->knots_x().size(); ++k) {
    EXPECT_GT(platt->knots_x()[k], platt->knots_x()[k - 1]);
    EXPECT_GE(platt->knots_y()[k], platt->knots_y()[k - 1]);
  }
  auto back = IsotonicCalibration::FromJson(nlohmann::json::parse(platt->ToJson().dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  for (double p = 0.01; p < 1; p += 0.017) EXPECT_EQ(back->Apply(p), platt->Apply(p));
}

// Fitted on scores between 0.3 and 0.7, the sigmoid is not extrapolated (far outside
// its rows it overstates confidence), but users scored outside that range keep the
// model's order instead of all tying at the range's end.
TEST(IsotonicTest, PlattKeepsTheOrderBeyondTheFittedRange) {
  auto platt = PlattOnKnownSigmoid(0.3, 0.7, 11);
  ASSERT_TRUE(platt.has_value());
  const double low = platt->knots_y().front(), high = platt->knots_y().back();
  EXPECT_NEAR(low, KnownSigmoid(platt->knots_x().front()), 0.02);
  EXPECT_LT(platt->Apply(0.01), platt->Apply(0.05));
  EXPECT_LT(platt->Apply(0.05), platt->Apply(0.29));
  EXPECT_LT(platt->Apply(0.71), platt->Apply(0.95));
  EXPECT_LT(platt->Apply(0.95), platt->Apply(0.99));
  for (double p : {0.0, 0.01, 0.2}) EXPECT_NEAR(platt->Apply(p), low, 1e-6) << p;
  for (double p : {0.8, 0.99, 1.0}) EXPECT_NEAR(platt->Apply(p), high, 1e-6) << p;
}

// A decreasing relation cannot be a calibration map, and one class alone has no sigmoid.
TEST(IsotonicTest, PlattRefusesWhatItCannotFit) {
  std::vector<double> s = {0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9};
  std::vector<float> falling = {1, 1, 1, 1, 0, 0, 0, 0};
  EXPECT_FALSE(IsotonicCalibration::FitPlatt(s, falling).has_value());
  std::vector<float> ones(s.size(), 1.0f);
  EXPECT_FALSE(IsotonicCalibration::FitPlatt(s, ones).has_value());
  std::vector<double> same(8, 0.5);
  std::vector<float> mixed = {0, 1, 0, 1, 0, 1, 0, 1};
  EXPECT_FALSE(IsotonicCalibration::FitPlatt(same, mixed).has_value());
}

TEST(IsotonicTest, EmptyInputIsIdentity) {
  IsotonicCalibration iso = IsotonicCalibration::Fit({}, {});
  EXPECT_TRUE(iso.is_identity());
  EXPECT_EQ(iso.Apply(0.3), 0.3);
}

}  // namespace
}  // namespace sibyl::ml

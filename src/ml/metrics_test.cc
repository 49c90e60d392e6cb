#include "ml/metrics.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sibyl::ml {
namespace {

constexpr double kTol = 1e-9;

TEST(MetricsTest, RocAucMatchesPairCounting) {
  // scikit-learn's documented example.
  std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  std::vector<float> y = {0, 0, 1, 1};
  EXPECT_NEAR(RocAuc(s, y), 0.75, kTol);
}

TEST(MetricsTest, RocAucCountsTiesAsHalf) {
  // Positive scores {0.5, 0.8}, negative {0.5, 0.2}: pairs 0.5 + 1 + 1 + 1 of 4.
  std::vector<double> s = {0.5, 0.5, 0.2, 0.8};
  std::vector<float> y = {1, 0, 0, 1};
  EXPECT_NEAR(RocAuc(s, y), 0.875, kTol);
  std::vector<double> constant = {0.3, 0.3, 0.3, 0.3};
  EXPECT_NEAR(RocAuc(constant, y), 0.5, kTol);
}

TEST(MetricsTest, AveragePrecision) {
  std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  std::vector<float> y = {0, 0, 1, 1};
  // Thresholds 0.8: P=1, R=.5; 0.4: P=.5, R=.5; 0.35: P=2/3, R=1.
  EXPECT_NEAR(AveragePrecision(s, y), 0.5 * 1 + 0.5 * 2.0 / 3.0, kTol);
  // Tied scores form one threshold: 0.8 (P=1, R=.5), then {0.5, 0.5} (P=2/3, R=1).
  std::vector<double> tied = {0.5, 0.5, 0.2, 0.8};
  std::vector<float> ty = {1, 0, 0, 1};
  EXPECT_NEAR(AveragePrecision(tied, ty), 0.5 + 0.5 * 2.0 / 3.0, kTol);
}

TEST(MetricsTest, LogLossAndBrier) {
  std::vector<double> p = {0.9, 0.2};
  std::vector<float> y = {1, 0};
  EXPECT_NEAR(LogLoss(p, y), -(std::log(0.9) + std::log(0.8)) / 2, kTol);
  EXPECT_NEAR(BrierScore(p, y), (0.01 + 0.04) / 2, kTol);
  // Certain and wrong: clipped at 1e-15 rather than infinite.
  std::vector<double> wrong = {0.0, 1.0};
  EXPECT_NEAR(LogLoss(wrong, y), -std::log(1e-15), 1e-6);
}

TEST(MetricsTest, ExpectedCalibrationErrorTenBins) {
  // Bin 0: |0.05 - 0| x 1/4; bin 1: |0.15 - 0.5| x 2/4; bin 9: |0.95 - 1| x 1/4.
  std::vector<double> p = {0.05, 0.15, 0.15, 0.95};
  std::vector<float> y = {0, 1, 0, 1};
  EXPECT_NEAR(ExpectedCalibrationError(p, y), 0.0125 + 0.175 + 0.0125, kTol);
  // A probability of exactly 1 falls in the last bin.
  std::vector<double> one = {1.0};
  std::vector<float> pos = {1};
  EXPECT_NEAR(ExpectedCalibrationError(one, pos), 0.0, kTol);
}

TEST(MetricsTest, LiftTopDecile) {
  std::vector<double> s;
  std::vector<float> y;
  for (int i = 1; i <= 10; ++i) {
    s.push_back(i / 10.0);
    y.push_back(i == 10 || i == 5 || i == 2 ? 1 : 0);
  }
  // Top row is positive: rate 1 against a base rate of 0.3.
  EXPECT_NEAR(Lift(s, y, 0.1), 1.0 / 0.3, kTol);
}

TEST(MetricsTest, LiftSharesTiedBoundaryFractionally) {
  // 20 rows, top 10% = 2 rows, but three rows tie at the top with labels 1, 1, 0: the
  // top two take 2/3 of the group's 2 positives each... i.e. rate 2/3. Base rate 4/20.
  std::vector<double> s(20, 0.1);
  std::vector<float> y(20, 0);
  s[0] = s[1] = s[2] = 0.9;
  y[0] = 1, y[1] = 0, y[2] = 1;
  y[10] = 1, y[11] = 1;
  EXPECT_NEAR(Lift(s, y, 0.1), (2.0 / 3.0) / 0.2, kTol);
}

TEST(MetricsTest, GradeThresholds) {
  EXPECT_EQ(GradeClassifier(0.90, 3.0), "excellent");
  EXPECT_EQ(GradeClassifier(0.90, 1.2), "good");
  EXPECT_EQ(GradeClassifier(0.80, 3.0), "good");
  EXPECT_EQ(GradeClassifier(0.70, 2.0), "fair");
  EXPECT_EQ(GradeClassifier(0.60, 2.0), "poor");
  EXPECT_EQ(GradeClassifier(0.52, 2.0), "not useful");
  EXPECT_EQ(GradeClassifier(0.90, 1.0), "not useful");
}

TEST(MetricsTest, RegressionMetrics) {
  std::vector<double> pred = {1, 2, 3, 4};
  std::vector<float> actual = {1, 3, 2, 5};
  RegressionMetrics m = EvaluateRegressor(pred, actual);
  EXPECT_NEAR(m.mae, 0.75, kTol);
  EXPECT_NEAR(m.rmse, std::sqrt(0.75), kTol);
  EXPECT_NEAR(m.r2, 1 - 3.0 / 8.75, kTol);
  EXPECT_NEAR(m.spearman, 0.8, kTol);  // 1 - 6 * 2 / (4 * 15)
  ASSERT_EQ(m.deciles.size(), 10u);
  size_t total = 0;
  for (const auto& d : m.deciles) total += d.count;
  EXPECT_EQ(total, 4u);
}

// The Poisson deviance written out by hand: 2 [y log(y / mu) - (y - mu)], 0 log 0 = 0, a
// prediction of 0 floored at 1e-3 x the mean actual; below-zero actuals leave it undefined
// and selection falls back to RMSE.
TEST(MetricsTest, PoissonDevianceAndTheSelectionLoss) {
  const std::vector<double> pred = {1, 2, 2.5, 0};
  const std::vector<float> actual = {0, 2, 5, 3};
  const RegressionMetrics m = EvaluateRegressor(pred, actual);
  const double floor = 1e-3 * (10.0 / 4);
  const double by_hand = 2 * ((0 - (0 - 1)) + (2 * std::log(2 / 2.0) - 0) + (5 * std::log(5 / 2.5) - 2.5) +
                              (3 * std::log(3 / floor) - (3 - floor))) / 4;
  EXPECT_NEAR(m.poisson_deviance, by_hand, 1e-12);
  EXPECT_EQ(RegressionSelectionLoss(m), m.poisson_deviance);
  // Perfect predictions cost nothing; the deviance is the mean's proper score: for
  // amounts {0, 4} any constant c scores 2 [4 log(4 / c) - 4 + 2c] / 2, lowest at c = 2.
  const std::vector<float> two = {0, 4};
  auto constant = [&](double c) { return EvaluateRegressor(std::vector<double>{c, c}, two).poisson_deviance; };
  EXPECT_LT(constant(2.0), constant(1.9));
  EXPECT_LT(constant(2.0), constant(2.1));
  EXPECT_NEAR(EvaluateRegressor(std::vector<double>{1, 2}, std::vector<float>{1, 2}).poisson_deviance, 0, 1e-12);
  // A refund makes it undefined: RMSE chooses.
  const RegressionMetrics net = EvaluateRegressor(pred, std::vector<float>{0, 2, -5, 3});
  EXPECT_TRUE(std::isnan(net.poisson_deviance));
  EXPECT_EQ(RegressionSelectionLoss(net), net.rmse);
  nlohmann::json j = net;
  EXPECT_FALSE(j.contains("poisson_deviance"));
  j = m;
  EXPECT_NEAR(j.at("poisson_deviance").get<double>(), by_hand, 1e-12);
}

// The top decile's share of the amount, by hand; a tie at the cut counts pro rata, so tying
// scores cannot buy a better share than ordering them would give on average.
TEST(MetricsTest, TopShareOfTheAmount) {
  // 20 users, the top 10% is 2 of them: 30 + 10 of a total of 30 + 10 + 5 + 15 = 60.
  std::vector<double> p(20, 0.0);
  std::vector<float> y(20, 0.0f);
  p[0] = 9, y[0] = 30;
  p[1] = 8, y[1] = 10;
  p[2] = 7, y[2] = 5;
  p[3] = 1, y[3] = 15;
  for (int i = 4; i < 20; ++i) p[i] = 0.5 - i * 0.01;
  EXPECT_NEAR(TopShare(p, y, 0.1), 40.0 / 60, 1e-12);
  // Users 1 and 2 tied for second place: the one place left goes half to each.
  p[2] = 8;
  EXPECT_NEAR(TopShare(p, y, 0.1), (30 + 0.5 * 10 + 0.5 * 5) / 60.0, 1e-12);
  // Everyone tied: the share is the fraction itself, whatever the amounts.
  EXPECT_NEAR(TopShare(std::vector<double>(20, 1.0), y, 0.1), 0.1, 1e-12);
  // Nothing to share: undefined, and left out of the JSON.
  EXPECT_TRUE(std::isnan(TopShare(p, std::vector<float>(20, 0.0f), 0.1)));
  const RegressionMetrics m = EvaluateRegressor(p, y);
  EXPECT_NEAR(m.top_decile_share, (30 + 0.5 * 10 + 0.5 * 5) / 60.0, 1e-12);
  nlohmann::json j = m;
  EXPECT_NEAR(j.at("top_decile_share").get<double>(), m.top_decile_share, 1e-12);
  j = EvaluateRegressor(p, std::vector<float>(20, 0.0f));
  EXPECT_FALSE(j.contains("top_decile_share"));
}

TEST(MetricsTest, AverageRanksShareTies) {
  std::vector<double> v = {3, 1, 3, 2};
  std::vector<double> r = AverageRanks(v);
  EXPECT_EQ(r, (std::vector<double>{3.5, 1, 3.5, 2}));
}

TEST(MetricsTest, CurvesHaveExpectedEnds) {
  std::vector<double> s = {0.1, 0.4, 0.35, 0.8};
  std::vector<float> y = {0, 0, 1, 1};
  auto roc = RocCurve(s, y);
  EXPECT_EQ(roc.front().x, 0);
  EXPECT_EQ(roc.back().x, 1);
  EXPECT_EQ(roc.back().y, 1);
  auto lift = LiftCurve(s, y);
  ASSERT_EQ(lift.size(), 100u);
  EXPECT_NEAR(lift.back().y, 1.0, kTol);
  nlohmann::json j = EvaluateClassifier(s, y);
  EXPECT_NEAR(j["roc_auc"].get<double>(), 0.75, kTol);
}

// One bin (every score 0.5): the ECE of calibrated labels is |mean(y) - 0.5|, whose mean
// over 400 users is sqrt(0.25 / 400) sqrt(2 / pi) = 0.0199 (normal approximation).
TEST(MetricsTest, CalibratedEceFloorMatchesTheOneBinFormula) {
  std::vector<double> half(400, 0.5);
  EXPECT_NEAR(CalibratedEceFloor(half, 2000, 3), std::sqrt(0.25 / 400) * std::sqrt(2 / M_PI), 0.0015);
  EXPECT_EQ(CalibratedEceFloor(half, 50, 9), CalibratedEceFloor(half, 50, 9));  // deterministic
  EXPECT_TRUE(std::isnan(CalibratedEceFloor({}, 50, 9)));
}

// The floor falls with the users: about 0.04 on 400, under a fifth of that on 40,000.
TEST(MetricsTest, CalibratedEceFloorFallsWithTheUsers) {
  auto spread = [](size_t n) {
    std::vector<double> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = 0.05 + 0.9 * static_cast<double>(i) / static_cast<double>(n);
    return p;
  };
  const double small = CalibratedEceFloor(spread(400), 200, 1), large = CalibratedEceFloor(spread(40000), 50, 1);
  EXPECT_GT(small, 0.02);
  EXPECT_LT(small, 0.08);
  EXPECT_LT(large, small / 5);
}

}  // namespace
}  // namespace sibyl::ml

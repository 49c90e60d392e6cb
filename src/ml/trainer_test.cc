#include "ml/trainer.h"

#include <gtest/gtest.h>

#include "ml/synthetic.h"

namespace sibyl::ml {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kRows = 2500;
#else
constexpr size_t kRows = 8000;
#endif

TrainOptions OnlyCandidate(ModelType type, int threads) {
  TrainOptions o;
  o.num_threads = threads;
  o.train_linear = type == ModelType::kLinear;
  o.train_random_forest = type == ModelType::kRandomForest;
  o.train_gradient_boosting = type == ModelType::kGradientBoostedTrees;
  o.random_forest.num_trees = 20;
  o.gradient_boosting.max_rounds = 60;
  o.driver_sample_rows = 500;
  return o;
}

SyntheticData Data(bool nonlinear, size_t columns = 30) {
  SyntheticOptions o;
  o.num_rows = kRows;
  o.num_columns = columns;
  o.nonlinear = nonlinear;
  o.missing_rate = 0.05;
  return MakeSynthetic(o);
}

class PerCandidateTest : public ::testing::TestWithParam<ModelType> {};

TEST_P(PerCandidateTest, OneThreadSameSeedGivesIdenticalModelBytes) {
  SyntheticData s = Data(false);
  auto a = Train(s.data, OnlyCandidate(GetParam(), 1));
  auto b = Train(s.data, OnlyCandidate(GetParam(), 1));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok());
  auto bytes_a = a->model->Serialize();
  auto bytes_b = b->model->Serialize();
  ASSERT_TRUE(bytes_a.ok() && bytes_b.ok());
  EXPECT_FALSE(bytes_a->empty());
  EXPECT_TRUE(*bytes_a == *bytes_b);
  EXPECT_EQ(a->calibration.ToJson(), b->calibration.ToJson());
}

TEST_P(PerCandidateTest, ReloadedModelScoresIdentically) {
  SyntheticData s = Data(true);
  auto trained = Train(s.data, OnlyCandidate(GetParam(), 2));
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  auto bytes = trained->model->Serialize();
  ASSERT_TRUE(bytes.ok());
  auto loaded = LoadModel(GetParam(), TaskKind::kClassification, *bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->num_features(), s.data.num_columns());
  auto original = trained->model->PredictMargin(s.data.values);
  auto reloaded = (*loaded)->PredictMargin(s.data.values);
  ASSERT_TRUE(original.ok() && reloaded.ok());
  EXPECT_TRUE(*original == *reloaded);
}

TEST_P(PerCandidateTest, ContributionsPlusBiasEqualRawMargin) {
  SyntheticData s = Data(true);
  auto trained = Train(s.data, OnlyCandidate(GetParam(), 2));
  ASSERT_TRUE(trained.ok()) << trained.status().ToString();
  const size_t p = s.data.num_columns();
  std::span<const float> rows(s.data.values.data(), 300 * p);
  auto margins = trained->model->PredictMargin(rows);
  auto contributions = trained->model->Contributions(rows);
  ASSERT_TRUE(margins.ok() && contributions.ok());
  ASSERT_EQ(contributions->size(), 300 * (p + 1));
  for (size_t r = 0; r < 300; ++r) {
    double sum = 0;
    for (size_t j = 0; j <= p; ++j) sum += (*contributions)[r * (p + 1) + j];
    // Trees accumulate in float; the linear model is exact.
    EXPECT_NEAR(sum, (*margins)[r], 1e-4 * (1 + std::abs((*margins)[r]))) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Candidates, PerCandidateTest,
                         ::testing::Values(ModelType::kLinear, ModelType::kRandomForest,
                                           ModelType::kGradientBoostedTrees),
                         [](const auto& info) { return std::string(ModelTypeName(info.param)); });

TEST(TrainerTest, SelectsTreesWhenSignalIsNonlinear) {
  SyntheticData s = Data(true, 10);
  TrainOptions o = OnlyCandidate(ModelType::kLinear, 2);
  o.train_random_forest = o.train_gradient_boosting = true;
  auto result = Train(s.data, o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->candidates.size(), 3u);
  const auto& linear = result->candidates[0];
  const auto& winner = result->candidates[result->selected];
  EXPECT_NE(winner.type, ModelType::kLinear);
  EXPECT_TRUE(winner.selected);
  EXPECT_LT(winner.metrics.log_loss, linear.metrics.log_loss - 0.01);
  for (const auto& c : result->candidates) {
    EXPECT_TRUE(c.error.empty()) << c.error;
    EXPECT_GT(c.metrics.roc_auc, 0.6);
  }
}

TEST(TrainerTest, CalibratedAndExplainedOnHeldOutUsers) {
  SyntheticData s = Data(false);
  TrainOptions o = OnlyCandidate(ModelType::kLinear, 2);
  o.train_gradient_boosting = true;
  auto result = Train(s.data, o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->num_fit_rows + result->num_validation_rows + result->num_test_rows, kRows);
  EXPECT_EQ(result->test_predictions.size(), result->num_test_rows);
  EXPECT_GT(result->metrics.roc_auc, 0.75);
  // ECE over 10 bins is itself noisy on small test sets (its bias grows like
  // sqrt(bins / n)); the sanitizer build trains on a third of the rows.
  EXPECT_LT(result->metrics.ece, kRows < 5000 ? 0.08 : 0.05);
  EXPECT_FALSE(result->metrics.grade.empty());
  ASSERT_GE(result->drivers.size(), 2u);
  // The two strongest true coefficients are +1.0 (column 0) and -0.8 (column 1).
  EXPECT_EQ(result->drivers[0].feature, "signal_0");
  EXPECT_EQ(result->drivers[0].direction, 1);
  EXPECT_EQ(result->drivers[1].feature, "signal_1");
  EXPECT_EQ(result->drivers[1].direction, -1);
  auto scores = result->Predict(std::span<const float>(s.data.values.data(), 10 * s.data.num_columns()));
  ASSERT_TRUE(scores.ok());
  for (double p : *scores) {
    EXPECT_GT(p, 0);
    EXPECT_LT(p, 1);
  }
}

TEST(TrainerTest, RevenueRegression) {
  SyntheticOptions so;
  so.num_rows = kRows;
  so.num_columns = 20;
  so.kind = TaskKind::kRegression;
  so.intercept = 0;
  SyntheticData s = MakeSynthetic(so);
  TrainOptions o = OnlyCandidate(ModelType::kLinear, 2);
  o.train_random_forest = o.train_gradient_boosting = true;
  auto result = Train(s.data, o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->calibration.is_identity());
  EXPECT_GT(result->regression_metrics.r2, 0.05);
  EXPECT_GT(result->regression_metrics.spearman, 0.3);
  EXPECT_EQ(result->regression_metrics.deciles.size(), 10u);
}

TEST(TrainerTest, OneClassIsAClearError) {
  SyntheticData s = Data(false);
  std::fill(s.data.labels.begin(), s.data.labels.end(), 0.0f);
  auto result = Train(s.data, TrainOptions{});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sibyl::ml

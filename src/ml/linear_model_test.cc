#include "ml/linear_model.h"

#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "ml/synthetic.h"

namespace sibyl::ml {
namespace {

std::vector<uint32_t> AllRows(const Dataset& data) {
  std::vector<uint32_t> rows(data.num_rows());
  std::iota(rows.begin(), rows.end(), 0);
  return rows;
}

TEST(LinearModelTest, RecoversKnownLogisticCoefficients) {
  SyntheticOptions o;
  o.num_rows = 40000;
  o.num_columns = 12;  // 10 signal columns, 1 count column, 1 constant column
  o.intercept = 0;
  SyntheticData s = MakeSynthetic(o);
  LinearOptions options;
  options.num_threads = 2;
  auto model = LinearModel::Train(s.data, AllRows(s.data), {}, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  for (size_t j = 0; j < 10; ++j) {
    // Standardised coefficient = true coefficient x column sd (about 1).
    double raw = (*model)->coefficients()[j] / (*model)->scales()[j];
    EXPECT_NEAR(raw, s.true_coefficients[j], 0.06) << "column " << j;
  }
  EXPECT_EQ((*model)->coefficients()[11], 0.0) << "constant column";
  EXPECT_EQ((*model)->scales()[11], 0.0);
}

TEST(LinearModelTest, SameResultForAnyThreadCount) {
  SyntheticOptions o;
  o.num_rows = 9000;
  o.num_columns = 15;
  o.missing_rate = 0.1;
  SyntheticData s = MakeSynthetic(o);
  LinearOptions one, four;
  one.num_threads = 1;
  four.num_threads = 4;
  auto a = LinearModel::Train(s.data, AllRows(s.data), {}, one);
  auto b = LinearModel::Train(s.data, AllRows(s.data), {}, four);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*(*a)->Serialize(), *(*b)->Serialize());
}

TEST(LinearModelTest, RidgeRecoversLinearAmounts) {
  SyntheticOptions o;
  o.num_rows = 5000;
  o.num_columns = 5;
  Dataset data = MakeSynthetic(o).data;
  data.kind = TaskKind::kRegression;
  for (size_t r = 0; r < data.num_rows(); ++r) {
    data.labels[r] = 100 + 30 * data.row(r)[0] - 10 * data.row(r)[2];
  }
  auto model = LinearModel::Train(data, AllRows(data), {}, LinearOptions{});
  ASSERT_TRUE(model.ok());
  const auto& m = **model;
  EXPECT_NEAR(m.coefficients()[0] / m.scales()[0], 30, 0.05);
  EXPECT_NEAR(m.coefficients()[2] / m.scales()[2], -10, 0.05);
  EXPECT_NEAR(m.coefficients()[1], 0, 0.05);
}

TEST(LinearModelTest, ContributionsSumToMarginAndReloadScoresIdentically) {
  SyntheticOptions o;
  o.num_rows = 2000;
  o.num_columns = 8;
  o.missing_rate = 0.2;
  SyntheticData s = MakeSynthetic(o);
  auto model = LinearModel::Train(s.data, AllRows(s.data), {}, LinearOptions{});
  ASSERT_TRUE(model.ok());
  auto margins = (*model)->PredictMargin(s.data.values);
  auto contributions = (*model)->Contributions(s.data.values);
  ASSERT_TRUE(margins.ok() && contributions.ok());
  const size_t p = s.data.num_columns();
  for (size_t r = 0; r < s.data.num_rows(); ++r) {
    double sum = 0;
    for (size_t j = 0; j <= p; ++j) sum += (*contributions)[r * (p + 1) + j];
    EXPECT_NEAR(sum, (*margins)[r], 1e-9);
  }
  auto bytes = (*model)->Serialize();
  ASSERT_TRUE(bytes.ok());
  auto loaded = LoadModel(ModelType::kLinear, TaskKind::kClassification, *bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*(*loaded)->PredictMargin(s.data.values), *margins);
  EXPECT_FALSE(LoadModel(ModelType::kLinear, TaskKind::kClassification, "{").ok());
}

}  // namespace
}  // namespace sibyl::ml

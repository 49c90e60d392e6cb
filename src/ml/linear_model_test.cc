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
  options.log_transform = false;  // the true coefficients are on the raw scale
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
  LinearOptions options;
  options.log_transform = false;  // the amounts are linear in the raw values
  auto model = LinearModel::Train(data, AllRows(data), {}, options);
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

// Heavy-tailed, signed values with gaps: the model sees sign(x) * log1p(|x|).
SyntheticData HeavyTailed(size_t rows) {
  SyntheticOptions o;
  o.num_rows = rows;
  o.num_columns = 8;
  o.missing_rate = 0.1;
  SyntheticData s = MakeSynthetic(o);
  for (size_t r = 0; r < s.data.num_rows(); ++r) {
    float* x = s.data.values.data() + r * s.data.num_columns();
    x[0] = std::exp(3 * x[0]);  // NaN stays NaN
    x[1] = x[1] * 1000;
  }
  return s;
}

TEST(LinearModelTest, LogTransformRoundTripsAndPredictsIdentically) {
  SyntheticData s = HeavyTailed(3000);
  LinearOptions options;
  options.num_threads = 1;
  ASSERT_TRUE(options.log_transform) << "on by default";
  auto model = LinearModel::Train(s.data, AllRows(s.data), {}, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const LinearModel& m = **model;
  EXPECT_EQ(m.training_summary().at("log_transform"), true);
  auto bytes = m.Serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(nlohmann::json::parse(*bytes).at("log_transform"), true);
  auto loaded = LinearModel::Load(*bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*(*loaded)->Serialize(), *bytes);
  auto before = m.PredictMargin(s.data.values);
  auto after = (*loaded)->PredictMargin(s.data.values);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_TRUE(*before == *after);

  // The margin is the linear form of the transformed values (NaN: left out, i.e. the mean).
  const size_t p = s.data.num_columns();
  for (size_t r = 0; r < 50; ++r) {
    const float* x = s.data.row(r);
    double margin = m.intercept();
    for (size_t j = 0; j < p; ++j) {
      if (m.scales()[j] <= 0 || std::isnan(x[j])) continue;
      const double v = std::copysign(std::log1p(std::fabs(x[j])), x[j]);
      margin += m.coefficients()[j] * (v - m.means()[j]) / m.scales()[j];
    }
    EXPECT_NEAR((*before)[r], margin, 1e-6 * (1 + std::abs(margin))) << "row " << r;
  }

  // A model written before the option existed (no "log_transform") reads raw values.
  nlohmann::json old = nlohmann::json::parse(*bytes);
  old.erase("log_transform");
  auto raw = LinearModel::Load(old.dump());
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(nlohmann::json::parse(*(*raw)->Serialize()).at("log_transform"), false);
  EXPECT_NE(*(*raw)->PredictMargin(s.data.values), *before);

  // Off, the fit is on the raw scale and says so.
  options.log_transform = false;
  auto plain = LinearModel::Train(s.data, AllRows(s.data), {}, options);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->training_summary().at("log_transform"), false);
  EXPECT_NE((*plain)->means()[0], m.means()[0]);
}

TEST(LinearModelTest, ConvergenceIsReported) {
  SyntheticData s = HeavyTailed(3000);
  LinearOptions options;
  options.num_threads = 1;
  auto converged = LinearModel::Train(s.data, AllRows(s.data), {}, options);
  ASSERT_TRUE(converged.ok());
  const nlohmann::json& summary = (*converged)->training_summary();
  ASSERT_TRUE(summary.contains("converged")) << summary.dump();
  EXPECT_EQ(summary.at("converged"), true) << summary.dump();
  EXPECT_LT(summary.at("iterations").get<int>(), options.max_iterations);
  options.max_iterations = 2;
  auto capped = LinearModel::Train(s.data, AllRows(s.data), {}, options);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ((*capped)->training_summary().at("converged"), false) << (*capped)->training_summary().dump();
}

}  // namespace
}  // namespace sibyl::ml

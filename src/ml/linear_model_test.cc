#include "ml/linear_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "ml/synthetic.h"
#include "sim/rng.h"

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
  options.amount_link = LinearOptions::AmountLink::kIdentity;
  auto model = LinearModel::Train(data, AllRows(data), {}, options);
  ASSERT_TRUE(model.ok());
  const auto& m = **model;
  EXPECT_FALSE(m.log_link());
  EXPECT_EQ(m.training_summary().at("link"), "identity");
  EXPECT_NEAR(m.coefficients()[0] / m.scales()[0], 30, 0.05);
  EXPECT_NEAR(m.coefficients()[2] / m.scales()[2], -10, 0.05);
  EXPECT_NEAR(m.coefficients()[1], 0, 0.05);
}

// Spend is multiplicative and often zero: amounts whose mean is exp(0.5 + 0.8 x0 - 0.5 x2),
// zero for half of the rows (the rest spend a Gamma(4) amount scaled up to match). The log link (the
// default for amounts >= 0) recovers the multiplicative coefficients; least squares
// cannot, as the mean is not linear in x.
Dataset MultiplicativeAmounts(size_t rows) {
  SyntheticOptions o;
  o.num_rows = rows;
  o.num_columns = 5;
  Dataset data = MakeSynthetic(o).data;
  data.kind = TaskKind::kRegression;
  sim::Rng rng(12345, 0);  // the simulator's portable generator: the same draws everywhere
  for (size_t r = 0; r < data.num_rows(); ++r) {
    const double mean = std::exp(0.5 + 0.8 * data.row(r)[0] - 0.5 * data.row(r)[2]);
    // A buyer (half) spends a Gamma(4) amount with mean `mean / 0.5`.
    const double spend = rng.Gamma(4) / 4 * mean / 0.5;
    data.labels[r] = rng.Bernoulli(0.5) ? static_cast<float>(spend) : 0.0f;
  }
  return data;
}

TEST(LinearModelTest, LogLinkRecoversMultiplicativeAmounts) {
  Dataset data = MultiplicativeAmounts(40000);
  LinearOptions options;
  options.log_transform = false;  // the truth is in the raw values
  options.num_threads = 2;
  auto model = LinearModel::Train(data, AllRows(data), {}, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const LinearModel& m = **model;
  ASSERT_TRUE(m.log_link()) << "amounts >= 0: the log link by default";
  EXPECT_EQ(m.training_summary().at("link"), "log");
  EXPECT_EQ(m.training_summary().at("converged"), true) << m.training_summary().dump();
  EXPECT_NEAR(m.coefficients()[0] / m.scales()[0], 0.8, 0.05);
  EXPECT_NEAR(m.coefficients()[2] / m.scales()[2], -0.5, 0.05);
  EXPECT_NEAR(m.coefficients()[1] / m.scales()[1], 0.0, 0.05);
  // Predictions are amounts (exp of the linear form) whose mean is the labels' mean
  // (the Poisson score equation for the intercept, up to the penalty).
  auto predicted = m.PredictMargin(data.values);
  ASSERT_TRUE(predicted.ok());
  double sum_predicted = 0, sum_labels = 0;
  for (size_t r = 0; r < data.num_rows(); ++r) {
    ASSERT_GT((*predicted)[r], 0);
    sum_predicted += (*predicted)[r];
    sum_labels += data.labels[r];
  }
  EXPECT_NEAR(sum_predicted / sum_labels, 1.0, 1e-3);

  // The same data fitted by least squares: the multiplicative truth is far from a line,
  // so its predictions are worse in squared error, the criterion it minimises itself.
  options.amount_link = LinearOptions::AmountLink::kIdentity;
  auto line = LinearModel::Train(data, AllRows(data), {}, options);
  ASSERT_TRUE(line.ok());
  auto predicted_by_line = (*line)->PredictMargin(data.values);
  double squared_log = 0, squared_line = 0;
  for (size_t r = 0; r < data.num_rows(); ++r) {
    squared_log += std::pow((*predicted)[r] - data.labels[r], 2);
    squared_line += std::pow((*predicted_by_line)[r] - data.labels[r], 2);
  }
  EXPECT_LT(squared_log, squared_line);
}

TEST(LinearModelTest, LogLinkContributionsAddUpToTheAmountAndReload) {
  Dataset data = MultiplicativeAmounts(3000);
  auto model = LinearModel::Train(data, AllRows(data), {}, LinearOptions{});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const LinearModel& m = **model;
  ASSERT_TRUE(m.log_link());
  auto amounts = m.PredictMargin(data.values);
  auto contributions = m.Contributions(data.values);
  ASSERT_TRUE(amounts.ok() && contributions.ok());
  const size_t p = data.num_columns();
  for (size_t r = 0; r < 200; ++r) {
    const double* c = contributions->data() + r * (p + 1);
    double sum = 0, log_scale_total = 0;
    for (size_t j = 0; j <= p; ++j) sum += c[j];
    EXPECT_NEAR(sum, (*amounts)[r], 1e-9 * (*amounts)[r]) << "row " << r;
    EXPECT_NEAR(c[p], std::exp(m.intercept()), 1e-12 * std::exp(m.intercept()));
    // Each term keeps the sign of its log-scale term (a feature that lowers the log of
    // the amount lowers the amount).
    const float* x = data.row(r);
    for (size_t j = 0; j < p; ++j) {
      if (m.scales()[j] <= 0 || std::isnan(x[j])) continue;
      const double term = m.coefficients()[j] * (std::copysign(std::log1p(std::fabs(x[j])), x[j]) - m.means()[j]) /
                          m.scales()[j];
      log_scale_total += term;
      if (term != 0) EXPECT_EQ(term > 0, c[j] > 0) << "row " << r << " column " << j;
    }
    EXPECT_NEAR(std::log((*amounts)[r]), m.intercept() + log_scale_total, 1e-9 * (1 + std::abs(log_scale_total)));
  }
  auto bytes = m.Serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(nlohmann::json::parse(*bytes).at("link"), "log");
  auto loaded = LoadModel(ModelType::kLinear, TaskKind::kRegression, *bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*(*loaded)->PredictMargin(data.values), *amounts);
  // A model written before links existed is an identity-link model.
  nlohmann::json old = nlohmann::json::parse(*bytes);
  old.erase("link");
  auto identity = LinearModel::Load(old.dump());
  ASSERT_TRUE(identity.ok());
  EXPECT_FALSE((*identity)->log_link());
  old["link"] = "sqrt";
  EXPECT_FALSE(LinearModel::Load(old.dump()).ok());
}

// A log-link model predicts at most the largest amount it predicts for a row it was fitted
// on: a user beyond every fit row is not carried through the exponential to hundreds of
// times any amount seen (docs/ML.md, "Amounts").
TEST(LinearModelTest, LogLinkAmountsStopAtTheLargestFittedOne) {
  Dataset data = MultiplicativeAmounts(3000);
  LinearOptions options;
  options.log_transform = false;
  auto model = LinearModel::Train(data, AllRows(data), {}, options);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const LinearModel& m = **model;
  ASSERT_TRUE(m.log_link());
  auto fitted = m.PredictMargin(data.values);
  ASSERT_TRUE(fitted.ok());
  const double largest = *std::max_element(fitted->begin(), fitted->end());
  EXPECT_NEAR(std::exp(m.max_margin()), largest, 1e-9 * largest);
  EXPECT_NEAR(m.training_summary().at("max_amount").get<double>(), largest, 1e-9 * largest);

  // x0 = 40 standard deviations out: the linear form says exp(0.5 + 0.8 * 40) ~ 1e14.
  std::vector<float> beyond(data.row(0), data.row(0) + data.num_columns());
  beyond[0] = 40;
  beyond[2] = 0;
  auto amount = m.PredictMargin(beyond);
  auto contributions = m.Contributions(beyond);
  ASSERT_TRUE(amount.ok() && contributions.ok());
  EXPECT_NEAR((*amount)[0], largest, 1e-9 * largest);
  double sum = 0;
  for (double c : *contributions) sum += c;
  EXPECT_NEAR(sum, (*amount)[0], 1e-9 * largest) << "the explanation adds up to the bounded amount";

  auto bytes = m.Serialize();
  ASSERT_TRUE(bytes.ok());
  auto loaded = LinearModel::Load(*bytes);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)->max_margin(), m.max_margin());
  EXPECT_EQ(*(*loaded)->PredictMargin(beyond), *amount);
  // A model written before the bound keeps the old limit (e^700).
  nlohmann::json old = nlohmann::json::parse(*bytes);
  old.erase("max_margin");
  auto unbounded = LinearModel::Load(old.dump());
  ASSERT_TRUE(unbounded.ok());
  EXPECT_GT((*(*unbounded)->PredictMargin(beyond))[0], 1e6 * largest);
}

TEST(LinearModelTest, AmountsBelowZeroKeepTheIdentityLink) {
  Dataset data = MultiplicativeAmounts(2000);
  data.labels[7] = -25;  // a refund: net amounts can be negative, a log link cannot fit them
  auto automatic = LinearModel::Train(data, AllRows(data), {}, LinearOptions{});
  ASSERT_TRUE(automatic.ok());
  EXPECT_FALSE((*automatic)->log_link());
  EXPECT_EQ((*automatic)->training_summary().at("link"), "identity");
  LinearOptions forced;
  forced.amount_link = LinearOptions::AmountLink::kLog;
  auto refused = LinearModel::Train(data, AllRows(data), {}, forced);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("log link"), std::string::npos) << refused.status().ToString();
  // Classification ignores the option.
  Dataset labels = MakeSynthetic(SyntheticOptions{.num_rows = 500, .num_columns = 4}).data;
  auto classifier = LinearModel::Train(labels, AllRows(labels), {}, LinearOptions{});
  ASSERT_TRUE(classifier.ok());
  EXPECT_FALSE((*classifier)->log_link());
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

#include "ml/trainer.h"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "ml/blend_model.h"
#include "ml/linear_model.h"
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
  // These tests are about the single fit / validation / test split (8000 rows would
  // otherwise go through k-fold cross-validation: cross_validation_test.cc).
  o.cross_validation_below_users = 0;
  o.cross_validation_below_cells = 0;
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
  o.consider_blend = false;  // trees against the linear model alone
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
  // The held-out rows are the split's test rows (the same split a benchmark recomputes).
  SplitOptions split_options;
  split_options.seed = o.seed;
  auto split = SplitByUser(s.data, split_options);
  ASSERT_TRUE(split.ok());
  EXPECT_EQ(result->test_rows, split->test_rows);
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

// --- k-fold cross-validation by user (cross_validation.cc) ---

// `users` users at two stacked cutoffs: rows 2u (group 0, the newest cutoff) and 2u + 1.
SyntheticData StackedData(size_t users, bool with_groups) {
  SyntheticOptions o;
  o.num_rows = 2 * users;
  o.num_columns = 12;
  o.rows_per_user = 2;
  o.missing_rate = 0.05;
  o.intercept = -1.0;
  SyntheticData s = MakeSynthetic(o);
  if (with_groups) {
    s.data.row_groups.resize(s.data.num_rows());
    for (size_t r = 0; r < s.data.num_rows(); ++r) s.data.row_groups[r] = static_cast<uint32_t>(r % 2);
  }
  return s;
}

TrainOptions SmallCrossValidation(int threads) {
  TrainOptions o;
  o.num_threads = threads;
  o.train_random_forest = false;
  o.gradient_boosting.max_rounds = 25;
  o.driver_sample_rows = 200;
  o.cross_validation_folds = 4;
  return o;
}

TEST(CrossValidationTest, EveryUserIsHeldOutOnceAndCalibrationUsesTheNewestGroup) {
  SyntheticData s = StackedData(1000, true);
  auto result = TrainCrossValidated(s.data, SmallCrossValidation(2));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  std::vector<float> newest_labels;
  std::vector<uint32_t> newest_rows;
  for (uint32_t r = 0; r < s.data.num_rows(); ++r)
    if (s.data.row_groups[r] == 0) {
      newest_labels.push_back(s.data.labels[r]);
      newest_rows.push_back(r);
    }
  EXPECT_EQ(result->num_users, 1000u);
  EXPECT_EQ(result->test_rows, newest_rows);  // which rows the predictions are for
  // The folds the benchmarks fit their baselines on: a user's rows share one, every fold
  // holds about a quarter of the users.
  std::vector<uint8_t> fold = CrossValidationFolds(s.data, 4, SmallCrossValidation(2).seed);
  ASSERT_EQ(fold.size(), s.data.num_rows());
  std::map<uint64_t, uint8_t> fold_of_user;
  std::vector<size_t> users_in_fold(4, 0);
  for (size_t r = 0; r < s.data.num_rows(); ++r) {
    ASSERT_LT(fold[r], 4);
    auto [it, added] = fold_of_user.emplace(s.data.user_key(r), fold[r]);
    EXPECT_EQ(it->second, fold[r]) << "row " << r;
    if (added) ++users_in_fold[fold[r]];
  }
  for (size_t n : users_in_fold) EXPECT_NEAR(static_cast<double>(n), 250.0, 2.0);
  // One out-of-fold prediction per group-0 row, in row order, each from a model that did
  // not see the row's user (an unscored row would be NaN).
  EXPECT_EQ(result->num_test_rows, newest_labels.size());
  ASSERT_EQ(result->test_predictions.size(), newest_labels.size());
  EXPECT_EQ(result->test_labels, newest_labels);
  for (double p : result->test_predictions) {
    ASSERT_TRUE(std::isfinite(p));
    EXPECT_GE(p, 0);
    EXPECT_LE(p, 1);
  }
  EXPECT_EQ(result->parameters["cross_validation"]["calibrated_on"], "newest cutoff");
  EXPECT_EQ(result->parameters["cross_validation"]["calibration_rows"], newest_labels.size());
  EXPECT_EQ(result->parameters["cross_validation"]["folds"], 4);
  EXPECT_GT(result->metrics.roc_auc, 0.75);
  EXPECT_FALSE(result->drivers.empty());

  // Without groups every row is a calibration row, each predicted out of fold once.
  SyntheticData ungrouped = StackedData(1000, false);
  auto all = TrainCrossValidated(ungrouped.data, SmallCrossValidation(2));
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->num_test_rows, ungrouped.data.num_rows());
  EXPECT_EQ(all->test_predictions.size(), ungrouped.data.num_rows());
  EXPECT_EQ(all->test_labels, ungrouped.data.labels);
  EXPECT_EQ(all->parameters["cross_validation"]["calibrated_on"], "every cutoff");
}

// The single split calibrates on the newest cutoff's validation rows: when the stacked
// cutoffs' base rate differs from the newest one's, the calibrated scores of the newest
// rows average the newest base rate, not the mixture's.
TEST(TrainerTest, SingleSplitCalibratesOnTheNewestCutoff) {
  SyntheticData s = StackedData(6000, true);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t r = 0; r < s.data.num_rows(); ++r)  // the newest cutoff: ~20 points more positives
    if (s.data.row_groups[r] == 0 && s.data.labels[r] < 0.5f && u(rng) < 0.3) s.data.labels[r] = 1;
  TrainOptions o = SmallCrossValidation(2);
  o.cross_validation_below_users = o.cross_validation_below_cells = 0;  // the single split
  auto result = Train(s.data, o);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->parameters["calibration"]["calibrated_on"], "newest cutoff");
  double newest_sum = 0, newest_labels = 0, all_labels = 0;
  size_t newest = 0;
  for (size_t i = 0; i < result->test_rows.size(); ++i) {
    all_labels += result->test_labels[i];
    if (s.data.row_groups[result->test_rows[i]] != 0) continue;
    newest_sum += result->test_predictions[i];
    newest_labels += result->test_labels[i];
    ++newest;
  }
  ASSERT_GT(newest, 500u);
  const double newest_rate = newest_labels / newest, all_rate = all_labels / result->test_rows.size();
  EXPECT_GT(newest_rate - all_rate, 0.05);  // the shift is there
  EXPECT_NEAR(newest_sum / newest, newest_rate, 0.03);
  for (const auto& c : result->candidates) {
    if (!c.error.empty()) continue;
    const std::string how = c.training.value("calibration", "");
    EXPECT_TRUE(how == "platt" || how == "isotonic") << ModelTypeName(c.type) << ": " << how;
  }
}

// The single split offers what the cross-validated path does: the linear model on the
// outcome family's columns, and the blend of the two best candidates. Whichever wins,
// the returned model and calibration reproduce the reported test predictions (for the
// blend: its parts, assembled after selection, with equal weights).
TEST(TrainerTest, SingleSplitOffersTheOutcomeLinearAndTheBlendOfTheTwoBest) {
  int blend_wins = 0;
  for (uint64_t seed : {1, 2, 3}) {
    SyntheticData s = StackedData(7000, true);
    TrainOptions o = SmallCrossValidation(2);
    o.cross_validation_below_users = o.cross_validation_below_cells = 0;  // the single split
    o.outcome_columns = {0, 1, 2};
    o.seed = seed;
    o.refit_below_rows = 0;  // the chosen model itself (the refit: the next test)
    auto result = Train(s.data, o);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    std::vector<size_t> learners;  // every candidate but the blend, by test log loss
    const CandidateResult* blend = nullptr;
    bool outcome_linear = false;
    for (size_t i = 0; i < result->candidates.size(); ++i) {
      const CandidateResult& c = result->candidates[i];
      ASSERT_TRUE(c.error.empty()) << c.error;
      outcome_linear = outcome_linear || c.type == ModelType::kOutcomeLinear;
      if (c.type == ModelType::kBlend) blend = &c;
      else learners.push_back(i);
    }
    EXPECT_TRUE(outcome_linear);
    ASSERT_NE(blend, nullptr);
    std::stable_sort(learners.begin(), learners.end(), [&](size_t a, size_t b) {
      return result->candidates[a].metrics.log_loss < result->candidates[b].metrics.log_loss;
    });
    EXPECT_EQ(blend->training["parts"][0], ModelTypeName(result->candidates[learners[0]].type));
    EXPECT_EQ(blend->training["parts"][1], ModelTypeName(result->candidates[learners[1]].type));
    EXPECT_EQ(result->model->type(), result->candidates[result->selected].type);
    blend_wins += result->model->type() == ModelType::kBlend;

    std::vector<float> rows;
    for (uint32_t r : result->test_rows) rows.insert(rows.end(), s.data.row(r), s.data.row(r) + s.data.num_columns());
    auto predicted = result->Predict(rows);
    ASSERT_TRUE(predicted.ok()) << predicted.status().ToString();
    ASSERT_EQ(predicted->size(), result->test_predictions.size());
    for (size_t i = 0; i < predicted->size(); ++i)
      ASSERT_NEAR((*predicted)[i], result->test_predictions[i], 1e-6)
          << "seed " << seed << ", winner " << ModelTypeName(result->model->type()) << ", test row " << i;
  }
  EXPECT_GT(blend_wins, 0) << "the blend never won: its assembly after selection went untested";
}

// Below `refit_below_rows` the chosen model is fitted again on the fit and the held-out
// users (docs/ML.md, "The final model on mid-size data"). Here one column tells the label
// for the held-out users only and is noise for everyone else: the model chosen on the fit
// users cannot have learned it, the refitted one must have. The reported metrics stay
// those of the model that did not see the held-out users.
TEST(TrainerTest, SingleSplitRefitsTheWinnerOnTheHeldOutUsersToo) {
  SyntheticData s = Data(false, 10);
  const size_t p = s.data.num_columns(), column = p - 1;
  SplitOptions split_options;
  auto split = SplitByUser(s.data, split_options);  // TrainOptions' default seed, as Train's
  ASSERT_TRUE(split.ok());
  std::vector<uint8_t> held_out(s.data.num_rows(), 0);
  for (uint32_t r : split->test_rows) held_out[r] = 1;
  // For everyone else the column alternates within each class, so that it carries no
  // information about the label there at any data size (the sanitizer build has 2,500 rows).
  size_t seen[2] = {0, 0};
  for (size_t r = 0; r < s.data.num_rows(); ++r) {
    const bool positive = s.data.labels[r] > 0.5f;
    const bool up = held_out[r] ? positive : (seen[positive]++ % 2 == 0);
    s.data.values[r * p + column] = up ? 1.0f : -1.0f;
  }
  TrainOptions o = OnlyCandidate(ModelType::kLinear, 2);
  o.refit_below_rows = 0;
  auto chosen = Train(s.data, o);
  o.refit_below_rows = s.data.num_rows() + 1;
  auto refitted = Train(s.data, o);
  ASSERT_TRUE(chosen.ok() && refitted.ok());
  EXPECT_EQ(chosen->parameters["final_model"]["fitted_on"], "fit users");
  const nlohmann::json& final_model = refitted->parameters["final_model"];
  EXPECT_EQ(final_model["fitted_on"], "fit and held-out users");
  EXPECT_EQ(final_model["rows"], split->fit_rows.size() + split->test_rows.size());
  EXPECT_TRUE(refitted->candidates[refitted->selected].training.contains("final"));
  EXPECT_EQ(chosen->metrics.roc_auc, refitted->metrics.roc_auc);
  EXPECT_EQ(chosen->test_predictions, refitted->test_predictions);

  // How much the column moves a row's margin under each final model.
  auto effect = [&](const Model& model) {
    std::vector<float> row(s.data.row(0), s.data.row(0) + p);
    row[column] = 1.0f;
    double up = model.PredictMargin(row).value()[0];
    row[column] = -1.0f;
    return up - model.PredictMargin(row).value()[0];
  };
  EXPECT_LT(std::abs(effect(*chosen->model)), 0.25);  // measured: 0.02 (8,000 rows), -0.02 (2,500)
  EXPECT_GT(effect(*refitted->model), 0.6);            // measured: 0.96 and 0.93
}

TEST(CrossValidationTest, TooFewNewestPositivesCalibrateOnEveryRow) {
  SyntheticData s = StackedData(1000, true);
  size_t kept = 0;
  for (size_t r = 0; r < s.data.num_rows(); ++r)
    if (s.data.row_groups[r] == 0 && s.data.labels[r] > 0 && kept++ >= 5) s.data.labels[r] = 0;
  auto result = TrainCrossValidated(s.data, SmallCrossValidation(2));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->parameters["cross_validation"]["calibrated_on"], "every cutoff");
  EXPECT_EQ(result->test_predictions.size(), s.data.num_rows());
}

TEST(CrossValidationTest, OneThreadSameSeedGivesIdenticalModelBytes) {
  SyntheticData s = StackedData(800, true);
  auto a = TrainCrossValidated(s.data, SmallCrossValidation(1));
  auto b = TrainCrossValidated(s.data, SmallCrossValidation(1));
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  auto bytes_a = a->model->Serialize();
  auto bytes_b = b->model->Serialize();
  ASSERT_TRUE(bytes_a.ok() && bytes_b.ok());
  EXPECT_FALSE(bytes_a->empty());
  EXPECT_TRUE(*bytes_a == *bytes_b);
  EXPECT_EQ(a->calibration.ToJson(), b->calibration.ToJson());
  EXPECT_EQ(a->test_predictions, b->test_predictions);
  EXPECT_EQ(a->selected, b->selected);
}

// The final model of cross-validated training is the mean of the winner's fold models
// (docs/ML.md, "Small data"): one part per fold, equal weights, each a model of the winner's
// kind that learned from other users than the rest, and the margin is the parts' mean.
TEST(CrossValidationTest, TheFinalModelIsTheMeanOfTheWinnersFoldModels) {
  SyntheticData s = StackedData(800, false);
  for (ModelType type : {ModelType::kLinear, ModelType::kGradientBoostedTrees}) {
    TrainOptions o = SmallCrossValidation(1);
    o.train_linear = type == ModelType::kLinear;
    o.train_gradient_boosting = type == ModelType::kGradientBoostedTrees;
    auto result = TrainCrossValidated(s.data, o);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    ASSERT_EQ(result->candidates[result->selected].type, type);
    ASSERT_EQ(result->model->type(), ModelType::kBlend);
    const auto& parts = static_cast<const BlendModel&>(*result->model).parts();
    ASSERT_EQ(parts.size(), 4u);
    std::vector<float> rows(s.data.values.begin(), s.data.values.begin() + 200 * s.data.num_columns());
    auto final_margins = result->model->PredictMargin(rows);
    ASSERT_TRUE(final_margins.ok());
    std::vector<double> mean(200, 0);
    std::set<std::string> distinct;
    for (const BlendModel::Part& part : parts) {
      EXPECT_EQ(part.model->type(), type);
      EXPECT_DOUBLE_EQ(part.weight, 0.25);
      auto margins = part.model->PredictMargin(rows);
      ASSERT_TRUE(margins.ok());
      for (size_t i = 0; i < mean.size(); ++i) mean[i] += (*margins)[i] / 4;
      distinct.insert(*part.model->Serialize());
    }
    EXPECT_EQ(distinct.size(), 4u) << "each fold model learned from other users";
    for (size_t i = 0; i < mean.size(); ++i) EXPECT_NEAR((*final_margins)[i], mean[i], 1e-9) << i;
    EXPECT_EQ(result->parameters["final_model"]["fitted_on"], "fold models");
    EXPECT_EQ(result->candidates[result->selected].training["final"]["fold_models"], 4);
  }
  // Amounts too; each log-link fold model stops at its largest fitted amount
  // (linear_model.h), so the mean does not either exceed the largest of them.
  SyntheticData amounts = StackedData(800, false);
  amounts.data.kind = TaskKind::kRegression;
  for (size_t r = 0; r < amounts.data.num_rows(); ++r) amounts.data.labels[r] *= 10.0f + static_cast<float>(r % 7);
  TrainOptions o = SmallCrossValidation(1);
  o.train_gradient_boosting = false;
  auto revenue = TrainCrossValidated(amounts.data, o);
  ASSERT_TRUE(revenue.ok()) << revenue.status().ToString();
  ASSERT_EQ(revenue->model->type(), ModelType::kBlend);
  double bound = 0;
  for (const BlendModel::Part& part : static_cast<const BlendModel&>(*revenue->model).parts()) {
    const auto* linear = dynamic_cast<const LinearModel*>(part.model.get());
    ASSERT_NE(linear, nullptr);
    ASSERT_TRUE(linear->log_link());
    bound = std::max(bound, std::exp(linear->max_margin()));
  }
  // A row far out along the first fold model's positive coefficients: unbounded, that
  // model alone would predict far beyond every fold model's largest fitted amount.
  const auto& first = static_cast<const LinearModel&>(*static_cast<const BlendModel&>(*revenue->model).parts()[0].model);
  std::vector<float> far(amounts.data.num_columns(), 0.0f);
  for (size_t j = 0; j < far.size(); ++j) far[j] = first.coefficients()[j] > 0 ? 1e6f : 0.0f;
  nlohmann::json unbounded_json = nlohmann::json::parse(*first.Serialize());
  unbounded_json.erase("max_margin");
  auto unbounded = LinearModel::Load(unbounded_json.dump());
  ASSERT_TRUE(unbounded.ok());
  ASSERT_GT((*(*unbounded)->PredictMargin(far))[0], 10 * bound) << "the row is beyond the bound";
  auto amount = revenue->model->PredictMargin(far);
  ASSERT_TRUE(amount.ok());
  EXPECT_LE((*amount)[0], bound * (1 + 1e-12));
  EXPECT_EQ(revenue->parameters["final_model"]["fitted_on"], "fold models");
}

// Without stacked cutoffs, the reported out-of-fold log loss is the one selection compares.
TEST(CrossValidationTest, SelectsTheLowestOutOfFoldLogLoss) {
  SyntheticData s = StackedData(1000, false);
  auto result = TrainCrossValidated(s.data, SmallCrossValidation(2));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_GE(result->candidates.size(), 2u);
  ASSERT_LT(result->selected, result->candidates.size());
  const CandidateResult& winner = result->candidates[result->selected];
  EXPECT_TRUE(winner.selected);
  size_t selected_flags = 0;
  for (const CandidateResult& c : result->candidates) {
    selected_flags += c.selected;
    if (!c.error.empty()) continue;
    EXPECT_FALSE(c.selection_loss.has_value()) << ModelTypeName(c.type);
    EXPECT_TRUE(std::isfinite(c.metrics.log_loss)) << ModelTypeName(c.type);
    EXPECT_LE(winner.metrics.log_loss, c.metrics.log_loss) << ModelTypeName(c.type);
  }
  EXPECT_EQ(selected_flags, 1u);
  EXPECT_EQ(result->metrics.log_loss, winner.metrics.log_loss);
  EXPECT_EQ(result->parameters["selected"], ModelTypeName(winner.type));
}

// With stacked cutoffs the winner is chosen on every row (docs/ML.md, "Small data"): here
// the newest cutoff's labels are coin flips, so the newest rows alone cannot tell the
// candidates apart, while the older cutoff's rows carry the signal. The reported metrics
// stay the newest cutoff's.
TEST(CrossValidationTest, StackedCutoffsSelectOnEveryRow) {
  SyntheticData s = StackedData(1500, true);
  std::mt19937_64 rng(7);
  std::bernoulli_distribution coin(0.5);
  for (size_t r = 0; r < s.data.num_rows(); ++r)
    if (s.data.row_groups[r] == 0) s.data.labels[r] = coin(rng) ? 1.0f : 0.0f;
  TrainOptions options = SmallCrossValidation(1);
  options.train_random_forest = true;
  auto result = TrainCrossValidated(s.data, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->parameters["cross_validation"]["selected_on"], "every cutoff");
  EXPECT_EQ(result->parameters["cross_validation"]["calibrated_on"], "newest cutoff");
  const CandidateResult& winner = result->candidates[result->selected];
  ASSERT_TRUE(winner.selection_loss.has_value());
  nlohmann::json table = CandidatesToJson(*result);
  for (size_t c = 0; c < result->candidates.size(); ++c) {
    const CandidateResult& candidate = result->candidates[c];
    if (!candidate.error.empty()) continue;
    ASSERT_TRUE(candidate.selection_loss.has_value()) << ModelTypeName(candidate.type);
    EXPECT_LE(*winner.selection_loss, *candidate.selection_loss) << ModelTypeName(candidate.type);
    EXPECT_EQ(table[c]["selection_loss"].get<double>(), *candidate.selection_loss);
    // Every row, half of them with a signal: below the coin flips' log(2) of the newest rows.
    EXPECT_LT(*candidate.selection_loss, candidate.metrics.log_loss) << ModelTypeName(candidate.type);
  }
  // The newest rows alone would have chosen another candidate: the data tells the two
  // rules apart, so this test fails if selection goes back to the newest rows.
  bool newest_prefers_another = false;
  for (const CandidateResult& candidate : result->candidates)
    newest_prefers_another |= candidate.error.empty() && candidate.metrics.log_loss < winner.metrics.log_loss;
  EXPECT_TRUE(newest_prefers_another);
  EXPECT_EQ(result->test_rows.size(), 1500u);  // metrics: the newest cutoff's rows
  EXPECT_NEAR(result->metrics.roc_auc, 0.5, 0.06);
}

// With the outcome family's columns named, cross-validated training adds the linear model
// on those columns alone: it competes like the others, ignores every other column, and
// reloads under its own name.
TEST(CrossValidationTest, OutcomeLinearLearnsFromTheOutcomeColumnsOnly) {
  SyntheticData s = StackedData(1000, true);
  TrainOptions options = SmallCrossValidation(1);
  const size_t p = s.data.num_columns();
  options.outcome_columns = {0, 1, 2};
  auto result = TrainCrossValidated(s.data, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const CandidateResult* outcome = nullptr;
  for (const CandidateResult& c : result->candidates)
    if (c.type == ModelType::kOutcomeLinear) outcome = &c;
  ASSERT_NE(outcome, nullptr);
  EXPECT_TRUE(outcome->error.empty()) << outcome->error;
  EXPECT_TRUE(std::isfinite(outcome->metrics.log_loss));

  std::vector<uint32_t> rows(s.data.num_rows());
  for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<uint32_t>(r);
  LinearOptions linear;
  linear.only_columns = {0, 1, 2};
  auto model = LinearModel::Train(s.data, rows, {}, linear);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  for (size_t j = 0; j < p; ++j) {
    if (j < 3) EXPECT_NE((*model)->coefficients()[j], 0.0) << j;
    else EXPECT_EQ((*model)->coefficients()[j], 0.0) << j;
  }
  (*model)->set_type(ModelType::kOutcomeLinear);
  auto bytes = (*model)->Serialize();
  ASSERT_TRUE(bytes.ok());
  auto loaded = LoadModel(ModelType::kOutcomeLinear, s.data.kind, *bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->type(), ModelType::kOutcomeLinear);
  EXPECT_EQ(ParseModelType("outcome_linear").value(), ModelType::kOutcomeLinear);
  auto a = (*model)->PredictMargin(s.data.values), b = (*loaded)->PredictMargin(s.data.values);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);

  // Without the columns there is no such candidate.
  auto without = TrainCrossValidated(s.data, SmallCrossValidation(1));
  ASSERT_TRUE(without.ok());
  for (const CandidateResult& c : without->candidates) EXPECT_NE(c.type, ModelType::kOutcomeLinear);
}

TEST(CrossValidationTest, TrainUsesItBelowTheUserThresholdOnly) {
  SyntheticData s = StackedData(600, false);
  TrainOptions o = SmallCrossValidation(2);
  o.train_gradient_boosting = false;
  o.cross_validation_below_cells = 0;  // the users decide (the cells: the next test)
  o.cross_validation_below_users = 601;  // 600 users
  auto below = Train(s.data, o);
  ASSERT_TRUE(below.ok()) << below.status().ToString();
  EXPECT_TRUE(below->parameters.contains("cross_validation")) << below->parameters.dump();
  o.cross_validation_below_users = 600;
  auto at = Train(s.data, o);
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_FALSE(at->parameters.contains("cross_validation")) << at->parameters.dump();
  EXPECT_EQ(at->num_fit_rows + at->num_validation_rows + at->num_test_rows, s.data.num_rows());
}

// Whatever the users, data with few cells (rows x columns) is cross-validated: its cost
// follows the cells.
TEST(CrossValidationTest, TrainUsesItBelowTheCellThresholdWhateverTheUsers) {
  SyntheticData s = StackedData(600, false);  // 1,200 rows x 12 columns
  TrainOptions o = SmallCrossValidation(2);
  o.train_gradient_boosting = false;
  o.cross_validation_below_users = 0;
  o.cross_validation_below_cells = 1200 * 12 + 1;
  auto below = Train(s.data, o);
  ASSERT_TRUE(below.ok()) << below.status().ToString();
  EXPECT_TRUE(below->parameters.contains("cross_validation")) << below->parameters.dump();
  EXPECT_EQ(below->parameters["cross_validation"]["below_cells"], 1200 * 12 + 1);
  o.cross_validation_below_cells = 1200 * 12;
  auto at = Train(s.data, o);
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_FALSE(at->parameters.contains("cross_validation")) << at->parameters.dump();
  EXPECT_EQ(TrainOptions{}.cross_validation_below_cells, 25'000'000u);  // the documented default
}

}  // namespace
}  // namespace sibyl::ml

namespace sibyl::ml {
namespace {

// The automatic tree thread count checks a busy-looking load average against the CPU the
// machine uses right now (trainer_internal.h, TreeThreads): /proc/stat's first line.
TEST(CpuTicksTest, ProcStatLinesParseAndOthersAreRefused) {
  auto now = ParseCpuTicks("cpu  4705 356 584 3699 23 23 0 7 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n");
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->busy, 4705u + 356 + 584 + 23 + 0 + 7);  // idle and iowait are not busy
  EXPECT_EQ(now->total, now->busy + 3699 + 23);
  auto old_kernel = ParseCpuTicks("cpu 1 2 3 4 5 6 7");  // no steal column yet
  ASSERT_TRUE(old_kernel.has_value());
  EXPECT_EQ(old_kernel->busy, 1u + 2 + 3 + 6 + 7);
  EXPECT_EQ(old_kernel->total, 28u);
  for (const char* bad : {"", "cpu", "cpu 1 2 3", "cpu0 1 2 3 4 5 6 7 8", "intr 1 2 3 4 5 6 7 8", "cpu  x 2 3 4 5"})
    EXPECT_FALSE(ParseCpuTicks(bad).has_value()) << bad;
  // Only the first line counts: a short first line is refused even when others are long.
  EXPECT_FALSE(ParseCpuTicks("cpu 1 2 3\ncpu0 1 2 3 4 5 6 7 8").has_value());
}

TEST(CpuTicksTest, BusyCoresNowIsBetweenNoneAndEveryCore) {
  auto busy = BusyCoresNow(std::chrono::milliseconds(50));
  ASSERT_TRUE(busy.has_value()) << "/proc/stat unreadable";
  EXPECT_GE(*busy, 0.0);
  EXPECT_LE(*busy, ResolveThreads(0) + 1e-9);
}

}  // namespace
}  // namespace sibyl::ml

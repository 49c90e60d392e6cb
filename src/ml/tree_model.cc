#include "ml/tree_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace sibyl::ml {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

std::string Num(double value) { return fmt::format("{}", value); }

// Parameters common to both learners. "hist" is the fast CPU method; the seed makes row
// and column sampling reproducible.
Params CommonParams(const TreeTrainingData& data, int max_bin) {
  const bool classify = data.task == TaskKind::kClassification;
  return {{"booster", "gbtree"},
          {"tree_method", "hist"},
          {"max_bin", Num(max_bin)},
          {"objective", classify ? "binary:logistic" : "reg:squarederror"},
          {"eval_metric", classify ? "logloss" : "rmse"},
          {"base_score", Num(data.base_score)},
          {"seed", Num(static_cast<double>(data.seed % 2147483647))},
          {"nthread", Num(data.num_threads)}};
}

Result<XgbBooster> NewBooster(const TreeTrainingData& data, const Params& params,
                              nlohmann::json& summary) {
  std::vector<const XgbMatrix*> cached = {data.fit};
  if (data.validation) cached.push_back(data.validation);
  ASSIGN_OR_RETURN(XgbBooster booster, XgbBooster::Create(cached));
  for (const auto& [name, value] : params) {
    RETURN_IF_ERROR(booster.SetParam(name, value));
    summary["params"][name] = value;
  }
  return booster;
}

}  // namespace

Result<std::unique_ptr<TreeModel>> TreeModel::TrainGradientBoosting(
    const TreeTrainingData& data, const GradientBoostingOptions& options) {
  if (!data.fit || !data.validation) return InvalidArgument("boosting needs fit and validation data");
  Params params = CommonParams(data, options.max_bin);
  params.insert(params.end(), {{"eta", Num(options.learning_rate)},
                               {"max_depth", Num(options.max_depth)},
                               {"min_child_weight", Num(options.min_child_weight)},
                               {"subsample", Num(options.subsample)},
                               {"colsample_bytree", Num(options.colsample_bytree)},
                               {"lambda", Num(options.l2)}});
  nlohmann::json summary;
  ASSIGN_OR_RETURN(XgbBooster booster, NewBooster(data, params, summary));

  // Early stopping: keep the round count with the lowest validation loss, stop once it
  // has not improved for early_stopping_rounds rounds.
  double best_loss = std::numeric_limits<double>::infinity();
  int best_rounds = 0;
  for (int iteration = 0; iteration < options.max_rounds; ++iteration) {
    RETURN_IF_ERROR(booster.UpdateOneIter(iteration, *data.fit));
    ASSIGN_OR_RETURN(double loss, booster.Evaluate(iteration, *data.validation));
    if (loss < best_loss) {
      best_loss = loss;
      best_rounds = iteration + 1;
    } else if (iteration + 1 - best_rounds >= options.early_stopping_rounds) {
      break;
    }
  }
  ASSIGN_OR_RETURN(int trained_rounds, booster.BoostedRounds());
  if (best_rounds < trained_rounds) {
    ASSIGN_OR_RETURN(booster, booster.Truncate(best_rounds));
  }
  summary["rounds"] = best_rounds;
  summary["rounds_trained"] = trained_rounds;
  summary["validation_loss"] = best_loss;
  auto model = std::make_unique<TreeModel>(ModelType::kGradientBoostedTrees, data.task,
                                           data.num_features, std::move(booster));
  model->summary_ = std::move(summary);
  model->num_threads_ = data.num_threads;
  return model;
}

namespace {

// The share of the fit rows each forest tree samples.
double RowShare(const RandomForestOptions& options, size_t fit_rows) {
  if (options.max_rows_per_tree == 0 || fit_rows == 0) return options.subsample;
  return std::min(options.subsample, static_cast<double>(options.max_rows_per_tree) / fit_rows);
}

}  // namespace

Result<std::unique_ptr<TreeModel>> TreeModel::TrainRandomForest(
    const TreeTrainingData& data, const RandomForestOptions& options) {
  if (!data.fit) return InvalidArgument("random forest needs fit data");
  const double features_per_split =
      std::max(1.0, std::floor(std::sqrt(static_cast<double>(data.num_features))));
  Params params = CommonParams(data, options.max_bin);
  // One boosting round of num_trees trees with eta 1 is a random forest: each tree fits
  // the same (base-score) gradients on its own row and column sample, and XGBoost
  // averages them.
  params.insert(params.end(),
                {{"eta", "1"},
                 {"num_parallel_tree", Num(options.num_trees)},
                 {"max_depth", Num(options.max_depth)},
                 {"min_child_weight", Num(options.min_child_weight)},
                 {"subsample", Num(RowShare(options, data.fit->num_rows()))},
                 {"colsample_bynode", Num(std::min(1.0, features_per_split / data.num_features))},
                 {"lambda", "1"}});
  nlohmann::json summary;
  ASSIGN_OR_RETURN(XgbBooster booster, NewBooster(data, params, summary));
  RETURN_IF_ERROR(booster.UpdateOneIter(0, *data.fit));
  summary["rounds"] = 1;
  auto model = std::make_unique<TreeModel>(ModelType::kRandomForest, data.task,
                                           data.num_features, std::move(booster));
  model->summary_ = std::move(summary);
  model->num_threads_ = data.num_threads;
  return model;
}

Result<std::unique_ptr<TreeModel>> TreeModel::Load(ModelType type, TaskKind task,
                                                   std::string_view bytes) {
  ASSIGN_OR_RETURN(XgbBooster booster, XgbBooster::Load(bytes));
  ASSIGN_OR_RETURN(size_t num_features, booster.NumFeatures());
  return std::make_unique<TreeModel>(type, task, num_features, std::move(booster));
}

void TreeModel::SetNumThreads(int num_threads) {
  num_threads_ = ResolveThreads(num_threads);
  // A failure here only leaves the previous thread count in place.
  (void)booster_.SetParam("nthread", Num(num_threads_));
}

Result<std::vector<double>> TreeModel::PredictMargin(const XgbMatrix& matrix) const {
  ASSIGN_OR_RETURN(std::vector<float> margins, booster_.Predict(matrix, XgbPrediction::kMargin));
  return std::vector<double>(margins.begin(), margins.end());
}

Result<std::vector<double>> TreeModel::PredictMargin(std::span<const float> rows) const {
  if (rows.size() % num_features_ != 0) return InvalidArgument("row data is not a whole number of rows");
  ASSIGN_OR_RETURN(XgbMatrix matrix, XgbMatrix::FromDense(rows, rows.size() / num_features_,
                                                          num_features_, ResolveThreads(num_threads_)));
  return PredictMargin(matrix);
}

Result<std::vector<double>> TreeModel::Contributions(std::span<const float> rows) const {
  if (rows.size() % num_features_ != 0) return InvalidArgument("row data is not a whole number of rows");
  ASSIGN_OR_RETURN(XgbMatrix matrix, XgbMatrix::FromDense(rows, rows.size() / num_features_,
                                                          num_features_, ResolveThreads(num_threads_)));
  ASSIGN_OR_RETURN(std::vector<float> contributions,
                   booster_.Predict(matrix, XgbPrediction::kContributions));
  return std::vector<double>(contributions.begin(), contributions.end());
}

}  // namespace sibyl::ml

// Tree ensembles trained with XGBoost: gradient-boosted trees with early stopping, and a
// random forest (XGBoost's random-forest mode: one round of many parallel trees).
#pragma once

#include <cstdint>
#include <memory>

#include <nlohmann/json.hpp>

#include "ml/model.h"
#include "ml/xgboost_adapter.h"

namespace sibyl::ml {

// Fixed, robust defaults (see docs/ML.md); nothing here is tuned per prediction.
struct GradientBoostingOptions {
  // A slower rate with larger leaves and half the columns per tree: on the generated
  // purchase data +0.004 held-out AUC over (0.1, depth 6, weight 1, 0.8 columns) at about
  // the same time (more rounds, each cheaper); see docs/ML.md.
  double learning_rate = 0.05;
  int max_depth = 6;
  double min_child_weight = 20;
  double subsample = 0.8;
  double colsample_bytree = 0.5;
  double l2 = 1;
  // Histogram bins per feature. XGBoost's per-node cost grows with the total number of
  // bins (features x bins), which dominates at 400+ columns; 64 bins lose little.
  int max_bin = 64;
  int max_rounds = 400;
  int early_stopping_rounds = 40;  // stop when validation loss has not improved for this long
};

struct RandomForestOptions {
  int num_trees = 50;
  int max_depth = 7;
  double subsample = 0.632;  // the share of a bootstrap sample's distinct rows
  // Each tree sees at most this many rows (the share above shrinks for large fits).
  // Averaging decorrelated trees is what makes a forest; past a few tens of thousands of
  // rows per tree its held-out loss barely moves while its cost still grows with them
  // (at 154k rows the cap cut the forest's time by a fifth; held-out AUC on the generated
  // purchase and churn predictions moved by 0.000 and -0.003; docs/ML.md).
  size_t max_rows_per_tree = 40'000;
  double min_child_weight = 1;
  int max_bin = 64;
  // Features tried per split: sqrt(num_features), the usual forest default.
};

// Matrices and settings shared by both tree learners. `fit` and `validation` carry
// labels and (class-balancing) weights already.
struct TreeTrainingData {
  const XgbMatrix* fit = nullptr;
  const XgbMatrix* validation = nullptr;
  size_t num_features = 0;
  TaskKind task = TaskKind::kClassification;
  double base_score = 0.5;  // initial prediction: 0.5 for balanced classes, the mean amount
  uint64_t seed = 42;
  int num_threads = 1;
};

class TreeModel : public Model {
 public:
  TreeModel(ModelType type, TaskKind task, size_t num_features, XgbBooster booster)
      : type_(type), task_(task), num_features_(num_features), booster_(std::move(booster)) {}

  static Result<std::unique_ptr<TreeModel>> TrainGradientBoosting(
      const TreeTrainingData& data, const GradientBoostingOptions& options);
  static Result<std::unique_ptr<TreeModel>> TrainRandomForest(const TreeTrainingData& data,
                                                              const RandomForestOptions& options);
  static Result<std::unique_ptr<TreeModel>> Load(ModelType type, TaskKind task,
                                                 std::string_view bytes);

  ModelType type() const override { return type_; }
  TaskKind task() const override { return task_; }
  size_t num_features() const override { return num_features_; }
  Result<std::vector<double>> PredictMargin(std::span<const float> rows) const override;
  Result<std::vector<double>> Contributions(std::span<const float> rows) const override;
  Result<std::string> Serialize() const override { return booster_.Save(); }
  void SetNumThreads(int num_threads) override;

  // Margins for an already built matrix (saves a copy when scoring training slices).
  Result<std::vector<double>> PredictMargin(const XgbMatrix& matrix) const;

  // What training chose: parameters and, for boosting, the number of rounds kept.
  const nlohmann::json& training_summary() const { return summary_; }

 private:
  ModelType type_;
  TaskKind task_;
  size_t num_features_;
  XgbBooster booster_;
  int num_threads_ = 0;
  nlohmann::json summary_;
};

}  // namespace sibyl::ml

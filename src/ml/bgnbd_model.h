// The BG/NBD model as a scorer of feature rows: what a prediction uses when supervised
// training is not possible (the horizon is longer than the labelled history allows, or
// too few users did the outcome to learn from; docs/PREDICTIONS.md, "When there is
// nothing to learn from"). It reads the outcome family's BG/NBD columns, which the
// feature query computes from parameters fitted on the customer base's purchase histories
// (query/outcome_features.h), so it needs no labels at all:
//   propensity  P(at least one outcome within H)
//   churn       1 - that
//   revenue     expected outcome days within H x the user's mean amount per active day
// A user who never did the outcome gets `prior`: the probability (or amount) of a
// customer who has just made a first purchase.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ml/model.h"

namespace sibyl::ml {

class BgNbdModel : public Model {
 public:
  enum class Output { kProbability, kOneMinusProbability, kAmount };
  struct Columns {
    size_t probability = 0;    // "BG/NBD P(outcome within Hd)"
    size_t expected_days = 0;  // "BG/NBD expected outcome days within Hd"
    size_t amount = 0;         // sum of the amount over all history (kAmount)
    size_t active_days = 0;    // active days over all history (kAmount)
  };
  static Result<std::unique_ptr<BgNbdModel>> Make(TaskKind task, size_t num_features, Output output,
                                                  Columns columns, double prior);
  static Result<std::unique_ptr<BgNbdModel>> Load(TaskKind task, std::string_view bytes);

  ModelType type() const override { return ModelType::kBgNbd; }
  TaskKind task() const override { return task_; }
  size_t num_features() const override { return num_features_; }
  Result<std::vector<double>> PredictMargin(std::span<const float> rows) const override;
  // All of a row's margin, less the prior's, is put on the probability (or expected
  // days) column: the model has one input.
  Result<std::vector<double>> Contributions(std::span<const float> rows) const override;
  Result<std::string> Serialize() const override;
  void SetNumThreads(int) override {}

 private:
  double Margin(const float* row) const;
  double PriorMargin() const;

  TaskKind task_ = TaskKind::kClassification;
  size_t num_features_ = 0;
  Output output_ = Output::kProbability;
  Columns columns_;
  double prior_ = 0;
};

}  // namespace sibyl::ml

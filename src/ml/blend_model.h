// A blend: the weighted mean of several fitted candidates' raw margins (log-odds for
// classification, amounts for regression), calibrated as one model. On small data the
// candidates' errors are partly independent, and the average of two or three of them is
// often better out of fold than any alone (docs/ML.md, "Small data"); cross-validated
// training keeps it only when it is.
//
// Contributions are the same weighted mean of the parts' contributions: SHAP values and
// linear terms are additive, so the blend's still sum to its margin.
#pragma once

#include <memory>
#include <vector>

#include "ml/model.h"

namespace sibyl::ml {

class BlendModel : public Model {
 public:
  struct Part {
    std::unique_ptr<Model> model;
    double weight = 0;
  };
  // Parts must share the task and feature count; weights are positive and sum to 1.
  static Result<std::unique_ptr<BlendModel>> Make(std::vector<Part> parts);
  static Result<std::unique_ptr<BlendModel>> Load(TaskKind task, std::string_view bytes);

  ModelType type() const override { return ModelType::kBlend; }
  TaskKind task() const override { return task_; }
  size_t num_features() const override { return num_features_; }
  Result<std::vector<double>> PredictMargin(std::span<const float> rows) const override;
  Result<std::vector<double>> Contributions(std::span<const float> rows) const override;
  // CBOR: {"format": "sibyl-blend-v1", "parts": [{"type", "weight", "bytes" (binary)}]}.
  Result<std::string> Serialize() const override;
  void SetNumThreads(int num_threads) override;

  const std::vector<Part>& parts() const { return parts_; }

 private:
  TaskKind task_ = TaskKind::kClassification;
  size_t num_features_ = 0;
  std::vector<Part> parts_;
};

}  // namespace sibyl::ml

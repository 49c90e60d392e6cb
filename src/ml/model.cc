#include "ml/model.h"

#include <algorithm>
#include <thread>

#include "ml/linear_model.h"
#include "ml/tree_model.h"

namespace sibyl::ml {

const char* ModelTypeName(ModelType type) {
  switch (type) {
    case ModelType::kLinear: return "linear";
    case ModelType::kRandomForest: return "random_forest";
    case ModelType::kGradientBoostedTrees: return "gradient_boosted_trees";
  }
  return "unknown";
}

Result<ModelType> ParseModelType(std::string_view name) {
  for (ModelType t : {ModelType::kLinear, ModelType::kRandomForest, ModelType::kGradientBoostedTrees}) {
    if (name == ModelTypeName(t)) return t;
  }
  return InvalidArgument("unknown model type '{}'", name);
}

Result<std::unique_ptr<Model>> LoadModel(ModelType type, TaskKind task, std::string_view bytes) {
  if (type == ModelType::kLinear) {
    ASSIGN_OR_RETURN(std::unique_ptr<LinearModel> model, LinearModel::Load(bytes));
    if (model->task() != task) return Corruption("linear model was trained for another task");
    return std::unique_ptr<Model>(std::move(model));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<TreeModel> model, TreeModel::Load(type, task, bytes));
  return std::unique_ptr<Model>(std::move(model));
}

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace sibyl::ml

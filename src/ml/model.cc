#include "ml/model.h"

#include <algorithm>
#include <thread>

#include "ml/bgnbd_model.h"
#include "ml/blend_model.h"
#include "ml/linear_model.h"
#include "ml/tree_model.h"

namespace sibyl::ml {

const char* ModelTypeName(ModelType type) {
  switch (type) {
    case ModelType::kLinear: return "linear";
    case ModelType::kRandomForest: return "random_forest";
    case ModelType::kGradientBoostedTrees: return "gradient_boosted_trees";
    case ModelType::kBlend: return "blend";
    case ModelType::kBgNbd: return "bg_nbd";
    case ModelType::kOutcomeLinear: return "outcome_linear";
  }
  return "unknown";
}

Result<ModelType> ParseModelType(std::string_view name) {
  for (ModelType t : {ModelType::kLinear, ModelType::kRandomForest, ModelType::kGradientBoostedTrees, ModelType::kBlend,
                      ModelType::kBgNbd, ModelType::kOutcomeLinear}) {
    if (name == ModelTypeName(t)) return t;
  }
  return InvalidArgument("unknown model type '{}'", name);
}

Result<std::unique_ptr<Model>> LoadModel(ModelType type, TaskKind task, std::string_view bytes) {
  if (type == ModelType::kLinear || type == ModelType::kOutcomeLinear) {
    ASSIGN_OR_RETURN(std::unique_ptr<LinearModel> model, LinearModel::Load(bytes));
    if (model->task() != task) return Corruption("linear model was trained for another task");
    model->set_type(type);
    return std::unique_ptr<Model>(std::move(model));
  }
  if (type == ModelType::kBgNbd) {
    ASSIGN_OR_RETURN(std::unique_ptr<BgNbdModel> model, BgNbdModel::Load(task, bytes));
    return std::unique_ptr<Model>(std::move(model));
  }
  if (type == ModelType::kBlend) {
    ASSIGN_OR_RETURN(std::unique_ptr<BlendModel> model, BlendModel::Load(task, bytes));
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

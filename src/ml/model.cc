#include "ml/model.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
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

std::optional<CpuTicks> ParseCpuTicks(std::string_view proc_stat) {
  const std::string_view line = proc_stat.substr(0, proc_stat.find('\n'));
  if (!line.starts_with("cpu ")) return std::nullopt;
  const char* at = line.data() + 4;
  const char* end = line.data() + line.size();
  CpuTicks ticks;
  int fields = 0;
  for (; fields < 8; ++fields) {  // user nice system idle iowait irq softirq steal
    while (at < end && *at == ' ') ++at;
    unsigned long long value = 0;
    auto [next, error] = std::from_chars(at, end, value);
    if (error != std::errc()) break;
    at = next;
    ticks.total += value;
    if (fields != 3 && fields != 4) ticks.busy += value;
  }
  // Kernels before 2.6.11 have no steal column; fewer than idle and iowait is no line.
  if (fields < 5) return std::nullopt;
  return ticks;
}

std::optional<double> BusyCoresNow(std::chrono::milliseconds window) {
  auto read = []() -> std::optional<CpuTicks> {
    std::ifstream in("/proc/stat");
    std::string line;
    if (!in || !std::getline(in, line)) return std::nullopt;
    return ParseCpuTicks(line);
  };
  const std::optional<CpuTicks> before = read();
  if (!before) return std::nullopt;
  std::this_thread::sleep_for(window);
  const std::optional<CpuTicks> after = read();
  if (!after || after->total <= before->total) return std::nullopt;
  const double share = static_cast<double>(after->busy - before->busy) / static_cast<double>(after->total - before->total);
  return share * ResolveThreads(0);
}

}  // namespace sibyl::ml

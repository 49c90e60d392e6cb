#include "ml/blend_model.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace sibyl::ml {

Result<std::unique_ptr<BlendModel>> BlendModel::Make(std::vector<Part> parts) {
  if (parts.size() < 2) return InvalidArgument("a blend needs at least two models");
  auto blend = std::make_unique<BlendModel>();
  blend->task_ = parts[0].model->task();
  blend->num_features_ = parts[0].model->num_features();
  double total = 0;
  for (const Part& p : parts) {
    if (p.model->type() == ModelType::kBlend) return InvalidArgument("a blend cannot contain a blend");
    if (p.model->task() != blend->task_ || p.model->num_features() != blend->num_features_)
      return InvalidArgument("blended models must share the task and the features");
    if (!(p.weight > 0)) return InvalidArgument("blend weights must be positive");
    total += p.weight;
  }
  if (std::abs(total - 1) > 1e-9) return InvalidArgument("blend weights sum to {}, not 1", total);
  blend->parts_ = std::move(parts);
  return blend;
}

Result<std::vector<double>> BlendModel::PredictMargin(std::span<const float> rows) const {
  std::vector<double> out;
  for (const Part& p : parts_) {
    ASSIGN_OR_RETURN(std::vector<double> margins, p.model->PredictMargin(rows));
    if (out.empty()) out.assign(margins.size(), 0);
    for (size_t i = 0; i < margins.size(); ++i) out[i] += p.weight * margins[i];
  }
  return out;
}

Result<std::vector<double>> BlendModel::Contributions(std::span<const float> rows) const {
  std::vector<double> out;
  for (const Part& p : parts_) {
    ASSIGN_OR_RETURN(std::vector<double> c, p.model->Contributions(rows));
    if (out.empty()) out.assign(c.size(), 0);
    for (size_t i = 0; i < c.size(); ++i) out[i] += p.weight * c[i];
  }
  return out;
}

Result<std::string> BlendModel::Serialize() const {
  nlohmann::json parts = nlohmann::json::array();
  for (const Part& p : parts_) {
    ASSIGN_OR_RETURN(std::string bytes, p.model->Serialize());
    parts.push_back({{"type", ModelTypeName(p.model->type())},
                     {"weight", p.weight},
                     {"bytes", nlohmann::json::binary(std::vector<uint8_t>(bytes.begin(), bytes.end()))}});
  }
  nlohmann::json j = {{"format", "sibyl-blend-v1"}, {"task", TaskKindName(task_)}, {"parts", std::move(parts)}};
  std::vector<uint8_t> cbor = nlohmann::json::to_cbor(j);
  return std::string(cbor.begin(), cbor.end());
}

Result<std::unique_ptr<BlendModel>> BlendModel::Load(TaskKind task, std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_cbor(bytes.begin(), bytes.end(), /*strict=*/true,
                                               /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corruption("blend model: not CBOR");
  std::vector<Part> parts;
  try {
    if (j.at("format") != "sibyl-blend-v1") return Corruption("blend model: unknown format");
    for (const nlohmann::json& p : j.at("parts")) {
      ASSIGN_OR_RETURN(ModelType type, ParseModelType(p.at("type").get<std::string>()));
      if (type == ModelType::kBlend) return Corruption("blend model: a part is a blend");
      const auto& binary = p.at("bytes").get_binary();
      ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                       LoadModel(type, task, std::string_view(reinterpret_cast<const char*>(binary.data()), binary.size())));
      parts.push_back({std::move(model), p.at("weight").get<double>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return Corruption("blend model: {}", e.what());
  }
  auto made = Make(std::move(parts));
  if (!made.ok()) return Corruption("blend model: {}", made.status().message());
  if ((*made)->task() != task) return Corruption("blend model was trained for another task");
  return made;
}

void BlendModel::SetNumThreads(int num_threads) {
  for (Part& p : parts_) p.model->SetNumThreads(num_threads);
}

}  // namespace sibyl::ml

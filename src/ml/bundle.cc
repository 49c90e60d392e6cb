#include "ml/bundle.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>

#include <fmt/format.h>

#include "common/checked_json.h"
#include "common/file.h"
#include "ml/trainer.h"

namespace sibyl::ml {
namespace {

constexpr int kFormatVersion = 1;

const char* ModelFileName(ModelType type) {
  switch (type) {
    case ModelType::kLinear:
    case ModelType::kOutcomeLinear: return "model.json";
    case ModelType::kBgNbd: return "model-bgnbd.json";
    case ModelType::kBlend: return "model.cbor";
    default: return "model.ubj";
  }
}

// The manifest carries its own checksum (common/checked_json.h): damage to it could
// otherwise drop or change the other files' checksums unnoticed.
Result<nlohmann::json> ReadJson(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Corruption("{}: {}", path, e.what());
  }
}

}  // namespace

Result<std::vector<double>> ModelBundle::Score(std::span<const float> rows) const {
  if (!model) return FailedPrecondition("bundle has no model");
  ASSIGN_OR_RETURN(std::vector<double> out, model->PredictMargin(rows));
  for (double& v : out) v = calibration.Apply(MarginToOutput(task, v));
  return out;
}

Result<std::vector<double>> ModelBundle::Contributions(std::span<const float> rows) const {
  if (!model) return FailedPrecondition("bundle has no model");
  return model->Contributions(rows);
}

ModelBundle MakeBundle(TrainResult&& result, std::vector<std::string> feature_names,
                       uint64_t seed) {
  ModelBundle bundle;
  bundle.task = result.task;
  bundle.model = std::move(result.model);
  bundle.calibration = std::move(result.calibration);
  bundle.feature_names = std::move(feature_names);
  bundle.seed = seed;
  if (result.task == TaskKind::kClassification) {
    bundle.metrics = result.metrics;
  } else {
    bundle.metrics = result.regression_metrics;
  }
  bundle.candidates = CandidatesToJson(result);
  bundle.drivers = std::move(result.drivers);
  bundle.topic_drivers = std::move(result.topic_drivers);
  bundle.parameters = result.parameters;
  bundle.parameters["rows"] = {{"fit", result.num_fit_rows},
                               {"validation", result.num_validation_rows},
                               {"test", result.num_test_rows},
                               {"users", result.num_users},
                               {"users_sampled_out", result.num_users_sampled_out}};
  return bundle;
}

Status WriteBundle(const std::string& dir, const ModelBundle& bundle) {
  namespace fs = std::filesystem;
  if (!bundle.model) return InvalidArgument("bundle has no model");
  if (FileExists(dir)) return AlreadyExists("model directory {} already exists", dir);
  fs::path final_path = fs::path(dir).lexically_normal();
  if (final_path.filename().empty()) final_path = final_path.parent_path();
  const std::string parent = final_path.has_parent_path() ? final_path.parent_path().string() : ".";
  RETURN_IF_ERROR(CreateDirs(parent));
  const std::string temp =
      (fs::path(parent) / (".tmp-" + final_path.filename().string() + "-" + std::to_string(getpid())))
          .string();
  std::error_code ec;
  fs::remove_all(temp, ec);  // a leftover of a crashed writer
  RETURN_IF_ERROR(CreateDirs(temp));

  const ModelType type = bundle.model->type();
  ASSIGN_OR_RETURN(std::string model_bytes, bundle.model->Serialize());
  nlohmann::json manifest = {{"format_version", kFormatVersion},
                             {"task", TaskKindName(bundle.task)},
                             {"model_type", ModelTypeName(type)},
                             {"model_file", ModelFileName(type)},
                             {"seed", bundle.seed},
                             {"feature_names", bundle.feature_names}};
  std::pair<const char*, std::string> files[] = {
      {ModelFileName(type), std::move(model_bytes)},
      {"calibration.json", bundle.calibration.ToJson().dump(1)},
      {"metrics.json", bundle.metrics.dump(1)},
      {"candidates.json", bundle.candidates.dump(1)},
      {"drivers.json", nlohmann::json(bundle.drivers).dump(1)},
      {"topic_drivers.json", nlohmann::json(bundle.topic_drivers).dump(1)},
      {"parameters.json", bundle.parameters.dump(1)},
      {"extra.json", bundle.extra.dump(1)},
      // The manifest last: a directory with a manifest is complete even before rename.
      {"manifest.json", manifest.dump(1)},
  };
  // Every other file's CRC-32C goes into the manifest: a damaged file is then refused by
  // name when read, instead of reaching a parser (XGBoost crashed on a one-bit flip in
  // model.ubj) or silently changing scores (a digit in calibration.json).
  nlohmann::json checksums = nlohmann::json::object();
  for (const auto& [name, data] : files)
    if (std::string_view(name) != "manifest.json") checksums[name] = Crc32cHex(data);
  manifest["checksums"] = checksums;
  files[std::size(files) - 1].second = WithChecksum(manifest.dump(1));
  for (const auto& [name, data] : files) {
    Status st = WriteFileAtomic((fs::path(temp) / name).string(), data);
    if (!st.ok()) {
      fs::remove_all(temp, ec);
      return st;
    }
  }
  RETURN_IF_ERROR(SyncDir(temp));
  if (std::rename(temp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    fs::remove_all(temp, ec);
    if (err == EEXIST || err == ENOTEMPTY) return AlreadyExists("model directory {} already exists", dir);
    return IoError("rename {} to {}: {}", temp, final_path.string(), std::strerror(err));
  }
  return SyncDir(parent);
}

Result<ModelBundle> ReadBundle(const std::string& dir) {
  namespace fs = std::filesystem;
  auto path = [&](const char* name) { return (fs::path(dir) / name).string(); };
  ModelBundle bundle;
  ASSIGN_OR_RETURN(nlohmann::json manifest, ReadJson(path("manifest.json")));
  // Reads one file of the bundle, checked against the manifest's CRC-32C (bundles written
  // before checksums existed have none and are read as they are).
  const nlohmann::json checksums = manifest.value("checksums", nlohmann::json::object());
  auto read_checked = [&](const char* name) -> Result<std::string> {
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(path(name)));
    if (auto it = checksums.find(name); it != checksums.end()) {
      const std::string actual = Crc32cHex(bytes);
      if (!it->is_string() || it->get<std::string>() != actual)
        return Corruption("{}: checksum mismatch (CRC-32C {} where the manifest says {}): the file is damaged; "
                          "train the prediction again to replace this version",
                          path(name), actual, it->dump());
    }
    return bytes;
  };
  auto read_json = [&](const char* name) -> Result<nlohmann::json> {
    ASSIGN_OR_RETURN(std::string text, read_checked(name));
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      return Corruption("{}: {}", path(name), e.what());
    }
  };
  try {
    if (manifest.at("format_version").get<int>() != kFormatVersion) {
      return Corruption("{}: unsupported model format version {}", dir,
                        manifest.at("format_version").dump());
    }
    bundle.task = manifest.at("task") == "regression" ? TaskKind::kRegression
                                                      : TaskKind::kClassification;
    bundle.seed = manifest.at("seed").get<uint64_t>();
    bundle.feature_names = manifest.at("feature_names").get<std::vector<std::string>>();
    ASSIGN_OR_RETURN(ModelType type, ParseModelType(manifest.at("model_type").get<std::string>()));
    ASSIGN_OR_RETURN(std::string bytes, read_checked(ModelFileName(type)));
    ASSIGN_OR_RETURN(bundle.model, LoadModel(type, bundle.task, bytes));
    ASSIGN_OR_RETURN(nlohmann::json calibration, read_json("calibration.json"));
    ASSIGN_OR_RETURN(bundle.calibration, IsotonicCalibration::FromJson(calibration));
    ASSIGN_OR_RETURN(bundle.metrics, read_json("metrics.json"));
    ASSIGN_OR_RETURN(bundle.candidates, read_json("candidates.json"));
    ASSIGN_OR_RETURN(nlohmann::json drivers, read_json("drivers.json"));
    bundle.drivers = drivers.get<std::vector<Driver>>();
    // Listed in the manifest of every bundle written since it exists: then it must be there.
    if (checksums.contains("topic_drivers.json")) {
      ASSIGN_OR_RETURN(nlohmann::json topic_drivers, read_json("topic_drivers.json"));
      bundle.topic_drivers = topic_drivers.get<std::vector<Driver>>();
    }
    ASSIGN_OR_RETURN(bundle.parameters, read_json("parameters.json"));
    ASSIGN_OR_RETURN(bundle.extra, read_json("extra.json"));
  } catch (const nlohmann::json::exception& e) {
    return Corruption("{}: {}", dir, e.what());
  }
  if (bundle.model->num_features() != bundle.feature_names.size()) {
    return Corruption("{}: model has {} features, manifest names {}", dir,
                      bundle.model->num_features(), bundle.feature_names.size());
  }
  return bundle;
}

}  // namespace sibyl::ml

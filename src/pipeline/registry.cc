#include "pipeline/registry.h"

#include <algorithm>
#include <filesystem>

#include "common/checked_json.h"
#include "common/file.h"
#include "query/suggest.h"

namespace sibyl::pipeline {
namespace fs = std::filesystem;

std::string PredictionRegistry::Root() const { return (fs::path(data_dir_) / "predictions").string(); }

std::string PredictionRegistry::PredictionDir(const std::string& name) const {
  return (fs::path(Root()) / name).string();
}

std::string PredictionRegistry::VersionsDir(const std::string& name) const {
  return (fs::path(PredictionDir(name)) / "versions").string();
}

std::string PredictionRegistry::VersionDir(const std::string& name, int version) const {
  return (fs::path(VersionsDir(name)) / std::to_string(version)).string();
}

Status PredictionRegistry::Create(const PredictionDefinition& definition, bool replace) {
  RETURN_IF_ERROR(ValidatePredictionName(definition.name));
  const std::string dir = PredictionDir(definition.name);
  const std::string path = (fs::path(dir) / "definition.json").string();
  if (!replace && FileExists(path)) {
    return AlreadyExists("prediction \"{}\" already exists (use --replace, or `sibyl predict delete {}`)",
                         definition.name, definition.name);
  }
  RETURN_IF_ERROR(CreateDirs(dir));
  RETURN_IF_ERROR(SyncDir(Root()));
  return WriteChecksummedFile(path, ToJson(definition).dump(2) + "\n");
}

Result<PredictionDefinition> PredictionRegistry::Get(const std::string& name) const {
  const std::string path = (fs::path(PredictionDir(name)) / "definition.json").string();
  if (ValidatePredictionName(name).ok() && FileExists(path)) {
    ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
    auto definition = ParsePredictionDefinitionText(text);
    if (!definition.ok()) return Corruption("{}: {}", path, definition.status().message());
    return definition;
  }
  std::vector<std::string> known;
  if (auto all = List(); all.ok())
    for (const auto& d : *all) known.push_back(d.name);
  if (known.empty())
    return NotFound("no prediction \"{}\" (none defined yet: `sibyl predict create`)", name);
  return UnknownNameError("prediction", name, known);
}

Result<std::vector<PredictionDefinition>> PredictionRegistry::List() const {
  std::vector<PredictionDefinition> out;
  if (!FileExists(Root())) return out;
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(Root()));
  for (const std::string& name : names) {
    if (!ValidatePredictionName(name).ok()) continue;  // temporary or foreign entries
    const std::string path = (fs::path(PredictionDir(name)) / "definition.json").string();
    if (!FileExists(path)) continue;
    ASSIGN_OR_RETURN(std::string text, ReadChecksummedFile(path));
    auto definition = ParsePredictionDefinitionText(text);
    if (!definition.ok()) return Corruption("{}: {}", path, definition.status().message());
    out.push_back(std::move(definition).value());
  }
  return out;
}

Status PredictionRegistry::Delete(const std::string& name) {
  RETURN_IF_ERROR(Get(name).status());
  // Rename first so that a crash midway never leaves a half-deleted prediction visible.
  const std::string doomed = (fs::path(Root()) / (".deleted-" + name)).string();
  std::error_code ec;
  fs::remove_all(doomed, ec);
  fs::rename(PredictionDir(name), doomed, ec);
  if (ec) return IoError("cannot remove {}: {}", PredictionDir(name), ec.message());
  RETURN_IF_ERROR(SyncDir(Root()));
  fs::remove_all(doomed, ec);
  if (ec) return IoError("cannot remove {}: {}", doomed, ec.message());
  return Status::Ok();
}

Result<std::vector<int>> PredictionRegistry::Versions(const std::string& name) const {
  std::vector<int> versions;
  const std::string dir = VersionsDir(name);
  if (!FileExists(dir)) return versions;
  ASSIGN_OR_RETURN(std::vector<std::string> entries, ListDir(dir));
  for (const std::string& entry : entries) {
    if (entry.empty() || !std::all_of(entry.begin(), entry.end(), ::isdigit)) continue;
    versions.push_back(std::stoi(entry));
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

}  // namespace sibyl::pipeline

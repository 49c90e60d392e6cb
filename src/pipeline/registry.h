// Where predictions live in a data directory (docs/FORMAT.md, "Predictions"):
//
//   <data>/predictions/<name>/definition.json         the definition, written atomically
//   <data>/predictions/<name>/versions/<n>/           one trained version (train_run.h)
//
// Versions are numbered 1, 2, ... in training order; a version directory appears whole or
// not at all.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "pipeline/prediction.h"

namespace sibyl::pipeline {

class PredictionRegistry {
 public:
  explicit PredictionRegistry(std::string data_dir) : data_dir_(std::move(data_dir)) {}

  // Stores a new definition; AlreadyExists unless `replace`. Existing versions are kept
  // on replace (each records the definition it was trained with).
  Status Create(const PredictionDefinition& definition, bool replace = false);
  // NotFound names the known predictions ("did you mean").
  Result<PredictionDefinition> Get(const std::string& name) const;
  Result<std::vector<PredictionDefinition>> List() const;
  // Removes the definition and all its versions.
  Status Delete(const std::string& name);

  // Trained versions, ascending.
  Result<std::vector<int>> Versions(const std::string& name) const;
  std::string PredictionDir(const std::string& name) const;
  std::string VersionsDir(const std::string& name) const;
  std::string VersionDir(const std::string& name, int version) const;

 private:
  std::string Root() const;
  std::string data_dir_;
};

}  // namespace sibyl::pipeline

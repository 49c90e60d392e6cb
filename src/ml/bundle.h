// A trained model with everything needed to score, explain and report on it, and its
// on-disk form: one directory per trained version, written atomically.
//
// Directory layout (all JSON except the tree model):
//   manifest.json     format version, task, model type, seed, feature names
//   model.ubj         XGBoost Universal Binary JSON (trees), or model.json (linear)
//   calibration.json  isotonic knots (empty knots = identity)
//   metrics.json      the winner's held-out metrics
//   candidates.json   every candidate's metrics and training summary
//   drivers.json      global importance with direction
//   topic_drivers.json  the same per behaviour (drivers.h; bundles written before it: none)
//   parameters.json   options that shaped training
//   extra.json        owned by the caller (feature spec, data window); opaque here
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "ml/drivers.h"
#include "ml/isotonic.h"
#include "ml/model.h"

namespace sibyl::ml {

struct TrainResult;

struct ModelBundle {
  TaskKind task = TaskKind::kClassification;
  std::unique_ptr<Model> model;
  IsotonicCalibration calibration;
  std::vector<std::string> feature_names;
  uint64_t seed = 0;
  nlohmann::json metrics = nlohmann::json::object();
  nlohmann::json candidates = nlohmann::json::array();
  std::vector<Driver> drivers;
  std::vector<Driver> topic_drivers;  // empty when training set no column topics
  nlohmann::json parameters = nlohmann::json::object();
  nlohmann::json extra = nlohmann::json::object();

  // Calibrated probabilities (classification) or predicted amounts, one per row of the
  // row-major `rows` (feature_names.size() columns).
  Result<std::vector<double>> Score(std::span<const float> rows) const;
  // Per-row contributions in margin units, bias last (see Model::Contributions).
  Result<std::vector<double>> Contributions(std::span<const float> rows) const;
};

// Moves the winner of a training run into a bundle.
ModelBundle MakeBundle(TrainResult&& result, std::vector<std::string> feature_names,
                       uint64_t seed);

// Writes `bundle` to the new directory `dir` (AlreadyExists if it exists): everything
// goes to a sibling temporary directory, each file fsynced, then the directory is
// renamed into place and the parent fsynced, so readers see all of it or nothing.
Status WriteBundle(const std::string& dir, const ModelBundle& bundle);
Result<ModelBundle> ReadBundle(const std::string& dir);

}  // namespace sibyl::ml

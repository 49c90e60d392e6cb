// What drives a model's predictions: global importance from per-row contributions.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "ml/model.h"

namespace sibyl::ml {

struct Driver {
  std::string feature;     // readable column name
  size_t column = 0;
  double importance = 0;   // mean |contribution| in margin units (log-odds or amount)
  // +1 when higher values of the feature push the prediction up, -1 down, 0 unclear:
  // the sign of the correlation between the feature's value and its contribution.
  int direction = 0;
  double correlation = 0;
};

// Computes contributions of `model` on `rows` (row-major, model->num_features()
// columns) and summarises them per feature, most important first. Features whose
// importance is zero are left out.
Result<std::vector<Driver>> ComputeDrivers(const Model& model, std::span<const float> rows,
                                           const std::vector<std::string>& feature_names);

// The same summary from precomputed contributions (rows x (features + 1), bias last).
std::vector<Driver> SummariseContributions(std::span<const double> contributions,
                                           std::span<const float> rows,
                                           const std::vector<std::string>& feature_names);

void to_json(nlohmann::json& j, const Driver& d);
void from_json(const nlohmann::json& j, Driver& d);

}  // namespace sibyl::ml

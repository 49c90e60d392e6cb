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

// Per-column drivers from contributions (rows x (features + 1), bias last), most important
// first; features whose importance is zero are left out.
std::vector<Driver> SummariseContributions(std::span<const double> contributions,
                                           std::span<const float> rows,
                                           const std::vector<std::string>& feature_names);

// Drivers of behaviours: `topics` names, per column, the behaviour it describes (the
// pipeline's TopicOf; columns of one topic are near-collinear views of it). Per sample
// row the topic's contributions are summed (exact for a group: SHAP values add), and the
// topic's importance is the mean |sum|. `feature` is the topic, `column` its most
// important column, and the direction is that column's value against the topic's sum.
// Empty `topics`: none.
std::vector<Driver> SummariseTopics(std::span<const double> contributions, std::span<const float> rows,
                                    const std::vector<std::string>& topics);

// Computes contributions of `model` on `rows` (row-major, model->num_features() columns)
// and both summaries: per column, and per topic when `topics` is set.
struct DriverSummary {
  std::vector<Driver> columns, topics;
};
Result<DriverSummary> ComputeDriverSummary(const Model& model, std::span<const float> rows,
                                           const std::vector<std::string>& feature_names,
                                           const std::vector<std::string>& topics);

void to_json(nlohmann::json& j, const Driver& d);
void from_json(const nlohmann::json& j, Driver& d);

}  // namespace sibyl::ml

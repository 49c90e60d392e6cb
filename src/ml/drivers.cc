#include "ml/drivers.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sibyl::ml {
namespace {

// Pearson correlation of x (NaN skipped) with c over the rows, 0 when either is constant.
class Correlation {
 public:
  void Add(float x, double c) {
    if (std::isnan(x)) return;
    ++count_;
    sx_ += x;
    sc_ += c;
    sxx_ += static_cast<double>(x) * x;
    scc_ += c * c;
    sxc_ += x * c;
  }
  double Value() const {
    if (count_ <= 1) return 0;
    const double cov = sxc_ - sx_ * sc_ / count_;
    const double vx = sxx_ - sx_ * sx_ / count_, vc = scc_ - sc_ * sc_ / count_;
    return vx > 0 && vc > 0 ? cov / std::sqrt(vx * vc) : 0;
  }

 private:
  double count_ = 0, sx_ = 0, sc_ = 0, sxx_ = 0, scc_ = 0, sxc_ = 0;
};

int DirectionOf(double correlation) { return correlation > 0.05 ? 1 : correlation < -0.05 ? -1 : 0; }

// Appends the driver unless its importance is zero.
void AddDriver(std::vector<Driver>& drivers, std::string feature, size_t column, double importance,
               const Correlation& correlation) {
  if (importance <= 0) return;
  Driver d;
  d.feature = std::move(feature);
  d.column = column;
  d.importance = importance;
  d.correlation = correlation.Value();
  d.direction = DirectionOf(d.correlation);
  drivers.push_back(std::move(d));
}

void SortByImportance(std::vector<Driver>& drivers) {
  std::stable_sort(drivers.begin(), drivers.end(),
                   [](const Driver& a, const Driver& b) { return a.importance > b.importance; });
}

}  // namespace

std::vector<Driver> SummariseContributions(std::span<const double> contributions,
                                           std::span<const float> rows,
                                           const std::vector<std::string>& feature_names) {
  const size_t p = feature_names.size();
  const size_t n = p ? rows.size() / p : 0;
  std::vector<Driver> drivers;
  if (n == 0) return drivers;
  for (size_t j = 0; j < p; ++j) {
    double sum_abs = 0;
    // The feature's value against its contribution, over rows where the value is present.
    Correlation correlation;
    for (size_t r = 0; r < n; ++r) {
      const double c = contributions[r * (p + 1) + j];
      sum_abs += std::abs(c);
      correlation.Add(rows[r * p + j], c);
    }
    AddDriver(drivers, feature_names[j], j, sum_abs / n, correlation);
  }
  SortByImportance(drivers);
  return drivers;
}

std::vector<Driver> SummariseTopics(std::span<const double> contributions, std::span<const float> rows,
                                    const std::vector<std::string>& topics) {
  const size_t p = topics.size();
  const size_t n = p ? rows.size() / p : 0;
  std::vector<Driver> drivers;
  if (n == 0) return drivers;
  std::map<std::string_view, size_t> index;
  std::vector<std::vector<size_t>> members;
  for (size_t j = 0; j < p; ++j) {
    auto [it, fresh] = index.try_emplace(topics[j], members.size());
    if (fresh) members.emplace_back();
    members[it->second].push_back(j);
  }
  for (const std::vector<size_t>& columns : members) {
    // The topic's lead: its column with the largest mean |contribution|.
    size_t lead = columns.front();
    double lead_importance = -1;
    for (size_t j : columns) {
      double sum_abs = 0;
      for (size_t r = 0; r < n; ++r) sum_abs += std::abs(contributions[r * (p + 1) + j]);
      if (sum_abs > lead_importance) lead_importance = sum_abs, lead = j;
    }
    double sum_abs = 0;
    Correlation correlation;
    for (size_t r = 0; r < n; ++r) {
      double c = 0;
      for (size_t j : columns) c += contributions[r * (p + 1) + j];
      sum_abs += std::abs(c);
      correlation.Add(rows[r * p + lead], c);
    }
    AddDriver(drivers, topics[lead], lead, sum_abs / n, correlation);
  }
  SortByImportance(drivers);
  return drivers;
}

Result<DriverSummary> ComputeDriverSummary(const Model& model, std::span<const float> rows,
                                           const std::vector<std::string>& feature_names,
                                           const std::vector<std::string>& topics) {
  if (feature_names.size() != model.num_features() || (!topics.empty() && topics.size() != feature_names.size())) {
    return InvalidArgument("{} feature names and {} topics for a model of {} features", feature_names.size(),
                           topics.size(), model.num_features());
  }
  ASSIGN_OR_RETURN(std::vector<double> contributions, model.Contributions(rows));
  DriverSummary summary;
  summary.columns = SummariseContributions(contributions, rows, feature_names);
  if (!topics.empty()) summary.topics = SummariseTopics(contributions, rows, topics);
  return summary;
}

void to_json(nlohmann::json& j, const Driver& d) {
  j = nlohmann::json{{"feature", d.feature},
                     {"column", d.column},
                     {"importance", d.importance},
                     {"direction", d.direction},
                     {"correlation", d.correlation}};
}

void from_json(const nlohmann::json& j, Driver& d) {
  d.feature = j.at("feature").get<std::string>();
  d.column = j.at("column").get<size_t>();
  d.importance = j.at("importance").get<double>();
  d.direction = j.at("direction").get<int>();
  d.correlation = j.value("correlation", 0.0);
}

}  // namespace sibyl::ml

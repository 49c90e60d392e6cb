#include "ml/drivers.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace sibyl::ml {

std::vector<Driver> SummariseContributions(std::span<const double> contributions,
                                           std::span<const float> rows,
                                           const std::vector<std::string>& feature_names) {
  const size_t p = feature_names.size();
  const size_t n = p ? rows.size() / p : 0;
  std::vector<Driver> drivers;
  if (n == 0) return drivers;
  for (size_t j = 0; j < p; ++j) {
    double sum_abs = 0;
    // Pearson correlation between the feature's value and its contribution, over rows
    // where the value is present.
    double count = 0, sx = 0, sc = 0, sxx = 0, scc = 0, sxc = 0;
    for (size_t r = 0; r < n; ++r) {
      double c = contributions[r * (p + 1) + j];
      sum_abs += std::abs(c);
      float x = rows[r * p + j];
      if (std::isnan(x)) continue;
      ++count;
      sx += x;
      sc += c;
      sxx += static_cast<double>(x) * x;
      scc += c * c;
      sxc += x * c;
    }
    Driver d;
    d.feature = feature_names[j];
    d.column = j;
    d.importance = sum_abs / n;
    if (d.importance <= 0) continue;
    if (count > 1) {
      double cov = sxc - sx * sc / count;
      double vx = sxx - sx * sx / count, vc = scc - sc * sc / count;
      if (vx > 0 && vc > 0) d.correlation = cov / std::sqrt(vx * vc);
    }
    d.direction = d.correlation > 0.05 ? 1 : d.correlation < -0.05 ? -1 : 0;
    drivers.push_back(std::move(d));
  }
  std::stable_sort(drivers.begin(), drivers.end(),
                   [](const Driver& a, const Driver& b) { return a.importance > b.importance; });
  return drivers;
}

Result<std::vector<Driver>> ComputeDrivers(const Model& model, std::span<const float> rows,
                                           const std::vector<std::string>& feature_names) {
  if (feature_names.size() != model.num_features()) {
    return InvalidArgument("{} feature names for a model of {} features", feature_names.size(),
                           model.num_features());
  }
  ASSIGN_OR_RETURN(std::vector<double> contributions, model.Contributions(rows));
  return SummariseContributions(contributions, rows, feature_names);
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

#include "ml/synthetic.h"

#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

namespace sibyl::ml {

SyntheticData MakeSynthetic(const SyntheticOptions& options) {
  SyntheticData out;
  Dataset& d = out.data;
  const size_t n = options.num_rows, p = options.num_columns;
  d.kind = options.kind;
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> uniform(0, 1);
  const size_t informative = std::min<size_t>(10, p);
  const size_t counts_end = std::min(p, informative + 10);
  out.true_coefficients.assign(p, 0);
  const double base[] = {1.0, -0.8, 0.6, -0.4, 0.3, -0.3, 0.2, -0.2, 0.15, -0.1};
  for (size_t j = 0; j < informative; ++j) out.true_coefficients[j] = base[j];
  for (size_t j = 0; j < p; ++j) {
    std::string kind = j < informative ? "signal" : j < counts_end ? "count" : "noise";
    if (j + 1 == p && p > informative) kind = "constant";
    d.feature_names.push_back(fmt::format("{}_{}", kind, j));
  }
  d.values.resize(n * p);
  d.labels.resize(n);
  d.user_keys.resize(n);
  out.true_probability.resize(n);
  for (size_t r = 0; r < n; ++r) {
    float* x = d.values.data() + r * p;
    double logit = options.intercept;
    for (size_t j = 0; j < p; ++j) {
      double v;
      if (j + 1 == p && p > informative) {
        v = 1.0;
      } else if (j < informative) {
        v = normal(rng);
        logit += out.true_coefficients[j] * v;
      } else if (j < counts_end) {
        v = std::floor(std::exp(normal(rng)));  // a heavy-tailed count
        logit += 0.02 * std::min(v, 10.0);
      } else {
        // Noise shaped like real features: mostly small event counts, some one-hot
        // flags, a few continuous values (recency, amounts).
        switch (j % 20) {
          case 0: case 1: case 2: v = normal(rng); break;
          case 3: case 4: case 5: case 6: case 7: v = uniform(rng) < 0.1 ? 1.0 : 0.0; break;
          default: v = uniform(rng) < 0.6 ? 0.0 : std::floor(std::exp(1.2 * normal(rng)));
        }
      }
      x[j] = static_cast<float>(v);
    }
    if (options.nonlinear && p >= 2) {
      // An interaction: strong only when both of the first two columns are high.
      logit += (x[0] > 0.5 && x[1] > 0.5) ? 3.0 : 0.0;
      logit += (x[0] < -0.5) == (x[1] < -0.5) ? 1.0 : -1.0;
    }
    for (size_t j = 0; j < informative; ++j) {
      if (options.missing_rate > 0 && uniform(rng) < options.missing_rate) {
        x[j] = std::numeric_limits<float>::quiet_NaN();
      }
    }
    double prob = 1.0 / (1.0 + std::exp(-logit));
    bool positive = uniform(rng) < prob;
    if (options.kind == TaskKind::kClassification) {
      out.true_probability[r] = prob;
      d.labels[r] = positive ? 1.0f : 0.0f;
    } else {
      double amount_scale = 20.0 * std::exp(0.5 * (x[0] == x[0] ? x[0] : 0.0));
      out.true_probability[r] = prob * amount_scale * std::exp(0.125);
      d.labels[r] = positive ? static_cast<float>(amount_scale * std::exp(0.5 * normal(rng))) : 0.0f;
    }
    d.user_keys[r] = 1'000'003ULL * (r / std::max(1, options.rows_per_user)) + 17;
  }
  return out;
}

}  // namespace sibyl::ml

// Synthetic feature matrices with a known signal, for tests and the training benchmark.
#pragma once

#include <cstdint>
#include <vector>

#include "ml/dataset.h"

namespace sibyl::ml {

struct SyntheticOptions {
  size_t num_rows = 10000;
  size_t num_columns = 20;
  uint64_t seed = 1;
  TaskKind kind = TaskKind::kClassification;
  // Intercept of the true log-odds; -3 gives roughly a 5-10% positive rate.
  double intercept = -2.0;
  // Adds a threshold interaction between columns 0 and 1 that linear models cannot see.
  bool nonlinear = false;
  // Share of values of the informative columns replaced by NaN.
  double missing_rate = 0.0;
  // Number of stacked rows per user (rows of one user share a key).
  int rows_per_user = 1;
};

struct SyntheticData {
  Dataset data;
  std::vector<double> true_probability;   // or the expected amount for regression
  std::vector<double> true_coefficients;  // of the linear part, per column
};

// Columns: the first min(10, n) carry signal (standard normal, coefficients
// 1, -0.8, 0.6, -0.4, 0.3, ...); then count-like columns with a weak signal; then pure
// noise (mostly small counts, some 0/1 flags, a few normals, as event features are);
// the last column is constant. Regression labels are a log-normal-ish amount
// that is zero for non-buyers.
SyntheticData MakeSynthetic(const SyntheticOptions& options);

}  // namespace sibyl::ml

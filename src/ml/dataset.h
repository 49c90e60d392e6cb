// The input of training: a feature matrix with readable column names, one label per row
// and an optional user key per row. Nothing here knows what an event is.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace sibyl::ml {

// What is being predicted: a probability (labels 0/1) or an amount (real labels).
enum class TaskKind { kClassification, kRegression };

const char* TaskKindName(TaskKind kind);

// A dense, row-major float matrix: row r, column c is values[r * num_columns + c].
// NaN means "missing" for the tree learners; the linear model treats NaN as the column
// mean (that is, contributes nothing).
struct Dataset {
  TaskKind kind = TaskKind::kClassification;
  std::vector<std::string> feature_names;  // one per column, shown to users in drivers
  std::vector<float> values;               // num_rows * num_columns
  std::vector<float> labels;               // one per row: 0/1, or the amount
  // One per row, or empty (then each row is its own user). Rows that share a key (the
  // same user at several stacked cutoffs) always land on the same side of the split.
  std::vector<uint64_t> user_keys;
  // One per row, or empty: 0 for the rows of the newest training cutoff, 1, 2, ... for
  // older stacked cutoffs. Cross-validated training fits the calibration map and reports
  // its metrics on group 0: the newest cutoff's base rate is the nearest to what scoring
  // will meet (docs/ML.md, "Small data").
  std::vector<uint32_t> row_groups;

  size_t num_columns() const { return feature_names.size(); }
  size_t num_rows() const { return labels.size(); }
  const float* row(size_t r) const { return values.data() + r * num_columns(); }
  uint64_t user_key(size_t r) const { return user_keys.empty() ? r : user_keys[r]; }

  // Checks shapes, label values for the kind and that labels are finite.
  Status Validate() const;
};

// Copies the rows `rows` of `data` into a new contiguous row-major buffer.
std::vector<float> GatherRows(const Dataset& data, std::span<const uint32_t> rows);
std::vector<float> GatherLabels(const Dataset& data, std::span<const uint32_t> rows);

}  // namespace sibyl::ml

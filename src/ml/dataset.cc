#include "ml/dataset.h"

#include <cmath>
#include <cstring>

namespace sibyl::ml {

const char* TaskKindName(TaskKind kind) {
  return kind == TaskKind::kClassification ? "classification" : "regression";
}

Status Dataset::Validate() const {
  if (num_columns() == 0) return InvalidArgument("dataset has no feature columns");
  if (values.size() != num_rows() * num_columns()) {
    return InvalidArgument("dataset has {} values, expected {} rows x {} columns", values.size(),
                           num_rows(), num_columns());
  }
  if (!user_keys.empty() && user_keys.size() != num_rows()) {
    return InvalidArgument("dataset has {} user keys for {} rows", user_keys.size(), num_rows());
  }
  if (!row_groups.empty() && row_groups.size() != num_rows()) {
    return InvalidArgument("dataset has {} row groups for {} rows", row_groups.size(), num_rows());
  }
  if (num_rows() > UINT32_MAX) return InvalidArgument("dataset has more than 2^32 rows");
  for (size_t r = 0; r < labels.size(); ++r) {
    float y = labels[r];
    if (!std::isfinite(y)) return InvalidArgument("label of row {} is not a finite number", r);
    if (kind == TaskKind::kClassification && y != 0.0f && y != 1.0f) {
      return InvalidArgument("label of row {} is {}, expected 0 or 1", r, y);
    }
  }
  return Status::Ok();
}

std::vector<float> GatherRows(const Dataset& data, std::span<const uint32_t> rows) {
  const size_t cols = data.num_columns();
  std::vector<float> out(rows.size() * cols);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(out.data() + i * cols, data.row(rows[i]), cols * sizeof(float));
  }
  return out;
}

std::vector<float> GatherLabels(const Dataset& data, std::span<const uint32_t> rows) {
  std::vector<float> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i] = data.labels[rows[i]];
  return out;
}

}  // namespace sibyl::ml

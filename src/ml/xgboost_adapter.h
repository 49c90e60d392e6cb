// The one place that talks to XGBoost's C API: handles are owned by RAII wrappers and
// every error code becomes a Status carrying XGBGetLastError().
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sibyl::ml {

// An XGBoost DMatrix built from a dense row-major float matrix. Zeros and NaN are both
// "absent" to the trees (see FromDense).
class XgbMatrix {
 public:
  static Result<XgbMatrix> FromDense(std::span<const float> values, size_t num_rows,
                                     size_t num_columns, int num_threads);
  // The rows `rows` of the dense row-major `values` (num_columns wide), without copying
  // them into a dense buffer first.
  static Result<XgbMatrix> FromRows(std::span<const float> values, size_t num_columns,
                                    std::span<const uint32_t> rows, int num_threads);
  XgbMatrix(XgbMatrix&& other) noexcept;
  XgbMatrix& operator=(XgbMatrix&& other) noexcept;
  XgbMatrix(const XgbMatrix&) = delete;
  XgbMatrix& operator=(const XgbMatrix&) = delete;
  ~XgbMatrix();

  Status SetLabels(std::span<const float> labels);
  Status SetWeights(std::span<const float> weights);
  size_t num_rows() const { return num_rows_; }
  void* handle() const { return handle_; }

 private:
  XgbMatrix(void* handle, size_t num_rows) : handle_(handle), num_rows_(num_rows) {}
  void* handle_ = nullptr;
  size_t num_rows_ = 0;
};

enum class XgbPrediction { kMargin, kContributions };

class XgbBooster {
 public:
  // A new booster whose prediction cache covers `cached` (training and evaluation sets).
  static Result<XgbBooster> Create(std::span<const XgbMatrix* const> cached);
  // A booster restored from Save() bytes.
  static Result<XgbBooster> Load(std::string_view bytes);
  XgbBooster(XgbBooster&& other) noexcept;
  XgbBooster& operator=(XgbBooster&& other) noexcept;
  XgbBooster(const XgbBooster&) = delete;
  XgbBooster& operator=(const XgbBooster&) = delete;
  ~XgbBooster();

  Status SetParam(const std::string& name, const std::string& value);
  Status UpdateOneIter(int iteration, const XgbMatrix& train);
  // The value of the booster's first eval_metric on `data` after `iteration`.
  Result<double> Evaluate(int iteration, const XgbMatrix& data);
  // Margins (one per row) or contributions (rows x (features + 1), bias last).
  Result<std::vector<float>> Predict(const XgbMatrix& data, XgbPrediction what) const;
  // A booster holding only the first `num_rounds` boosting rounds.
  Result<XgbBooster> Truncate(int num_rounds) const;
  Result<int> BoostedRounds() const;
  Result<size_t> NumFeatures() const;
  // Universal Binary JSON model bytes (the model only, no training state).
  Result<std::string> Save() const;

 private:
  explicit XgbBooster(void* handle) : handle_(handle) {}
  void* handle_ = nullptr;
};

}  // namespace sibyl::ml

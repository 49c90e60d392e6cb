#include "ml/xgboost_adapter.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "common/memory.h"

namespace sibyl::ml {
namespace {

// Every C API call goes through here: a non-zero code becomes an Internal status that
// names the call and carries XGBoost's own message.
Status Check(int code, const char* call) {
  if (code == 0) return Status::Ok();
  return Internal("xgboost {}: {}", call, XGBGetLastError());
}

#define XGB_CALL(expr) RETURN_IF_ERROR(Check((expr), #expr))

}  // namespace

namespace {

// Builds a DMatrix from `num_rows` dense rows, row r at `row_at(r)`. Stored sparse: zeros
// and NaN are both left out, as XGBoost does for any sparse input. Event features are
// mostly zero counts and flags, so histogram building only touches the few present
// values; each split learns a default side for the absent ones, which for non-negative
// counts is the same as a split below the smallest count.
template <typename RowAt>
Result<DMatrixHandle> CreateSparse(size_t num_rows, size_t num_columns, RowAt row_at) {
  auto present_in = [&](const float* row) {
    size_t n = 0;
    for (size_t c = 0; c < num_columns; ++c) n += row[c] != 0.0f && !std::isnan(row[c]);
    return n;
  };
  // Counted first so the CSR arrays are allocated (and prefaulted) once: growing them
  // page by page costs more than the counting pass on this kind of machine.
  std::vector<size_t> row_starts;
  ResizePrefaulted(row_starts, num_rows + 1);
  row_starts[0] = 0;
  for (size_t r = 0; r < num_rows; ++r) row_starts[r + 1] = row_starts[r] + present_in(row_at(r));
  const size_t total = row_starts[num_rows];
  std::vector<unsigned> columns;
  std::vector<float> present;
  ResizePrefaulted(columns, total);
  ResizePrefaulted(present, total);
  for (size_t r = 0; r < num_rows; ++r) {
    const float* row = row_at(r);
    size_t out = row_starts[r];
    for (size_t c = 0; c < num_columns; ++c) {
      if (row[c] != 0.0f && !std::isnan(row[c])) {
        columns[out] = static_cast<unsigned>(c);
        present[out] = row[c];
        ++out;
      }
    }
  }
  // XGBoost rejects null pointers for empty arrays.
  static const unsigned kNoColumn[1] = {0};
  static const float kNoValue[1] = {0};
  DMatrixHandle handle = nullptr;
  XGB_CALL(XGDMatrixCreateFromCSREx(row_starts.data(), columns.empty() ? kNoColumn : columns.data(),
                                    present.empty() ? kNoValue : present.data(), row_starts.size(),
                                    present.size(), num_columns, &handle));
  return handle;
}

}  // namespace

Result<XgbMatrix> XgbMatrix::FromDense(std::span<const float> values, size_t num_rows,
                                       size_t num_columns, int num_threads) {
  if (values.size() != num_rows * num_columns) {
    return InvalidArgument("matrix has {} values for {} x {}", values.size(), num_rows, num_columns);
  }
  ASSIGN_OR_RETURN(DMatrixHandle handle, CreateSparse(num_rows, num_columns, [&](size_t r) {
                     return values.data() + r * num_columns;
                   }));
  return XgbMatrix(handle, num_rows);
}

Result<XgbMatrix> XgbMatrix::FromRows(std::span<const float> values, size_t num_columns,
                                      std::span<const uint32_t> rows, int num_threads) {
  if (num_columns == 0 || values.size() % num_columns != 0) {
    return InvalidArgument("matrix of {} values is not a whole number of {}-column rows", values.size(), num_columns);
  }
  const size_t available = values.size() / num_columns;
  for (uint32_t r : rows) {
    if (r >= available) return InvalidArgument("row {} of a {}-row matrix", r, available);
  }
  ASSIGN_OR_RETURN(DMatrixHandle handle, CreateSparse(rows.size(), num_columns, [&](size_t i) {
                     return values.data() + static_cast<size_t>(rows[i]) * num_columns;
                   }));
  return XgbMatrix(handle, rows.size());
}

XgbMatrix::XgbMatrix(XgbMatrix&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), num_rows_(other.num_rows_) {}

XgbMatrix& XgbMatrix::operator=(XgbMatrix&& other) noexcept {
  if (this != &other) {
    if (handle_) XGDMatrixFree(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    num_rows_ = other.num_rows_;
  }
  return *this;
}

XgbMatrix::~XgbMatrix() {
  if (handle_) XGDMatrixFree(handle_);
}

Status XgbMatrix::SetLabels(std::span<const float> labels) {
  if (labels.size() != num_rows_) return InvalidArgument("{} labels for {} rows", labels.size(), num_rows_);
  XGB_CALL(XGDMatrixSetFloatInfo(handle_, "label", labels.data(), labels.size()));
  return Status::Ok();
}

Status XgbMatrix::SetWeights(std::span<const float> weights) {
  if (weights.size() != num_rows_) return InvalidArgument("{} weights for {} rows", weights.size(), num_rows_);
  XGB_CALL(XGDMatrixSetFloatInfo(handle_, "weight", weights.data(), weights.size()));
  return Status::Ok();
}

Result<XgbBooster> XgbBooster::Create(std::span<const XgbMatrix* const> cached) {
  std::vector<DMatrixHandle> handles;
  for (const XgbMatrix* m : cached) handles.push_back(m->handle());
  BoosterHandle handle = nullptr;
  XGB_CALL(XGBoosterCreate(handles.data(), handles.size(), &handle));
  XgbBooster booster(handle);
  // Quiet by default: XGBoost otherwise prints warnings to stdout, which is the CLI's.
  RETURN_IF_ERROR(booster.SetParam("verbosity", "0"));
  return booster;
}

Result<XgbBooster> XgbBooster::Load(std::string_view bytes) {
  BoosterHandle handle = nullptr;
  XGB_CALL(XGBoosterCreate(nullptr, 0, &handle));
  XgbBooster booster(handle);
  RETURN_IF_ERROR(booster.SetParam("verbosity", "0"));
  if (Status st = Check(XGBoosterLoadModelFromBuffer(handle, bytes.data(), bytes.size()),
                        "XGBoosterLoadModelFromBuffer");
      !st.ok()) {
    return Status(StatusCode::kCorruption, st.message());
  }
  return booster;
}

XgbBooster::XgbBooster(XgbBooster&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)) {}

XgbBooster& XgbBooster::operator=(XgbBooster&& other) noexcept {
  if (this != &other) {
    if (handle_) XGBoosterFree(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

XgbBooster::~XgbBooster() {
  if (handle_) XGBoosterFree(handle_);
}

Status XgbBooster::SetParam(const std::string& name, const std::string& value) {
  if (Status st = Check(XGBoosterSetParam(handle_, name.c_str(), value.c_str()), "XGBoosterSetParam");
      !st.ok()) {
    return st.WithContext(name);
  }
  return Status::Ok();
}

Status XgbBooster::UpdateOneIter(int iteration, const XgbMatrix& train) {
  XGB_CALL(XGBoosterUpdateOneIter(handle_, iteration, train.handle()));
  return Status::Ok();
}

Result<double> XgbBooster::Evaluate(int iteration, const XgbMatrix& data) {
  DMatrixHandle handles[] = {data.handle()};
  const char* names[] = {"eval"};
  const char* out = nullptr;
  XGB_CALL(XGBoosterEvalOneIter(handle_, iteration, handles, names, 1, &out));
  // The answer reads "[7]\teval-logloss:0.4213"; the value follows the last ':'.
  std::string_view text(out);
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Internal("xgboost evaluation reply '{}'", text);
  return std::strtod(std::string(text.substr(colon + 1)).c_str(), nullptr);
}

Result<std::vector<float>> XgbBooster::Predict(const XgbMatrix& data, XgbPrediction what) const {
  const char* config = what == XgbPrediction::kMargin
                           ? R"({"type": 1, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false})"
                           : R"({"type": 2, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false})";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  XGB_CALL(XGBoosterPredictFromDMatrix(handle_, data.handle(), config, &shape, &dims, &result));
  size_t total = 1;
  for (bst_ulong d = 0; d < dims; ++d) total *= shape[d];
  if (data.num_rows() == 0) total = 0;
  return std::vector<float>(result, result + total);
}

Result<XgbBooster> XgbBooster::Truncate(int num_rounds) const {
  BoosterHandle sliced = nullptr;
  XGB_CALL(XGBoosterSlice(handle_, 0, num_rounds, 1, &sliced));
  return XgbBooster(sliced);
}

Result<int> XgbBooster::BoostedRounds() const {
  int rounds = 0;
  XGB_CALL(XGBoosterBoostedRounds(handle_, &rounds));
  return rounds;
}

Result<size_t> XgbBooster::NumFeatures() const {
  bst_ulong features = 0;
  XGB_CALL(XGBoosterGetNumFeature(handle_, &features));
  return static_cast<size_t>(features);
}

Result<std::string> XgbBooster::Save() const {
  bst_ulong length = 0;
  const char* bytes = nullptr;
  XGB_CALL(XGBoosterSaveModelToBuffer(handle_, R"({"format": "ubj"})", &length, &bytes));
  return std::string(bytes, length);
}

}  // namespace sibyl::ml

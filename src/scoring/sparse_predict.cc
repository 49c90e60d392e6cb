#include "scoring/sparse_predict.h"

#include <cmath>
#include <string>

#include <xgboost/c_api.h>

namespace sibyl::scoring {
namespace {

Status Check(int code, const char* what) {
  if (code == 0) return Status::Ok();
  return Internal("{} failed: {}", what, XGBGetLastError());
}

// A cell XGBoost sees as present: ml's dense path leaves zeros and NaN out.
bool Present(float v) { return v != 0.0f && !std::isnan(v); }

}  // namespace

Result<std::shared_ptr<const SparsePredictor>> SparsePredictor::ForModel(const ml::Model& model) {
  if (model.type() == ml::ModelType::kLinear) return std::shared_ptr<const SparsePredictor>();
  ASSIGN_OR_RETURN(std::string bytes, model.Serialize());
  std::shared_ptr<SparsePredictor> predictor(new SparsePredictor());
  for (void*& booster : predictor->boosters_) {
    BoosterHandle handle = nullptr;
    RETURN_IF_ERROR(Check(XGBoosterCreate(nullptr, 0, &handle), "XGBoosterCreate"));
    booster = handle;
    RETURN_IF_ERROR(Check(XGBoosterSetParam(handle, "verbosity", "0"), "XGBoosterSetParam"));
    RETURN_IF_ERROR(Check(XGBoosterLoadModelFromBuffer(handle, bytes.data(), bytes.size()),
                          "XGBoosterLoadModelFromBuffer"));
    // One OpenMP thread per booster: a run splits its rows over two boosters itself, and
    // OpenMP workers spinning on a busy two-core machine cost more than they save
    // (docs/ML.md, "Threads on a busy machine").
    RETURN_IF_ERROR(Check(XGBoosterSetParam(handle, "nthread", "1"), "XGBoosterSetParam"));
  }
  return std::shared_ptr<const SparsePredictor>(std::move(predictor));
}

SparsePredictor::~SparsePredictor() {
  for (void* booster : boosters_)
    if (booster != nullptr) XGBoosterFree(booster);
}

Result<std::vector<double>> SparsePredictor::Margins(const SparseFeatureMatrix& matrix, size_t begin,
                                                     size_t end, int lane) const {
  const size_t cols = matrix.cols();
  // Columns whose fill value XGBoost sees (recency caps): present in every row that does
  // not store the cell.
  std::vector<uint32_t> fill_columns;
  for (size_t c = 0; c < cols; ++c)
    if (Present(matrix.fill[c])) fill_columns.push_back(static_cast<uint32_t>(c));
  std::vector<size_t> row_starts;
  row_starts.reserve(end - begin + 1);
  row_starts.push_back(0);
  std::vector<unsigned> columns;
  std::vector<float> values;
  size_t guess = (end - begin) * (fill_columns.size() + 64);
  columns.reserve(guess);
  values.reserve(guess);
  for (size_t r = begin; r < end; ++r) {
    std::span<const SparseCell> cells = matrix.row(r);
    size_t f = 0;
    // Merge the stored cells with the fill columns, in column order (as the dense scan).
    for (const SparseCell& cell : cells) {
      for (; f < fill_columns.size() && fill_columns[f] < cell.col; ++f) {
        columns.push_back(fill_columns[f]);
        values.push_back(matrix.fill[fill_columns[f]]);
      }
      if (f < fill_columns.size() && fill_columns[f] == cell.col) ++f;  // stored: its own value
      if (Present(cell.value)) {
        columns.push_back(cell.col);
        values.push_back(cell.value);
      }
    }
    for (; f < fill_columns.size(); ++f) {
      columns.push_back(fill_columns[f]);
      values.push_back(matrix.fill[fill_columns[f]]);
    }
    row_starts.push_back(values.size());
  }
  static const unsigned kNoColumn[1] = {0};
  static const float kNoValue[1] = {0};
  DMatrixHandle dmatrix = nullptr;
  RETURN_IF_ERROR(Check(XGDMatrixCreateFromCSREx(row_starts.data(), columns.empty() ? kNoColumn : columns.data(),
                                                 values.empty() ? kNoValue : values.data(), row_starts.size(),
                                                 values.size(), cols, &dmatrix),
                        "XGDMatrixCreateFromCSREx"));
  struct Free {
    DMatrixHandle h;
    ~Free() { XGDMatrixFree(h); }
  } free_dmatrix{dmatrix};
  const char* config =
      R"({"type": 1, "training": false, "iteration_begin": 0, "iteration_end": 0, "strict_shape": false})";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  RETURN_IF_ERROR(Check(XGBoosterPredictFromDMatrix(boosters_[lane & 1], dmatrix, config, &shape, &dims, &result),
                        "XGBoosterPredictFromDMatrix"));
  return std::vector<double>(result, result + (end - begin));
}

}  // namespace sibyl::scoring

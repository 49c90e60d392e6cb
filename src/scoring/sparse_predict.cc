#include "scoring/sparse_predict.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include <nlohmann/json.hpp>
#include <xgboost/c_api.h>

#include "ml/blend_model.h"
#include "scoring/scoring.h"

namespace sibyl::scoring {
namespace {

Status Check(int code, const char* what) {
  if (code == 0) return Status::Ok();
  return Internal("{} failed: {}", what, XGBGetLastError());
}

// A cell XGBoost sees as present: ml's dense path leaves zeros and NaN out.
bool Present(float v) { return v != 0.0f && !std::isnan(v); }

// Columns whose fill value XGBoost sees (recency caps): present in every row that does
// not store the cell.
std::vector<uint32_t> PresentFillColumns(const SparseFeatureMatrix& matrix) {
  std::vector<uint32_t> out;
  for (size_t c = 0; c < matrix.cols(); ++c)
    if (Present(matrix.fill[c])) out.push_back(static_cast<uint32_t>(c));
  return out;
}

// XGBoost 1.7 writes numbers of its model parameters as strings ("5E-1").
float ParamFloat(const nlohmann::json& j) {
  if (j.is_string()) return std::strtof(j.get<std::string>().c_str(), nullptr);
  return j.get<float>();
}
long ParamInt(const nlohmann::json& j) {
  if (j.is_string()) return std::strtol(j.get<std::string>().c_str(), nullptr, 10);
  return j.get<long>();
}

}  // namespace

bool SparsePredictor::native() const {
  if (blend_.empty()) return !trees_.empty();
  return std::all_of(blend_.begin(), blend_.end(), [](const BlendPart& p) { return !p.trees || p.trees->native(); });
}

Result<std::shared_ptr<const SparsePredictor>> SparsePredictor::ForModel(const ml::Model& model) {
  // A blend with a tree part: the trees are walked here. Through the dense path a real-time
  // score built an XGBoost matrix for its one row and woke XGBoost's threads: 0.4 ms of
  // the 1 ms a score took in serve_bench (docs/BENCHMARKS.md).
  if (model.type() == ml::ModelType::kBlend) {
    const auto& blend = static_cast<const ml::BlendModel&>(model);
    std::shared_ptr<SparsePredictor> predictor(new SparsePredictor());
    predictor->num_features_ = model.num_features();
    bool any_trees = false;
    for (const ml::BlendModel::Part& part : blend.parts()) {
      BlendPart p;
      p.weight = part.weight;
      ASSIGN_OR_RETURN(p.trees, ForModel(*part.model));
      if (!p.trees) {
        ASSIGN_OR_RETURN(std::string bytes, part.model->Serialize());
        ASSIGN_OR_RETURN(p.dense, ml::LoadModel(part.model->type(), part.model->task(), bytes));
      }
      any_trees = any_trees || p.trees != nullptr;
      predictor->blend_.push_back(std::move(p));
    }
    if (!any_trees) return std::shared_ptr<const SparsePredictor>();
    return std::shared_ptr<const SparsePredictor>(std::move(predictor));
  }
  // Linear and BG/NBD models are scored through dense blocks (ml::Model::PredictMargin).
  if (model.type() == ml::ModelType::kLinear || model.type() == ml::ModelType::kOutcomeLinear ||
      model.type() == ml::ModelType::kBgNbd)
    return std::shared_ptr<const SparsePredictor>();
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
  predictor->num_features_ = model.num_features();
  predictor->why_not_native_ = predictor->LoadTrees(bytes);
  if (predictor->why_not_native_.empty()) {
    ASSIGN_OR_RETURN(bool same, predictor->SelfCheck(model.num_features()));
    if (!same) {
      predictor->trees_.clear();
      predictor->why_not_native_ = "the native walk differs from XGBoost on the self-check rows";
    }
  }
  return std::shared_ptr<const SparsePredictor>(std::move(predictor));
}

SparsePredictor::~SparsePredictor() {
  for (void* booster : boosters_)
    if (booster != nullptr) XGBoosterFree(booster);
}

std::string SparsePredictor::LoadTrees(const std::string& ubjson) {
  nlohmann::json j = nlohmann::json::from_ubjson(ubjson, /*strict=*/true, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("learner")) return "the model bytes are not XGBoost UBJSON";
  try {
    const nlohmann::json& learner = j["learner"];
    const nlohmann::json& param = learner.at("learner_model_param");
    if (ParamInt(param.value("num_class", nlohmann::json("0"))) > 1) return "several classes";
    if (ParamInt(param.value("num_target", nlohmann::json("1"))) > 1) return "several targets";
    if (static_cast<size_t>(ParamInt(param.at("num_feature"))) != num_features_) return "feature count differs";
    const float base_score = ParamFloat(param.at("base_score"));
    // The objective's ProbToMargin of base_score, as XGBoost computes it (in float).
    const std::string objective = learner.at("objective").at("name").get<std::string>();
    if (objective == "binary:logistic" || objective == "reg:logistic" || objective == "binary:logitraw") {
      if (!(base_score > 0.0f && base_score < 1.0f)) return "base_score outside (0, 1)";
      base_margin_ = -std::log(1.0f / base_score - 1.0f);
    } else if (objective == "reg:squarederror" || objective == "reg:linear") {
      base_margin_ = base_score;
    } else {
      return "objective " + objective;
    }
    const nlohmann::json& booster = learner.at("gradient_booster");
    if (booster.at("name").get<std::string>() != "gbtree") return "booster " + booster["name"].get<std::string>();
    const nlohmann::json& trees = booster.at("model").at("trees");
    for (const nlohmann::json& info : booster.at("model").at("tree_info"))
      if (info.get<long>() != 0) return "several output groups";
    for (const nlohmann::json& tree : trees) {
      auto left = tree.at("left_children").get<std::vector<int32_t>>();
      auto right = tree.at("right_children").get<std::vector<int32_t>>();
      auto feature = tree.at("split_indices").get<std::vector<int64_t>>();
      auto condition = tree.at("split_conditions").get<std::vector<float>>();
      auto default_left = tree.at("default_left").get<std::vector<int>>();
      const size_t n = left.size();
      if (n == 0 || right.size() != n || feature.size() != n || condition.size() != n || default_left.size() != n)
        return "malformed tree";
      if (tree.contains("split_type"))
        for (int type : tree["split_type"].get<std::vector<int>>())
          if (type != 0) return "categorical splits";
      Tree out;
      out.nodes.resize(n);
      for (size_t i = 0; i < n; ++i) {
        Node& node = out.nodes[i];
        node.value = condition[i];
        if (left[i] == -1) {  // a leaf: stays put through the always-missing column
          node.left = static_cast<int32_t>(i);
          node.feature = static_cast<uint32_t>(num_features_) | kDefaultLeft;
          continue;
        }
        if (left[i] <= 0 || static_cast<size_t>(left[i]) + 1 >= n || right[i] != left[i] + 1 || feature[i] < 0 ||
            static_cast<size_t>(feature[i]) >= num_features_)
          return "unexpected tree layout";
        node.left = left[i];
        node.feature = static_cast<uint32_t>(feature[i]) | (default_left[i] != 0 ? kDefaultLeft : 0u);
      }
      // Depth by a walk from the root (children always have larger indices than their
      // parent in XGBoost's layout; checked, so a malformed tree cannot loop).
      std::vector<int> depth(n, 0);
      for (size_t i = 0; i < n; ++i) {
        if (left[i] == -1) continue;
        for (int32_t child : {left[i], right[i]}) {
          if (static_cast<size_t>(child) <= i) return "unexpected tree layout";
          depth[static_cast<size_t>(child)] = depth[i] + 1;
          out.depth = std::max(out.depth, depth[i] + 1);
        }
      }
      trees_.push_back(std::move(out));
    }
    if (trees_.empty()) return "no trees";
  } catch (const std::exception& e) {
    trees_.clear();
    return std::string("unreadable model: ") + e.what();
  }
  return "";
}

void SparsePredictor::NativeMargins(const SparseFeatureMatrix& matrix, size_t begin, size_t end,
                                    double* out) const {
  const std::vector<uint32_t> fill_columns = PresentFillColumns(matrix);
  // Rows are walked kBlock at a time, each tree's levels in lockstep: the walks of
  // different rows are independent, so the processor overlaps their memory loads instead
  // of waiting on one row's chain of nodes. NaN marks a missing feature (a present value
  // is never NaN); column `cols` stays missing (the leaves' column).
  constexpr size_t kBlock = 16;
  const size_t cols = matrix.cols(), stride = cols + 1;
  const float kMissing = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> rows(stride * kBlock, kMissing);
  for (size_t first = begin; first < end; first += kBlock) {
    const size_t count = std::min(kBlock, end - first);
    for (size_t i = 0; i < count; ++i) {
      float* row = rows.data() + i * stride;
      for (uint32_t c : fill_columns) row[c] = matrix.fill[c];
      for (const SparseCell& cell : matrix.row(first + i)) row[cell.col] = Present(cell.value) ? cell.value : kMissing;
    }
    float margin[kBlock];
    std::fill(margin, margin + kBlock, base_margin_);
    for (const Tree& tree : trees_) {
      const Node* nodes = tree.nodes.data();
      int32_t at[kBlock] = {};
      for (int step = 0; step < tree.depth; ++step)
        for (size_t i = 0; i < count; ++i) {
          const Node& node = nodes[at[i]];
          const float v = rows[i * stride + (node.feature & ~kDefaultLeft)];
          // XGBoost: missing takes the default child, else left + !(v < split). Computed
          // without a branch (which way a row goes is a coin toss to the predictor).
          const uint32_t missing = static_cast<uint32_t>(v != v);
          const uint32_t not_less = static_cast<uint32_t>(!(v < node.value));
          const uint32_t default_right = (node.feature >> 31) ^ 1u;
          const uint32_t right = not_less ^ ((not_less ^ default_right) & missing);
          at[i] = node.left + static_cast<int32_t>(right);
        }
      for (size_t i = 0; i < count; ++i) margin[i] += nodes[at[i]].value;
    }
    for (size_t i = 0; i < count; ++i) {
      out[first + i - begin] = margin[i];
      float* row = rows.data() + i * stride;
      for (uint32_t c : fill_columns) row[c] = kMissing;
      for (const SparseCell& cell : matrix.row(first + i)) row[cell.col] = kMissing;
    }
  }
}

Result<std::vector<double>> SparsePredictor::Margins(const SparseFeatureMatrix& matrix, size_t begin, size_t end,
                                                     int lane) const {
  if (!blend_.empty()) return BlendMargins(matrix, begin, end, lane, /*reference=*/false);
  if (!native()) return XgboostMargins(matrix, begin, end, lane);
  if (matrix.cols() != num_features_)
    return Internal("feature matrix has {} columns, the model {}", matrix.cols(), num_features_);
  std::vector<double> out(end - begin);
  NativeMargins(matrix, begin, end, out.data());
  return out;
}

Result<std::vector<double>> SparsePredictor::BlendMargins(const SparseFeatureMatrix& matrix, size_t begin,
                                                          size_t end, int lane, bool reference) const {
  if (matrix.cols() != num_features_)
    return Internal("feature matrix has {} columns, the model {}", matrix.cols(), num_features_);
  // As ml::BlendModel::PredictMargin: the weighted parts added in the blend's order.
  std::vector<double> out(end - begin, 0.0);
  for (const BlendPart& part : blend_) {
    if (part.trees) {
      ASSIGN_OR_RETURN(std::vector<double> margins, reference ? part.trees->XgboostMargins(matrix, begin, end, lane)
                                                              : part.trees->Margins(matrix, begin, end, lane));
      for (size_t i = 0; i < margins.size(); ++i) out[i] += part.weight * margins[i];
      continue;
    }
    // Dense rows in blocks: a block of a few thousand rows, not the caller's 64k.
    constexpr size_t kDenseRows = 4096;
    std::vector<float> dense;
    for (size_t from = begin; from < end; from += kDenseRows) {
      const size_t to = std::min(end, from + kDenseRows);
      DensifyRows(matrix, from, to, dense);
      ASSIGN_OR_RETURN(std::vector<double> margins, part.dense->PredictMargin(dense));
      for (size_t i = 0; i < margins.size(); ++i) out[from - begin + i] += part.weight * margins[i];
    }
  }
  return out;
}

Result<std::vector<double>> SparsePredictor::XgboostMargins(const SparseFeatureMatrix& matrix, size_t begin,
                                                            size_t end, int lane) const {
  if (!blend_.empty()) return BlendMargins(matrix, begin, end, lane, /*reference=*/true);
  const size_t cols = matrix.cols();
  const std::vector<uint32_t> fill_columns = PresentFillColumns(matrix);
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

Result<bool> SparsePredictor::SelfCheck(size_t cols) {
  // Every split threshold of the model, by feature: rows take values at, just below and
  // just above them (and missing, zero, negative and large ones), so each comparison and
  // default direction of the trees is exercised with the exact floats XGBoost compares.
  std::vector<std::vector<float>> thresholds(cols);
  for (const Tree& tree : trees_)
    for (size_t i = 0; i < tree.nodes.size(); ++i) {
      const Node& node = tree.nodes[i];
      if (node.left != static_cast<int32_t>(i)) thresholds[node.feature & ~kDefaultLeft].push_back(node.value);
    }
  std::vector<uint32_t> split_features;
  for (size_t c = 0; c < cols; ++c)
    if (!thresholds[c].empty()) split_features.push_back(static_cast<uint32_t>(c));
  if (split_features.empty()) split_features.push_back(0);
  constexpr size_t kRows = 2048;
  std::mt19937 rng(20261124);
  auto pick_value = [&](uint32_t c) -> float {
    const std::vector<float>& t = thresholds[c];
    float at = t.empty() ? 1.0f : t[rng() % t.size()];
    switch (rng() % 8) {
      case 0: return 0.0f;  // missing
      case 1: return std::numeric_limits<float>::quiet_NaN();  // missing
      case 2: return std::nextafter(at, -std::numeric_limits<float>::infinity());
      case 3: return std::nextafter(at, std::numeric_limits<float>::infinity());
      case 4: return -at - 1.0f;
      case 5: return at * 4.0f + 1.0f;
      default: return at;
    }
  };
  SparseMatrixBuilder builder(kRows);
  SparseFeatureMatrix& shape = builder.matrix();
  shape.actors.assign(kRows, 0);
  shape.columns.assign(cols, "");
  shape.fill.assign(cols, 0.0f);
  // A few columns with a non-zero fill (as recency caps have): rows that do not store
  // them see the fill.
  for (size_t k = 0; k < 3; ++k) {
    uint32_t c = split_features[rng() % split_features.size()];
    shape.fill[c] = pick_value(c);
  }
  {
    SparseMatrixBuilder::Writer writer(builder);
    std::vector<SparseCell> cells;
    for (size_t r = 0; r < kRows; ++r) {
      cells.clear();
      const size_t want = rng() % (std::min<size_t>(split_features.size(), 64) + 1);
      for (size_t k = 0; k < want; ++k) {
        uint32_t c = split_features[rng() % split_features.size()];
        cells.push_back({c, pick_value(c)});
      }
      std::sort(cells.begin(), cells.end(), [](const SparseCell& a, const SparseCell& b) { return a.col < b.col; });
      cells.erase(std::unique(cells.begin(), cells.end(),
                              [](const SparseCell& a, const SparseCell& b) { return a.col == b.col; }),
                  cells.end());
      SparseCell* out = writer.BeginRow(cells.size());
      std::copy(cells.begin(), cells.end(), out);
      writer.CommitRow(r, cells.size());
    }
  }
  SparseFeatureMatrix matrix = builder.Finish();
  ASSIGN_OR_RETURN(std::vector<double> expected, XgboostMargins(matrix, 0, kRows, 0));
  std::vector<double> native(kRows);
  NativeMargins(matrix, 0, kRows, native.data());
  // Equal as numbers (both are floats widened to double; no NaN can come out of a sum
  // of finite leaves).
  for (size_t r = 0; r < kRows; ++r)
    if (!(expected[r] == native[r])) return false;
  return true;
}

}  // namespace sibyl::scoring

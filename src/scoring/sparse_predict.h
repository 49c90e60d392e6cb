// Tree models scored straight from compressed feature rows. ml's dense path
// (ModelBundle -> PredictMargin) makes each row dense (several hundred floats), then
// XGBoost's matrix builder scans them back to the non-zero cells; scoring a million users
// that way spends more time moving zeros and building matrices than walking trees.
//
// Here the trees are walked directly over each row's present cells (the stored cells and
// the non-zero fill values of the cells a row does not store: the entries XGBoost sees
// from the dense path, where zeros and NaN are missing). The walk is XGBoost 1.7's CPU
// predictor step for step: a missing feature takes the node's default child, a present
// one goes left when `value < split_condition` (floats), and the margin is the base
// margin plus every tree's leaf value, added in float in tree order. The trees are read
// from the model's own UBJSON bytes (exact floats). Models this does not cover
// (categorical splits, dart, several classes or targets, other objectives) use XGBoost
// itself on a CSR matrix of the same entries.
//
// Identity is checked, not assumed: ForModel scores a few thousand rows built around the
// trees' own thresholds both ways and keeps the native walk only if every margin is
// bit-identical; the tests and scoring_bench --check compare whole score runs too.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "ml/model.h"
#include "query/feature_matrix.h"

namespace sibyl::scoring {

class SparsePredictor {
 public:
  // A predictor for tree models (random forest, boosted trees) and for blends holding
  // one (their tree parts walked here, the others scored from dense rows as before);
  // nullptr for others.
  static Result<std::shared_ptr<const SparsePredictor>> ForModel(const ml::Model& model);
  ~SparsePredictor();
  SparsePredictor(const SparsePredictor&) = delete;
  SparsePredictor& operator=(const SparsePredictor&) = delete;

  // Raw margins of rows [begin, end) of `matrix`, with booster `lane` (0 or 1: two
  // threads of one scoring run each use their own when XGBoost does the work; the native
  // walk is thread-safe).
  Result<std::vector<double>> Margins(const SparseFeatureMatrix& matrix, size_t begin, size_t end,
                                      int lane = 0) const;
  // The same through XGBoost (a CSR matrix of the same entries), whatever the model: the
  // reference the native walk is checked against.
  Result<std::vector<double>> XgboostMargins(const SparseFeatureMatrix& matrix, size_t begin, size_t end,
                                             int lane = 0) const;
  // Whether the trees are walked natively (false: every call goes through XGBoost), and
  // why not when they are not.
  bool native() const;
  const std::string& why_not_native() const { return why_not_native_; }

 private:
  SparsePredictor() = default;
  // The native model from the UBJSON bytes; an empty reason when it is supported.
  std::string LoadTrees(const std::string& ubjson);
  // Scores synthetic rows both ways; false (and the first difference) when they differ.
  Result<bool> SelfCheck(size_t cols);
  void NativeMargins(const SparseFeatureMatrix& matrix, size_t begin, size_t end, double* out) const;

  // A node: inner nodes split on `feature` (the top bit: missing goes left) at `value`
  // and their right child is left + 1 (XGBoost's own layout, which its walk relies on).
  // Leaves hold their output in `value` and point to themselves through a column that is
  // always missing, so a walk can take `depth` steps without asking whether it is at a
  // leaf: rows of a block are walked side by side without branches.
  struct Node {
    float value;
    uint32_t feature;
    int32_t left;
  };
  struct Tree {
    std::vector<Node> nodes;
    int depth = 0;  // steps from the root to the deepest leaf
  };
  static constexpr uint32_t kDefaultLeft = 0x80000000u;
  std::vector<Tree> trees_;
  // A blend: its parts, in the blend's order and with its weights. A tree part has its
  // own predictor; another part (linear, BG/NBD) a copy of its model, fed dense rows.
  struct BlendPart {
    double weight = 0;
    std::shared_ptr<const SparsePredictor> trees;
    std::unique_ptr<ml::Model> dense;
  };
  std::vector<BlendPart> blend_;
  // `reference`: the tree parts through XGBoost (XgboostMargins) rather than walked.
  Result<std::vector<double>> BlendMargins(const SparseFeatureMatrix& matrix, size_t begin, size_t end, int lane,
                                           bool reference) const;
  float base_margin_ = 0;
  size_t num_features_ = 0;
  std::string why_not_native_;
  void* boosters_[2] = {nullptr, nullptr};
};

}  // namespace sibyl::scoring

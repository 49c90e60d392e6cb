// Tree models scored straight from compressed feature rows. ml's dense path
// (ModelBundle -> PredictMargin) makes each row dense (several hundred floats), then
// XGBoost's matrix builder scans them back to the non-zero cells; scoring a million users
// that way spends more time moving zeros than walking trees. Here the XGBoost matrix is
// built from the stored cells (and the non-zero fill values of the cells a row does not
// store) directly: the same present entries, in the same order, as the dense path gives,
// so the margins are identical.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "ml/model.h"
#include "query/feature_matrix.h"

namespace sibyl::scoring {

class SparsePredictor {
 public:
  // A predictor for tree models (random forest, boosted trees); nullptr for others.
  static Result<std::shared_ptr<const SparsePredictor>> ForModel(const ml::Model& model);
  ~SparsePredictor();
  SparsePredictor(const SparsePredictor&) = delete;
  SparsePredictor& operator=(const SparsePredictor&) = delete;

  // Raw margins of rows [begin, end) of `matrix`, with booster `lane` (0 or 1: two
  // threads of one scoring run each use their own).
  Result<std::vector<double>> Margins(const SparseFeatureMatrix& matrix, size_t begin, size_t end,
                                      int lane = 0) const;

 private:
  SparsePredictor() = default;
  void* boosters_[2] = {nullptr, nullptr};
};

}  // namespace sibyl::scoring

// The interface every trained candidate implements, so that selection, calibration,
// drivers, artifacts and scoring treat logistic regression and tree ensembles alike.
#pragma once

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ml/dataset.h"

namespace sibyl::ml {

// kBlend: a weighted mean of the others' margins (blend_model.h), chosen only by
// cross-validated training.
// kBgNbd: the BG/NBD columns read as a score, when there are no labels to learn from
// (bgnbd_model.h).
// kOutcomeLinear: the linear model on the outcome family's columns only (a few dozen of
// the hundreds), a low-variance candidate for small data (docs/ML.md, "Candidates").
enum class ModelType { kLinear, kRandomForest, kGradientBoostedTrees, kBlend, kBgNbd, kOutcomeLinear };

// "linear", "random_forest", "gradient_boosted_trees", "blend", "bg_nbd", "outcome_linear":
// used in artifacts and reports.
const char* ModelTypeName(ModelType type);
Result<ModelType> ParseModelType(std::string_view name);

class Model {
 public:
  virtual ~Model() = default;

  virtual ModelType type() const = 0;
  virtual TaskKind task() const = 0;
  virtual size_t num_features() const = 0;

  // `rows` is row-major with num_features() columns. The raw margin is the log-odds for
  // classification and the predicted amount for regression.
  virtual Result<std::vector<double>> PredictMargin(std::span<const float> rows) const = 0;

  // Per-row additive explanation: num_rows x (num_features() + 1) values, row-major, the
  // last column being the bias. Each row sums to that row's raw margin (SHAP values for
  // trees, exact linear terms for the linear model).
  virtual Result<std::vector<double>> Contributions(std::span<const float> rows) const = 0;

  // Bytes that LoadModel turns back into a model scoring identically.
  virtual Result<std::string> Serialize() const = 0;

  // Threads used by prediction (0 = all hardware threads).
  virtual void SetNumThreads(int num_threads) = 0;
};

Result<std::unique_ptr<Model>> LoadModel(ModelType type, TaskKind task, std::string_view bytes);

// Margin to the model's own output scale: the logistic function for classification,
// unchanged for regression. Calibration applies after this.
inline double MarginToOutput(TaskKind task, double margin) {
  return task == TaskKind::kClassification ? 1.0 / (1.0 + std::exp(-margin)) : margin;
}

// Hardware threads, at least 1; `requested` wins when positive.
int ResolveThreads(int requested);

// The machine's CPU time over the first line of /proc/stat ("cpu  user nice system idle
// iowait irq softirq steal ..."): busy (everything but idle and iowait) and total, in
// ticks. nullopt for a line that is not one.
struct CpuTicks {
  unsigned long long busy = 0, total = 0;
};
std::optional<CpuTicks> ParseCpuTicks(std::string_view proc_stat);

// How many cores' worth of CPU the whole machine used over `window`, while the calling
// thread sleeps through it (so all of it is someone else's: other processes, or other
// threads of this one). nullopt where /proc/stat cannot be read.
std::optional<double> BusyCoresNow(std::chrono::milliseconds window);

}  // namespace sibyl::ml

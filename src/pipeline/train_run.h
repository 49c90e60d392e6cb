// A training run: the training set of a prediction at T_train (training_set.h), ml::Train,
// and the trained version written to its own directory:
//
//   <data>/predictions/<name>/versions/<n>/
//     version.json   what was trained: definition, as-of, cutoffs, data window, seed,
//                    threads, row and label counts, stage times (format in docs/FORMAT.md)
//     holdout.json   the winner's calibrated held-out predictions and labels (report page)
//     model/         the ml bundle (ml/bundle.h); its extra.json holds the feature spec
//                    and the data window, everything scoring needs
//
// The version directory is assembled under a temporary name and renamed into place.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "ml/bundle.h"
#include "ml/report_html.h"
#include "ml/trainer.h"
#include "pipeline/prediction.h"
#include "pipeline/registry.h"
#include "pipeline/training_set.h"
#include "pipeline/seasonal_shift.h"
#include "store/reader.h"

namespace sibyl::pipeline {

struct TrainRequest {
  // The time the model is meant for; default: the store's last event (T_train is then
  // floor_hour(last event - H)).
  std::optional<int64_t> as_of_ms;
  TrainingSetOptions set;  // stack, seed, sample cap, eligibility, taxonomy
  // Threads for the learners (0: all); 1 makes the model bytes a function of data + seed.
  int num_threads = 0;
  // Candidates and learner settings; seed and threads are overridden from above.
  ml::TrainOptions ml;
  bool parallel_queries = true;
  // Keep the training matrix in FittedPrediction::set after training (benchmarks).
  bool keep_matrix = false;
  // When the training set is not eligible, score with BG/NBD instead of failing
  // (fallback.h). Backtests turn it off: they measure trained models.
  bool bgnbd_fallback = true;
  // BG/NBD (read from the outcome family's columns) competes with the trained candidates.
  bool bgnbd_candidate = true;
  // Shift the calibration by last year's change between the training and the scoring
  // moment, when the history reaches that far back (seasonal_shift.h).
  bool seasonal_shift = true;
  std::function<void(std::string_view stage)> on_stage;
};

// A trained model kept in memory (for backtests and benchmarks), with what built it.
struct FittedPrediction {
  PredictionDefinition definition;
  int64_t as_of_ms = 0;
  int64_t train_cutoff_ms = 0;
  TrainingSet set;  // data.values released after training to save memory
  ml::TrainResult result;
  std::vector<StageSeconds> stage_times;  // query stages, then ml's
  // Non-empty when the training set was not eligible and BG/NBD stands in (fallback.h):
  // the eligibility failure. There are then no labels, rows or held-out metrics.
  std::string fallback_reason;
  // What the seasonal shift found and whether it was applied to result.calibration.
  SeasonalShift seasonal;
};

// Builds the training set at the cutoffs of `request` and trains. Eligibility failures
// are FailedPrecondition and nothing is trained.
Result<FittedPrediction> FitPrediction(const EventReader& reader, const PredictionDefinition& definition,
                                       const TrainRequest& request);

struct TrainedVersion {
  int version = 0;
  std::string dir;
  nlohmann::json summary;  // version.json
};

// FitPrediction, then writes the next version directory of `definition.name`.
Result<TrainedVersion> TrainPrediction(const PredictionRegistry& registry, const EventReader& reader,
                                       const PredictionDefinition& definition, const TrainRequest& request);

// Writes `fitted` as version `version` (AlreadyExists if taken). Moves the model out.
Status WriteVersion(const std::string& version_dir, int version, FittedPrediction& fitted,
                    const TrainRequest& request, nlohmann::json& summary);

// A version read back: its summary, the bundle, the held-out predictions.
struct LoadedVersion {
  int version = 0;
  nlohmann::json summary;
  ml::ModelBundle bundle;
  std::vector<double> holdout_predictions;
  std::vector<float> holdout_labels;
};
// The drivers of a bundle as JSON rows: feature, words, importance, direction,
// direction_words (what `predict show --json` and the API print).
nlohmann::json DriversJson(const ml::ModelBundle& bundle);
// The drivers per behaviour (ml::SummariseTopics): topic, feature (its lead column), words
// (the lead column's), importance, direction, direction_words; empty for versions trained
// before they existed.
nlohmann::json TopicDriversJson(const ml::ModelBundle& bundle);

// The report page's input for a loaded version, drivers in plain words.
ml::ReportInput ReportInputOf(const LoadedVersion& loaded, std::string title);

Result<LoadedVersion> LoadVersion(const PredictionRegistry& registry, const std::string& name, int version);
// A version's version.json alone, its checksum checked (Corruption naming the file).
Result<nlohmann::json> ReadVersionSummary(const PredictionRegistry& registry, const std::string& name, int version);

// The feature spec saved with a bundle.
Result<FeatureSpec> SpecOf(const ml::ModelBundle& bundle);

// Stage times as [{"stage": .., "seconds": ..}].
nlohmann::json StageTimesJson(const std::vector<StageSeconds>& times);

}  // namespace sibyl::pipeline

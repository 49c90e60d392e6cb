// Scoring a trained version: the model, its feature spec and cohort loaded once
// (ScoringModel), scores of blocks of users, percentiles against a stored score
// distribution, and the single-user path a real-time endpoint can call (ScoreUser).
// A score is a pure function of (version, the user's events before T): every path goes
// through the same feature query and ScoreRows. See docs/SCORING.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "ml/bundle.h"
#include "pipeline/prediction.h"
#include "pipeline/registry.h"
#include "query/cohort.h"
#include "query/feature_matrix.h"
#include "query/feature_spec.h"
#include "query/query_engine.h"
#include "scoring/sparse_predict.h"
#include "store/reader.h"

namespace sibyl::scoring {

// The user properties a scoring run writes back (docs/SCORING.md).
std::string ScoreProperty(const std::string& name);         // sibyl.NAME.score
std::string PercentileProperty(const std::string& name);    // sibyl.NAME.percentile
std::string ModelVersionProperty(const std::string& name);  // sibyl.NAME.model_version

// Everything needed to score with one trained version.
struct ScoringModel {
  std::string name;
  int version = 0;
  pipeline::PredictionDefinition definition;  // as trained (its cohort is scored)
  CohortExpr cohort;
  FeatureSpec spec;
  ml::ModelBundle bundle;
  int64_t train_cutoff_ms = 0;
  // Tree models predicted from compressed rows (same margins as bundle.model, without
  // densifying); set by LoadScoringModel, null for linear models (then the dense path).
  std::shared_ptr<const SparsePredictor> sparse_predictor;
  bool regression() const { return bundle.task == ml::TaskKind::kRegression; }
};

// Loads `version` of `name` (the latest when absent). NotFound when nothing is trained.
Result<ScoringModel> LoadScoringModel(const pipeline::PredictionRegistry& registry, const std::string& name,
                                      std::optional<int> version = std::nullopt);

// Scores and raw margins of some rows. The margin ranks users (percentiles): calibrated
// probabilities have plateaus, the margin rarely ties.
struct ScoredRows {
  std::vector<double> scores;
  std::vector<double> margins;
};

// Rows [begin, end) of `matrix` made dense.
void DensifyRows(const SparseFeatureMatrix& matrix, size_t begin, size_t end, std::vector<float>& out);

// Scores every row of `matrix` in dense sub-blocks of `rows_per_block` (bounded memory).
// `on_block`, when set, sees each dense sub-block (drift histograms). Without it, tree
// models with a sparse_predictor score the compressed rows directly (on two threads for
// large matrices): the same margins, without densifying.
Result<ScoredRows> ScoreMatrix(const ScoringModel& model, const SparseFeatureMatrix& matrix,
                               size_t rows_per_block = 4096,
                               const std::function<void(std::span<const float> rows, size_t count)>& on_block = {});

// The score distribution of a full run, as 1001 quantiles of the raw margin; percentiles
// of later (hourly) runs are read off it, so they stay consistent with the full cohort.
inline constexpr size_t kQuantilePoints = 1001;
std::vector<double> MarginQuantiles(std::vector<double> margins);
// PercentileOf(quantiles, m) of every margin; on two threads when `parallel` and there are
// many.
std::vector<double> PercentilesOf(std::span<const double> quantiles, std::span<const double> margins, bool parallel);
// users, sum, mean, min, p10, p50, p90, max of a run's scores (p_q: the element at
// floor(q * (n - 1)) of the sorted scores), as the run record keeps them.
nlohmann::json ScoreSummary(std::vector<double> scores);
// 100 x the share of the reference quantiles at or below `margin`, rounded to 0.01:
// the best user of the full run gets 100, and `percentile >= 80` is its top fifth.
double PercentileOf(std::span<const double> quantiles, double margin);

// One user's score at T.
struct UserScore {
  std::string user_id;
  int version = 0;
  int64_t cutoff_ms = 0;
  double score = 0;
  double margin = 0;
  std::optional<double> percentile;  // when reference quantiles were given
  bool in_cohort = false;            // member of the prediction's cohort at T
  std::vector<float> features;       // the row the model saw, in spec column order
};

// The actor of a row id as UserIds names it ("device:<id>" for anonymous devices).
std::optional<ActorId> ActorOfUserId(const EventReader& reader, const std::string& user_id);

// Scores one user at the hour-aligned `cutoff_ms` with exactly the numbers a batch run at
// the same T gives. NotFound for unknown users. This scans the store's segments for one
// actor: fine for explanations and a first real-time endpoint.
Result<UserScore> ScoreUser(const EventReader& reader, const ScoringModel& model, const std::string& user_id,
                            int64_t cutoff_ms, std::span<const double> quantiles = {});

// A written-back score, read from the store's number columns (and user property history:
// scores set by events, or by stores from before number columns).
struct WrittenScore {
  ActorId actor = 0;
  std::string user_id;
  double score = 0;
  double percentile = 0;
  int version = 0;
  int64_t cutoff_ms = 0;  // the T of the run that wrote the score
};

// The latest written scores of `name` as of `as_of_ms` (a record counts when its time is
// strictly before it; INT64_MAX: everything), one per user that has one.
std::vector<WrittenScore> ReadWrittenScores(const EventReader& reader, const std::string& name,
                                            int64_t as_of_ms = INT64_MAX);
// The same for one actor, without reading everyone's; nullopt when it has none.
std::optional<WrittenScore> ReadWrittenScore(const EventReader& reader, const std::string& name, ActorId actor,
                                             int64_t as_of_ms = INT64_MAX);

// The default scoring cutoff: floor_hour(last event + 1 ms), the start of the hour in
// progress at the store's last event, or at the wall clock if that is earlier (an event
// stamped in the future must not move it past the data; docs/SCORING.md).
int64_t DefaultScoringCutoff(const EventReader& reader);

}  // namespace sibyl::scoring

// From a prediction definition to the rows ml::Train learns from: the training cutoff
// rule, optional stacked earlier cutoffs, the cohort, labels, eligibility, a deterministic
// sample, the taxonomy and the features. See docs/PREDICTIONS.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ml/dataset.h"
#include "ml/trainer.h"
#include "pipeline/prediction.h"
#include "query/query_engine.h"
#include "query/taxonomy.h"

namespace sibyl::pipeline {

struct EligibilityOptions {
  // Rows with the outcome (revenue: a non-zero amount) and without it, over all cutoffs.
  uint64_t min_positives = 100;
  uint64_t min_negatives = 100;
  // The store's first event must be at least this many days before the earliest training
  // cutoff T. The features count events in 8 weekly windows back to T-56d; with 49 days
  // every window, the oldest [T-56d, T-49d) included, holds data. With less, the oldest
  // windows are empty for everyone at training time but not at scoring time, and the
  // model would learn "week -8 is always zero".
  int min_history_days = 49;
};

struct TrainingSetOptions {
  // Earlier weekly cutoffs stacked below the main one (0: just T_train), or kAutoStack:
  // stack earlier weeks only while the rows so far are fewer than `auto_stack_rows`, at
  // most `auto_stack_max` of them, and only weeks with enough history. Boosted trees on
  // hundreds of sparse columns keep gaining from rows up to about 10^5 (docs/ML.md,
  // "Stacked cutoffs"); past that, more rows cost time and gain little, so large cohorts
  // train on their newest week alone.
  int stack = kAutoStack;
  static constexpr int kAutoStack = -1;
  uint64_t auto_stack_rows = 150'000;
  int auto_stack_max = 3;
  // Small cohorts stack deeper (AutoStackWeeks): weeks beyond `auto_stack_max`, up to
  // `auto_deep_stack_max`, while the rows are fewer than `auto_deep_stack_rows` and every
  // stacked label window starts within `auto_stack_span_days` of the time the model is
  // for (T_train + H). A cohort of a few thousand users learns from more states of the
  // same users; older windows than about a season describe another one (docs/ML.md,
  // "Deeper stacking for small cohorts").
  int auto_deep_stack_max = 12;
  uint64_t auto_deep_stack_rows = 40'000;
  int auto_stack_span_days = 112;
  uint64_t seed = 42;
  // At most this many users per cutoff, chosen by a seeded hash of the user id.
  uint64_t max_users = 5'000'000;
  // At most this many users of the customer base BG/NBD is fitted on (FitOutcomeModels):
  // its four parameters are settled long before, and the base can be the whole store.
  uint64_t customer_base_users = 250'000;
  EligibilityOptions eligibility;
  TaxonomyOptions taxonomy;
  // Called as each stage starts ("cohort", "labels", "features", ...).
  std::function<void(std::string_view stage)> on_stage;
};

// The as-of time a training run uses when none is given: the store's last event, but
// never later than `now_ms`. One event stamped years ahead (a wrong clock, microseconds
// for milliseconds) in a store would otherwise put every default training cutoff past
// all the data ("found 0 users") for good, as events are never deleted.
int64_t DefaultAsOf(const EventReader& reader, int64_t now_ms);

// The training cutoff for a model meant to be used at `as_of_ms`:
// T_train = floor_hour(as_of - H), so every label window [T, T+H) has been observed.
int64_t TrainCutoff(int64_t as_of_ms, int horizon_days);

// T_train, then `stack` earlier cutoffs one week apart (newest first).
std::vector<int64_t> StackedCutoffs(int64_t train_cutoff_ms, int stack);
// The most weeks kAutoStack may stack for a horizon: max(auto_stack_max, the weeks k with
// 7k + H <= auto_stack_span_days), at most auto_deep_stack_max. 30 days: 11; 90 days: 3.
int AutoStackWeeks(int horizon_days, const TrainingSetOptions& options);
// The candidate cutoffs of `options`: StackedCutoffs with `stack`, or with
// AutoStackWeeks under kAutoStack (BuildTrainingSet then decides how many it uses).
std::vector<int64_t> CandidateCutoffs(int64_t train_cutoff_ms, int horizon_days, const TrainingSetOptions& options);

// Stable 64-bit key of a row id (FNV-1a), so that the same user gets the same key at every
// stacked cutoff and in every run: the split and the sample depend on it.
uint64_t UserKey(std::string_view row_id);

// Keeps at most `max_users` of `users` (and their `ids`) by a seeded hash of the ids, in
// their order: the same users at every cutoff for one seed.
void SampleUsers(UserSet& users, std::vector<std::string>& ids, uint64_t max_users, uint64_t seed);

struct CutoffSummary {
  int64_t cutoff_ms = 0;
  uint64_t cohort_users = 0;   // before sampling
  uint64_t rows = 0;           // after sampling
  uint64_t positives = 0;      // revenue: rows with a non-zero amount
  double label_sum = 0;        // positives, or total revenue
};

struct StageSeconds {
  std::string stage;
  double seconds = 0;
};

struct TrainingSet {
  ml::Dataset data;                   // rows of every cutoff, newest cutoff first
  FeatureSpec spec;                   // built at the newest cutoff, used for all
  std::vector<std::string> row_ids;   // one per row
  std::vector<uint32_t> row_cutoff;   // index into `cutoffs` per row
  std::vector<int64_t> cutoffs;
  std::vector<CutoffSummary> summaries;  // one per cutoff
  uint64_t positives = 0, negatives = 0;
  std::vector<StageSeconds> stage_times;
  // What became of the outcome family's BG/NBD fit, for the version record.
  std::string outcome_model_note;
};

// Checks that the store reaches far enough back for `earliest_cutoff_ms`. The error says
// what was found and what is needed.
Status CheckHistory(const EventReader& reader, int64_t earliest_cutoff_ms,
                    const EligibilityOptions& options);

// Checks the label counts. The error says what was found and what is needed.
Status CheckLabelCounts(PredictionKind kind, uint64_t positives, uint64_t negatives,
                        const std::vector<CutoffSummary>& summaries, const EligibilityOptions& options);

// Builds the rows for `cutoffs` (newest first). Runs the eligibility checks before the
// expensive feature query, so an ineligible prediction costs only its cohort and labels.
Result<TrainingSet> BuildTrainingSet(const EventReader& reader, const QueryEngine& engine,
                                     const PredictionDefinition& definition,
                                     const std::vector<int64_t>& cutoffs,
                                     const TrainingSetOptions& options);

// The features of one cohort at one cutoff with a fixed spec, as a Dataset-compatible
// row-major copy (for scoring in backtests and benchmarks).
struct ScoringRows {
  std::vector<std::string> row_ids;
  std::vector<float> values;  // rows x spec columns
  std::vector<float> labels;  // when asked for
};
Result<ScoringRows> BuildScoringRows(const EventReader& reader, const QueryEngine& engine,
                                     const PredictionDefinition& definition, const FeatureSpec& spec,
                                     int64_t cutoff_ms, bool with_labels);

ml::TaskKind TaskFor(PredictionKind kind);

// The outcome family of a prediction (docs/FEATURES.md, "The outcome family"): its
// outcome as defined, over windows that follow the horizon and fit in the history before
// `oldest_cutoff_ms`.
Result<OutcomeFamilySpec> OutcomeFamilyFor(const PredictionDefinition& definition, const LabelSpec& label,
                                           int64_t first_event_ms, int64_t oldest_cutoff_ms);
// Fits BG/NBD at `cutoff_ms` on the outcome histories of the customer base into
// `outcome.bgnbd` and, with `outcome.unfiltered`, on its histories of the event without
// the filters into `outcome.unfiltered_bgnbd`. The customer base is every user who did the
// outcome's event before the cutoff (any event, for churn without one), not the
// prediction's cohort: BG/NBD describes customers from their first purchase on, and a
// cohort chosen on recent activity (churn's "bought within 90 days") holds only those who
// have not dropped out yet, so fitted on it the dropout vanishes (docs/FEATURES.md, "The
// outcome family"). At most `max_users` of them, by a seeded hash of their ids. Too
// little history leaves a fit unset. Returns what happened, in words.
Result<std::string> FitOutcomeModels(const QueryEngine& engine, int64_t cutoff_ms, uint64_t max_users, uint64_t seed,
                                     OutcomeFamilySpec& outcome);

// Where the outcome family's columns are in `spec`'s layout (empty without the family).
std::vector<uint32_t> OutcomeColumnsOf(const FeatureSpec& spec);

// The BG/NBD model over `spec`'s columns, when the spec carries fitted parameters: where
// its columns are, what it outputs for the prediction's kind, and its prior (a newcomer's
// probability; revenue: a newcomer's expected days times the mean amount per active day
// of `rows`, row-major with the spec's columns).
std::optional<ml::TrainOptions::BgNbdCandidate> BgNbdCandidateFor(const FeatureSpec& spec, PredictionKind kind,
                                                                  std::span<const float> rows);

}  // namespace sibyl::pipeline

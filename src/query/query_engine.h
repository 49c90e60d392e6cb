// QueryEngine: the three queries that feed machine learning, behind one interface so that
// the pipelines do not care where events live. The embedded engine runs them on an
// EventReader snapshot; a ClickHouse engine can generate SQL for the same calls (each
// method's inputs are plain data: a spec, a cutoff, a user set).
//
// Typical use (training):
//   auto engine = MakeEmbeddedQueryEngine(store->Snapshot());
//   ASSIGN_OR_RETURN(UserSet users, engine->Cohort(cohort, T));
//   ASSIGN_OR_RETURN(Taxonomy taxonomy, engine->BuildTaxonomy(T, options));
//   FeatureSpec spec{.taxonomy = taxonomy};            // saved with the model
//   ASSIGN_OR_RETURN(FeatureMatrix x, engine->Features(spec, T, users));
//   ASSIGN_OR_RETURN(std::vector<float> y, engine->Labels(label, T, users));
// Scoring loads the saved spec and calls Cohort and Features at the scoring cutoff.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "query/cohort.h"
#include "query/feature_matrix.h"
#include "query/feature_spec.h"
#include "query/labels.h"
#include "query/outcome_features.h"
#include "query/taxonomy.h"
#include "store/reader.h"

namespace sibyl {

// The users a query is about, at one cutoff. `actors` are backend-specific dense ids in
// ascending order; QueryEngine::UserId names them.
struct UserSet {
  int64_t cutoff_ms = 0;  // hour-aligned
  std::vector<ActorId> actors;
};

class QueryEngine {
 public:
  virtual ~QueryEngine() = default;

  // The taxonomy from data before `cutoff_ms`.
  virtual Result<Taxonomy> BuildTaxonomy(int64_t cutoff_ms, const TaxonomyOptions& options) const = 0;

  // The starting cohort at `cutoff_ms` (floored to the hour). Unknown names fail with
  // "did you mean".
  virtual Result<UserSet> Cohort(const CohortExpr& cohort, int64_t cutoff_ms) const = 0;

  // One row per user of `users`, in its order, with `spec`'s columns, from data strictly
  // before the cutoff. `users` must come from Cohort at the same cutoff.
  virtual Result<FeatureMatrix> Features(const FeatureSpec& spec, int64_t cutoff_ms,
                                         const UserSet& users) const = 0;
  // The same matrix in compressed rows (cells equal to their column's fill are not
  // stored): the cheap form for large cohorts.
  virtual Result<SparseFeatureMatrix> SparseFeatures(const FeatureSpec& spec, int64_t cutoff_ms,
                                                     const UserSet& users) const = 0;

  // Each user's history of the outcome before the cutoff, as a BG/NBD model reads it
  // (query/outcome_features.h); nullopt for users who never did it. Training fits the
  // outcome family's BG/NBD parameters on these.
  virtual Result<std::vector<std::optional<OutcomeRepeatSummary>>> RepeatSummaries(
      const OutcomeFamilySpec& outcome, int64_t cutoff_ms, const UserSet& users) const = 0;

  // One label per user of `users`, from data in [cutoff, cutoff + horizon).
  virtual Result<std::vector<float>> Labels(const LabelSpec& label, int64_t cutoff_ms,
                                            const UserSet& users) const = 0;

  // Checks a label definition's names ("did you mean").
  virtual Status ValidateLabel(const LabelSpec& label) const = 0;

  // The user id (or device id, for an anonymous device) of an actor.
  virtual std::string UserId(ActorId actor) const = 0;
  // All row ids of a set, in order: "u:" users become their user id, anonymous devices
  // "device:<device_id>", so the two can never collide.
  virtual std::vector<std::string> UserIds(const UserSet& users) const = 0;
};

std::unique_ptr<QueryEngine> MakeEmbeddedQueryEngine(std::shared_ptr<const EventReader> reader,
                                                     bool parallel = true);

}  // namespace sibyl

// The feature query on an EventReader (the embedded backend): one row per cohort user,
// the columns of a FeatureSpec, everything strictly before the hour-aligned cutoff.
#pragma once

#include <span>

#include "common/status.h"
#include "query/feature_matrix.h"
#include "query/feature_spec.h"
#include "store/reader.h"

namespace sibyl {

// `rows` are canonical actors at the cutoff (what EvaluateCohort returns); a device
// linked to one of them by a link made before the cutoff adds its events to that row.
// Visits blocks of actors (EventReader::ScanActorBlocks) in parallel when `parallel`:
// each actor's events from every segment are folded into one row in cache and written
// once. A linked device's events are folded on their own and merged into its user's row
// after the scan (its actor id can sit in another block than the user's).
Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel = true);

// The same matrix in compressed rows: the form for large cohorts (a million users by
// several hundred columns is 2.2 GB dense, a few hundred MB sparse).
Result<SparseFeatureMatrix> ComputeSparseFeatures(const EventReader& reader, const FeatureSpec& spec,
                                                  int64_t cutoff_ms, std::span<const ActorId> rows,
                                                  bool parallel = true);

// How the feature query reaches the rows' events. Both paths give bit-identical
// matrices; kAuto gathers when the rows are at most a sixteenth of the store's actors.
enum class FeaturePath {
  kAuto,
  kScan,    // every actor block of the store (EventReader::ScanActorBlocks)
  kGather,  // only the rows' actors, by binary search (EventReader::GatherActors)
};
Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel, FeaturePath path);
// `known_columns`: spec.ColumnNames() computed before (a model's feature names, checked
// against its spec when it was loaded). Formatting every column's name was half of a
// one-user query (a real-time score).
Result<SparseFeatureMatrix> ComputeSparseFeatures(const EventReader& reader, const FeatureSpec& spec,
                                                  int64_t cutoff_ms, std::span<const ActorId> rows,
                                                  bool parallel, FeaturePath path,
                                                  const std::vector<std::string>* known_columns = nullptr);

}  // namespace sibyl

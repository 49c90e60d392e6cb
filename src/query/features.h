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
// Scans chunks in parallel when `parallel`.
Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel = true);

}  // namespace sibyl

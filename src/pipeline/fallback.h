// When there is nothing to learn from: a prediction whose training set is not eligible
// (the horizon is longer than the labelled history allows, or too few users did the
// outcome) is scored by the BG/NBD model instead, fitted at the as-of time on the
// customer base's outcome histories (FitOutcomeModels), which needs no labels
// (docs/PREDICTIONS.md, "When there is nothing to learn from"). The version says so, and
// why.
#pragma once

#include "pipeline/train_run.h"

namespace sibyl::pipeline {

// `why` is the eligibility failure. Fails with it (and what BG/NBD lacked) when the
// customer base at the as-of time has too little outcome history for BG/NBD too.
Result<FittedPrediction> FitBgNbdFallback(const EventReader& reader, const QueryEngine& engine,
                                          const PredictionDefinition& definition, int64_t as_of_ms,
                                          const Status& why, const TrainRequest& request);

}  // namespace sibyl::pipeline

// The recency-frequency baseline that accuracy is measured against: a logistic
// regression on log(1 + hours since the last event) and log(1 + events) in the last four
// and the last eight weeks (all from the feature matrix; events of the taxonomy's types),
// fitted on the same users as sibyl's models and scored on the same held-out users. What a team would build by hand in an afternoon.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "ml/dataset.h"
#include "ml/split.h"

namespace sibyl::pipeline {

// The three baseline columns of `data` (whose columns are named as in docs/FEATURES.md).
// Fails if the matrix has no "hours since last event" column.
Result<ml::Dataset> RecencyFrequencyColumns(const ml::Dataset& data);

// Fits the baseline on `split.fit_rows` and returns its probabilities on
// `split.test_rows`, in that order.
Result<std::vector<double>> RecencyFrequencyBaseline(const ml::Dataset& data, const ml::Split& split);

}  // namespace sibyl::pipeline

// Predictive cohorts: which scored users `sibyl cohort NAME --top 20%` exports, in which
// order (docs/SCORING.md).
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "scoring/scoring.h"

namespace sibyl::scoring {

struct CohortSelection {
  // At most one of these; none: every scored user.
  std::optional<double> top_percent;     // percentile >= 100 - P (the cohort language's set)
  std::optional<double> bottom_percent;  // percentile <= P
  std::optional<size_t> top_count;
  std::optional<size_t> bottom_count;
  double min_score = -1e300;
};

// The selected users, best first (score, then percentile, then user id, descending score
// and percentile); bottom selections worst first.
std::vector<WrittenScore> SelectCohort(std::vector<WrittenScore> scores, const CohortSelection& selection);

}  // namespace sibyl::scoring

// Predictive cohorts: which scored users `sibyl cohort NAME --top 20%` exports, in which
// order (docs/SCORING.md).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
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

// A cohort size as users write it: "20%" -> {20, true} (a percentage), "500" -> {500,
// false} (a number of users). `what` names the flag or parameter in the error.
Result<std::pair<double, bool>> ParseCohortAmount(std::string_view what, const std::string& text);

// The selected users, best first (score, then percentile, then user id, descending score
// and percentile); bottom selections worst first.
std::vector<WrittenScore> SelectCohort(std::vector<WrittenScore> scores, const CohortSelection& selection);

}  // namespace sibyl::scoring

#include "scoring/cohort_export.h"

#include <algorithm>
#include <cstdlib>

namespace sibyl::scoring {

std::vector<WrittenScore> SelectCohort(std::vector<WrittenScore> scores, const CohortSelection& s) {
  // Best first; the percentile breaks score ties (calibration plateaus), then the id.
  std::sort(scores.begin(), scores.end(), [](const WrittenScore& a, const WrittenScore& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.percentile != b.percentile) return a.percentile > b.percentile;
    return a.user_id < b.user_id;
  });
  const bool bottom = s.bottom_percent || s.bottom_count;
  if (bottom) std::reverse(scores.begin(), scores.end());
  std::vector<WrittenScore> out;
  for (WrittenScore& w : scores) {
    if (w.score < s.min_score) continue;
    if (s.top_percent && w.percentile < 100 - *s.top_percent) continue;
    if (s.bottom_percent && w.percentile > *s.bottom_percent) continue;
    if (s.top_count && out.size() >= *s.top_count) break;
    if (s.bottom_count && out.size() >= *s.bottom_count) break;
    out.push_back(std::move(w));
  }
  return out;
}

Result<std::pair<double, bool>> ParseCohortAmount(std::string_view what, const std::string& text) {
  const bool percent = !text.empty() && text.back() == '%';
  const std::string digits = percent ? text.substr(0, text.size() - 1) : text;
  char* end = nullptr;
  const double v = std::strtod(digits.c_str(), &end);
  if (digits.empty() || *end != '\0' || !(v >= 0) || (percent && v > 100))
    return InvalidArgument("{} \"{}\": use a percentage (\"20%\") or a number of users (\"500\")", what, text);
  return std::make_pair(v, percent);
}

}  // namespace sibyl::scoring

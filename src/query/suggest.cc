#include "query/suggest.h"

#include <algorithm>
#include <cctype>
#include <numeric>

namespace sibyl {

size_t EditDistance(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<size_t> previous(b.size() + 1), current(b.size() + 1);
  std::iota(previous.begin(), previous.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = previous[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::vector<std::string> ClosestNames(std::string_view name,
                                      std::span<const std::string> candidates, size_t limit) {
  std::vector<std::pair<size_t, std::string_view>> scored;
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(name, candidate);
    size_t allowed = std::max<size_t>(2, std::max(name.size(), candidate.size()) / 3);
    if (distance <= allowed) scored.emplace_back(distance, candidate);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < limit; ++i) out.emplace_back(scored[i].second);
  return out;
}

Status UnknownNameError(std::string_view what, std::string_view name,
                        std::span<const std::string> candidates) {
  std::vector<std::string> close = ClosestNames(name, candidates);
  if (close.empty()) return NotFound("unknown {} \"{}\"", what, name);
  std::string list;
  for (size_t i = 0; i < close.size(); ++i) {
    if (i > 0) list += i + 1 == close.size() ? " or " : ", ";
    list += "\"" + close[i] + "\"";
  }
  return NotFound("unknown {} \"{}\"; did you mean {}?", what, name, list);
}

}  // namespace sibyl

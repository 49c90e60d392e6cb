#include "pipeline/feature_words.h"

#include <cstdlib>
#include <regex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sibyl::pipeline {
namespace {

// "week -k" is [T-7k d, T-7(k-1) d).
std::string WeekWords(int k) {
  if (k == 1) return "in the last 7 days";
  return fmt::format("{}-{} days ago", 7 * (k - 1), 7 * k);
}

// Column names quote strings as JSON strings; show them without the quotes.
std::string Unquote(const std::string& quoted) {
  auto j = nlohmann::json::parse(quoted, nullptr, false);
  if (!j.is_discarded() && j.is_string()) return j.get<std::string>();
  return quoted;
}

}  // namespace

std::string DescribeFeature(std::string_view column_view) {
  const std::string column(column_view);
  static const std::regex count_re(R"(^count\(("(?:[^"\\]|\\.)*")\) week -(\d+)$)");
  static const std::regex value_re(R"(^count\(("(?:[^"\\]|\\.)*") = (.*)\) week -(\d+)$)");
  static const std::regex sum_re(R"(^sum\(("(?:[^"\\]|\\.)*")\) week -(\d+)$)");
  static const std::regex user_re(R"(^(first|last)\(("(?:[^"\\]|\\.)*")\) = (.*)$)");
  static const std::regex since_re(R"(^hours since last ("(?:[^"\\]|\\.)*")$)");
  static const std::regex sessions_re(R"(^sessions week -(\d+)$)");
  std::smatch m;
  if (std::regex_match(column, m, count_re))
    return fmt::format("{} events {}", Unquote(m[1]), WeekWords(std::atoi(m[2].str().c_str())));
  if (std::regex_match(column, m, value_re)) {
    const std::string value = m[2] == "other" ? std::string("another value") : Unquote(m[2]);
    return fmt::format("events with {} = {} {}", Unquote(m[1]), value, WeekWords(std::atoi(m[3].str().c_str())));
  }
  if (std::regex_match(column, m, sum_re))
    return fmt::format("total {} {}", Unquote(m[1]), WeekWords(std::atoi(m[2].str().c_str())));
  if (std::regex_match(column, m, user_re)) {
    const std::string value = m[3] == "other" ? std::string("another value") : Unquote(m[3]);
    return m[1] == "first" ? fmt::format("{} was first {}", Unquote(m[2]), value)
                           : fmt::format("{} is {}", Unquote(m[2]), value);
  }
  if (std::regex_match(column, m, since_re)) return fmt::format("hours since the last {}", Unquote(m[1]));
  if (std::regex_match(column, m, sessions_re))
    return fmt::format("sessions {}", WeekWords(std::atoi(m[1].str().c_str())));
  if (column == "hours since last event") return "hours since the last event";
  if (column == "tenure hours") return "hours since first seen";
  return column;
}

std::string DescribeDirection(int direction, bool regression) {
  if (direction == 0) return "mixed";
  const char* up = regression ? "higher amount" : "more likely";
  const char* down = regression ? "lower amount" : "less likely";
  return fmt::format("higher -> {}", direction > 0 ? up : down);
}

}  // namespace sibyl::pipeline

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

// Column names quote strings as JSON strings; show them without the quotes (a lone quoted
// event name; an outcome with filters stays as it is).
std::string Unquote(const std::string& quoted) {
  auto j = nlohmann::json::parse(quoted, nullptr, false);
  if (!j.is_discarded() && j.is_string()) return j.get<std::string>();
  return quoted;
}

// An outcome-family subject (`"Rating" where stars = 5`, `"Rating" unfiltered`) in words:
// the unfiltered event is the event itself.
std::string Subject(std::string subject) {
  constexpr std::string_view kUnfiltered = " unfiltered";
  if (subject.ends_with(kUnfiltered)) subject.resize(subject.size() - kUnfiltered.size());
  return subject;
}

FeatureTopic Topic(const char* aspect, const std::string& subject, const char* words) {
  const std::string s = Subject(subject);
  return {fmt::format("{}:{}", aspect, s), fmt::format("{} {}", words, Unquote(s))};
}

// The outcome family's columns (docs/FEATURES.md "The outcome family") in words;
// empty when the column is not one of them.
std::string DescribeOutcomeColumn(const std::string& column) {
  static const std::regex window_re(R"(^(count|active days) (.+) (last (\d+)d|all history)$)");
  static const std::regex sum_re(R"(^sum\(("(?:[^"\\]|\\.)*")\) of (.+) (last (\d+)d|all history)$)");
  static const std::regex bgnbd_p_re(R"(^BG/NBD P\((.+) within (\d+)d\)$)");
  static const std::regex bgnbd_alive_re(R"(^BG/NBD P\(alive\) for (.+)$)");
  static const std::regex bgnbd_days_re(R"(^BG/NBD expected (.+) days within (\d+)d$)");
  static const std::regex last_re(R"(^hours since last (.+?)(?: \(outcome\))?$)");
  static const std::regex first_re(R"(^hours since first (.+)$)");
  static const std::regex mean_gap_re(R"(^mean days between (.+)$)");
  static const std::regex last_gap_re(R"(^days between last two (.+)$)");
  static const std::regex overdue_re(R"(^days since last (.+) / mean gap$)");
  static const std::regex share_recent_re(R"(^share of (.+) days in last (\d+)d of last (\d+)d$)");
  static const std::regex never_re(R"(^never (.+)$)");
  static const std::regex share_passed_re(R"(^share of (.+) with (.+)$)");
  auto what = [](const std::ssub_match& subject) { return Unquote(Subject(subject.str())); };
  auto when = [](const std::ssub_match& window, const std::ssub_match& days) {
    return window == "all history" ? std::string("ever") : fmt::format("in the last {} days", days.str());
  };
  std::smatch m;
  if (std::regex_match(column, m, window_re))
    return m[1] == "count" ? fmt::format("{} {}", what(m[2]), when(m[3], m[4]))
                           : fmt::format("days with {} {}", what(m[2]), when(m[3], m[4]));
  if (std::regex_match(column, m, sum_re))
    return fmt::format("total {} of {} {}", Unquote(m[1]), what(m[2]), when(m[3], m[4]));
  if (std::regex_match(column, m, bgnbd_p_re))
    return fmt::format("BG/NBD chance of {} within {} days", what(m[1]), m[2].str());
  if (std::regex_match(column, m, bgnbd_alive_re))
    return fmt::format("BG/NBD chance still a {} customer", what(m[1]));
  if (std::regex_match(column, m, bgnbd_days_re))
    return fmt::format("BG/NBD expected days with {} within {} days", what(m[1]), m[2].str());
  if (std::regex_match(column, m, last_re)) return fmt::format("hours since the last {}", what(m[1]));
  if (std::regex_match(column, m, first_re)) return fmt::format("hours since the first {}", what(m[1]));
  if (std::regex_match(column, m, mean_gap_re)) return fmt::format("mean days between {} days", what(m[1]));
  if (std::regex_match(column, m, last_gap_re)) return fmt::format("days between the last two {} days", what(m[1]));
  if (std::regex_match(column, m, overdue_re))
    return fmt::format("days since the last {} over the mean gap", what(m[1]));
  if (std::regex_match(column, m, share_recent_re))
    return fmt::format("share of {} days of the last {} in the last {}", what(m[1]), m[3].str(), m[2].str());
  if (std::regex_match(column, m, never_re)) return fmt::format("never did {}", what(m[1]));
  if (std::regex_match(column, m, share_passed_re))
    return fmt::format("share of {} with {}", what(m[1]), m[2].str());
  return "";
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
  if (std::string words = DescribeOutcomeColumn(column); !words.empty()) return words;
  return column;
}

FeatureTopic TopicOf(std::string_view column_view) {
  const std::string column(column_view);
  // One table, first match wins: (pattern, aspect, words). Group 1 is the subject (an event
  // name, an outcome description or a property key).
  struct Rule {
    std::regex pattern;
    const char* aspect;
    const char* words;
  };
  static const Rule rules[] = {
      // Weekly core columns (docs/FEATURES.md "Columns").
      {std::regex(R"(^count\(("(?:[^"\\]|\\.)*")\) week -\d+$)"), "often", "how often"},
      {std::regex(R"(^count\(("(?:[^"\\]|\\.)*") = (.*)\) week -\d+$)"), "value", "events with"},
      {std::regex(R"(^sum\(("(?:[^"\\]|\\.)*")\) week -\d+$)"), "amount", "total"},
      {std::regex(R"(^(?:first|last)\(("(?:[^"\\]|\\.)*")\) = .*$)"), "user", "user property"},
      {std::regex(R"(^hours since last ("(?:[^"\\]|\\.)*")$)"), "recency", "how recently"},
      {std::regex(R"(^(sessions) week -\d+$)"), "sessions", "how many"},
      // The outcome family (docs/FEATURES.md "The outcome family").
      {std::regex(R"(^BG/NBD P\(alive\) for (.+)$)"), "model", "the BG/NBD model of"},
      {std::regex(R"(^BG/NBD P\((.+) within \d+d\)$)"), "model", "the BG/NBD model of"},
      {std::regex(R"(^BG/NBD expected (.+) days within \d+d$)"), "model", "the BG/NBD model of"},
      {std::regex(R"(^(?:count|active days) (.+) (?:last \d+d|all history)$)"), "often", "how often"},
      {std::regex(R"(^sum\(("(?:[^"\\]|\\.)*")\) of .+ (?:last \d+d|all history)$)"), "amount", "total"},
      {std::regex(R"(^mean days between (.+)$)"), "often", "how often"},
      {std::regex(R"(^never (.+)$)"), "recency", "how recently"},
      {std::regex(R"(^hours since last (.+) \(outcome\)$)"), "recency", "how recently"},
      {std::regex(R"(^hours since last (.+)$)"), "recency", "how recently"},
      {std::regex(R"(^days between last two (.+)$)"), "recency", "how recently"},
      {std::regex(R"(^days since last (.+) / mean gap$)"), "recency", "how recently"},
      {std::regex(R"(^share of (.+) days in last \d+d of last \d+d$)"), "recency", "how recently"},
      {std::regex(R"(^share of (.+ with .+)$)"), "share", "the share of"},
  };
  // Before the table: its outcome rules would read "event" as an outcome's name. The same
  // topic as a churn outcome's own recency (its subject is "any event").
  if (column == "hours since last event") return {"recency:any event", "how recently any event"};
  std::smatch m;
  for (const Rule& rule : rules) {
    if (!std::regex_match(column, m, rule.pattern)) continue;
    if (std::string_view(rule.aspect) == "value") {
      const std::string value = m[2] == "other" ? std::string("another value") : Unquote(m[2]);
      return {fmt::format("value:{}={}", m[1].str(), m[2].str()), fmt::format("events with {} = {}", Unquote(m[1]), value)};
    }
    return Topic(rule.aspect, m[1].str(), rule.words);
  }
  // A user's age and their age as a customer of the outcome: in a transaction log the same
  // number, in an app nearly so.
  if (column == "tenure hours" || column.starts_with("hours since first ")) return {"tenure", "how long since first seen"};
  return {column, DescribeFeature(column)};
}

std::string DescribeDirection(int direction, bool regression) {
  if (direction == 0) return "mixed";
  const char* up = regression ? "higher amount" : "more likely";
  const char* down = regression ? "lower amount" : "less likely";
  return fmt::format("higher -> {}", direction > 0 ? up : down);
}

}  // namespace sibyl::pipeline

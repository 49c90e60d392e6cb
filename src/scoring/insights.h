// What the written-back scores answer: why one user scores as they do (Explain), and how
// many users will do the outcome (Forecast). See docs/SCORING.md.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "pipeline/registry.h"
#include "scoring/scoring.h"

namespace sibyl::scoring {

// One column's push on a user's score.
struct ColumnContribution {
  std::string column;
  double value = 0;         // the user's feature value
  double contribution = 0;  // margin units (log-odds for probabilities)
};

// One behaviour's push on a user's score, in plain words: the summed contribution of the
// columns of one topic (pipeline::TopicOf), led by the column that pushes hardest its way.
struct Reason {
  std::string topic;        // "how often Purchase"
  std::string column;       // the lead column
  std::string words;        // "how often Purchase (Purchase events in the last 7 days: 6)"
  double value = 0;         // the lead column's value
  double contribution = 0;  // the topic's sum, margin units (log-odds for probabilities)
  std::vector<ColumnContribution> columns;  // the topic's non-zero parts, largest |contribution| first
};

struct Explanation {
  UserScore user;
  double bias = 0;
  std::vector<Reason> up;    // strongest first, at most `count`
  std::vector<Reason> down;  // most negative first
};

// Per-user contributions of `user.features`, summed by topic, split into the strongest
// reasons each way. Reasons' contributions plus `bias` add up to the margin.
Result<Explanation> Explain(const ScoringModel& model, UserScore user, size_t count = 3);
nlohmann::json ToJson(const Explanation& e);

// The cutoff an explanation of `user_id` uses by default, so that it matches the score the
// user holds: the T of the user's own written score of this version (an hourly run may
// have scored them after the last full run), else of the newest full run of the version,
// else the store's default scoring cutoff.
int64_t ExplanationCutoff(const pipeline::PredictionRegistry& registry, const EventReader& reader,
                          const ScoringModel& model, const std::string& user_id);

struct Forecast {
  size_t users = 0;
  double expected = 0;  // sum of calibrated probabilities (revenue: of predicted amounts)
  double stddev = 0;    // Poisson-binomial: sqrt(sum p(1 - p)); 0 for revenue
  double low90 = 0, high90 = 0, low95 = 0, high95 = 0;
};

// The normal approximation of the Poisson-binomial count of independent users with
// probabilities `p`: expected +- z * stddev, clamped to [0, users].
Forecast ForecastFromProbabilities(std::span<const double> p);
nlohmann::json ToJson(const Forecast& f);

// The forecast of a prediction from its written-back scores, and the newest T they hold.
struct WrittenForecast {
  Forecast forecast;
  int64_t scores_as_of_ms = 0;
};
// nullopt when the store holds no scores of `name` yet.
std::optional<WrittenForecast> ForecastFromWrittenScores(const EventReader& reader, const std::string& name);
// What `sibyl forecast --json` and the API print: ToJson plus prediction, horizon and
// scores_as_of; revenue reports `expected_revenue` and no count intervals.
nlohmann::json ToJson(const WrittenForecast& f, const pipeline::PredictionDefinition& definition);

}  // namespace sibyl::scoring

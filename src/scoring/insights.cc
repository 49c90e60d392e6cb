#include "scoring/insights.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "common/time.h"
#include "pipeline/feature_words.h"
#include "scoring/score_run.h"

namespace sibyl::scoring {

namespace {

std::string ValueWords(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return std::fabs(v) >= 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.3g}", v);
}

Reason MakeReason(const ScoringModel& model, const UserScore& user, size_t col, double contribution) {
  Reason r;
  r.column = model.bundle.feature_names[col];
  r.value = user.features[col];
  r.contribution = contribution;
  r.words = fmt::format("{}: {}", pipeline::DescribeFeature(r.column), ValueWords(r.value));
  return r;
}

nlohmann::json ReasonJson(const Reason& r) {
  return {{"feature", r.column}, {"words", r.words}, {"value", r.value}, {"contribution", r.contribution}};
}

}  // namespace

Result<Explanation> Explain(const ScoringModel& model, UserScore user, size_t count) {
  const size_t cols = model.bundle.feature_names.size();
  if (user.features.size() != cols) return Internal("explain: row has {} features, model {}", user.features.size(), cols);
  ASSIGN_OR_RETURN(std::vector<double> contributions, model.bundle.Contributions(user.features));
  if (contributions.size() != cols + 1) return Internal("explain: {} contributions for {} features", contributions.size(), cols);
  Explanation e;
  e.bias = contributions[cols];
  std::vector<size_t> order(cols);
  for (size_t c = 0; c < cols; ++c) order[c] = c;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return contributions[a] > contributions[b]; });
  for (size_t i = 0; i < order.size() && e.up.size() < count && contributions[order[i]] > 0; ++i)
    e.up.push_back(MakeReason(model, user, order[i], contributions[order[i]]));
  for (size_t i = order.size(); i-- > 0 && e.down.size() < count && contributions[order[i]] < 0;)
    e.down.push_back(MakeReason(model, user, order[i], contributions[order[i]]));
  e.user = std::move(user);
  return e;
}

nlohmann::json ToJson(const Explanation& e) {
  nlohmann::json up = nlohmann::json::array(), down = nlohmann::json::array();
  for (const Reason& r : e.up) up.push_back(ReasonJson(r));
  for (const Reason& r : e.down) down.push_back(ReasonJson(r));
  nlohmann::json j = {{"user_id", e.user.user_id}, {"version", e.user.version}, {"score", e.user.score},
                      {"margin", e.user.margin},   {"bias", e.bias},            {"in_cohort", e.user.in_cohort},
                      {"up", up},                  {"down", down}};
  if (e.user.percentile) j["percentile"] = *e.user.percentile;
  return j;
}

Forecast ForecastFromProbabilities(std::span<const double> p) {
  Forecast f;
  f.users = p.size();
  double variance = 0;
  for (double q : p) {
    f.expected += q;
    variance += q * (1 - q);
  }
  f.stddev = std::sqrt(variance);
  const double n = static_cast<double>(f.users);
  auto clamp = [n](double v) { return std::clamp(v, 0.0, n); };
  f.low90 = clamp(f.expected - 1.6448536 * f.stddev);
  f.high90 = clamp(f.expected + 1.6448536 * f.stddev);
  f.low95 = clamp(f.expected - 1.9599640 * f.stddev);
  f.high95 = clamp(f.expected + 1.9599640 * f.stddev);
  return f;
}

nlohmann::json ToJson(const Forecast& f) {
  return {{"users", f.users},   {"expected", f.expected}, {"stddev", f.stddev},
          {"interval_90", {f.low90, f.high90}}, {"interval_95", {f.low95, f.high95}}};
}

int64_t ExplanationCutoff(const pipeline::PredictionRegistry& registry, const EventReader& reader,
                          const ScoringModel& model, const std::string& user_id) {
  int64_t cutoff = DefaultScoringCutoff(reader);
  if (auto full = LatestFullRun(registry, model.name, model.version); full.ok())
    cutoff = (*full)["cutoff_ms"].get<int64_t>();
  if (std::optional<ActorId> actor = ActorOfUserId(reader, user_id))
    if (auto w = ReadWrittenScore(reader, model.name, *actor); w && w->version == model.version) cutoff = w->cutoff_ms;
  return cutoff;
}

std::optional<WrittenForecast> ForecastFromWrittenScores(const EventReader& reader, const std::string& name) {
  const std::vector<WrittenScore> written = ReadWrittenScores(reader, name);
  if (written.empty()) return std::nullopt;
  std::vector<double> p;
  p.reserve(written.size());
  WrittenForecast out;
  for (const WrittenScore& w : written) {
    p.push_back(w.score);
    out.scores_as_of_ms = std::max(out.scores_as_of_ms, w.cutoff_ms);
  }
  out.forecast = ForecastFromProbabilities(p);
  return out;
}

nlohmann::json ToJson(const WrittenForecast& f, const pipeline::PredictionDefinition& definition) {
  nlohmann::json j = ToJson(f.forecast);
  j["prediction"] = definition.name;
  j["horizon_days"] = definition.horizon_days;
  j["scores_as_of"] = FormatTime(f.scores_as_of_ms);
  if (definition.kind == pipeline::PredictionKind::kRevenue) {
    j["expected_revenue"] = f.forecast.expected;
    j.erase("interval_90");
    j.erase("interval_95");
    j.erase("stddev");
  }
  return j;
}

}  // namespace sibyl::scoring

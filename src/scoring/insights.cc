#include "scoring/insights.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

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

// A topic's columns and their summed contribution.
struct TopicSum {
  const pipeline::FeatureTopic* topic = nullptr;
  std::vector<size_t> columns;
  double contribution = 0;
  double magnitude = 0;  // the sum of its columns' |contribution|
  // Columns that cancel (a linear model's collinear pair) leave a sum of rounding noise;
  // below a billionth of its parts it is no reason either way.
  bool Pushes() const { return std::abs(contribution) > 1e-9 * magnitude; }
};

Reason MakeReason(const ScoringModel& model, const UserScore& user, const TopicSum& t,
                  std::span<const double> contributions) {
  const double sign = t.contribution >= 0 ? 1 : -1;
  Reason r;
  r.topic = t.topic->title;
  r.contribution = t.contribution;
  size_t lead = t.columns.front();
  for (size_t c : t.columns) {
    if (sign * contributions[c] > sign * contributions[lead]) lead = c;
    if (contributions[c] != 0)
      r.columns.push_back({model.bundle.feature_names[c], user.features[c], contributions[c]});
  }
  std::stable_sort(r.columns.begin(), r.columns.end(), [](const ColumnContribution& a, const ColumnContribution& b) {
    return std::fabs(a.contribution) > std::fabs(b.contribution);
  });
  r.column = model.bundle.feature_names[lead];
  r.value = user.features[lead];
  const std::string lead_words = fmt::format("{}: {}", pipeline::DescribeFeature(r.column), ValueWords(r.value));
  // A topic of one column, or whose lead's words already say it ("events with category =
  // toys ..."), reads as the lead alone.
  r.words = r.columns.size() <= 1 || lead_words.starts_with(r.topic) ? lead_words
                                                                      : fmt::format("{} ({})", r.topic, lead_words);
  return r;
}

nlohmann::json ReasonJson(const Reason& r) {
  nlohmann::json columns = nlohmann::json::array();
  for (const ColumnContribution& c : r.columns)
    columns.push_back({{"feature", c.column}, {"value", c.value}, {"contribution", c.contribution}});
  return {{"topic", r.topic}, {"feature", r.column}, {"words", r.words}, {"value", r.value},
          {"contribution", r.contribution}, {"features", columns}};
}

// The topics of a model's columns, computed once per column list: explanations are asked
// one user at a time, and TopicOf matches a few dozen patterns per column.
std::shared_ptr<const std::vector<pipeline::FeatureTopic>> TopicsOf(const std::vector<std::string>& columns) {
  static std::mutex mutex;
  static std::map<std::vector<std::string>, std::shared_ptr<const std::vector<pipeline::FeatureTopic>>> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(columns); it != cache.end()) return it->second;
  if (cache.size() >= 64) cache.clear();  // bounded: a server holds a few models at a time
  auto topics = std::make_shared<std::vector<pipeline::FeatureTopic>>();
  for (const std::string& c : columns) topics->push_back(pipeline::TopicOf(c));
  cache.emplace(columns, topics);
  return topics;
}

}  // namespace

Result<Explanation> Explain(const ScoringModel& model, UserScore user, size_t count) {
  const size_t cols = model.bundle.feature_names.size();
  if (user.features.size() != cols) return Internal("explain: row has {} features, model {}", user.features.size(), cols);
  ASSIGN_OR_RETURN(std::vector<double> contributions, model.bundle.Contributions(user.features));
  if (contributions.size() != cols + 1) return Internal("explain: {} contributions for {} features", contributions.size(), cols);
  Explanation e;
  e.bias = contributions[cols];
  const auto topics_of_columns = TopicsOf(model.bundle.feature_names);
  const std::vector<pipeline::FeatureTopic>& topics = *topics_of_columns;
  std::map<std::string_view, size_t> index;
  std::vector<TopicSum> sums;
  for (size_t c = 0; c < cols; ++c) {
    auto [it, fresh] = index.try_emplace(topics[c].key, sums.size());
    if (fresh) sums.push_back({&topics[c], {}, 0});
    TopicSum& t = sums[it->second];
    t.columns.push_back(c);
    t.contribution += contributions[c];
    t.magnitude += std::abs(contributions[c]);
  }
  std::stable_sort(sums.begin(), sums.end(), [](const TopicSum& a, const TopicSum& b) { return a.contribution > b.contribution; });
  for (size_t i = 0; i < sums.size() && e.up.size() < count && sums[i].contribution > 0; ++i)
    if (sums[i].Pushes()) e.up.push_back(MakeReason(model, user, sums[i], contributions));
  for (size_t i = sums.size(); i-- > 0 && e.down.size() < count && sums[i].contribution < 0;)
    if (sums[i].Pushes()) e.down.push_back(MakeReason(model, user, sums[i], contributions));
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

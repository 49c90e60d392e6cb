// The /api/v1 endpoints behind the prediction workspace (docs/WEB.md): the audience of a
// percentile range (size, expected conversions or revenue, a chart of the distribution) and
// its export, saved cohorts, a user's recent events, the prediction's scoring runs with
// their drift, its kept backtests, and the store's names for the definition form. Same key
// and error shapes as api_routes.cc; docs/SERVER.md lists them.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/file.h"
#include "common/time.h"
#include "pipeline/backtest.h"
#include "query/cohort.h"
#include "scoring/cohort_export.h"
#include "scoring/insights.h"
#include "scoring/score_run.h"
#include "scoring/scoring.h"
#include "server/api_views.h"
#include "server/context.h"
#include "server/session.h"

namespace sibyl::server {
namespace {

using httplib::Request;
using httplib::Response;

Result<double> NumberParam(const Request& req, const char* name, double fallback, double min, double max) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v >= min && v <= max))
    return InvalidArgument("query parameter {}=\"{}\": expected a number in [{}, {}]", name, text, min, max);
  return v;
}

Result<size_t> CountParam(const Request& req, const char* name, size_t fallback, size_t max) {
  ASSIGN_OR_RETURN(double v, NumberParam(req, name, static_cast<double>(fallback), 1, static_cast<double>(max)));
  if (v != std::floor(v)) return InvalidArgument("query parameter {}: expected a whole number", name);
  return static_cast<size_t>(v);
}

// An audience: the scored users with from <= percentile <= to and score >= min_score.
struct AudienceFilter {
  double from = 0, to = 100;
  std::optional<double> min_score;
  bool Contains(double percentile, double score) const {
    return percentile >= from && percentile <= to && (!min_score || score >= *min_score);
  }
};

Result<AudienceFilter> ParseAudience(const Request& req) {
  AudienceFilter f;
  ASSIGN_OR_RETURN(f.from, NumberParam(req, "from", 0, 0, 100));
  ASSIGN_OR_RETURN(f.to, NumberParam(req, "to", 100, 0, 100));
  if (f.from > f.to) return InvalidArgument("from ({}) is above to ({})", f.from, f.to);
  if (req.has_param("min_score")) {
    ASSIGN_OR_RETURN(double s, NumberParam(req, "min_score", 0, -1e300, 1e300));
    f.min_score = s;
  }
  return f;
}

// The written scores of each prediction, sorted by percentile with prefix sums, kept
// between requests so that moving the audience slider costs two binary searches (a pass
// over the range only with a minimum score), not a read of every user's properties: the
// count must follow the slider within 100 ms at a million scored users. Reloaded when the
// scheduler records a new scoring run (the only writer of scores while the server holds
// the store) or after 60 s.
class ScoreCache {
 public:
  struct Scores {
    std::vector<double> percentiles;  // ascending
    std::vector<double> scores;       // in the same order
    // sum[i], variance[i]: of scores[0, i) and of score * (1 - score) (the forecast's).
    std::vector<double> sum, variance;
    nlohmann::json bins;  // 20 bins of 5 percentiles: users and mean score
    int64_t as_of_ms = 0;
  };

  std::shared_ptr<const Scores> Get(const ServerContext& ctx, const std::string& name) {
    std::string key = "none";
    if (ctx.scheduler) {
      auto full = ctx.scheduler->LastSuccessMs(name, scheduler::JobKind::kScoreFull);
      auto active = ctx.scheduler->LastSuccessMs(name, scheduler::JobKind::kScoreActive);
      key = fmt::format("{}/{}", full.value_or(0), active.value_or(0));
    }
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex_);
      auto it = entries_.find(name);
      if (it != entries_.end() && it->second.key == key && now - it->second.loaded < std::chrono::seconds(60))
        return it->second.scores;
    }
    auto scores = Load(ctx, name);
    std::lock_guard lock(mutex_);
    entries_[name] = Entry{key, now, scores};
    return scores;
  }

 private:
  static std::shared_ptr<const Scores> Load(const ServerContext& ctx, const std::string& name) {
    auto out = std::make_shared<Scores>();
    auto reader = ctx.store->Snapshot();
    std::vector<std::pair<double, double>> points;
    for (const scoring::WrittenScore& w : scoring::ReadWrittenScores(*reader, name)) {
      points.emplace_back(w.percentile, w.score);
      out->as_of_ms = std::max(out->as_of_ms, w.cutoff_ms);
    }
    std::sort(points.begin(), points.end());
    constexpr int kBins = 20;
    std::vector<size_t> bin_users(kBins, 0);
    std::vector<double> bin_sum(kBins, 0.0);
    out->sum.assign(1, 0.0);
    out->variance.assign(1, 0.0);
    for (const auto& [percentile, score] : points) {
      out->percentiles.push_back(percentile);
      out->scores.push_back(score);
      out->sum.push_back(out->sum.back() + score);
      out->variance.push_back(out->variance.back() + score * (1 - score));
      const int bin = std::clamp(static_cast<int>(percentile / (100.0 / kBins)), 0, kBins - 1);
      ++bin_users[bin];
      bin_sum[bin] += score;
    }
    out->bins = nlohmann::json::array();
    for (int b = 0; b < kBins; ++b)
      out->bins.push_back({{"from", b * 100.0 / kBins}, {"to", (b + 1) * 100.0 / kBins}, {"users", bin_users[b]},
                           {"mean_score", bin_users[b] ? bin_sum[b] / static_cast<double>(bin_users[b]) : 0.0}});
    return out;
  }

  struct Entry {
    std::string key;
    std::chrono::steady_clock::time_point loaded;
    std::shared_ptr<const Scores> scores;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

// The forecast of an audience from its count, sum and variance: what
// scoring::ForecastFromProbabilities gives for the same scores (its normal approximation
// of the Poisson-binomial count, clamped to [0, users]).
scoring::Forecast AudienceForecast(size_t users, double expected, double variance) {
  scoring::Forecast f;
  f.users = users;
  f.expected = expected;
  f.stddev = std::sqrt(std::max(0.0, variance));
  const double n = static_cast<double>(users);
  auto clamp = [n](double v) { return std::clamp(v, 0.0, n); };
  f.low90 = clamp(f.expected - 1.6448536 * f.stddev);
  f.high90 = clamp(f.expected + 1.6448536 * f.stddev);
  f.low95 = clamp(f.expected - 1.9599640 * f.stddev);
  f.high95 = clamp(f.expected + 1.9599640 * f.stddev);
  return f;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The cohort expression of an audience: the conditions `sibyl cohort` and starting cohorts
// share (docs/FEATURES.md), on the written-back percentile and score.
nlohmann::json AudienceCohort(const std::string& prediction, const AudienceFilter& f) {
  nlohmann::json all = nlohmann::json::array();
  const std::string percentile = scoring::PercentileProperty(prediction);
  if (f.from > 0) all.push_back({{"user_property", {{"property", percentile}, {"op", "gte"}, {"value", f.from}}}});
  if (f.to < 100) all.push_back({{"user_property", {{"property", percentile}, {"op", "lte"}, {"value", f.to}}}});
  if (f.min_score)
    all.push_back({{"user_property",
                    {{"property", scoring::ScoreProperty(prediction)}, {"op", "gte"}, {"value", *f.min_score}}}});
  // The whole range still means "scored by this prediction".
  if (all.empty())
    all.push_back({{"user_property", {{"property", percentile}, {"op", "gte"}, {"value", 0}}}});
  return {{"all", all}};
}

// An export being streamed: its rows, best first, and how far the client has got. The
// server calls Next again only after the previous chunk was written.
struct ExportRows {
  static constexpr size_t kChunkBytes = 64 * 1024;
  std::vector<scoring::WrittenScore> users;
  size_t next = 0;
  bool csv = true;
  bool header_written = false;

  bool Next(httplib::DataSink& sink) {
    std::string text;
    text.reserve(kChunkBytes + 512);
    if (!header_written) {
      if (csv) text = "user_id,score,percentile,model_version\n";
      header_written = true;
    }
    for (; next < users.size() && text.size() < kChunkBytes; ++next) {
      const scoring::WrittenScore& w = users[next];
      if (csv) {
        fmt::format_to(std::back_inserter(text), "{},{},{},{}\n", CsvField(w.user_id), w.score, w.percentile, w.version);
      } else {
        text += nlohmann::json{{"user_id", w.user_id}, {"score", w.score}, {"percentile", w.percentile},
                               {"model_version", w.version}}
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                "\n";
      }
    }
    if (!text.empty() && !sink.write(text.data(), text.size())) return false;
    if (next == users.size()) sink.done();
    return true;
  }
};

class Workspace {
 public:
  explicit Workspace(ServerContext& ctx) : ctx_(ctx) {}

  std::string CohortDir() const { return ctx_.options.data_dir + "/cohorts"; }

  void Audience(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    auto definition = ctx_.registry.Get(name);
    if (!definition.ok()) return SendStatus(res, definition.status());
    auto filter = ParseAudience(req);
    if (!filter.ok()) return SendStatus(res, filter.status());
    // Every user's written score, pulled from every shard: not per request (yet).
    if (ctx_.on_cluster())
      return SendNotOnCluster(res, "GET /api/v1/predictions/NAME/audience",
                              fmt::format("it reads every user's score; use `sibyl cohort {}` or `sibyl forecast {}`",
                                          name, name));
    std::shared_ptr<const ScoreCache::Scores> scores = cache_.Get(ctx_, name);
    if (scores->scores.empty())
      return SendError(res, 409, "failed_precondition", fmt::format("no scores of {} in the store yet: score it first", name));
    const auto& p = scores->percentiles;
    const size_t lo = std::lower_bound(p.begin(), p.end(), filter->from) - p.begin();
    const size_t hi = std::upper_bound(p.begin(), p.end(), filter->to) - p.begin();
    size_t users = hi - lo;
    double expected = scores->sum[hi] - scores->sum[lo], variance = scores->variance[hi] - scores->variance[lo];
    if (filter->min_score) {
      users = 0;
      expected = variance = 0;
      for (size_t i = lo; i < hi; ++i) {
        const double s = scores->scores[i];
        if (s < *filter->min_score) continue;
        ++users;
        expected += s;
        variance += s * (1 - s);
      }
    }
    const bool revenue = definition->kind == pipeline::PredictionKind::kRevenue;
    nlohmann::json out = scoring::ToJson(AudienceForecast(users, expected, variance));
    if (revenue) {
      out["expected_revenue"] = out["expected"];
      out.erase("interval_90");
      out.erase("interval_95");
      out.erase("stddev");
    }
    out["prediction"] = name;
    out["kind"] = pipeline::PredictionKindName(definition->kind);
    out["horizon_days"] = definition->horizon_days;
    out["from"] = filter->from;
    out["to"] = filter->to;
    out["min_score"] = filter->min_score ? nlohmann::json(*filter->min_score) : nlohmann::json();
    out["scored_users"] = scores->scores.size();
    out["share"] = static_cast<double>(users) / static_cast<double>(scores->scores.size());
    out["scores_as_of"] = FormatTime(scores->as_of_ms);
    out["cohort"] = AudienceCohort(name, *filter);
    out["bins"] = scores->bins;
    SendJson(res, 200, out);
  }

  // The audience's users as `sibyl cohort` writes them (same columns, order and number
  // formatting), so a file from the page and one from the CLI compare equal. Streamed
  // (chunked, docs/SERVER.md "Streamed answers"): rows are formatted ~64 KB at a time as
  // the client reads, so a million users cost their sorted scores, not also a body of
  // tens of megabytes.
  void Export(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    if (auto d = ctx_.registry.Get(name); !d.ok()) return SendStatus(res, d.status());
    auto filter = ParseAudience(req);
    if (!filter.ok()) return SendStatus(res, filter.status());
    const std::string format = req.has_param("format") ? req.get_param_value("format") : "csv";
    if (format != "csv" && format != "ndjson")
      return SendError(res, 400, "invalid_argument", fmt::format("format \"{}\": use csv or ndjson", format));
    if (ctx_.on_cluster())
      return SendNotOnCluster(res, "GET /api/v1/predictions/NAME/audience/export",
                              fmt::format("it reads every user's score; use `sibyl cohort {} --format {}`", name, format));
    auto reader = ctx_.store->Snapshot();
    std::vector<scoring::WrittenScore> scores = scoring::ReadWrittenScores(*reader, name);
    if (scores.empty())
      return SendError(res, 409, "failed_precondition", fmt::format("no scores of {} in the store yet: score it first", name));
    std::erase_if(scores, [&](const scoring::WrittenScore& w) { return !filter->Contains(w.percentile, w.score); });
    auto rows = std::make_shared<ExportRows>();
    rows->users = scoring::SelectCohort(std::move(scores), scoring::CohortSelection{});
    rows->csv = format == "csv";
    res.status = 200;
    res.set_header("Content-Disposition",
                   fmt::format("attachment; filename=\"{}-p{}-{}.{}\"", name, filter->from, filter->to, format));
    res.set_header("X-Sibyl-Users", std::to_string(rows->users.size()));
    res.set_chunked_content_provider(rows->csv ? "text/csv; charset=utf-8" : "application/x-ndjson",
                                     [rows](size_t, httplib::DataSink& sink) { return rows->Next(sink); });
  }

  void ScoreRuns(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    if (auto d = ctx_.registry.Get(name); !d.ok()) return SendStatus(res, d.status());
    auto limit = CountParam(req, "limit", 30, 1000);
    if (!limit.ok()) return SendStatus(res, limit.status());
    auto runs = scoring::ListRuns(ctx_.registry, name);
    if (!runs.ok()) return SendStatus(res, runs.status());
    nlohmann::json out = nlohmann::json::array();
    for (auto it = runs->rbegin(); it != runs->rend() && out.size() < *limit; ++it) {
      nlohmann::json run = *it;
      run.erase("quantiles");
      out.push_back(std::move(run));
    }
    SendJson(res, 200, {{"prediction", name}, {"runs", out}});
  }

  // The backtests `sibyl backtest` kept (pipeline/backtest.h), newest first.
  void Backtests(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    if (auto d = ctx_.registry.Get(name); !d.ok()) return SendStatus(res, d.status());
    auto limit = CountParam(req, "limit", 20, 200);
    if (!limit.ok()) return SendStatus(res, limit.status());
    auto backtests = pipeline::ListBacktests(ctx_.registry, name, *limit);
    if (!backtests.ok()) return SendStatus(res, backtests.status());
    SendJson(res, 200, {{"prediction", name}, {"backtests", *backtests}});
  }

  void UserEvents(const Request& req, Response& res) {
    const std::string user = req.matches[1];
    auto limit = CountParam(req, "limit", 50, 1000);
    if (!limit.ok()) return SendStatus(res, limit.status());
    auto pulled = ctx_.ReaderOfUsers({user});  // on a cluster: this user's rows only
    if (!pulled.ok()) return SendStatus(res, pulled.status());
    const std::shared_ptr<const EventReader>& reader = *pulled;
    auto actor = scoring::ActorOfUserId(*reader, user);
    if (!actor) return SendError(res, 404, "not_found", fmt::format("unknown user \"{}\"", user));
    std::deque<std::pair<int64_t, DictId>> last;
    uint64_t total = 0;
    Status scanned = reader->ScanActor(*actor, INT64_MIN, INT64_MAX, [&](int64_t time_ms, DictId type) {
      ++total;
      last.emplace_back(time_ms, type);
      if (last.size() > *limit) last.pop_front();
    });
    if (!scanned.ok()) return SendStatus(res, scanned);
    nlohmann::json events = nlohmann::json::array();
    for (auto it = last.rbegin(); it != last.rend(); ++it)
      events.push_back({{"time", FormatTime(it->first)}, {"event_type", std::string(reader->event_types().name(it->second))}});
    SendJson(res, 200, {{"user_id", user}, {"total_events", total}, {"events", events}});
  }

  // The names a definition can use, for the form's suggestions. The store's dictionaries,
  // capped: they grow with what apps send, and the form needs the common ones.
  void Taxonomy(const Request&, Response& res) {
    // The names of every shard's events: a pull of the whole cluster per page load.
    if (ctx_.on_cluster())
      return SendNotOnCluster(res, "GET /api/v1/taxonomy",
                              "it lists the names of every event; use `sibyl stats` (the form works without "
                              "suggestions, and a create checks the names)");
    auto reader = ctx_.store->Snapshot();
    constexpr size_t kMax = 5000;
    auto names = [&](const DictionaryView& dict) {
      std::vector<std::string> out;
      for (DictId id = 0; id < dict.size() && out.size() < kMax; ++id) out.emplace_back(dict.name(id));
      std::sort(out.begin(), out.end());
      return out;
    };
    SendJson(res, 200, {{"event_types", names(reader->event_types())}, {"properties", names(reader->property_keys())}});
  }

  // Saved cohorts: named starting-cohort expressions, kept as <data>/cohorts/NAME.json. The
  // cohort language has no references to other cohorts, so a definition that starts from a
  // saved cohort holds a copy of its expression (the form pastes it in): editing or deleting
  // a saved cohort later never changes a trained prediction behind its back.
  void ListCohorts(const Request&, Response& res) {
    nlohmann::json out = nlohmann::json::array();
    auto files = ListDir(CohortDir());
    if (files.ok()) {
      for (const std::string& file : *files) {
        if (!file.ends_with(".json")) continue;
        auto text = ReadFile(CohortDir() + "/" + file);
        if (!text.ok()) continue;
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (j.is_object()) out.push_back(j);
      }
    }
    SendJson(res, 200, {{"cohorts", out}});
  }

  void GetCohort(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    auto text = ReadFile(CohortDir() + "/" + name + ".json");
    if (!text.ok()) return SendError(res, 404, "not_found", fmt::format("no saved cohort \"{}\"", name));
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object()) return SendError(res, 500, "corruption", fmt::format("cohorts/{}.json is not a JSON object", name));
    SendJson(res, 200, j);
  }

  void CreateCohort(const Request& req, Response& res) {
    if (req.body.size() > ctx_.options.limits.api_max_body_bytes)
      return SendError(res, 413, "payload_too_large", "the cohort is larger than the API's body limit");
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return SendError(res, 400, "invalid_argument", "the body is not a JSON object");
    const std::string name = j.value("name", "");
    static const std::regex kName(R"([A-Za-z][A-Za-z0-9_-]{0,63})");
    if (!std::regex_match(name, kName))
      return SendError(res, 400, "invalid_argument",
                       "name: 1-64 letters, digits, _ or -, starting with a letter");
    nlohmann::json saved = {{"name", name}, {"description", j.value("description", "")},
                            {"created_at", FormatTime(ctx_.options.clock->NowMs())}};
    if (j.contains("prediction")) {
      // From an audience: {"prediction", "from", "to", "min_score"}.
      const std::string prediction = j.value("prediction", "");
      if (auto d = ctx_.registry.Get(prediction); !d.ok())
        return SendError(res, 400, "invalid_argument", d.status().message());
      AudienceFilter f;
      if (!j.value("from", nlohmann::json(0)).is_number() || !j.value("to", nlohmann::json(100)).is_number())
        return SendError(res, 400, "invalid_argument", "from and to must be numbers");
      f.from = j.value("from", 0.0);
      f.to = j.value("to", 100.0);
      if (!(f.from >= 0 && f.from <= f.to && f.to <= 100))
        return SendError(res, 400, "invalid_argument", "need 0 <= from <= to <= 100");
      if (j.contains("min_score") && !j["min_score"].is_null()) {
        if (!j["min_score"].is_number()) return SendError(res, 400, "invalid_argument", "min_score must be a number");
        f.min_score = j["min_score"].get<double>();
      }
      saved["cohort"] = AudienceCohort(prediction, f);
      saved["source"] = {{"prediction", prediction}, {"from", f.from}, {"to", f.to},
                         {"min_score", f.min_score ? nlohmann::json(*f.min_score) : nlohmann::json()}};
    } else if (j.contains("cohort")) {
      saved["cohort"] = j["cohort"];
    } else {
      return SendError(res, 400, "invalid_argument", "give a cohort expression, or a prediction with from/to/min_score");
    }
    auto parsed = ParseCohort(saved["cohort"]);
    if (!parsed.ok()) return SendError(res, 400, "invalid_argument", parsed.status().message());
    // On a cluster, against the names of its visible rows (as a prediction's create).
    auto names = ctx_.NamesOfStore();
    if (!names.ok()) return SendStatus(res, names.status());
    Status valid = ValidateCohort(**names, *parsed);
    if (!valid.ok()) return SendError(res, 400, "invalid_argument", valid.message());
    saved["cohort"] = ToJson(*parsed);
    const std::string path = CohortDir() + "/" + name + ".json";
    std::lock_guard lock(cohorts_mutex_);
    if (ReadFile(path).ok() && !(req.has_param("replace") && req.get_param_value("replace") == "true"))
      return SendError(res, 409, "already_exists", fmt::format("a cohort named \"{}\" exists", name));
    Status written = CreateDirs(CohortDir());
    if (written.ok()) written = WriteFileAtomic(path, saved.dump(2) + "\n");
    if (!written.ok()) return SendStatus(res, written);
    SendJson(res, 201, saved);
  }

  void DeleteCohort(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    const std::string path = CohortDir() + "/" + name + ".json";
    std::lock_guard lock(cohorts_mutex_);
    std::error_code ec;
    if (!std::filesystem::remove(path, ec))
      return SendError(res, 404, "not_found", fmt::format("no saved cohort \"{}\"", name));
    SendJson(res, 200, {{"deleted", name}});
  }

 private:
  ServerContext& ctx_;
  ScoreCache cache_;
  std::mutex cohorts_mutex_;
};

}  // namespace

std::shared_ptr<void> RegisterWorkspaceRoutes(Router& http, ServerContext& ctx, const AdminWrap& admin,
                                              const AdminWrap& change) {
  auto w = std::make_shared<Workspace>(ctx);
  Workspace* ws = w.get();
  const std::string name = R"(([A-Za-z][A-Za-z0-9_-]{0,63}))";
  const std::string p = "/api/v1/predictions/" + name;
  http.Get(p + "/audience", admin("api_audience", [ws](auto& q, auto& r) { ws->Audience(q, r); }));
  http.Get(p + "/audience/export", admin("api_export", [ws](auto& q, auto& r) { ws->Export(q, r); }));
  http.Get(p + "/score_runs", admin("api_score_runs", [ws](auto& q, auto& r) { ws->ScoreRuns(q, r); }));
  http.Get(p + "/backtests", admin("api_backtests", [ws](auto& q, auto& r) { ws->Backtests(q, r); }));
  http.Get(R"(/api/v1/users/([^/]+)/events)", admin("api_user", [ws](auto& q, auto& r) { ws->UserEvents(q, r); }));
  http.Get("/api/v1/taxonomy", admin("api_taxonomy", [ws](auto& q, auto& r) { ws->Taxonomy(q, r); }));
  http.Get("/api/v1/cohorts", admin("api_cohorts", [ws](auto& q, auto& r) { ws->ListCohorts(q, r); }));
  http.Post("/api/v1/cohorts", change("api_cohorts", [ws](auto& q, auto& r) { ws->CreateCohort(q, r); }));
  http.Get("/api/v1/cohorts/" + name, admin("api_cohorts", [ws](auto& q, auto& r) { ws->GetCohort(q, r); }));
  http.Delete("/api/v1/cohorts/" + name, change("api_cohorts", [ws](auto& q, auto& r) { ws->DeleteCohort(q, r); }));
  return w;
}

}  // namespace sibyl::server

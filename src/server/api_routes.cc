// The /api/v1 JSON API (admin key): predictions, runs, users, real-time scores,
// explanations, cohorts and forecasts. The same library calls as the CLI verbs
// (src/cli/*_command.cc); shapes in docs/SERVER.md.
#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/file.h"
#include "common/time.h"
#include "ml/drivers.h"
#include "pipeline/feature_words.h"
#include "pipeline/prediction.h"
#include "pipeline/train_run.h"
#include "scoring/cohort_export.h"
#include "scoring/insights.h"
#include "scoring/score_run.h"
#include "scoring/scoring.h"
#include "server/api_views.h"
#include "server/context.h"
#include "server/session.h"

namespace sibyl::server {

nlohmann::json VersionSummary(const pipeline::PredictionRegistry& registry, const std::string& name, int version) {
  auto summary = pipeline::ReadVersionSummary(registry, name, version);
  return summary.ok() ? *summary : nlohmann::json();
}

nlohmann::json PredictionRow(const ServerContext& ctx, const pipeline::PredictionDefinition& d) {
  nlohmann::json row = {{"name", d.name}, {"kind", pipeline::PredictionKindName(d.kind)},
                        {"horizon_days", d.horizon_days}, {"description", pipeline::DescribeDefinition(d)},
                        {"latest_version", 0}, {"definition", pipeline::ToJson(d)}};
  auto versions = ctx.registry.Versions(d.name);
  if (versions.ok() && !versions->empty()) {
    row["latest_version"] = versions->back();
    nlohmann::json s = VersionSummary(ctx.registry, d.name, versions->back());
    if (s.is_object()) {
      row["metrics"] = s.value("metrics", nlohmann::json::object());
      row["trained_at"] = s.value("trained_at", "");
      row["model_type"] = s.value("model_type", "");
    }
  }
  if (ctx.scheduler) {
    nlohmann::json schedule = nlohmann::json::object();
    for (auto kind : {scheduler::JobKind::kTrain, scheduler::JobKind::kScoreActive, scheduler::JobKind::kScoreFull}) {
      nlohmann::json k = nlohmann::json::object();
      if (auto last = ctx.scheduler->LastSuccessMs(d.name, kind)) k["last_success"] = FormatTime(*last);
      if (auto next = ctx.scheduler->NextDueMs(d.name, kind)) k["next_due"] = FormatTime(*next);
      schedule[std::string(scheduler::JobKindName(kind))] = k;
    }
    row["schedule"] = schedule;
  }
  return row;
}

Result<nlohmann::json> PredictionDetail(const ServerContext& ctx, const std::string& name) {
  ASSIGN_OR_RETURN(pipeline::PredictionDefinition definition, ctx.registry.Get(name));
  nlohmann::json out = PredictionRow(ctx, definition);
  ASSIGN_OR_RETURN(std::vector<int> versions, ctx.registry.Versions(name));
  out["versions"] = nlohmann::json::array();
  for (int v : versions) {
    auto summary = pipeline::ReadVersionSummary(ctx.registry, name, v);
    // A damaged version.json is listed with its error, naming the file, not left out.
    if (!summary.ok()) {
      out["versions"].push_back({{"version", v}, {"error", summary.status().message()}});
      continue;
    }
    const nlohmann::json& s = *summary;
    out["versions"].push_back({{"version", v}, {"trained_at", s.value("trained_at", "")},
                               {"model_type", s.value("model_type", "")},
                               {"metrics", s.value("metrics", nlohmann::json::object())}});
  }
  if (!versions.empty()) {
    auto loaded = pipeline::LoadVersion(ctx.registry, name, versions.back());
    if (loaded.ok()) {
      out["drivers"] = pipeline::DriversJson(loaded->bundle);
      out["topic_drivers"] = pipeline::TopicDriversJson(loaded->bundle);
      out["summary"] = loaded->summary;
    }
  }
  auto runs = scoring::ListRuns(ctx.registry, name);
  if (runs.ok() && !runs->empty()) {
    nlohmann::json last = runs->back();
    last.erase("quantiles");
    out["latest_score_run"] = last;
  }
  return out;
}

namespace {

using httplib::Request;
using httplib::Response;

std::string Param(const Request& req, const char* name, std::string fallback = "") {
  return req.has_param(name) ? req.get_param_value(name) : fallback;
}

Result<int64_t> IntParam(const Request& req, const char* name, int64_t fallback, int64_t min, int64_t max) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < min || v > max)
    return InvalidArgument("query parameter {}=\"{}\": expected an integer in [{}, {}]", name, text, min, max);
  return static_cast<int64_t>(v);
}

nlohmann::json ValueJson(const EventReader& reader, const StoredValue& v) {
  switch (v.kind) {
    case ValueKind::kNull: return nullptr;
    case ValueKind::kBool: return v.number != 0;
    case ValueKind::kNumber: return v.number;
    case ValueKind::kString: return std::string(reader.string_values().name(v.string));
    case ValueKind::kArray: {
      auto parsed = nlohmann::json::parse(reader.string_values().name(v.string), nullptr, false);
      return parsed.is_discarded() ? nlohmann::json(std::string(reader.string_values().name(v.string))) : parsed;
    }
  }
  return nullptr;
}

class Api {
 public:
  explicit Api(ServerContext& ctx) : ctx_(ctx) {}

  // Wraps a handler with the admin check and the route label.
  RouteHandler Admin(const char* route, RouteHandler f) {
    return [this, route, f](const Request& req, Response& res) {
      CurrentRequest().route = route;
      if (!RequireAdmin(ctx_, req, res)) return;
      f(req, res);
    };
  }
  // The same for routes that change something: a request signed in by the session cookie
  // must also carry its CSRF token.
  RouteHandler Change(const char* route, RouteHandler f) {
    return [this, route, f](const Request& req, Response& res) {
      CurrentRequest().route = route;
      if (!RequireAdmin(ctx_, req, res)) return;
      if (!RequireCsrf(ctx_, req, res)) return;
      f(req, res);
    };
  }

  // Who is asking: a session (with the CSRF token its page sends on changes) or the key.
  void GetSession(const Request& req, Response& res) {
    nlohmann::json out = {{"signed_in", true}};
    const std::string token = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
    auto session = SessionsOf(ctx_).Find(token, ctx_.options.clock->NowMs());
    if (req.get_header_value("Authorization").empty() && session) {
      out["by"] = "session";
      out["csrf_token"] = session->csrf_token;
      out["expires_at"] = FormatTime(session->expires_ms);
    } else {
      out["by"] = "key";
      out["csrf_token"] = nullptr;
    }
    res.set_header("Cache-Control", "no-store");
    SendJson(res, 200, out);
  }

  void ListPredictions(const Request&, Response& res) {
    auto definitions = ctx_.registry.List();
    if (!definitions.ok()) return SendStatus(res, definitions.status());
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : *definitions) out.push_back(PredictionRow(ctx_, d));
    SendJson(res, 200, {{"predictions", out}});
  }

  // POST /api/v1/predictions[?replace=true|dry_run=true]; PUT /api/v1/predictions/NAME
  // (`path_name`: the body's name must be it) replaces.
  void CreatePrediction(const Request& req, Response& res, const std::string& path_name = "") {
    if (req.body.size() > ctx_.options.limits.api_max_body_bytes)
      return SendError(res, 413, "payload_too_large", "the definition is larger than the API's body limit");
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return SendError(res, 400, "invalid_argument", "the body is not a JSON object");
    const bool dry_run = Param(req, "dry_run") == "true";
    // The form's inline validation asks with ?dry_run=true as the user types: the answer
    // is 200 either way, {"valid": false, "error"} for a definition that would be refused,
    // so a half-typed definition is not a failed request (browsers log those as errors).
    auto invalid = [&](const Status& status) {
      if (!dry_run) return SendError(res, 400, "invalid_argument", status.message());
      CurrentRequest().error = status.message();
      SendJson(res, 200, {{"valid", false}, {"error", {{"code", "invalid_argument"}, {"message", status.message()}}}});
    };
    auto definition = pipeline::ParsePredictionDefinition(j);
    // Whatever the parser's code, a definition that does not parse is invalid input (400).
    if (!definition.ok()) return invalid(definition.status());
    if (!path_name.empty() && definition->name != path_name)
      return invalid(InvalidArgument("the body names \"{}\", the path \"{}\"", definition->name, path_name));
    // On a cluster the names come from a DISTINCT query a shard, as for `sibyl predict
    // create` there: a create is rare, but the form's dry runs come as the user types, and
    // each would scan three columns of every shard, so those check everything but the
    // names and say so.
    const bool check_names = !(ctx_.on_cluster() && dry_run);
    Status valid = Status::Ok();
    if (check_names) {
      auto names = ctx_.NamesOfStore();
      valid = names.ok() ? pipeline::ValidateAgainstStore(*definition, **names) : names.status();
    }
    // A name the store does not know is a mistake in the definition ("did you mean"):
    // 400 like every other invalid field, not 404 (the resource asked for is the new one).
    if (!valid.ok() && (valid.code() == StatusCode::kNotFound || valid.code() == StatusCode::kInvalidArgument))
      return invalid(valid);
    if (!valid.ok()) return SendStatus(res, valid);
    if (dry_run) {
      nlohmann::json out = {{"valid", true}, {"definition", pipeline::ToJson(*definition)},
                            {"description", pipeline::DescribeDefinition(*definition)},
                            {"exists", ctx_.registry.Get(definition->name).ok()}};
      if (!check_names) out["names_checked"] = false;
      return SendJson(res, 200, out);
    }
    const bool replace = !path_name.empty() || Param(req, "replace") == "true";
    {
      std::lock_guard lock(ctx_.predictions_mutex);
      Status created = ctx_.registry.Create(*definition, replace);
      if (!created.ok()) return SendStatus(res, created);
      ctx_.models->Invalidate(definition->name);
    }
    Status cadences = ctx_.RefreshCadences();
    ctx_.log.Write({{"event", "prediction_created"}, {"prediction", definition->name}, {"replace", replace}});
    nlohmann::json out = pipeline::ToJson(*definition);
    if (!cadences.ok()) out["warning"] = cadences.ToString();
    SendJson(res, 201, out);
  }

  void GetPrediction(const Request& req, Response& res) {
    auto detail = PredictionDetail(ctx_, req.matches[1]);
    if (!detail.ok()) return SendStatus(res, detail.status());
    SendJson(res, 200, *detail);
  }

  void DeletePrediction(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    {
      std::lock_guard lock(ctx_.predictions_mutex);
      Status deleted = ctx_.registry.Delete(name);
      if (!deleted.ok()) return SendStatus(res, deleted);
      ctx_.models->Invalidate(name);
    }
    (void)ctx_.RefreshCadences();
    ctx_.log.Write({{"event", "prediction_deleted"}, {"prediction", name}});
    SendJson(res, 200, {{"deleted", name}});
  }

  void Trigger(const Request& req, Response& res, scheduler::JobKind kind) {
    const std::string name = req.matches[1];
    if (!ctx_.scheduler) return SendError(res, 503, "unavailable", "the scheduler is disabled in this server");
    if (auto d = ctx_.registry.Get(name); !d.ok()) return SendStatus(res, d.status());
    if (req.has_param("kind")) {
      auto parsed = scheduler::ParseJobKind(req.get_param_value("kind"));
      if (!parsed || *parsed == scheduler::JobKind::kTrain)
        return SendError(res, 400, "invalid_argument", "kind must be score_full or score_active");
      kind = *parsed;
    }
    auto id = ctx_.scheduler->Trigger(name, kind);
    if (!id.ok()) return SendStatus(res, id.status());
    SendJson(res, 202, {{"run_id", *id}, {"prediction", name}, {"kind", scheduler::JobKindName(kind)},
                        {"run", fmt::format("/api/v1/runs/{}", *id)}});
  }

  void ListRuns(const Request& req, Response& res) {
    if (!ctx_.scheduler) return SendJson(res, 200, {{"runs", nlohmann::json::array()}});
    auto limit = IntParam(req, "limit", 100, 1, 10'000);
    if (!limit.ok()) return SendStatus(res, limit.status());
    nlohmann::json runs = nlohmann::json::array();
    for (const auto& r : ctx_.scheduler->Runs(Param(req, "prediction"), static_cast<size_t>(*limit)))
      runs.push_back(scheduler::ToJson(r));
    SendJson(res, 200, {{"runs", runs}, {"queue_depth", ctx_.scheduler->QueueDepth()},
                        {"running", ctx_.scheduler->RunningCount()}});
  }

  void GetRun(const Request& req, Response& res) {
    if (!ctx_.scheduler) return SendError(res, 404, "not_found", "the scheduler is disabled in this server");
    const std::string text = req.matches[1];
    auto run = ctx_.scheduler->GetRun(std::stoull(text));
    if (!run) return SendError(res, 404, "not_found", fmt::format("no run {}", text));
    SendJson(res, 200, scheduler::ToJson(*run));
  }

  void GetUser(const Request& req, Response& res) {
    const std::string user = req.matches[1];
    auto pulled = ctx_.ReaderOfUsers({user});  // on a cluster: this user's rows only
    if (!pulled.ok()) return SendStatus(res, pulled.status());
    const std::shared_ptr<const EventReader>& reader = *pulled;
    auto actor = scoring::ActorOfUserId(*reader, user);
    if (!actor) return SendError(res, 404, "not_found", fmt::format("unknown user \"{}\"", user));
    nlohmann::json properties = nlohmann::json::object(), scores = nlohmann::json::object();
    for (const auto& [key, value] : reader->UserPropertiesAsOf(*actor, INT64_MAX)) {
      std::string name(reader->property_keys().name(key));
      // sibyl.NAME.score / .percentile / .model_version: the written-back scores.
      if (name.starts_with("sibyl.")) {
        size_t dot = name.rfind('.');
        if (dot > 6) {
          scores[name.substr(6, dot - 6)][name.substr(dot + 1)] = ValueJson(*reader, value);
          continue;
        }
      }
      properties[name] = ValueJson(*reader, value);
    }
    SendJson(res, 200, {{"user_id", user}, {"properties", properties}, {"scores", scores}});
  }

  // Scores one user from the store as it is now: the snapshot taken for this request
  // holds every acknowledged event, at the cutoff of the current hour (or ?as_of=).
  void RealtimeScore(const Request& req, Response& res) {
    const auto started = std::chrono::steady_clock::now();
    const std::string name = req.matches[1], user = req.matches[2];
    auto model = ctx_.models->Get(name);
    if (!model.ok()) return SendStatus(res, model.status());
    int64_t cutoff = FloorHour(ctx_.options.clock->NowMs());
    if (req.has_param("as_of")) {
      auto t = ParseTime(req.get_param_value("as_of"));
      if (!t.ok()) return SendStatus(res, t.status());
      cutoff = FloorHour(*t);
    }
    // On a cluster: a slice of this user alone (its rows and those deciding its identity),
    // pulled now, so it too holds every event acknowledged before the request.
    auto reader = ctx_.ReaderOfUsers({user});
    if (!reader.ok()) return SendStatus(res, reader.status());
    auto scored = scoring::ScoreUser(**reader, *(*model)->model, user, cutoff, (*model)->quantiles);
    if (!scored.ok()) return SendStatus(res, scored.status());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ctx_.metrics.Observe("sibyl_realtime_score_seconds", "", seconds);
    nlohmann::json out = {{"prediction", name}, {"user_id", user}, {"version", scored->version},
                          {"cutoff", FormatTime(scored->cutoff_ms)}, {"score", scored->score},
                          {"in_cohort", scored->in_cohort}, {"seconds", seconds}};
    out["percentile"] = scored->percentile ? nlohmann::json(*scored->percentile) : nlohmann::json();
    SendJson(res, 200, out);
  }

  void Explain(const Request& req, Response& res) {
    const std::string name = req.matches[1], user = req.matches[2];
    auto reasons = IntParam(req, "reasons", 3, 1, 50);
    if (!reasons.ok()) return SendStatus(res, reasons.status());
    auto model = ctx_.models->Get(name);
    if (!model.ok()) return SendStatus(res, model.status());
    const scoring::ScoringModel& m = *(*model)->model;
    auto pulled = ctx_.ReaderOfUsers({user});  // on a cluster: this user's rows only
    if (!pulled.ok()) return SendStatus(res, pulled.status());
    const std::shared_ptr<const EventReader>& reader = *pulled;
    // As `sibyl explain`: the cutoff of the user's written score; ?as_of= overrides.
    int64_t cutoff = scoring::ExplanationCutoff(ctx_.registry, *reader, m, user);
    if (req.has_param("as_of")) {
      auto t = ParseTime(req.get_param_value("as_of"));
      if (!t.ok()) return SendStatus(res, t.status());
      cutoff = FloorHour(*t);
    }
    auto scored = scoring::ScoreUser(*reader, m, user, cutoff, (*model)->quantiles);
    if (!scored.ok()) return SendStatus(res, scored.status());
    auto e = scoring::Explain(m, std::move(*scored), static_cast<size_t>(*reasons));
    if (!e.ok()) return SendStatus(res, e.status());
    nlohmann::json j = scoring::ToJson(*e);
    j["prediction"] = name;
    j["cutoff"] = FormatTime(cutoff);
    SendJson(res, 200, j);
  }

  void Cohort(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    if (auto d = ctx_.registry.Get(name); !d.ok()) return SendStatus(res, d.status());
    // Every user's written score: a pull of the whole cluster per request.
    if (ctx_.on_cluster())
      return SendNotOnCluster(res, "GET /api/v1/predictions/NAME/cohort",
                              fmt::format("it reads every user's score; use `sibyl cohort {}`", name));
    auto offset = IntParam(req, "offset", 0, 0, INT64_MAX);
    auto limit = IntParam(req, "limit", 1000, 1, 100'000);
    if (!offset.ok()) return SendStatus(res, offset.status());
    if (!limit.ok()) return SendStatus(res, limit.status());
    scoring::CohortSelection selection;
    const std::string top = Param(req, "top"), bottom = Param(req, "bottom");
    if (!top.empty() && !bottom.empty()) return SendError(res, 400, "invalid_argument", "give top or bottom, not both");
    if (!top.empty() || !bottom.empty()) {
      auto amount = scoring::ParseCohortAmount(top.empty() ? "bottom" : "top", top.empty() ? bottom : top);
      if (!amount.ok()) return SendStatus(res, amount.status());
      auto [v, percent] = *amount;
      if (percent) (top.empty() ? selection.bottom_percent : selection.top_percent) = v;
      else (top.empty() ? selection.bottom_count : selection.top_count) = static_cast<size_t>(v);
    }
    if (req.has_param("min_score")) {
      char* end = nullptr;
      const std::string text = req.get_param_value("min_score");
      selection.min_score = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') return SendError(res, 400, "invalid_argument", "min_score must be a number");
    }
    auto reader = ctx_.store->Snapshot();
    std::vector<scoring::WrittenScore> scores = scoring::ReadWrittenScores(*reader, name);
    if (scores.empty())
      return SendError(res, 409, "failed_precondition", fmt::format("no scores of {} in the store yet: score it first", name));
    const size_t scored = scores.size();
    std::vector<scoring::WrittenScore> chosen = scoring::SelectCohort(std::move(scores), selection);
    nlohmann::json users = nlohmann::json::array();
    const size_t begin = std::min(chosen.size(), static_cast<size_t>(*offset));
    const size_t end = std::min(chosen.size(), begin + static_cast<size_t>(*limit));
    for (size_t i = begin; i < end; ++i) {
      const auto& w = chosen[i];
      users.push_back({{"user_id", w.user_id}, {"score", w.score}, {"percentile", w.percentile},
                       {"model_version", w.version}, {"scored_at", FormatTime(w.cutoff_ms)}});
    }
    nlohmann::json out = {{"prediction", name}, {"total", chosen.size()}, {"scored_users", scored},
                          {"offset", begin}, {"limit", *limit}, {"users", users}};
    out["next_offset"] = end < chosen.size() ? nlohmann::json(end) : nlohmann::json();
    SendJson(res, 200, out);
  }

  void Forecast(const Request& req, Response& res) {
    const std::string name = req.matches[1];
    auto definition = ctx_.registry.Get(name);
    if (!definition.ok()) return SendStatus(res, definition.status());
    if (ctx_.on_cluster())
      return SendNotOnCluster(res, "GET /api/v1/predictions/NAME/forecast",
                              fmt::format("it reads every user's score; use `sibyl forecast {}`", name));
    auto reader = ctx_.store->Snapshot();
    auto forecast = scoring::ForecastFromWrittenScores(*reader, name);
    if (!forecast)
      return SendError(res, 409, "failed_precondition", fmt::format("no scores of {} in the store yet: score it first", name));
    nlohmann::json j = scoring::ToJson(*forecast, *definition);
    SendJson(res, 200, j);
  }

 private:
  ServerContext& ctx_;
};

}  // namespace

void RegisterApiRoutes(Router& http, ServerContext& ctx) {
  auto api = std::make_shared<Api>(ctx);
  Api* a = api.get();
  const std::string name = R"(([A-Za-z][A-Za-z0-9_-]{0,63}))";
  const std::string p = "/api/v1/predictions/" + name;
  const std::string user = R"(([^/]+))";
  http.Get("/api/v1/session", a->Admin("api_session", [a](auto& q, auto& r) { a->GetSession(q, r); }));
  http.Get("/api/v1/predictions", a->Admin("api_predictions", [a](auto& q, auto& r) { a->ListPredictions(q, r); }));
  http.Post("/api/v1/predictions", a->Change("api_predictions", [a](auto& q, auto& r) { a->CreatePrediction(q, r); }));
  http.Get(p, a->Admin("api_prediction", [a](auto& q, auto& r) { a->GetPrediction(q, r); }));
  http.Put(p, a->Change("api_prediction", [a](auto& q, auto& r) { a->CreatePrediction(q, r, q.matches[1]); }));
  http.Delete(p, a->Change("api_prediction", [a](auto& q, auto& r) { a->DeletePrediction(q, r); }));
  http.Post(p + "/train", a->Change("api_trigger", [a](auto& q, auto& r) { a->Trigger(q, r, scheduler::JobKind::kTrain); }));
  http.Post(p + "/score", a->Change("api_trigger", [a](auto& q, auto& r) { a->Trigger(q, r, scheduler::JobKind::kScoreFull); }));
  http.Get(p + "/users/" + user + "/score", a->Admin("api_realtime_score", [a](auto& q, auto& r) { a->RealtimeScore(q, r); }));
  http.Get(p + "/users/" + user + "/explanation", a->Admin("api_explain", [a](auto& q, auto& r) { a->Explain(q, r); }));
  http.Get(p + "/cohort", a->Admin("api_cohort", [a](auto& q, auto& r) { a->Cohort(q, r); }));
  http.Get(p + "/forecast", a->Admin("api_forecast", [a](auto& q, auto& r) { a->Forecast(q, r); }));
  http.Get("/api/v1/runs", a->Admin("api_runs", [a](auto& q, auto& r) { a->ListRuns(q, r); }));
  http.Get(R"(/api/v1/runs/(\d{1,19}))", a->Admin("api_runs", [a](auto& q, auto& r) { a->GetRun(q, r); }));
  http.Get("/api/v1/users/" + user, a->Admin("api_user", [a](auto& q, auto& r) { a->GetUser(q, r); }));
  std::shared_ptr<void> workspace = RegisterWorkspaceRoutes(
      http, ctx, [a](const char* route, RouteHandler f) { return a->Admin(route, std::move(f)); },
      [a](const char* route, RouteHandler f) { return a->Change(route, std::move(f)); });
  // Anything else under /api/v1 is a JSON 404 (after the key check, so it reveals nothing).
  auto not_found = a->Admin("api_other", [](auto&, auto& r) { SendError(r, 404, "not_found", "no such endpoint"); });
  http.Get(R"(/api/v1/.*)", not_found);
  http.Post(R"(/api/v1/.*)", not_found);
  http.Put(R"(/api/v1/.*)", not_found);
  http.Delete(R"(/api/v1/.*)", not_found);
  ctx.api_keepalive = std::make_shared<std::pair<std::shared_ptr<Api>, std::shared_ptr<void>>>(api, workspace);
}

}  // namespace sibyl::server

// The web app's server side (docs/WEB.md): sign-in by session cookie (login page, cookie
// attributes, expiry, CSRF on changes, logout), the pages and their files, and the
// workspace endpoints (audience, export, saved cohorts, a user's events, scoring runs,
// kept backtests, taxonomy, dry-run validation) on a small simulated store. In-process servers on
// loopback ports, httplib::Client as the browser.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "common/file.h"
#include "pipeline/backtest.h"
#include "pipeline/registry.h"
#include "serve_test_util.h"
#include "server/session.h"

namespace sibyl::server {
namespace {

using namespace testing_util;
using nlohmann::json;

json Json(const httplib::Result& r) {
  if (!r) return json();
  auto j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? json() : j;
}

// The session cookie a login answer sets ("sibyl_session=..."), or "".
std::string SessionFrom(const httplib::Result& r) {
  if (!r || !r->has_header("Set-Cookie")) return "";
  const std::string set = r->get_header_value("Set-Cookie");
  return set.substr(0, set.find(';'));
}

// ---- units ----

TEST(SessionStoreTest, SessionsExpireAndAreRemoved) {
  SessionStore store(/*ttl_ms=*/1000);
  const Session s = store.Create(5000);
  EXPECT_EQ(s.token.size(), 64u);
  EXPECT_EQ(s.csrf_token.size(), 64u);
  EXPECT_NE(s.token, s.csrf_token);
  EXPECT_EQ(s.expires_ms, 6000);
  ASSERT_TRUE(store.Find(s.token, 5999));
  EXPECT_EQ(store.Find(s.token, 5999)->csrf_token, s.csrf_token);
  EXPECT_FALSE(store.Find(s.token, 6000)) << "expired";
  EXPECT_FALSE(store.Find("", 5000));
  EXPECT_FALSE(store.Find(s.token + "0", 5000));
  const Session t = store.Create(5000);
  store.Remove(t.token);
  EXPECT_FALSE(store.Find(t.token, 5000));
  EXPECT_EQ(store.size(), 1u);
}

TEST(SessionStoreTest, BoundedNumberOfSessions) {
  SessionStore store;
  Session first = store.Create(0);
  for (size_t i = 1; i <= kMaxSessions; ++i) store.Create(static_cast<int64_t>(i));
  EXPECT_EQ(store.size(), kMaxSessions);
  EXPECT_FALSE(store.Find(first.token, 1)) << "the session expiring soonest made room";
}

TEST(SessionStoreTest, CookiesAndForms) {
  EXPECT_EQ(CookieValue("a=1; sibyl_session=abc; b=2", "sibyl_session"), "abc");
  EXPECT_EQ(CookieValue("sibyl_session_x=1;sibyl_session=z", "sibyl_session"), "z");
  EXPECT_EQ(CookieValue("other=1", "sibyl_session"), "");
  EXPECT_EQ(CookieValue("", "sibyl_session"), "");
  EXPECT_EQ(FormValue("key=a%2Bb+c&next=%2Fpredictions%2Fp1", "key"), "a+b c");
  EXPECT_EQ(FormValue("key=a%2Bb+c&next=%2Fpredictions%2Fp1", "next"), "/predictions/p1");
  EXPECT_EQ(FormValue("key=", "key"), "");
  EXPECT_FALSE(FormValue("next=/", "key"));
  EXPECT_EQ(FormValue("key=%zz%4", "key"), "%zz%4");
  const Session s{"tok", "csrf", 10'000};
  const std::string cookie = SessionCookie(s, 4000, /*secure=*/false);
  EXPECT_EQ(cookie, "sibyl_session=tok; Path=/; Max-Age=6; HttpOnly; SameSite=Strict");
  EXPECT_NE(SessionCookie(s, 4000, true).find("; Secure"), std::string::npos);
  EXPECT_NE(ExpiredSessionCookie(false).find("Max-Age=0"), std::string::npos);
}

// ---- sign-in ----

class ServeWebTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o = TestOptions(dir_.Sub("data"));
    o.clock = &clock_;
    server_ = std::make_unique<TestServer>(o);
    ASSERT_TRUE(server_->status().ok()) << server_->status().ToString();
    ASSERT_EQ(server_->Client()->Post("/2/httpapi", AmplitudeBody(kIngestKey, 0, 20), "application/json")->status, 200);
  }
  // Signs in through the login form; the session cookie.
  std::string Login() {
    auto r = server_->Client()->Post("/login", "key=" + kAdminKey + "&next=%2F", "application/x-www-form-urlencoded");
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 303);
    return SessionFrom(r);
  }
  std::string Csrf(const std::string& cookie) {
    return Json(server_->Client()->Get("/api/v1/session", {{"Cookie", cookie}})).value("csrf_token", "");
  }
  ManualClock clock_{1'700'100'000'000};
  TempDir dir_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(ServeWebTest, PagesWithoutKeyGoToTheLoginPageWhichNeedsNone) {
  auto c = server_->Client();
  auto r = c->Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/login?next=/");
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "") << "no Basic dialog: the login page instead";
  r = c->Get("/predictions/p1");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/login?next=/predictions/p1");
  r = c->Get("/login");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("action=\"/login\""), std::string::npos);
  EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY");
  EXPECT_NE(r->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
  for (const char* file : {"/static/style.css", "/static/common.js", "/static/login.js", "/static/index.js",
                           "/static/prediction.js", "/static/favicon.svg", "/favicon.ico"}) {
    r = c->Get(file);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << file;
    EXPECT_GT(r->body.size(), 50u) << file;
  }
  EXPECT_EQ(c->Get("/favicon.ico")->get_header_value("Content-Type"), "image/svg+xml");
  EXPECT_EQ(c->Get("/static/common.js")->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(c->Get("/static/nothing.js")->status, 404);
  EXPECT_EQ(c->Get("/static/../server.cc")->status, 404);
  // The API still answers 401 (with the Basic challenge curl users know).
  r = c->Get("/api/v1/predictions");
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(r->get_header_value("WWW-Authenticate"), "");
}

TEST_F(ServeWebTest, LoginSetsASessionCookieThatOpensPagesAndApi) {
  auto c = server_->Client();
  auto r = c->Post("/login", "key=" + kAdminKey + "&next=%2Fpredictions%2Fp1", "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/predictions/p1");
  const std::string set = r->get_header_value("Set-Cookie");
  EXPECT_EQ(set.rfind("sibyl_session=", 0), 0u) << set;
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("Max-Age=43200"), std::string::npos) << set;
  EXPECT_NE(set.find("Path=/"), std::string::npos) << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP: a Secure cookie would never come back";
  const std::string cookie = SessionFrom(r);
  httplib::Headers h = {{"Cookie", cookie}};
  EXPECT_EQ(c->Get("/", h)->status, 200);
  EXPECT_NE(c->Get("/", h)->body.find("<form id=\"create\""), std::string::npos);
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 200);
  json session = Json(c->Get("/api/v1/session", h));
  EXPECT_EQ(session["by"], "session");
  EXPECT_EQ(session["csrf_token"].get<std::string>().size(), 64u);
  // Behind a TLS proxy the cookie is Secure.
  r = c->Post("/login", {{"X-Forwarded-Proto", "https"}}, "key=" + kAdminKey, "application/x-www-form-urlencoded");
  EXPECT_NE(r->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);
  // Only local paths after sign-in.
  for (const char* next : {"https%3A%2F%2Fevil.example%2F", "%2F%2Fevil.example", "%2F%5Cevil"}) {
    r = c->Post("/login", "key=" + kAdminKey + "&next=" + next, "application/x-www-form-urlencoded");
    EXPECT_EQ(r->get_header_value("Location"), "/") << next;
  }
}

TEST_F(ServeWebTest, WrongKeyOrForeignOriginGetsNoSession) {
  auto c = server_->Client();
  auto r = c->Post("/login", "key=not-the-key&next=%2Fpredictions%2Fp1", "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/login?error=wrong_key&next=/predictions/p1");
  EXPECT_FALSE(r->has_header("Set-Cookie"));
  r = c->Post("/login", "key=" + kIngestKey, "application/x-www-form-urlencoded");
  EXPECT_FALSE(r->has_header("Set-Cookie")) << "an ingest key is not the admin key";
  r = c->Post("/login", "next=%2F", "application/x-www-form-urlencoded");
  EXPECT_FALSE(r->has_header("Set-Cookie"));
  // A form on another site posting the right key (login CSRF) is refused.
  r = c->Post("/login", {{"Origin", "http://evil.example"}}, "key=" + kAdminKey, "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 403);
  EXPECT_FALSE(r->has_header("Set-Cookie"));
  // A made-up session is no session.
  httplib::Headers forged = {{"Cookie", "sibyl_session=" + std::string(64, 'a')}};
  EXPECT_EQ(c->Get("/api/v1/predictions", forged)->status, 401);
  EXPECT_EQ(c->Get("/api/v1/predictions", forged)->get_header_value("WWW-Authenticate"), "")
      << "an expired session's fetch must not pop the browser's Basic dialog";
  EXPECT_EQ(c->Get("/", forged)->status, 303);
}

TEST_F(ServeWebTest, ChangesWithTheCookieNeedTheCsrfToken) {
  const std::string cookie = Login();
  ASSERT_FALSE(cookie.empty());
  const std::string csrf = Csrf(cookie);
  ASSERT_EQ(csrf.size(), 64u);
  auto c = server_->Client();
  const std::string body = R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"}})";
  auto r = c->Post("/api/v1/predictions", {{"Cookie", cookie}}, body, "application/json");
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(Json(r)["error"]["message"].get<std::string>().find("CSRF"), std::string::npos);
  r = c->Post("/api/v1/predictions", {{"Cookie", cookie}, {"X-CSRF-Token", std::string(64, '0')}}, body, "application/json");
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(Json(server_->Admin()->Get("/api/v1/predictions"))["predictions"].size(), 0u) << "refused means not created";
  r = c->Post("/api/v1/predictions", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}}, body, "application/json");
  EXPECT_EQ(r->status, 201) << r->body;
  r = c->Delete("/api/v1/predictions/p1", {{"Cookie", cookie}});
  EXPECT_EQ(r->status, 403);
  r = c->Delete("/api/v1/predictions/p1", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}});
  EXPECT_EQ(r->status, 200);
  // Reads need no token; the key in Authorization needs none either.
  EXPECT_EQ(c->Get("/api/v1/runs", {{"Cookie", cookie}})->status, 200);
  EXPECT_EQ(server_->Admin()->Post("/api/v1/predictions", body, "application/json")->status, 201);
}

TEST_F(ServeWebTest, SessionsExpireAndLogoutEndsThem) {
  std::string cookie = Login();
  httplib::Headers h = {{"Cookie", cookie}};
  auto c = server_->Client();
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 200);
  clock_.Advance(kSessionTtlMs - 1000);
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 200);
  clock_.Advance(1000);
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 401) << "expired after 12 hours";
  EXPECT_EQ(c->Get("/", h)->status, 303);

  cookie = Login();
  h = {{"Cookie", cookie}};
  auto r = c->Post("/logout", h, "", "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 403) << "logout is a change: it needs the CSRF token";
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 200);
  r = c->Post("/logout", {{"Cookie", cookie}, {"X-CSRF-Token", Csrf(cookie)}}, "", "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/login?signed_out=1");
  EXPECT_NE(r->get_header_value("Set-Cookie").find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(c->Get("/api/v1/predictions", h)->status, 401);
  // The form field works as well as the header.
  cookie = Login();
  r = c->Post("/logout", {{"Cookie", cookie}}, "csrf_token=" + Csrf(cookie), "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(c->Get("/api/v1/predictions", {{"Cookie", cookie}})->status, 401);
}

TEST_F(ServeWebTest, LoginBasicChallengesThenTurnsTheKeyIntoASession) {
  auto c = server_->Client();
  auto r = c->Get("/login/basic");
  EXPECT_EQ(r->status, 401) << "the challenge that makes a browser send the URL's key";
  EXPECT_NE(r->get_header_value("WWW-Authenticate").find("Basic"), std::string::npos);
  auto basic = server_->Client();
  basic->set_basic_auth("admin", kAdminKey.c_str());
  r = basic->Get("/login/basic?next=%2Fpredictions%2Fp1");
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/predictions/p1");
  const std::string cookie = SessionFrom(r);
  ASSERT_FALSE(cookie.empty());
  EXPECT_EQ(c->Get("/api/v1/predictions", {{"Cookie", cookie}})->status, 200);
  basic->set_basic_auth("admin", "not-the-key");
  EXPECT_EQ(basic->Get("/login/basic")->status, 403);
}

TEST_F(ServeWebTest, APageOpenedWithTheKeyGetsASessionForItsScripts) {
  auto basic = server_->Client();
  basic->set_basic_auth("admin", kAdminKey.c_str());
  auto r = basic->Get("/");
  ASSERT_EQ(r->status, 200);
  const std::string cookie = SessionFrom(r);
  ASSERT_FALSE(cookie.empty()) << "fetch cannot send the URL's credentials: the page's scripts use this";
  EXPECT_EQ(server_->Client()->Get("/api/v1/predictions", {{"Cookie", cookie}})->status, 200);
  auto wrong = server_->Client();
  wrong->set_basic_auth("admin", "not-the-key");
  EXPECT_EQ(wrong->Get("/")->status, 403);
  // API calls with the key get no cookie: they are not a browser's page.
  EXPECT_FALSE(server_->Admin()->Get("/api/v1/predictions")->has_header("Set-Cookie"));
}

TEST_F(ServeWebTest, InvalidInputIs400) {
  auto c = server_->Admin();
  auto r = c->Post("/api/v1/predictions?dry_run=true",
                   R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"}})", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json(r)["valid"], true);
  EXPECT_FALSE(Json(r)["description"].get<std::string>().empty());
  EXPECT_EQ(Json(c->Get("/api/v1/predictions"))["predictions"].size(), 0u) << "a dry run stores nothing";
  for (const std::string& bad : {
           std::string(R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Evnt 1"}})"),
           std::string(R"({"name":"p1","kind":"propensity","horizon_day":7,"outcome":{"event":"Event 1"}})"),
           std::string(R"({"name":"1p","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"}})"),
           std::string(R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1","where":["nope = 1"]}})"),
           std::string(R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"},"cohort":{"all":[{"performed":{"event":"Nope"}}]}})"),
       }) {
    auto dry = c->Post("/api/v1/predictions?dry_run=true", bad, "application/json");
    EXPECT_EQ(dry->status, 200) << "a dry run answers whether it is valid";
    EXPECT_EQ(Json(dry)["valid"], false) << bad;
    EXPECT_FALSE(Json(dry)["error"]["message"].get<std::string>().empty()) << bad;
    EXPECT_EQ(c->Post("/api/v1/predictions", bad, "application/json")->status, 400) << bad;
  }
  const std::string good = R"({"name":"p1","kind":"propensity","horizon_days":7,"outcome":{"event":"Event 1"}})";
  EXPECT_EQ(c->Put("/api/v1/predictions/p2", good, "application/json")->status, 400) << "the body names another";
  EXPECT_EQ(c->Put("/api/v1/predictions/p1", good, "application/json")->status, 201) << "PUT creates or replaces";
  EXPECT_EQ(c->Put("/api/v1/predictions/p1", good, "application/json")->status, 201);
  EXPECT_EQ(c->Post("/api/v1/predictions", good, "application/json")->status, 409);
  // Not scored yet; bad audience parameters are 400 before that.
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/audience")->status, 409);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/audience?from=90&to=10")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/audience?from=abc")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/audience?to=101")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/audience/export?format=xml")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/nope/audience")->status, 404);
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"c1"})", "application/json")->status, 400);
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"1c","cohort":{"all":[]}})", "application/json")->status, 400);
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"c1","cohort":{"al":[]}})", "application/json")->status, 400);
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"c1","prediction":"nope","from":80})", "application/json")->status, 400);
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"c1","prediction":"p1","from":80,"to":20})", "application/json")->status, 400);
  EXPECT_EQ(c->Post("/api/v1/cohorts", "[]", "application/json")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/users/user-1/events?limit=0")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/users/user-1/events?limit=1.5")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/p1/score_runs?limit=x")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/users/nobody/events")->status, 404);
  EXPECT_EQ(c->Get("/predictions/p1/report?version=x")->status, 400);
}

// A backtest `sibyl backtest` kept (SaveBacktest, what the command calls) is served by
// GET /api/v1/predictions/NAME/backtests, newest first, with every cutoff's metrics and the
// baseline's; a damaged file is refused naming it.
TEST_F(ServeWebTest, KeptBacktestsAreListedNewestFirst) {
  const std::string data = dir_.Sub("data");
  pipeline::PredictionRegistry registry(data);
  auto definition = pipeline::ParsePredictionDefinitionText(
      R"({"name": "bt", "kind": "propensity", "outcome": {"event": "Event 1"}, "horizon_days": 7})");
  ASSERT_TRUE(definition.ok()) << definition.status().ToString();
  ASSERT_TRUE(registry.Create(*definition).ok());
  auto c = server_->Admin();
  EXPECT_EQ(Json(c->Get("/api/v1/predictions/bt/backtests"))["backtests"], json::array()) << "none kept yet";

  pipeline::BacktestOptions options;
  options.cutoffs = 2;
  pipeline::BacktestRow good;
  good.eval_cutoff_ms = 1'700'000'000'000 - 1'700'000'000'000 % 3'600'000;
  good.train_cutoff_ms = good.eval_cutoff_ms - 7 * 86'400'000LL;
  good.model_type = "xgboost";
  good.users = 1200;
  good.positives = 96;
  good.base_rate = 0.08;
  good.roc_auc = 0.81;
  good.log_loss = 0.24;
  good.ece = 0.012;
  good.baseline_roc_auc = 0.74;
  good.baseline_log_loss = 0.27;
  good.baseline_ece = 0.02;
  pipeline::BacktestRow failed;
  failed.eval_cutoff_ms = good.eval_cutoff_ms - 7 * 86'400'000LL;
  failed.error = "not eligible: 12 positives";
  auto older = pipeline::SaveBacktest(registry, *definition, options, {good, failed}, 1'700'000'000'000);
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  good.roc_auc = 0.83;
  auto newer = pipeline::SaveBacktest(registry, *definition, options, {good}, 1'700'000'060'000);
  ASSERT_TRUE(newer.ok()) << newer.status().ToString();
  EXPECT_NE(*older, *newer);
  EXPECT_NE(older->find("/predictions/bt/backtests/"), std::string::npos) << *older;

  auto answer = c->Get("/api/v1/predictions/bt/backtests");
  ASSERT_EQ(answer->status, 200) << answer->body;
  const json list = Json(answer)["backtests"];
  ASSERT_EQ(list.size(), 2u) << list.dump();
  EXPECT_EQ(list[0]["ran_at"], "2023-11-14T22:14:20.000Z") << "newest first";
  EXPECT_EQ(list[1]["ran_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(list[0]["prediction"], "bt");
  EXPECT_EQ(list[0]["options"]["cutoffs"], 2);
  ASSERT_EQ(list[0]["cutoffs"].size(), 1u);
  const json& row = list[0]["cutoffs"][0];
  EXPECT_DOUBLE_EQ(row["roc_auc"].get<double>(), 0.83);
  EXPECT_DOUBLE_EQ(row["log_loss"].get<double>(), 0.24);
  EXPECT_DOUBLE_EQ(row["ece"].get<double>(), 0.012);
  EXPECT_DOUBLE_EQ(row["baseline"]["roc_auc"].get<double>(), 0.74);
  EXPECT_DOUBLE_EQ(row["baseline"]["log_loss"].get<double>(), 0.27);
  EXPECT_DOUBLE_EQ(row["baseline"]["ece"].get<double>(), 0.02);
  ASSERT_EQ(list[1]["cutoffs"].size(), 2u);
  EXPECT_EQ(list[1]["cutoffs"][1]["error"], "not eligible: 12 positives");
  EXPECT_EQ(Json(c->Get("/api/v1/predictions/bt/backtests?limit=1"))["backtests"].size(), 1u);
  EXPECT_EQ(c->Get("/api/v1/predictions/bt/backtests?limit=0")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/predictions/nope/backtests")->status, 404);
  EXPECT_EQ(server_->Client()->Get("/api/v1/predictions/bt/backtests")->status, 401);

  // One changed digit in the kept file: refused, and the answer names the file.
  auto text = ReadFile(*older);
  ASSERT_TRUE(text.ok());
  const size_t digit = text->find("0.81");
  ASSERT_NE(digit, std::string::npos);
  (*text)[digit + 3] = '2';
  ASSERT_TRUE(WriteFileAtomic(*older, *text).ok());
  auto damaged = c->Get("/api/v1/predictions/bt/backtests");
  EXPECT_EQ(damaged->status, 500);
  EXPECT_NE(damaged->body.find(*older), std::string::npos) << damaged->body;
  EXPECT_NE(damaged->body.find("checksum"), std::string::npos) << damaged->body;
}

TEST_F(ServeWebTest, TaxonomyEventsAndSavedCohorts) {
  auto c = server_->Admin();
  json t = Json(c->Get("/api/v1/taxonomy"));
  ASSERT_TRUE(t["event_types"].is_array());
  EXPECT_EQ(t["event_types"].size(), 7u);
  EXPECT_EQ(t["event_types"][0], "Event 0");
  EXPECT_NE(t["properties"].dump().find("seq"), std::string::npos);
  json events = Json(c->Get("/api/v1/users/user-1/events?limit=2"));
  EXPECT_EQ(events["total_events"], 1) << events.dump();  // 20 events over 50 user ids
  ASSERT_EQ(events["events"].size(), 1u);
  EXPECT_EQ(events["events"][0]["event_type"], "Event 1");

  auto r = c->Post("/api/v1/cohorts", R"({"name":"recent","cohort":{"all":[{"active_within_days":7}]}})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(c->Post("/api/v1/cohorts", R"({"name":"recent","cohort":{"all":[]}})", "application/json")->status, 409);
  EXPECT_EQ(Json(c->Get("/api/v1/cohorts"))["cohorts"].size(), 1u);
  EXPECT_EQ(Json(c->Get("/api/v1/cohorts/recent"))["cohort"]["all"][0]["active_within_days"], 7);
  EXPECT_EQ(c->Delete("/api/v1/cohorts/recent")->status, 200);
  EXPECT_EQ(c->Delete("/api/v1/cohorts/recent")->status, 404);
  EXPECT_EQ(c->Get("/api/v1/cohorts/recent")->status, 404);
}

// ---- the workspace on a trained, scored prediction ----

json WaitForRun(httplib::Client& c, uint64_t id) {
  for (int i = 0; i < 2400; ++i) {
    json run = Json(c.Get("/api/v1/runs/" + std::to_string(id)));
    const std::string state = run.value("state", "");
    if (state == "succeeded" || state == "failed" || state == "aborted") return run;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return json();
}

// The same under the sanitizers: the whole export must span more than one 64 KB chunk of
// the stream, which 2,400 users (57 KB) did not.
constexpr uint64_t kUsers = 3000;

TEST(ServeWorkspaceTest, AudienceExportCohortsAndDriftOfAScoredPrediction) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  ASSERT_TRUE(GenerateStore(dir.path(), data, kUsers, 70).ok());
  TestServer server(TestOptions(data, /*scheduler=*/true));
  ASSERT_TRUE(server.status().ok()) << server.status().ToString();
  auto c = server.Admin();
  auto created = c->Post("/api/v1/predictions", R"({"name": "buy", "kind": "propensity",
      "outcome": {"event": "Purchase"}, "horizon_days": 7, "cohort": {"all": [{"active_within_days": 30}]},
      "refresh": {"train_every_hours": 24, "score_every_hours": 1}})", "application/json");
  ASSERT_EQ(created->status, 201) << created->body;
  json train;
  for (int i = 0; i < 200 && train.is_null(); ++i) {
    const json runs = Json(c->Get("/api/v1/runs?prediction=buy"));
    for (const json& run : runs["runs"])
      if (run["kind"] == "train") train = run;
    if (train.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(train.is_null());
  ASSERT_EQ(WaitForRun(*c, train["id"].get<uint64_t>())["state"], "succeeded");
  auto triggered = c->Post("/api/v1/predictions/buy/score", "", "text/plain");
  ASSERT_EQ(triggered->status, 202);
  ASSERT_EQ(WaitForRun(*c, Json(triggered)["run_id"].get<uint64_t>())["state"], "succeeded");

  // The audience of the top fifth is `sibyl cohort --top 20%`, and its forecast is the
  // forecast of those users.
  json top = Json(c->Get("/api/v1/predictions/buy/audience?from=80&to=100"));
  json cohort = Json(c->Get("/api/v1/predictions/buy/cohort?top=20%25&limit=100000"));
  ASSERT_GT(top.value("users", 0), 10) << top.dump();
  EXPECT_EQ(top["users"], cohort["total"]);
  EXPECT_EQ(top["scored_users"], cohort["scored_users"]);
  double expected = 0;
  for (const json& u : cohort["users"]) expected += u["score"].get<double>();
  EXPECT_NEAR(top["expected"].get<double>(), expected, 1e-6);
  EXPECT_LE(top["interval_95"][0].get<double>(), top["expected"].get<double>());
  EXPECT_EQ(top["bins"].size(), 20u);
  json all = Json(c->Get("/api/v1/predictions/buy/audience"));
  EXPECT_EQ(all["users"], all["scored_users"]);
  EXPECT_NEAR(all["expected"].get<double>(), Json(c->Get("/api/v1/predictions/buy/forecast"))["expected"].get<double>(), 1e-6);
  // A range and a minimum score narrow it.
  json mid = Json(c->Get("/api/v1/predictions/buy/audience?from=40&to=60&min_score=0"));
  EXPECT_GT(mid["users"].get<int>(), 0);
  EXPECT_LT(mid["users"].get<int>(), all["users"].get<int>());
  json none = Json(c->Get("/api/v1/predictions/buy/audience?min_score=2"));
  EXPECT_EQ(none["users"], 0);

  // The export holds exactly the audience, best first, as `sibyl cohort` writes it.
  auto csv = c->Get("/api/v1/predictions/buy/audience/export?from=80&to=100&format=csv");
  ASSERT_EQ(csv->status, 200);
  EXPECT_NE(csv->get_header_value("Content-Disposition").find("attachment"), std::string::npos);
  // Streamed as it is formatted (issue 19), not built whole first.
  EXPECT_EQ(csv->get_header_value("Transfer-Encoding"), "chunked");
  EXPECT_FALSE(csv->has_header("Content-Length"));
  std::istringstream lines(csv->body);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line, "user_id,score,percentile,model_version");
  std::vector<std::string> ids;
  while (std::getline(lines, line)) ids.push_back(line.substr(0, line.find(',')));
  ASSERT_EQ(ids.size(), top["users"].get<size_t>());
  EXPECT_EQ(ids.front(), cohort["users"][0]["user_id"]);
  // The whole audience spans several ~64 KB chunks of the stream: every scored user comes
  // exactly once, none lost or repeated at a chunk's edge.
  auto everyone = c->Get("/api/v1/predictions/buy/audience/export?format=csv");
  ASSERT_EQ(everyone->status, 200);
  EXPECT_GT(everyone->body.size(), 64u * 1024) << "too few users to span several chunks";
  std::istringstream all_lines(everyone->body);
  std::getline(all_lines, line);
  EXPECT_EQ(line, "user_id,score,percentile,model_version");
  std::set<std::string> unique_ids;
  size_t rows = 0;
  while (std::getline(all_lines, line)) {
    ++rows;
    unique_ids.insert(line.substr(0, line.find(',')));
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), 3) << line;
  }
  EXPECT_EQ(rows, all["scored_users"].get<size_t>());
  EXPECT_EQ(unique_ids.size(), rows);
  EXPECT_EQ(everyone->get_header_value("X-Sibyl-Users"), std::to_string(rows));
  EXPECT_EQ(everyone->body.back(), '\n');
  auto everyone_ndjson = c->Get("/api/v1/predictions/buy/audience/export?format=ndjson");
  ASSERT_EQ(everyone_ndjson->status, 200);
  EXPECT_GT(everyone_ndjson->body.size(), 2u * 64 * 1024);
  std::istringstream json_lines(everyone_ndjson->body);
  std::set<std::string> ndjson_ids;
  while (std::getline(json_lines, line)) ndjson_ids.insert(json::parse(line)["user_id"].get<std::string>());
  EXPECT_EQ(ndjson_ids, unique_ids);
  EXPECT_EQ(static_cast<size_t>(std::count(everyone_ndjson->body.begin(), everyone_ndjson->body.end(), '\n')), rows);
  auto ndjson = c->Get("/api/v1/predictions/buy/audience/export?from=80&to=100&format=ndjson");
  ASSERT_EQ(ndjson->status, 200);
  EXPECT_EQ(static_cast<size_t>(std::count(ndjson->body.begin(), ndjson->body.end(), '\n')), ids.size());
  EXPECT_EQ(json::parse(ndjson->body.substr(0, ndjson->body.find('\n')))["user_id"], ids.front());

  // Saved as a cohort, it is a starting cohort another prediction can use.
  auto saved = c->Post("/api/v1/cohorts", R"({"name":"likely_buyers","prediction":"buy","from":80,"to":100})",
                       "application/json");
  ASSERT_EQ(saved->status, 201) << saved->body;
  json expr = Json(saved)["cohort"];
  EXPECT_EQ(expr.dump(), R"({"all":[{"user_property":{"op":"gte","property":"sibyl.buy.percentile","value":80.0}}]})")
      << expr.dump();
  json definition = {{"name", "buy_again"}, {"kind", "propensity"}, {"outcome", {{"event", "Purchase"}}},
                     {"horizon_days", 7}, {"cohort", expr}};
  auto dry = c->Post("/api/v1/predictions?dry_run=true", definition.dump(), "application/json");
  EXPECT_EQ(dry->status, 200) << dry->body;

  // A user's events, newest first; the scoring runs with drift.
  const std::string user = cohort["users"][0]["user_id"];
  json events = Json(c->Get("/api/v1/users/" + user + "/events?limit=5"));
  ASSERT_EQ(events["events"].size(), 5u) << events.dump();
  EXPECT_GE(events["events"][0]["time"].get<std::string>(), events["events"][4]["time"].get<std::string>());
  json runs = Json(c->Get("/api/v1/predictions/buy/score_runs"));
  ASSERT_GE(runs["runs"].size(), 1u);  // the manual run, and any the scheduler started
  bool drift = false;
  for (const json& run : runs["runs"]) {
    EXPECT_FALSE(run.contains("quantiles"));
    drift |= run.contains("drift") && run["drift"]["score_psi"].is_number();
  }
  EXPECT_TRUE(drift) << runs.dump().substr(0, 500);
  // The quality report of the trained version.
  auto report = c->Get("/predictions/buy/report");
  ASSERT_EQ(report->status, 200);
  EXPECT_NE(report->body.find("<svg"), std::string::npos);
  EXPECT_NE(report->body.find("latest scoring run"), std::string::npos);
  EXPECT_EQ(c->Get("/predictions/buy/report?version=1")->status, 200);
  EXPECT_EQ(c->Get("/predictions/buy/report?version=9")->status, 404);
  EXPECT_EQ(c->Get("/predictions/buy")->status, 200);
}

}  // namespace
}  // namespace sibyl::server

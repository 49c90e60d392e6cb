// The web app (docs/WEB.md): the login page, the predictions page and each prediction's
// workspace, as files in web/ embedded at build time (web_assets.h), plus the trained
// version's quality report (ml/report_html.h) under a header with the latest scoring run.
// The pages hold no data: their scripts read and change everything through /api/v1, with
// the session cookie the login page sets (session.h).
#include <fmt/format.h>

#include "common/time.h"
#include "ml/report_html.h"
#include "pipeline/feature_words.h"
#include "pipeline/train_run.h"
#include "scoring/score_run.h"
#include "server/api_views.h"
#include "server/context.h"
#include "server/session.h"
#include "server/web_assets.h"

namespace sibyl::server {
namespace {

using httplib::Request;
using httplib::Response;

// Scripts and styles only from this server, nothing framed from elsewhere, forms only
// posted here: what the pages need, so an injected string cannot run or leak anything. No
// inline styles either: the pages style by class (style.css), charts included, so an
// injected style attribute is refused and shows as a console error in the browser test.
constexpr const char* kPagePolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
// The quality report is one self-contained document (inline CSS and SVG, no script),
// shown inside the workspace.
constexpr const char* kReportPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'";

void SecurityHeaders(Response& res, const char* policy) {
  res.set_header("Content-Security-Policy", policy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "same-origin");
  res.set_header("Cache-Control", "no-store");
}

void SendAsset(Response& res, std::string_view name) {
  const WebAsset* asset = FindWebAsset(name);
  if (!asset) return SendError(res, 404, "not_found", "no such file");
  res.status = 200;
  if (name.ends_with(".html")) {
    SecurityHeaders(res, kPagePolicy);
  } else {
    res.set_header("X-Content-Type-Options", "nosniff");
    // Small files, revalidated each time: a new binary's pages never run old scripts.
    res.set_header("Cache-Control", "no-cache");
  }
  res.set_content(std::string(asset->body), std::string(asset->content_type));
}

// Where to go after signing in: a path of this server only ("/x", not "//host" or a URL),
// so the login page cannot be used to send someone elsewhere.
std::string SafeNext(const std::string& next) {
  if (next.empty() || next[0] != '/' || next.starts_with("//") || next.find('\\') != std::string::npos ||
      next.find_first_of("\r\n") != std::string::npos)
    return "/";
  return next;
}

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

// A form posted from another site carries its own Origin: refused, so no page elsewhere can
// sign a browser in (login CSRF). Browsers send Origin on every POST; tools may not.
bool SameOrigin(const Request& req) {
  const std::string origin = req.get_header_value("Origin");
  if (origin.empty()) return true;
  const std::string host = req.get_header_value("Host");
  return origin == "http://" + host || origin == "https://" + host;
}

void Redirect(Response& res, const std::string& location) {
  res.status = 303;
  res.set_header("Location", location);
  res.set_header("Cache-Control", "no-store");
  res.set_content("see " + location + "\n", "text/plain; charset=utf-8");
}

void Login(const ServerContext& ctx, const Request& req, Response& res) {
  CurrentRequest().route = "web_login";
  const std::string next = SafeNext(FormValue(req.body, "next").value_or("/"));
  if (!SameOrigin(req)) return SendError(res, 403, "permission_denied", "sign-in posted from another site");
  const std::string key = FormValue(req.body, "key").value_or("");
  if (key.empty() || CheckKey(key, {ctx.options.keys.admin}) != AuthOutcome::kOk) {
    CurrentRequest().error = "wrong admin key at sign-in";
    return Redirect(res, "/login?error=wrong_key&next=" + UrlEncode(next));
  }
  const int64_t now = ctx.options.clock->NowMs();
  const Session session = SessionsOf(ctx).Create(now);
  res.set_header("Set-Cookie", SessionCookie(session, now, req.get_header_value("X-Forwarded-Proto") == "https"));
  Redirect(res, next);
}

void Logout(const ServerContext& ctx, const Request& req, Response& res) {
  CurrentRequest().route = "web_login";
  const std::string token = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
  auto session = SessionsOf(ctx).Find(token, ctx.options.clock->NowMs());
  if (session) {
    // The CSRF token from the header (the pages' script) or the form (a plain button).
    std::string sent = req.get_header_value("X-CSRF-Token");
    if (sent.empty()) sent = FormValue(req.body, "csrf_token").value_or("");
    if (sent.empty() || !ConstantTimeEquals(sent, session->csrf_token))
      return SendError(res, 403, "permission_denied", "missing or wrong CSRF token");
    SessionsOf(ctx).Remove(token);
  }
  res.set_header("Set-Cookie", ExpiredSessionCookie(req.get_header_value("X-Forwarded-Proto") == "https"));
  Redirect(res, "/login?signed_out=1");
}

// The header inserted at the top of a report page: the definition, and the distribution
// of the latest scoring run's scores.
std::string ScoreHeader(const nlohmann::json& detail, int version) {
  std::string html =
      "<div style=\"font:14px system-ui,sans-serif;background:#f6f7f9;border-bottom:1px solid #dde1e7;"
      "padding:10px 24px\"><b>" +
      ml::HtmlEscape(detail.value("name", "")) + "</b> (version " + std::to_string(version) +
      "): " + ml::HtmlEscape(detail.value("description", ""));
  if (detail.contains("latest_score_run")) {
    const nlohmann::json& run = detail["latest_score_run"];
    const nlohmann::json s = run.value("score_summary", nlohmann::json::object());
    html += fmt::format("<br>latest scoring run: {} users ({} run, version {}) at {}", run.value("users_scored", 0),
                        ml::HtmlEscape(run.value("kind", "")), run.value("version", 0),
                        ml::HtmlEscape(run.value("cutoff", "")));
    if (s.is_object() && s.value("users", 0) > 0) {
      html += "<table style=\"margin-top:6px;border-collapse:collapse\"><tr>";
      for (const char* k : {"mean", "p10", "p50", "p90", "max"})
        html += fmt::format("<th style=\"padding:2px 10px;text-align:left\">{}</th>", k);
      html += "</tr><tr>";
      for (const char* k : {"mean", "p10", "p50", "p90", "max"})
        html += fmt::format("<td style=\"padding:2px 10px\">{:.4f}</td>", s.value(k, 0.0));
      html += "</tr></table>";
    }
  } else {
    html += "<br><span style=\"color:#7a8394\">not scored yet</span>";
  }
  return html + "</div>";
}

void Report(const ServerContext& ctx, const Request& req, Response& res) {
  const std::string name = req.matches[1];
  auto detail = PredictionDetail(ctx, name);
  if (!detail.ok()) return SendStatus(res, detail.status());
  int version = detail->value("latest_version", 0);
  if (req.has_param("version")) {
    const std::string text = req.get_param_value("version");
    char* end = nullptr;
    long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 1 || v > 1'000'000)
      return SendError(res, 400, "invalid_argument", "version must be a positive integer");
    version = static_cast<int>(v);
  }
  std::string page;
  if (version == 0) {
    page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + ml::HtmlEscape(name) +
           "</title></head><body style=\"margin:0\">" + ScoreHeader(*detail, 0) +
           "<p style=\"font:14px system-ui;padding:0 24px\">Not trained yet: its first training run is queued "
           "when it is created (see its runs).</p></body></html>";
  } else {
    auto loaded = pipeline::LoadVersion(ctx.registry, name, version);
    if (!loaded.ok()) return SendStatus(res, loaded.status());
    page = ml::RenderReportHtml(pipeline::ReportInputOf(
        *loaded, fmt::format("{} (version {}): {}", name, version, detail->value("description", ""))));
    const std::string header = ScoreHeader(*detail, version);
    size_t body = page.find("<body");
    size_t at = body == std::string::npos ? std::string::npos : page.find('>', body);
    if (at == std::string::npos) page = header + page;
    else page.insert(at + 1, header);
  }
  res.status = 200;
  SecurityHeaders(res, kReportPolicy);
  res.set_content(page, "text/html; charset=utf-8");
}

}  // namespace

void RegisterWebRoutes(Router& http, ServerContext& ctx) {
  StartSessions(ctx);
  const std::string name = R"(([A-Za-z][A-Za-z0-9_-]{0,63}))";
  // The login page and the files every page loads need no key: they hold no data.
  http.Get("/login", [](const Request&, Response& res) {
    CurrentRequest().route = "web_login";
    SendAsset(res, "login.html");
    // The one page that takes the key: never framed (clickjacking).
    res.set_header("X-Frame-Options", "DENY");
  });
  http.Post("/login", [&ctx](const Request& req, Response& res) { Login(ctx, req, res); });
  // Sign-in by HTTP Basic, for a bookmark like http://admin:KEY@host/login/basic: browsers
  // send a URL's credentials only when challenged, and the pages themselves never challenge
  // (they send the browser to the login form), so this one URL does.
  http.Get("/login/basic", [&ctx](const Request& req, Response& res) {
    CurrentRequest().route = "web_login";
    if (!RequireAdmin(ctx, req, res)) return;
    const int64_t now = ctx.options.clock->NowMs();
    const Session session = SessionsOf(ctx).Create(now);
    res.set_header("Set-Cookie", SessionCookie(session, now, req.get_header_value("X-Forwarded-Proto") == "https"));
    Redirect(res, SafeNext(req.has_param("next") ? req.get_param_value("next") : "/"));
  });
  http.Post("/logout", [&ctx](const Request& req, Response& res) { Logout(ctx, req, res); });
  http.Get(R"(/static/([a-z_]+\.(?:js|css|svg)))", [](const Request& req, Response& res) {
    CurrentRequest().route = "web_static";
    SendAsset(res, std::string(req.matches[1]));
  });
  // Browsers ask for it on their own when a page names no icon (a 404 in the console).
  http.Get("/favicon.ico", [](const Request&, Response& res) {
    CurrentRequest().route = "web_static";
    SendAsset(res, "favicon.svg");
  });
  http.Get("/", [&ctx](const Request& req, Response& res) {
    CurrentRequest().route = "web";
    if (!RequireAdmin(ctx, req, res, /*browser=*/true)) return;
    SendAsset(res, "index.html");
  });
  http.Get("/predictions/" + name, [&ctx](const Request& req, Response& res) {
    CurrentRequest().route = "web";
    if (!RequireAdmin(ctx, req, res, /*browser=*/true)) return;
    if (auto d = ctx.registry.Get(req.matches[1]); !d.ok()) return SendStatus(res, d.status());
    SendAsset(res, "prediction.html");
  });
  http.Get("/predictions/" + name + "/report", [&ctx](const Request& req, Response& res) {
    CurrentRequest().route = "web";
    if (!RequireAdmin(ctx, req, res, /*browser=*/true)) return;
    Report(ctx, req, res);
  });
}

}  // namespace sibyl::server

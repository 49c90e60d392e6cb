// The web pages (admin key via HTTP Basic: the browser asks once): `/` lists predictions,
// creates one with a form, triggers runs and shows recent runs; `/predictions/NAME` is the
// trained version's quality report (ml/report_html.h: metrics, ROC, reliability, lift,
// score histogram, drivers) under a header with the latest scoring run's distribution.
// Self-contained: inline CSS and JS, no network beyond this server's own /api/v1.
#include <fmt/format.h>

#include "common/time.h"
#include "ml/report_html.h"
#include "pipeline/feature_words.h"
#include "pipeline/train_run.h"
#include "scoring/score_run.h"
#include "server/api_views.h"
#include "server/context.h"

namespace sibyl::server {
namespace {

constexpr const char* kIndexHtml = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sibyl</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px;font-size:18px}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:14px 18px;margin:14px 0}
h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{font-weight:600;color:#4a5363}
button{font:inherit;padding:3px 10px;border:1px solid #8891a0;border-radius:4px;background:#fff;cursor:pointer}
button.primary{background:#2f6fde;color:#fff;border-color:#2f6fde}
label{display:inline-block;min-width:150px;color:#4a5363}
input,select{font:inherit;padding:3px 6px;margin:3px 0;min-width:220px}
.ok{color:#1b7f3b}.failed{color:#b3261e}.muted{color:#7a8394}
#message{white-space:pre-wrap}
.bar{display:inline-block;height:10px;background:#2f6fde;vertical-align:middle}
</style></head><body>
<header>sibyl &mdash; predictive insights</header>
<main>
<section><h2>Predictions</h2><table id="predictions"><thead><tr><th>name</th><th>question</th><th>version</th>
<th>quality</th><th>schedule</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Create a prediction</h2>
<form id="create">
<div><label>name</label><input name="name" required pattern="[A-Za-z][A-Za-z0-9_-]{0,63}" placeholder="purchase_7d"></div>
<div><label>kind</label><select name="kind"><option>propensity</option><option>churn</option><option>revenue</option></select></div>
<div><label>outcome event</label><input name="event" placeholder="Purchase (churn: empty = any event)"></div>
<div><label>revenue property</label><input name="revenue_property" placeholder="revenue kind only, e.g. price"></div>
<div><label>horizon (days)</label><input name="horizon_days" type="number" min="1" max="365" value="7"></div>
<div><label>active within (days)</label><input name="active_within_days" type="number" min="0" value="30"></div>
<div><label>train every (hours)</label><input name="train_every_hours" type="number" min="1" value="24"></div>
<div><label>score every (hours)</label><input name="score_every_hours" type="number" min="1" value="1"></div>
<div><button class="primary" type="submit">create</button></div>
</form><p id="message"></p></section>
<section><h2>Recent runs</h2><table id="runs"><thead><tr><th>id</th><th>prediction</th><th>kind</th><th>trigger</th>
<th>state</th><th>started</th><th>seconds</th><th>detail</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
async function api(method, path, body) {
  const r = await fetch(path, {method, credentials: "same-origin",
    headers: body ? {"Content-Type": "application/json"} : {}, body: body ? JSON.stringify(body) : undefined});
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((j.error && j.error.message) || ("HTTP " + r.status));
  return j;
}
function quality(m) {
  if (!m) return '<span class="muted">not trained</span>';
  if (m.roc_auc !== undefined) return esc(m.grade) + " (AUC " + m.roc_auc.toFixed(3) + ")";
  if (m.spearman !== undefined) return esc(m.grade) + " (Spearman " + m.spearman.toFixed(3) + ")";
  return "";
}
async function load() {
  try {
    const p = await api("GET", "/api/v1/predictions");
    document.querySelector("#predictions tbody").innerHTML = p.predictions.map(x =>
      "<tr><td><a href='/predictions/" + encodeURIComponent(x.name) + "'>" + esc(x.name) + "</a></td><td>" +
      esc(x.description) + "</td><td>" + (x.latest_version || "-") + "</td><td>" + quality(x.metrics) +
      "</td><td class='muted'>train every " + x.definition.refresh.train_every_hours + " h, score every " +
      x.definition.refresh.score_every_hours + " h</td><td>" +
      "<button data-a='train' data-n='" + esc(x.name) + "'>train</button> " +
      "<button data-a='score' data-n='" + esc(x.name) + "'>score</button> " +
      "<button data-a='delete' data-n='" + esc(x.name) + "'>delete</button></td></tr>").join("") ||
      "<tr><td colspan=6 class='muted'>no predictions yet: create one below</td></tr>";
    const r = await api("GET", "/api/v1/runs?limit=20");
    document.querySelector("#runs tbody").innerHTML = r.runs.map(x => {
      const secs = x.finished_ms && x.started_ms ? ((x.finished_ms - x.started_ms) / 1000).toFixed(1) : "";
      const d = x.error ? x.error : (x.detail && x.detail.version !== undefined ? "version " + x.detail.version :
                (x.detail && x.detail.users_scored !== undefined ? x.detail.users_scored + " users scored" : ""));
      return "<tr><td>" + x.id + "</td><td>" + esc(x.prediction) + "</td><td>" + esc(x.kind) + "</td><td>" +
        esc(x.trigger) + "</td><td class='" + (x.state === "succeeded" ? "ok" : x.state === "failed" ? "failed" : "") +
        "'>" + esc(x.state) + "</td><td>" + (x.started_ms ? new Date(x.started_ms).toISOString() : "") +
        "</td><td>" + secs + "</td><td>" + esc(d) + "</td></tr>";
    }).join("") || "<tr><td colspan=8 class='muted'>no runs yet</td></tr>";
  } catch (e) { document.getElementById("message").textContent = e.message; }
}
document.addEventListener("click", async ev => {
  const b = ev.target.closest("button[data-a]");
  if (!b) return;
  const n = b.dataset.n, a = b.dataset.a, msg = document.getElementById("message");
  try {
    if (a === "delete") {
      if (!confirm("Delete " + n + " and all its versions?")) return;
      await api("DELETE", "/api/v1/predictions/" + encodeURIComponent(n));
      msg.textContent = "deleted " + n;
    } else {
      const j = await api("POST", "/api/v1/predictions/" + encodeURIComponent(n) + "/" + a);
      msg.textContent = a + " run " + j.run_id + " queued for " + n;
    }
  } catch (e) { msg.textContent = e.message; }
  load();
});
document.getElementById("create").addEventListener("submit", async ev => {
  ev.preventDefault();
  const f = new FormData(ev.target), msg = document.getElementById("message");
  const d = {name: f.get("name"), kind: f.get("kind"), horizon_days: Number(f.get("horizon_days")),
             refresh: {train_every_hours: Number(f.get("train_every_hours")),
                       score_every_hours: Number(f.get("score_every_hours"))}};
  if (f.get("event")) d.outcome = {event: f.get("event")};
  if (d.kind === "revenue" && f.get("revenue_property")) d.revenue_property = f.get("revenue_property");
  const days = Number(f.get("active_within_days"));
  if (days > 0) d.cohort = {all: [{active_within_days: days}]};
  try {
    await api("POST", "/api/v1/predictions", d);
    msg.textContent = "created " + d.name + "; its first training run starts now";
    ev.target.reset();
  } catch (e) { msg.textContent = e.message; }
  load();
});
load();
setInterval(load, 5000);
</script></body></html>
)HTML";

// The header inserted at the top of a report page: navigation, the definition, and the
// distribution of the latest scoring run's scores.
std::string ScoreHeader(const nlohmann::json& detail) {
  std::string html =
      "<div style=\"font:14px system-ui,sans-serif;background:#f6f7f9;border-bottom:1px solid #dde1e7;"
      "padding:10px 24px\"><a href=\"/\">&larr; all predictions</a> &middot; <b>" +
      ml::HtmlEscape(detail.value("name", "")) + "</b>: " + ml::HtmlEscape(detail.value("description", ""));
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

}  // namespace

void RegisterWebRoutes(Router& http, ServerContext& ctx) {
  http.Get("/", [&ctx](const httplib::Request& req, httplib::Response& res) {
    CurrentRequest().route = "web";
    if (!RequireAdmin(ctx, req, res, /*browser=*/true)) return;
    res.status = 200;
    res.set_content(kIndexHtml, "text/html; charset=utf-8");
  });
  http.Get(R"(/predictions/([A-Za-z][A-Za-z0-9_-]{0,63}))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    CurrentRequest().route = "web";
    if (!RequireAdmin(ctx, req, res, /*browser=*/true)) return;
    const std::string name = req.matches[1];
    auto detail = PredictionDetail(ctx, name);
    if (!detail.ok()) return SendStatus(res, detail.status());
    const int version = detail->value("latest_version", 0);
    std::string page;
    if (version == 0) {
      page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + ml::HtmlEscape(name) +
             "</title></head><body style=\"margin:0\">" + ScoreHeader(*detail) +
             "<p style=\"font:14px system-ui;padding:0 24px\">Not trained yet: its first training run is queued "
             "when it is created (see the runs on the main page).</p></body></html>";
    } else {
      auto loaded = pipeline::LoadVersion(ctx.registry, name, version);
      if (!loaded.ok()) return SendStatus(res, loaded.status());
      page = ml::RenderReportHtml(pipeline::ReportInputOf(
          *loaded, fmt::format("{} (version {}): {}", name, version, detail->value("description", ""))));
      const std::string header = ScoreHeader(*detail);
      size_t body = page.find("<body");
      size_t at = body == std::string::npos ? std::string::npos : page.find('>', body);
      if (at == std::string::npos) page = header + page;
      else page.insert(at + 1, header);
    }
    res.status = 200;
    res.set_content(page, "text/html; charset=utf-8");
  });
}

}  // namespace sibyl::server

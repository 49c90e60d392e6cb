"use strict";
// One prediction's workspace: pick an audience by percentile and see its size and expected
// outcome, export it or save it as a cohort; look up one user and why they score as they
// do; the quality report, versions side by side, backtests, runs, drift over time.
// Everything from /api/v1.
const { api, esc, int, num, time, seconds, stateClass, debounce } = sibyl;
const $ = (id) => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = "/api/v1/predictions/" + encodeURIComponent(name);
let detail = null;

function audienceQuery() {
  let from = Number($("a-from").value), to = Number($("a-to").value);
  if (from > to) [from, to] = [to, from];
  const q = new URLSearchParams({ from: String(from), to: String(to) });
  if ($("a-min").value !== "") q.set("min_score", $("a-min").value);
  return q;
}

function drawBins(svg, bins, from, to) {
  const w = 1000, h = 170, left = 44, bottom = 18, max = Math.max(1e-9, ...bins.map((b) => b.mean_score));
  const bw = (w - left) / bins.length;
  let s = `<line class="axis" x1="${left}" y1="${h - bottom}" x2="${w}" y2="${h - bottom}"/>` +
          `<text x="0" y="12">${esc(num(max, 3))}</text><text x="0" y="${h - bottom}">0</text>`;
  bins.forEach((b, i) => {
    const bh = (h - bottom - 6) * b.mean_score / max;
    const inside = b.to > from && b.from < to;
    s += `<rect class="bar${inside ? " in" : ""}" x="${left + i * bw + 1}" y="${h - bottom - bh}" width="${bw - 2}" height="${bh}">` +
         `<title>percentile ${b.from}–${b.to}: ${int(b.users)} users, mean score ${num(b.mean_score, 4)}</title></rect>`;
    if (i % 4 === 0) s += `<text x="${left + i * bw}" y="${h + 2}">${b.from}</text>`;
  });
  s += `<text x="${w - 26}" y="${h + 2}">100</text>`;
  svg.setAttribute("viewBox", `0 0 ${w} ${h + 16}`);
  svg.innerHTML = s;
}

let audienceSeq = 0;
const scored = () => detail && detail.latest_score_run;
async function updateAudience() {
  if (!scored()) {
    $("a-asof").textContent = "Not scored yet: the audience appears after the first scoring run.";
    return;
  }
  const q = audienceQuery();
  $("a-from-out").textContent = $("a-from").value;
  $("a-to-out").textContent = $("a-to").value;
  $("a-csv").href = base + "/audience/export?" + q + "&format=csv";
  $("a-ndjson").href = base + "/audience/export?" + q + "&format=ndjson";
  const seq = ++audienceSeq;
  try {
    const a = await api("GET", base + "/audience?" + q);
    if (seq !== audienceSeq) return;  // a later move of the slider already asked
    $("a-users").textContent = int(a.users);
    $("a-share").textContent = num(100 * a.share, 1) + "%";
    if (a.expected_revenue !== undefined) {
      $("a-expected-label").textContent = "expected revenue in " + a.horizon_days + " days";
      $("a-expected").textContent = num(a.expected_revenue, 2);
      $("a-interval").textContent = "–";
    } else {
      $("a-expected-label").textContent = (a.kind === "churn" ? "expected to churn" : "expected conversions") + " in " + a.horizon_days + " days";
      $("a-expected").textContent = num(a.expected, 1);
      $("a-interval").textContent = num(a.interval_95[0], 0) + " – " + num(a.interval_95[1], 0);
    }
    $("a-asof").textContent = `${int(a.scored_users)} scored users; scores as of ${a.scores_as_of}`;
    drawBins($("a-chart"), a.bins, a.from, a.to);
    $("message").textContent = "";
  } catch (e) {
    if (seq !== audienceSeq) return;
    $("a-users").textContent = "–";
    $("message").textContent = e.status === 409 ? "Not scored yet: the audience appears after the first scoring run." : e.message;
  }
}

async function saveCohort() {
  const input = $("a-cohort-name");
  if (!input.value || !input.checkValidity()) { $("a-saved").className = "error"; $("a-saved").textContent = "a cohort name: letters, digits, _ and -, starting with a letter"; return; }
  const q = audienceQuery();
  const body = { name: input.value, prediction: name, from: Number(q.get("from")), to: Number(q.get("to")) };
  if (q.has("min_score")) body.min_score = Number(q.get("min_score"));
  try {
    const c = await api("POST", "/api/v1/cohorts", body);
    $("a-saved").className = "ok";
    $("a-saved").textContent = `saved cohort ${c.name}: usable as a starting cohort of new predictions`;
  } catch (e) { $("a-saved").className = "error"; $("a-saved").textContent = e.message; }
}

function reasonList(reasons) {
  return reasons && reasons.length ? "<ul class=\"reasons\">" + reasons.map((r) => `<li>${esc(r.words)}</li>`).join("") + "</ul>" : '<p class="muted">none</p>';
}

async function lookup(user) {
  const out = $("u-result");
  out.innerHTML = '<p class="muted">looking up…</p>';
  const enc = encodeURIComponent(user);
  try {
    const profile = await api("GET", "/api/v1/users/" + enc);
    const [explanation, events] = await Promise.all([
      api("GET", base + "/users/" + enc + "/explanation?reasons=4").catch((e) => ({ error: e.message })),
      api("GET", "/api/v1/users/" + enc + "/events?limit=20").catch((e) => ({ error: e.message, events: [] })),
    ]);
    const written = profile.scores[name];
    let html = `<div class="cards"><div class="card"><div class="value" id="u-score">${written ? num(written.score, 4) : "–"}</div><div class="label">latest written score</div></div>` +
      `<div class="card"><div class="value" id="u-percentile">${written ? num(written.percentile, 2) : "–"}</div><div class="label">percentile</div></div>`;
    if (!explanation.error) html += `<div class="card"><div class="value">${num(explanation.score, 4)}</div><div class="label">explained score at ${esc(explanation.cutoff)}</div></div>`;
    html += "</div>";
    if (explanation.error) html += `<p class="error">${esc(explanation.error)}</p>`;
    else html += `<div class="grid"><span>pushing the score up</span><div id="u-up">${reasonList(explanation.up)}</div>` +
                 `<span>pushing it down</span><div id="u-down">${reasonList(explanation.down)}</div></div>`;
    html += `<h3>Recent events <span class="muted">(${int(events.total_events || 0)} in all)</span></h3>` +
      '<div class="scroll"><table id="u-events"><thead><tr><th>time</th><th>event</th></tr></thead><tbody>' +
      events.events.map((e) => `<tr><td>${esc(e.time)}</td><td>${esc(e.event_type)}</td></tr>`).join("") + "</tbody></table></div>";
    out.innerHTML = html;
  } catch (e) { out.innerHTML = `<p class="error">${esc(e.message)}</p>`; }
}

function versionsTable(versions) {
  if (!versions || !versions.length) return '<p class="muted">not trained yet</p>';
  const keys = [...new Set(versions.flatMap((v) => Object.keys(v.metrics || {})))]
    .filter((k) => versions.some((v) => typeof (v.metrics || {})[k] === "number" || typeof (v.metrics || {})[k] === "string"));
  let s = "<table><thead><tr><th>metric</th>" + versions.map((v) =>
    `<th class="num"><a href="/predictions/${encodeURIComponent(name)}/report?version=${v.version}" target="_blank" rel="noopener">v${v.version}</a></th>`).join("") + "</tr></thead><tbody>";
  // A version whose version.json is damaged comes with the error naming the file.
  s += "<tr><td>trained at</td>" + versions.map((v) => v.error ? `<td class="failed">${esc(v.error)}</td>`
                                                              : `<td class="num">${esc(v.trained_at)}</td>`).join("") + "</tr>";
  s += "<tr><td>model</td>" + versions.map((v) => `<td class="num">${esc(v.model_type)}</td>`).join("") + "</tr>";
  for (const k of keys) {
    s += `<tr><td>${esc(k)}</td>` + versions.map((v) => {
      const x = (v.metrics || {})[k];
      return `<td class="num">${typeof x === "number" ? num(x, 4) : esc(x ?? "")}</td>`;
    }).join("") + "</tr>";
  }
  return s + "</tbody></table>";
}

async function loadDetail() {
  detail = await api("GET", base);
  document.title = name + " · sibyl";
  $("title").textContent = name;
  $("question").textContent = detail.description;
  const run = detail.latest_score_run;
  $("status").textContent = (detail.latest_version ? `version ${detail.latest_version} (${detail.model_type || ""}), trained ${detail.trained_at || ""}` : "not trained yet") +
    (run ? `; latest scoring: ${int(run.users_scored)} users at ${run.cutoff}` : "; not scored yet");
  $("versions-table").innerHTML = versionsTable(detail.versions);
  const report = "/predictions/" + encodeURIComponent(name) + "/report";
  $("report-link").href = report;
  if ($("report").dataset.version !== String(detail.latest_version)) {
    $("report").dataset.version = String(detail.latest_version);
    $("report").src = report;
  }
}

async function loadRuns() {
  const r = await api("GET", "/api/v1/runs?limit=50&prediction=" + encodeURIComponent(name));
  $("runs-table").querySelector("tbody").innerHTML = r.runs.map((x) => {
    const d = x.error ? x.error : (x.detail && x.detail.version !== undefined && x.kind === "train" ? "version " + x.detail.version :
              (x.detail && x.detail.users_scored !== undefined ? int(x.detail.users_scored) + " users scored" : ""));
    return `<tr><td class="num">${x.id}</td><td>${esc(x.kind)}</td><td>${esc(x.trigger)}</td><td class="${stateClass(x.state)}">${esc(x.state)}</td>` +
      `<td>${time(x.started_ms)}</td><td class="num">${seconds(x)}</td><td class="${x.error ? "failed" : ""}">${esc(d)}</td></tr>`;
  }).join("") || '<tr><td colspan="7" class="muted">no runs yet</td></tr>';
}

// One kept backtest: per evaluation cutoff the model's metrics on what then happened, and
// the recency-frequency baseline's on the same users (the "vs baseline" column: the model's
// AUC minus the baseline's, or for revenue its Spearman minus the baseline's).
function backtestTable(b) {
  const revenue = b.kind === "revenue";
  const head = revenue
    ? ["evaluation cutoff", "users", "mean actual", "mean predicted", "MAE", "RMSE", "Spearman", "top 10% hold", "baseline MAE", "baseline Spearman", "baseline top 10%", "vs baseline", "model"]
    : ["evaluation cutoff", "users", "base rate", "AUC", "log loss", "ECE", "baseline AUC", "baseline log loss", "baseline ECE", "vs baseline", "model"];
  let s = "<table class=\"backtest\"><thead><tr>" + head.map((h, i) => `<th${i > 0 && i < head.length - 1 ? " class=\"num\"" : ""}>${h}</th>`).join("") + "</tr></thead><tbody>";
  for (const c of b.cutoffs || []) {
    const cutoff = `<td>${esc(String(c.eval_cutoff).slice(0, 16).replace("T", " "))}</td>`;
    if (c.error) { s += `<tr>${cutoff}<td colspan="${head.length - 1}" class="failed">${esc(c.error)}</td></tr>`; continue; }
    const bl = c.baseline || {};
    const cell = (v, d) => `<td class="num">${num(v, d)}</td>`;
    // The top decile's share of the actual amount (absent when nothing was spent).
    const share = (v) => `<td class="num">${typeof v === "number" ? num(100 * v, 1) + "%" : "–"}</td>`;
    const delta = bl.error ? null : (revenue ? c.spearman - bl.spearman : c.roc_auc - bl.roc_auc);
    const vs = delta === null ? `<td class="num muted" title="${esc(bl.error)}">–</td>`
      : `<td class="num ${delta >= 0 ? "ok" : "failed"}">${delta >= 0 ? "+" : ""}${num(delta, 4)}</td>`;
    s += "<tr>" + cutoff + `<td class="num">${int(c.users)}</td>` +
      (revenue ? cell(c.mean_actual, 3) + cell(c.mean_score, 3) + cell(c.mae, 3) + cell(c.rmse, 3) + cell(c.spearman, 4) + share(c.top_decile_share) +
                 cell(bl.mae, 3) + cell(bl.spearman, 4) + share(bl.top_decile_share)
               : cell(c.base_rate, 4) + cell(c.roc_auc, 4) + cell(c.log_loss, 4) + cell(c.ece, 4) + cell(bl.roc_auc, 4) + cell(bl.log_loss, 4) + cell(bl.ece, 4)) +
      vs + `<td>${esc(c.model_type)}</td></tr>`;
  }
  return s + "</tbody></table>";
}

let shownBacktests = null;
async function loadBacktests() {
  const r = await api("GET", base + "/backtests?limit=5");
  // Redrawn only when a backtest came or went: every 5 s would fold what the user opened.
  const ids = r.backtests.map((b) => b.id).join(" ");
  if (ids === shownBacktests) return;
  shownBacktests = ids;
  const list = $("backtests-list");
  if (!r.backtests.length) {
    list.innerHTML = `<p class="muted">no backtest yet: <code>sibyl backtest ${esc(name)}</code> keeps its results here</p>`;
    return;
  }
  list.innerHTML = r.backtests.map((b, i) => {
    const o = b.options || {};
    const caption = `run ${esc(String(b.ran_at).slice(0, 16).replace("T", " "))} UTC: ${int(o.cutoffs)} cutoffs ${int(o.step_days)} days apart, ` +
      `horizon ${int(b.horizon_days)} days`;
    const table = `<div class="scroll">${backtestTable(b)}</div>`;
    // The newest open; older ones folded, one click away.
    return i === 0 ? `<h3 class="backtest-run" data-id="${esc(b.id)}">${caption}</h3>${table}`
                   : `<details data-id="${esc(b.id)}"><summary>${caption}</summary>${table}</details>`;
  }).join("");
}

// The drift chart: x is each full run's cutoff in time, y the PSI. The score's PSI is the
// solid line, one point per run; each feature that went over the threshold in any run is a
// thin line of its own (the five highest), so it shows when it drifted and whether it came
// back. Colours come from classes in style.css (the page's CSP allows no inline style).
function drawDrift(svg, legend, runs) {
  const w = 1000, h = 150, left = 44, right = 12, top = 8, bottom = 22;
  const threshold = runs.length ? runs[0].drift.threshold : 0.2;
  const features = new Map();  // name -> highest PSI over the runs, for those ever over the threshold
  for (const r of runs) for (const f of r.drift.features || [])
    if (f.psi > threshold) features.set(f.name, Math.max(features.get(f.name) || 0, f.psi));
  const shown = [...features.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map((e) => e[0]);
  const psiOf = (r, feature) => ((r.drift.features || []).find((f) => f.name === feature) || {}).psi;
  let max = Math.max(threshold * 1.25, ...runs.map((r) => r.drift.score_psi));
  for (const f of shown) for (const r of runs) max = Math.max(max, psiOf(r, f) || 0);
  const times = runs.map((r) => Date.parse(r.cutoff));
  const t0 = Math.min(...times), t1 = Math.max(...times);
  // By time, so gaps between runs show; but runs that share a cutoff (a manual run beside
  // the daily one) would fall on one point, so then the runs are spaced evenly instead.
  const byTime = new Set(times).size === times.length;
  const span = w - left - right;
  const xs = times.map((t, i) => left + (byTime ? (t1 > t0 ? (t - t0) * span / (t1 - t0) : span / 2)
                                                : (runs.length > 1 ? i * span / (runs.length - 1) : span / 2)));
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  let s = `<line class="axis" x1="${left}" y1="${y(0)}" x2="${w - right}" y2="${y(0)}"/>` +
          `<line class="threshold" x1="${left}" y1="${y(threshold)}" x2="${w - right}" y2="${y(threshold)}"/>` +
          `<text x="0" y="${y(threshold) + 4}">${num(threshold, 2)}</text><text x="0" y="${y(max) + 10}">${num(max, 2)}</text>` +
          `<text x="0" y="${y(0)}">0</text>`;
  if (runs.length) {
    const day = (t) => new Date(t).toISOString().slice(0, 10);
    s += `<text x="${left}" y="${h - 4}">${day(t0)}</text>`;
    if (t1 > t0) s += `<text x="${w - right}" y="${h - 4}" text-anchor="end">${day(t1)}</text>`;
    if (!byTime) s += `<text x="${left + span / 2}" y="${h - 4}" text-anchor="middle">(runs in order; some share a cutoff)</text>`;
  }
  shown.forEach((f, k) => {
    const pts = runs.map((r, i) => [xs[i], psiOf(r, f)]).filter((p) => p[1] !== undefined);
    s += `<polyline class="feature f${k}" points="${pts.map((p) => p[0] + "," + y(p[1])).join(" ")}"><title>${esc(f)}</title></polyline>`;
  });
  if (runs.length) {
    s += `<polyline class="score" points="${runs.map((r, i) => xs[i] + "," + y(r.drift.score_psi)).join(" ")}"/>`;
    s += runs.map((r, i) => {
      const over = (r.drift.features || []).filter((f) => f.psi > threshold).length;
      return `<circle class="score${r.drift.score_psi > threshold ? " over" : ""}" cx="${xs[i]}" cy="${y(r.drift.score_psi)}" r="4">` +
        `<title>${esc(r.cutoff)}: score PSI ${num(r.drift.score_psi, 3)}; ${over} feature${over === 1 ? "" : "s"} over ${num(threshold, 2)}</title></circle>`;
    }).join("");
  }
  svg.innerHTML = s;
  legend.innerHTML = runs.length ? '<span class="key score">score PSI</span>' +
    shown.map((f, k) => `<span class="key f${k}">${esc(f)}</span>`).join("") +
    (shown.length ? "" : '<span class="muted">no feature over the threshold in these runs</span>') : "";
}

async function loadDrift() {
  const r = await api("GET", base + "/score_runs?limit=30");
  const full = r.runs.filter((x) => x.drift);
  $("drift-table").querySelector("tbody").innerHTML = full.map((x) => {
    const d = x.drift, flagged = (d.features || []).filter((f) => f.psi > d.threshold).sort((a, b) => b.psi - a.psi);
    return `<tr><td>${esc(x.cutoff)}</td><td class="num">${x.version}</td><td class="num">${int(x.users_scored)}</td>` +
      `<td class="num">${num(d.training_mean_score, 4)} → ${num(d.mean_score, 4)}</td>` +
      `<td class="num ${d.score_shifted ? "failed" : ""}">${num(d.score_psi, 3)}</td>` +
      `<td>${flagged.map((f) => esc(f.name) + " (" + num(f.psi, 2) + ")").join(", ") || '<span class="muted">none</span>'}</td></tr>`;
  }).join("") || '<tr><td colspan="6" class="muted">no full scoring run with drift yet</td></tr>';
  drawDrift($("drift-chart"), $("drift-legend"), full.slice().reverse());  // oldest first
}

async function loadTopUsers() {
  if (!scored()) return;
  const c = await api("GET", base + "/cohort?limit=20");
  $("top-users").innerHTML = c.users.map((u) => `<option value="${esc(u.user_id)}"></option>`).join("");
}

async function refresh() {
  try {
    await loadDetail();
    await loadRuns();
    await loadBacktests();
    await loadDrift();
  } catch (e) { $("message").textContent = e.message; }
}

document.addEventListener("DOMContentLoaded", async () => {
  await sibyl.start();
  const move = debounce(updateAudience, 25);
  for (const id of ["a-from", "a-to", "a-min"]) $(id).addEventListener("input", move);
  $("a-save").addEventListener("click", saveCohort);
  $("lookup-form").addEventListener("submit", (ev) => { ev.preventDefault(); lookup($("u-id").value.trim()); });
  await refresh();
  await updateAudience();
  loadTopUsers().catch(() => {});
  // Training and scoring runs finish in the background: the page follows them.
  setInterval(async () => {
    const had = detail && detail.latest_score_run ? detail.latest_score_run.cutoff + detail.latest_score_run.users_scored : "";
    await refresh();
    const now = scored() ? detail.latest_score_run.cutoff + detail.latest_score_run.users_scored : "";
    if (now !== had) { await updateAudience(); loadTopUsers().catch(() => {}); }
  }, 5000);
});

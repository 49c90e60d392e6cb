"use strict";
// The predictions page: the list with its actions, the create/edit form (names offered from
// the store as you type, checked by the server as you type), saved cohorts, recent runs.
const { api, esc, int, time, seconds, stateClass, quality, debounce } = sibyl;
const $ = (id) => document.getElementById(id);
let editing = null;       // the name being edited, or null when creating
let savedCohorts = [];

const OPS = [["eq", "="], ["neq", "≠"], ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["contains", "contains"]];

function addWhereRow(filter = {}) {
  const row = document.createElement("div");
  row.className = "row where-row";
  row.innerHTML = '<input class="w-prop" list="properties" autocomplete="off" placeholder="property" aria-label="filter property">' +
    '<select class="w-op" aria-label="operator">' + OPS.map(([v, t]) => `<option value="${v}">${esc(t)}</option>`).join("") + "</select>" +
    '<input class="w-value" placeholder="value" aria-label="filter value"><button type="button" class="w-remove" aria-label="remove filter">×</button>';
  row.querySelector(".w-prop").value = filter.property || "";
  row.querySelector(".w-op").value = filter.op || "eq";
  row.querySelector(".w-value").value = filter.value === undefined ? "" : String(filter.value);
  row.querySelector(".w-remove").addEventListener("click", () => { row.remove(); validate(); });
  $("where").appendChild(row);
}

// "12" is a number, "true"/"false" booleans, anything else a string.
function typed(text) {
  if (text !== "" && !Number.isNaN(Number(text))) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

function cohortFromForm() {
  const mode = $("f-cohort").value, days = Number($("f-cohort-days").value);
  if (mode === "everyone") return undefined;
  if (mode === "active") return { all: [{ active_within_days: days }] };
  if (mode === "new") return { all: [{ first_seen_within_days: days }] };
  if (mode === "performed") return { all: [{ performed: { event: $("f-cohort-event").value, within_days: days } }] };
  if (mode.startsWith("saved:")) {
    const c = savedCohorts.find((x) => "saved:" + x.name === mode);
    return c ? c.cohort : undefined;
  }
  try { return JSON.parse($("f-cohort-json").value); } catch (e) { throw new Error("starting cohort: not JSON (" + e.message + ")"); }
}

function definitionFromForm() {
  const kind = $("f-kind").value;
  const d = { name: $("f-name").value.trim(), kind, horizon_days: Number($("f-horizon").value),
              refresh: { train_every_hours: Number($("f-train").value), score_every_hours: Number($("f-score").value) } };
  const outcome = {};
  if ($("f-event").value.trim()) outcome.event = $("f-event").value.trim();
  const where = [...document.querySelectorAll(".where-row")]
    .filter((r) => r.querySelector(".w-prop").value.trim())
    .map((r) => ({ property: r.querySelector(".w-prop").value.trim(), op: r.querySelector(".w-op").value,
                   value: typed(r.querySelector(".w-value").value.trim()) }));
  if (where.length) outcome.where = where;
  if (Object.keys(outcome).length) d.outcome = outcome;
  if (kind === "revenue" && $("f-revenue").value.trim()) d.revenue_property = $("f-revenue").value.trim();
  const cohort = cohortFromForm();
  if (cohort) d.cohort = cohort;
  return d;
}

function showCohortFields() {
  const mode = $("f-cohort").value;
  $("cohort-days-box").classList.toggle("hidden", !["active", "performed", "new"].includes(mode));
  $("cohort-event-box").classList.toggle("hidden", mode !== "performed");
  $("f-cohort-json").classList.toggle("hidden", mode !== "json");
  for (const el of document.querySelectorAll(".revenue-only")) el.classList.toggle("hidden", $("f-kind").value !== "revenue");
}

// Field-level messages first (the browser's own checks), then the server's verdict on the
// whole definition: the same validation as creating it, nothing stored.
async function validate() {
  const name = $("f-name");
  $("e-name").textContent = name.value && !name.validity.valid ? "use letters, digits, _ and -, starting with a letter (at most 64)" : "";
  $("form-error").textContent = "";
  $("e-event").textContent = "";
  if (!name.value) { $("preview").textContent = ""; return false; }
  let d;
  try { d = definitionFromForm(); } catch (e) { $("form-error").textContent = e.message; return false; }
  try {
    const r = await api("POST", "/api/v1/predictions?dry_run=true", d);
    if (!r.valid) {
      $("preview").textContent = "";
      const m = r.error.message;
      // An unknown outcome event shows under its field ("did you mean ...").
      if ($("f-event").value && m.includes('"' + $("f-event").value + '"')) $("e-event").textContent = m;
      else $("form-error").textContent = m;
      return false;
    }
    $("preview").textContent = r.description + (r.exists && !editing ? "  (a prediction with this name exists)" : "");
    return true;
  } catch (e) {
    $("preview").textContent = "";
    $("form-error").textContent = e.message;
    return false;
  }
}
const validateSoon = debounce(validate, 350);

function resetForm() {
  editing = null;
  $("create").reset();
  $("where").innerHTML = "";
  $("f-name").disabled = false;
  $("form-title").textContent = "Create a prediction";
  $("submit").textContent = "Create";
  $("cancel-edit").classList.add("hidden");
  $("preview").textContent = "";
  $("form-error").textContent = "";
  showCohortFields();
}

function edit(p) {
  resetForm();
  editing = p.name;
  const d = p.definition;
  $("form-title").textContent = "Edit " + p.name;
  $("submit").textContent = "Save (retrains)";
  $("cancel-edit").classList.remove("hidden");
  $("f-name").value = d.name;
  $("f-name").disabled = true;
  $("f-kind").value = d.kind;
  $("f-event").value = (d.outcome && d.outcome.event) || "";
  for (const w of (d.outcome && d.outcome.where) || []) addWhereRow(typeof w === "string" ? { property: w } : w);
  $("f-revenue").value = d.revenue_property || (d.outcome && d.outcome.revenue_property) || "";
  $("f-horizon").value = d.horizon_days;
  if (d.refresh) { $("f-train").value = d.refresh.train_every_hours; $("f-score").value = d.refresh.score_every_hours; }
  $("f-cohort").value = "json";
  $("f-cohort-json").value = JSON.stringify(d.cohort || { all: [] }, null, 1);
  showCohortFields();
  $("editor").scrollIntoView();
  validate();
}

let predictions = [];
async function load() {
  try {
    const p = await api("GET", "/api/v1/predictions");
    predictions = p.predictions;
    $("predictions").querySelector("tbody").innerHTML = p.predictions.map((x) =>
      `<tr><td><a href="/predictions/${encodeURIComponent(x.name)}">${esc(x.name)}</a></td><td>${esc(x.description)}</td>` +
      `<td class="num">${x.latest_version || "–"}</td><td>${quality(x.metrics)}</td>` +
      `<td class="muted">train every ${int(x.definition.refresh.train_every_hours)} h, score every ${int(x.definition.refresh.score_every_hours)} h</td>` +
      `<td class="row"><button data-a="train" data-n="${esc(x.name)}">train</button>` +
      `<button data-a="score" data-n="${esc(x.name)}">score</button>` +
      `<button data-a="edit" data-n="${esc(x.name)}">edit</button>` +
      `<button data-a="delete" data-n="${esc(x.name)}">delete</button></td></tr>`).join("") ||
      '<tr><td colspan="6" class="muted">no predictions yet: create one below</td></tr>';
    const r = await api("GET", "/api/v1/runs?limit=20");
    $("runs").querySelector("tbody").innerHTML = r.runs.map((x) => {
      const d = x.error ? x.error : (x.detail && x.detail.version !== undefined && x.kind === "train" ? "version " + x.detail.version :
                (x.detail && x.detail.users_scored !== undefined ? int(x.detail.users_scored) + " users scored" : ""));
      return `<tr><td class="num">${x.id}</td><td>${esc(x.prediction)}</td><td>${esc(x.kind)}</td><td>${esc(x.trigger)}</td>` +
        `<td class="${stateClass(x.state)}">${esc(x.state)}</td><td>${time(x.started_ms)}</td>` +
        `<td class="num">${seconds(x)}</td><td>${esc(d)}</td></tr>`;
    }).join("") || '<tr><td colspan="8" class="muted">no runs yet</td></tr>';
  } catch (e) { $("message").textContent = e.message; }
}

async function loadCohorts() {
  const c = await api("GET", "/api/v1/cohorts");
  savedCohorts = c.cohorts;
  $("cohorts").querySelector("tbody").innerHTML = c.cohorts.map((x) =>
    `<tr><td>${esc(x.name)}</td><td>${x.source ? esc(x.source.prediction) + ", percentile " + esc(x.source.from) + "–" + esc(x.source.to) : ""}</td>` +
    `<td><code>${esc(JSON.stringify(x.cohort))}</code></td><td><button data-a="delete-cohort" data-n="${esc(x.name)}">delete</button></td></tr>`).join("") ||
    '<tr><td colspan="4" class="muted">none yet: a prediction\'s audience can be saved as a cohort</td></tr>';
  const select = $("f-cohort");
  for (const o of [...select.options]) if (o.value.startsWith("saved:")) o.remove();
  for (const x of c.cohorts) select.add(new Option("saved cohort: " + x.name, "saved:" + x.name), select.options.length - 1);
}

async function loadTaxonomy() {
  const t = await api("GET", "/api/v1/taxonomy");
  const fill = (id, names) => { $(id).innerHTML = names.map((n) => `<option value="${esc(n)}"></option>`).join(""); };
  fill("event-types", t.event_types);
  fill("properties", t.properties);
}

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-a]");
  if (!b) return;
  const n = b.dataset.n, a = b.dataset.a, msg = $("message");
  try {
    if (a === "edit") return edit(predictions.find((p) => p.name === n));
    if (a === "delete") {
      if (!confirm("Delete " + n + " and all its versions?")) return;
      await api("DELETE", "/api/v1/predictions/" + encodeURIComponent(n));
      msg.textContent = "deleted " + n;
    } else if (a === "delete-cohort") {
      if (!confirm("Delete the saved cohort " + n + "? Predictions that copied it keep their copy.")) return;
      await api("DELETE", "/api/v1/cohorts/" + encodeURIComponent(n));
      return loadCohorts();
    } else {
      const j = await api("POST", "/api/v1/predictions/" + encodeURIComponent(n) + "/" + a);
      msg.textContent = a + " run " + j.run_id + " queued for " + n;
    }
  } catch (e) { msg.textContent = e.message; }
  load();
});

document.addEventListener("DOMContentLoaded", async () => {
  await sibyl.start();
  const form = $("create");
  form.addEventListener("input", validateSoon);
  form.addEventListener("change", () => { showCohortFields(); validateSoon(); });
  $("add-where").addEventListener("click", () => addWhereRow());
  $("cancel-edit").addEventListener("click", resetForm);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!$("f-name").checkValidity()) { $("e-name").textContent = "use letters, digits, _ and -, starting with a letter"; $("f-name").focus(); return; }
    let d;
    try { d = definitionFromForm(); } catch (e) { $("form-error").textContent = e.message; return; }
    try {
      if (editing) await api("PUT", "/api/v1/predictions/" + encodeURIComponent(editing), d);
      else await api("POST", "/api/v1/predictions", d);
      $("message").textContent = (editing ? "saved " : "created ") + d.name + "; its training run starts now";
      resetForm();
    } catch (e) { $("form-error").textContent = e.message; }
    load();
  });
  showCohortFields();
  load();
  loadTaxonomy().catch((e) => { $("message").textContent = e.message; });
  loadCohorts().catch((e) => { $("message").textContent = e.message; });
  setInterval(load, 5000);
});

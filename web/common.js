"use strict";
// What every signed-in page shares: calls to /api/v1 with the session (and its CSRF token
// on changes), escaping, number formats, the sign-out button. No framework, no build step.
const sibyl = (() => {
  let csrf = null;

  // Always an absolute URL on this origin: a page opened as http://user:key@host/ resolves
  // relative URLs with the credentials in them, which fetch refuses.
  const url = (path) => new URL(path, location.origin).toString();

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
    const r = await fetch(url(path), {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("signed out");
    }
    const j = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = new Error((j.error && j.error.message) || ("HTTP " + r.status));
      e.status = r.status;
      throw e;
    }
    return j;
  }

  // The CSRF token of this browser's session (null when the key itself signed the page in).
  async function start() {
    const s = await api("GET", "/api/v1/session");
    csrf = s.csrf_token;
    const out = document.getElementById("signout");
    if (out) {
      out.addEventListener("click", async () => {
        await fetch(url("/logout"), { method: "POST", credentials: "same-origin",
                                      headers: csrf ? { "X-CSRF-Token": csrf } : {} }).catch(() => {});
        location.href = "/login?signed_out=1";
      });
    }
    return s;
  }

  const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]));
  const int = (n) => Number(n ?? 0).toLocaleString("en-US", { maximumFractionDigits: 0 });
  const num = (n, digits = 3) => (n === null || n === undefined || Number.isNaN(Number(n))) ? "–"
      : Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
  const time = (ms) => ms ? new Date(ms).toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC") : "";
  const seconds = (run) => (run.finished_ms && run.started_ms) ? ((run.finished_ms - run.started_ms) / 1000).toFixed(1) : "";
  const stateClass = (s) => s === "succeeded" ? "ok" : (s === "failed" || s === "aborted") ? "failed" : "";

  function quality(m) {
    if (!m) return '<span class="muted">not trained</span>';
    if (m.roc_auc !== undefined) return esc(m.grade) + " (AUC " + num(m.roc_auc) + ")";
    if (m.spearman !== undefined) return esc(m.grade) + " (Spearman " + num(m.spearman) + ")";
    return esc(m.grade || "");
  }

  // Runs a function after the input has been quiet for `ms`.
  function debounce(f, ms) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => f(...args), ms); };
  }

  return { api, start, url, esc, int, num, time, seconds, stateClass, quality, debounce };
})();

// The vendors' official *browser* SDKs against `sibyl serve`, in a real browser (docs/SERVER.md,
// "Official SDKs in the test suite"): Amplitude's @amplitude/analytics-browser and its
// predecessor amplitude-js 8, and Segment's analytics.js (@segment/analytics-next), pinned in
// package.json, loaded from their npm bundles by a page served from another origin, as an
// app's page would load them. Debian's Chromium, headless, driven by puppeteer-core.
//
// What it holds: the browser lets the SDKs talk to the server cross-origin (Amplitude's
// application/json posts and amplitude-js's form upload to / need a CORS preflight;
// analytics.js posts text/plain to /v1/t, /v1/i, /v1/p with the write key in the body, and
// counts an answer it may not read as a failure); every call gets its answer (Amplitude's
// result codes, a wrong key's 400 readable by the page, the beacon transport's sendBeacon,
// amplitude-js's "success"); no failed request and no console error; and the store then
// holds exactly the events and user properties sent.
//   node tests/web/browser_sdk_test.mjs [PATH_TO_SIBYL]   (or SIBYL_BINARY=...; default build/sibyl)
//   CHROMIUM=PATH  the browser (default /usr/bin/chromium)
// CTest runs it as `browser_sdk_test` (label slow).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { makeHarness, sleep } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sibyl = path.resolve(process.argv[2] || process.env.SIBYL_BINARY || path.join(here, '../../build/sibyl'));
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN_KEY = 'browser-sdk-admin-key-0001';
const INGEST_KEY = 'browser-sdk-ingest-key-0001';
const AMP_USER = 'browser-amplitude-user-0001';
const SEG_USER = 'browser-segment-user-0001';
const LEGACY_USER = 'browser-amplitude-js-user-0001';
const GLOBAL_TIMEOUT_MS = 120000;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sibyl-browser-sdk-test-'));
const dataDir = path.join(work, 'data');
let server = null;
let serverLog = '';
let pageServer = null;
let browser = null;
const { check, checkEq, log, problems, main } = makeHarness('browser_sdk_test');

async function startSibyl() {
  check(fs.existsSync(sibyl), `sibyl binary not found at ${sibyl}`);
  server = spawn(sibyl, ['--data', dataDir, 'serve', '--host', '127.0.0.1', '--port', '0'], {
    env: { ...process.env, SIBYL_ADMIN_KEY: ADMIN_KEY, SIBYL_INGEST_KEYS: INGEST_KEY },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server.exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  let port = 0;
  server.stderr.setEncoding('utf8');
  server.stderr.on('data', (chunk) => {
    serverLog += chunk;
    const m = /"event":\s*"started"[^\n]*"port":\s*(\d+)/.exec(serverLog);
    if (m) port = Number(m[1]);
  });
  const deadline = Date.now() + 30000;
  while (port === 0) {
    check(server.exitCode === null, 'sibyl serve exited before it started');
    check(Date.now() < deadline, 'sibyl serve did not log its port within 30 s');
    await sleep(20);
  }
  return port;
}

async function stopSibyl() {
  const s = server;
  server = null;
  if (!s || s.exitCode !== null || s.signalCode !== null) return s ? { code: s.exitCode } : null;
  s.kill('SIGTERM');
  const result = await Promise.race([s.exited, sleep(20000).then(() => null)]);
  if (result) return result;
  s.kill('SIGKILL');
  return s.exited;
}

// The app's own origin: the page and the SDKs' bundles, as from the app's server or CDN.
// analytics.js loads its lazy chunks from `${window.analytics._cdn}/analytics-next/bundles/`.
function startPageServer() {
  const amplitude = path.join(here, 'node_modules/@amplitude/analytics-browser/lib/scripts/amplitude-min.js');
  const segment = path.join(here, 'node_modules/@segment/analytics-next/dist/umd');
  const files = { '/amplitude-min.js': amplitude, '/analytics-next/index.js': path.join(segment, 'index.js'),
                  '/amplitude-js.min.js': path.join(here, 'node_modules/amplitude-js/amplitude.umd.min.js') };
  pageServer = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end('<!doctype html><title>app</title><script src="/amplitude-min.js"></script>'
        + '<script>window.analytics = { _cdn: location.origin };</script>'
        + '<script src="/analytics-next/index.js"></script><p>an app page</p>');
    }
    if (url.pathname === '/legacy') {  // amplitude-js has the same global name: a page of its own
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end('<!doctype html><title>legacy app</title><script src="/amplitude-js.min.js"></script><p>an older app page</p>');
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      return res.end();
    }
    let file = files[url.pathname];
    const chunk = /^\/analytics-next\/bundles\/([\w.-]+\.js)$/.exec(url.pathname);
    if (chunk) file = path.join(segment, chunk[1]);
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => pageServer.listen(0, '127.0.0.1', () => resolve(pageServer.address().port)));
}

async function run() {
  const port = await startSibyl();
  const sibylBase = `http://127.0.0.1:${port}`;
  const pagePort = await startPageServer();
  const appOrigin = `http://127.0.0.1:${pagePort}`;
  log(`sibyl serve on ${sibylBase}; the app's page on ${appOrigin} (another origin)`);
  check(fs.existsSync(chromium), `chromium not found at ${chromium}; run scripts/install_deps.sh`);
  browser = await puppeteer.launch({ executablePath: chromium, headless: true,
                                     args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const toSibyl = [];
  const watch = (page) => {
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('response', (r) => { if (r.status() === 404) problems.push(`404: ${r.url()}`); });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.url().startsWith(sibylBase)) toSibyl.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
    });
  };
  const page = await browser.newPage();
  watch(page);
  await page.goto(appOrigin + '/');

  // Amplitude: track, identify, a revenue-shaped event; every result code 200. A second
  // instance with a wrong key: its 400 must be readable by the page (CORS on errors too).
  const amp = await page.evaluate(async (key, user, serverUrl) => {
    const client = amplitude.createInstance();
    await client.init(key, user, { serverUrl, flushIntervalMillis: 100, autocapture: false,
                                   fetchRemoteConfig: false, logLevel: 0 }).promise;
    const identify = new amplitude.Identify().set('plan', 'pro').add('logins', 2);
    const results = await Promise.all([
      client.track('Browser Purchase', { price: 9.5, quantity: 2 }).promise,
      client.identify(identify).promise,
      client.track('Browser Viewed', { screen: 'home' }).promise,
    ]);
    const wrong = amplitude.createInstance();
    await wrong.init('not-a-key-of-this-server', 'someone-else-0001', { serverUrl, flushIntervalMillis: 100,
      autocapture: false, fetchRemoteConfig: false, logLevel: 0 }).promise;
    const refused = await wrong.track('Never Stored').promise;
    // The beacon transport (for page unloads): navigator.sendBeacon posts text/plain and
    // never reads the answer.
    const beacon = amplitude.createInstance();
    await beacon.init(key, user, { serverUrl, transport: 'beacon', flushIntervalMillis: 100, autocapture: false,
                                   fetchRemoteConfig: false, logLevel: 0 }).promise;
    const left = await beacon.track('Browser Left').promise;
    return { codes: [...results, left].map((r) => r.code), refused: { code: refused.code, message: refused.message } };
  }, INGEST_KEY, AMP_USER, `${sibylBase}/2/httpapi`);
  checkEq(amp.codes, [200, 200, 200, 200], 'Amplitude browser SDK: result codes (fetch, and the beacon)');
  checkEq(amp.refused.code, 400, 'Amplitude browser SDK: a wrong key is a readable 400');
  check(/Invalid API key/.test(amp.refused.message), `the wrong key's message: ${amp.refused.message}`);
  log('Amplitude browser SDK: 3 events answered 200 by fetch, one sent by beacon, a wrong key 400');
  // The wrong key's refusal is an answer, not a failed request; the console line Chromium
  // prints for any 4xx is not a problem of the SDK's.
  for (let i = problems.length - 1; i >= 0; i--)
    if (/status of 400/.test(problems[i])) problems.splice(i, 1);

  // amplitude-js 8 (Amplitude's browser SDK before analytics-browser, still in many apps):
  // its form upload to the endpoint's root, XHR with a preflight (it sends
  // Cross-Origin-Resource-Policy); each callback gets 200 "success".
  const legacyPage = await browser.newPage();
  watch(legacyPage);
  await legacyPage.goto(appOrigin + '/legacy');
  const legacy = await legacyPage.evaluate(async (key, user, apiEndpoint) => {
    const client = amplitude.getInstance('legacy');
    await new Promise((resolve) => client.init(key, user, { apiEndpoint, forceHttps: false, saveEvents: false,
                                                            eventUploadPeriodMillis: 50, logLevel: 'DISABLE' }, resolve));
    const send = (f) => new Promise((resolve) => f((status, response) => resolve({ status, response })));
    return [
      await send((cb) => client.logEvent('Legacy Clicked', { button: 'old' }, cb)),
      await send((cb) => client.identify(new amplitude.Identify().set('era', 'legacy').add('visits', 3), cb)),
    ];
  }, INGEST_KEY, LEGACY_USER, `127.0.0.1:${port}`);
  checkEq(legacy, [{ status: 200, response: 'success' }, { status: 200, response: 'success' }],
          'amplitude-js: every upload answered 200 "success"');
  log('amplitude-js: an event and an identify uploaded to / and answered "success"');

  // Segment analytics.js: identify, track, page through its default (per-call) delivery,
  // to apiHost 127.0.0.1:PORT/v1 over http, settings given inline (no CDN fetch).
  const seg = await page.evaluate(async (key, user, apiHost) => {
    const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
      { writeKey: key, cdnSettings: { integrations: { 'Segment.io': { apiKey: key, apiHost, protocol: 'http' } } } },
      { disableClientPersistence: true });
    const done = [];
    done.push(await analytics.identify(user, { plan: 'team', seats: 5 }));
    done.push(await analytics.track('Browser Clicked', { button: 'buy' }));
    done.push(await analytics.page('Docs', 'Home'));
    return done.map((ctx) => ({ type: ctx.event.type, failed: !!ctx.failedDelivery() }));
  }, INGEST_KEY, SEG_USER, `127.0.0.1:${port}/v1`);
  checkEq(seg, [{ type: 'identify', failed: false }, { type: 'track', failed: false }, { type: 'page', failed: false }],
          'analytics.js: every call delivered');
  // analytics.js resolves a call before its post is answered: wait for the three answers.
  const deadline = Date.now() + 20000;
  while (toSibyl.filter((r) => r.startsWith('POST /v1/')).length < 3) {
    check(Date.now() < deadline, `analytics.js's posts were not all answered: ${JSON.stringify(toSibyl)}`);
    await sleep(50);
  }
  log(`answers seen by the browser: ${toSibyl.join(', ')}`);
  check(toSibyl.some((r) => r.startsWith('OPTIONS /2/httpapi 204')), 'the browser sent a CORS preflight for Amplitude');
  for (const path of ['/v1/i', '/v1/t', '/v1/p'])
    check(toSibyl.includes(`POST ${path} 200`), `analytics.js posted ${path} and got 200`);
  await sleep(300); // any retry would show here
  checkEq(problems, [], 'console errors, page errors or failed requests');

  // The store: exactly what was sent, each once, with the users' properties.
  const user = async (id) => {
    const r = await fetch(`${sibylBase}/api/v1/users/${id}`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
    check(r.ok, `GET /api/v1/users/${id}: ${r.status}`);
    return r.json();
  };
  const ampUser = await user(AMP_USER);
  checkEq([ampUser.properties?.plan, ampUser.properties?.logins], ['pro', 2], 'Amplitude user properties');
  const segUser = await user(SEG_USER);
  checkEq([segUser.properties?.plan, segUser.properties?.seats], ['team', 5], 'Segment traits');
  const legacyUser = await user(LEGACY_USER);
  checkEq([legacyUser.properties?.era, legacyUser.properties?.visits], ['legacy', 3], 'amplitude-js user properties');
  const stopped = await stopSibyl();
  checkEq(stopped?.code, 0, 'sibyl serve exits 0 on SIGTERM');
  const r = spawnSync(sibyl, ['--data', dataDir, '--json', 'stats'], { encoding: 'utf8', timeout: 60000 });
  check(r.status === 0, `sibyl stats: ${r.stderr}`);
  const stats = JSON.parse(r.stdout);
  const types = Object.fromEntries(stats.event_types.map((t) => [t.name, t.count]).sort());
  checkEq(types, { 'Browser Clicked': 1, 'Browser Left': 1, 'Browser Purchase': 1, 'Browser Viewed': 1,
                   'Legacy Clicked': 1, 'Loaded a Page': 1 },
          'stored event types and counts (nothing from the wrong key, no duplicates)');
  checkEq(stats.duplicates_dropped, 0, 'no event was sent twice');
}

main({
  run,
  timeoutMs: GLOBAL_TIMEOUT_MS,
  cleanup: async () => {
    if (browser) await browser.close().catch(() => {});
    if (pageServer) pageServer.close();
    await stopSibyl();
    return { serverLog, work };
  },
});

// The vendors' official Node SDKs (@amplitude/analytics-node, @segment/analytics-node, and
// the generation before them, @amplitude/node and analytics-node, in legacy_sdks.mjs;
// versions pinned in package.json) drive a real `sibyl serve`: every call type, identity,
// Revenue, a batch over the 1 MB limit that the SDK must split, wrong keys; then the test checks what was
// stored, event by event and property by property (docs/SERVER.md, "Official SDKs in the
// test suite"). Plain Node, no framework: any failed check prints why and exits non-zero.
//   node tests/sdk/sdk_test.mjs [PATH_TO_SIBYL]      (or SIBYL_BINARY=...; default build/sibyl)
// CTest runs it as `sdk_test` (tests/CMakeLists.txt); scripts/install_deps.sh installs the SDKs.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amplitude from '@amplitude/analytics-node';
import { Analytics } from '@segment/analytics-node';
import { legacyAmplitudeCalls, legacySegmentCalls, LEGACY_AMP_USER, LEGACY_SEG_USER } from './legacy_sdks.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sibyl = path.resolve(process.argv[2] || process.env.SIBYL_BINARY || path.join(here, '../../build/sibyl'));
const ADMIN_KEY = 'sdk-test-admin-key-0001';
const INGEST_KEY = 'sdk-test-ingest-key-0001';
const GLOBAL_TIMEOUT_MS = Number(process.env.SIBYL_SDK_TEST_TIMEOUT_MS || 120000);

let server = null; // the `sibyl serve` child while it runs
let serverLog = '';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sibyl-sdk-test-'));
let checks = 0;

class CheckFailed extends Error {}
const sortedKeys = (o) => Object.fromEntries(Object.entries(o).sort());
function check(cond, what) {
  checks++;
  if (!cond) throw new CheckFailed(what);
}
function checkEq(actual, expected, what) {
  checks++;
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new CheckFailed(`${what}: expected ${e}, got ${a}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function log(msg) {
  process.stdout.write(`[sdk_test] ${msg}\n`);
}

// --- the server ------------------------------------------------------------------------
// Starts `sibyl serve` on `dir` with `extraArgs`; `server` and `serverLog` are then its.
async function startServer(dir = dataDir, extraArgs = []) {
  check(fs.existsSync(sibyl), `sibyl binary not found at ${sibyl} (pass its path as the first argument)`);
  serverLog = '';
  server = spawn(sibyl, ['--data', dir, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-scheduler', ...extraArgs], {
    env: { ...process.env, SIBYL_ADMIN_KEY: ADMIN_KEY, SIBYL_INGEST_KEYS: INGEST_KEY },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  server.exited = exited;
  let port = 0;
  let pending = '';
  server.stderr.setEncoding('utf8');
  server.stderr.on('data', (chunk) => {
    serverLog += chunk;
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const j = JSON.parse(line);
        if (j.event === 'started' && j.port) port = j.port;
      } catch {
        const m = line.match(/listening on http:\/\/[^:]*:(\d+)\//);
        if (m) port = Number(m[1]);
      }
    }
  });
  const deadline = Date.now() + 30000;
  while (port === 0) {
    check(server.exitCode === null && server.signalCode === null, 'sibyl serve exited before it started');
    check(Date.now() < deadline, 'sibyl serve did not log its port within 30 s');
    await sleep(20);
  }
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.status === 200) {
        const h = await r.json();
        checkEq(h.status, 'ok', '/healthz status');
        break;
      }
    } catch {
      // not accepting yet
    }
    check(Date.now() < deadline, '/healthz did not answer 200 within 30 s');
    await sleep(50);
  }
  log(`sibyl serve on ${base}, data ${dir}${extraArgs.length ? ' ' + extraArgs.join(' ') : ''}`);
  return base;
}

// SIGTERM, then SIGKILL if it has not exited within `graceMs`. Returns {code, signal}.
async function stopServer(graceMs = 20000) {
  if (!server) return null;
  const s = server;
  server = null;
  if (s.exitCode !== null || s.signalCode !== null) return { code: s.exitCode, signal: s.signalCode };
  s.kill('SIGTERM');
  const timer = new Promise((r) => setTimeout(() => r(null), graceMs));
  let result = await Promise.race([s.exited, timer]);
  if (result === null) {
    s.kill('SIGKILL');
    result = await s.exited;
    result.killed = true;
  }
  return result;
}

async function adminGet(base, p) {
  const r = await fetch(base + p, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
  const text = await r.text();
  check(r.status === 200, `GET ${p}: status ${r.status}: ${text}`);
  return JSON.parse(text);
}

function runSibyl(args, dir = dataDir) {
  const r = spawnSync(sibyl, ['--data', dir, ...args], { encoding: 'utf8', timeout: 60000 });
  check(r.status === 0, `sibyl ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// A minimal CSV reader (features output: a header row, quoted cells possible).
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else if (c !== '\r') cell += c;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  const [header, ...body] = rows;
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

// --- Amplitude ----------------------------------------------------------------------------
const AMP_USER = 'amp-user-0001';
const AMP_DEVICE = 'amp-device-0001';
const AMP_DEVICE_USER = 'amp-user-0002';
const AMP_BULK_USER = 'amp-bulk-user-01';
// 120 events of ten 1,000-character properties: 1.2 MB in one request. (Few events, so
// that the store's taxonomy still gives the other calls' rare properties their columns.)
const OVERSIZE_EVENTS = 120;

async function amplitudeCalls(base) {
  const client = amplitude.createInstance();
  await client.init(INGEST_KEY, {
    serverUrl: `${base}/2/httpapi`,
    flushIntervalMillis: 50,
    flushQueueSize: 3,
    flushMaxRetries: 2,
    logLevel: amplitude.Types.LogLevel.None,
  }).promise;
  const now = Date.now();
  const results = [];
  const calls = [];
  calls.push(['track Add To Cart', client.track('Add To Cart', { price: 19.5, quantity: 2, sku: 'SKU-0042' },
    { user_id: AMP_USER, time: now - 5000, insert_id: 'amp-insert-1' }).promise]);
  const identify = new amplitude.Identify().set('plan', 'pro').setOnce('signup_source', 'ads').add('logins', 3);
  calls.push(['identify $set/$setOnce/$add', client.identify(identify, { user_id: AMP_USER, time: now - 4000 }).promise]);
  const identify2 = new amplitude.Identify().setOnce('signup_source', 'organic').add('logins', 2);
  calls.push(['identify $setOnce again, $add again', client.identify(identify2, { user_id: AMP_USER, time: now - 3500 }).promise]);
  calls.push(['track device only', client.track('App Open', { screen: 'home' }, { device_id: AMP_DEVICE, time: now - 3000 }).promise]);
  calls.push(['track device + user', client.track('Sign Up', { method: 'email' },
    { device_id: AMP_DEVICE, user_id: AMP_DEVICE_USER, time: now - 2000 }).promise]);
  // The SDK's Revenue object: a revenue_amount event with $price, $quantity, $productId,
  // stored under the plain names a revenue prediction sums (docs/INGEST.md).
  const revenue = new amplitude.Revenue().setProductId('prod-0009').setPrice(9.75).setQuantity(3);
  calls.push(['revenue', client.revenue(revenue, { user_id: AMP_USER, time: now - 1000 }).promise]);
  await client.flush().promise;
  for (const [what, p] of calls) {
    const r = await p;
    results.push(r);
    checkEq(r.code, 200, `Amplitude ${what}: result code (message ${JSON.stringify(r.message)})`);
  }
  log(`Amplitude: ${calls.length} calls answered 200`);

  // One flush of 120 events of ~10 KB: over the 1 MB request limit. The SDK must read
  // Amplitude's 413, halve its batch size and send the halves; every event arrives once.
  // Only the SDK's scheduled flush (not an explicit flush(), which never retries) does that.
  // The first flush must find all 120 queued: on a loaded machine (ctest -j 2 beside other
  // builds) the SDK took over 200 ms to queue them and sent 86 + 34, under the limit.
  const big = amplitude.createInstance();
  await big.init(INGEST_KEY, {
    serverUrl: `${base}/2/httpapi`,
    flushIntervalMillis: 1000,
    flushQueueSize: OVERSIZE_EVENTS,
    flushMaxRetries: 3,
    logLevel: amplitude.Types.LogLevel.None,
  }).promise;
  const padding = {};
  for (let k = 0; k < 10; ++k) padding[`padding_${k}`] = String.fromCharCode(97 + k).repeat(1000);
  const bulk = [];
  for (let i = 0; i < OVERSIZE_EVENTS; ++i) {
    bulk.push(big.track('Bulk Event', { n: i, ...padding }, { user_id: AMP_BULK_USER, time: now - 60000 + i,
      insert_id: `amp-bulk-${i}` }).promise);
  }
  const bulkResults = await Promise.all(bulk);
  checkEq(bulkResults.filter((r) => r.code !== 200).length, 0, 'Amplitude oversize batch: events not answered 200');
  check(/"path":"\/2\/httpapi"[^\n]*"status":413/.test(serverLog),
    'Amplitude oversize batch: the server never answered 413 (the batch was not over the limit?)');
  log(`Amplitude: ${OVERSIZE_EVENTS} events over the 1 MB limit delivered after the SDK split the batch`);

  // A wrong api_key: final at once (400 "Invalid API key"), not 12 retries and a generic 500.
  // The SDK's scheduled flush (the retrying path, Destination.handleInvalidResponse) is the
  // one that reads the answer; an explicit flush() never retries and reports
  // "<status>: <body>", checked second.
  const wrong = amplitude.createInstance();
  await wrong.init('sdk-test-wrong-key-0001', {
    serverUrl: `${base}/2/httpapi`,
    flushIntervalMillis: 50,
    logLevel: amplitude.Types.LogLevel.None,
  }).promise;
  const t0 = Date.now();
  const r = await wrong.track('Should Not Be Stored', { x: 1 }, { user_id: 'amp-user-wrong', time: now }).promise;
  const seconds = (Date.now() - t0) / 1000;
  checkEq(r.code, 400, `Amplitude wrong api_key: result code (message ${JSON.stringify(r.message)})`);
  check(typeof r.message === 'string' && r.message.startsWith('Invalid API key'),
    `Amplitude wrong api_key: message should start "Invalid API key", got ${JSON.stringify(r.message)}`);
  check(seconds < 5, `Amplitude wrong api_key: took ${seconds.toFixed(1)} s (retried instead of final)`);
  log(`Amplitude wrong key: ${r.code} ${JSON.stringify(r.message)} in ${seconds.toFixed(2)} s`);
  const p2 = wrong.track('Should Not Be Stored Either', { x: 2 }, { user_id: 'amp-user-wrong', time: now }).promise;
  await wrong.flush().promise;
  const r2 = await p2;
  checkEq(r2.code, 400, 'Amplitude wrong api_key, explicit flush(): result code');
  check(typeof r2.message === 'string' && r2.message.includes('"error": "Invalid API key'),
    `Amplitude wrong api_key, explicit flush(): message should carry the "Invalid API key" error, got ${JSON.stringify(r2.message)}`);
}

// --- Segment ------------------------------------------------------------------------------
const SEG_USER = 'seg-user-0001';
const SEG_ANON = 'seg-anon-0001';
const SEG_ALIAS_USER = 'seg-user-0002';

async function segmentCalls(base) {
  const errors = [];
  const analytics = new Analytics({
    writeKey: INGEST_KEY,
    host: base,
    path: '/v1/batch',
    maxEventsInBatch: 3,
    flushInterval: 100,
    maxRetries: 2,
    httpRequestTimeout: 10000,
  });
  analytics.on('error', (e) => errors.push(`error event: ${e && (e.code || '')} ${e && (e.reason || e.message || e)}`));
  const delivered = [];
  const cb = (what) => (err) => {
    if (err) errors.push(`${what}: ${err.code || ''} ${(err.reason && err.reason.message) || err.message || err}`);
    else delivered.push(what);
  };
  analytics.track({ userId: SEG_USER, event: 'Order Completed', properties: { revenue: 42.5, currency: 'EUR' } }, cb('track'));
  analytics.identify({ userId: SEG_USER, traits: { email: 'ada@example.com', plan: 'enterprise', seats: 12 } }, cb('identify'));
  analytics.page({ userId: SEG_USER, name: 'Pricing', properties: { path: '/pricing' } }, cb('page'));
  analytics.screen({ userId: SEG_USER, name: 'Home', properties: { orientation: 'portrait' } }, cb('screen'));
  analytics.group({ userId: SEG_USER, groupId: 'grp-00001', traits: { name: 'Acme', employees: 50 } }, cb('group'));
  analytics.track({ anonymousId: SEG_ANON, event: 'Viewed Product', properties: { sku: 'SKU-0007' } }, cb('track anonymous'));
  analytics.alias({ userId: SEG_ALIAS_USER, previousId: SEG_ANON }, cb('alias'));
  await analytics.closeAndFlush({ timeout: 30000 });
  checkEq(errors, [], 'Segment: errors');
  checkEq(delivered.sort(), ['alias', 'group', 'identify', 'page', 'screen', 'track', 'track anonymous'],
    'Segment: calls delivered');
  log(`Segment: ${delivered.length} calls delivered, no error events`);
}

// --- what was stored ----------------------------------------------------------------------
async function checkUsersOverApi(base) {
  const amp = await adminGet(base, `/api/v1/users/${AMP_USER}`);
  checkEq(amp.user_id, AMP_USER, 'API user id');
  checkEq(amp.properties.plan, 'pro', `${AMP_USER} property plan ($set)`);
  checkEq(amp.properties.signup_source, 'ads', `${AMP_USER} property signup_source ($setOnce, first wins)`);
  checkEq(amp.properties.logins, 5, `${AMP_USER} property logins ($add 3 then 2)`);

  const seg = await adminGet(base, `/api/v1/users/${SEG_USER}`);
  checkEq(seg.properties.email, 'ada@example.com', `${SEG_USER} trait email`);
  checkEq(seg.properties.plan, 'enterprise', `${SEG_USER} trait plan`);
  checkEq(seg.properties.seats, 12, `${SEG_USER} trait seats`);
  checkEq(seg.properties['group.id'], 'grp-00001', `${SEG_USER} group.id`);
  checkEq(seg.properties['group.name'], 'Acme', `${SEG_USER} group.name`);
  checkEq(seg.properties['group.employees'], 50, `${SEG_USER} group.employees`);
  log('user properties over /api/v1/users match');
}

// After the server stopped: the store through the CLI. `stats --json`: the exact event
// types and counts, the users; `features` at the next hour: each user's events by type
// (identity: the device's and the alias's earlier events belong to the user), event
// property sums and the user properties as of then.
function checkStore() {
  const stats = JSON.parse(runSibyl(['--json', 'stats', '--top', '100']));
  const types = Object.fromEntries(stats.event_types.map((t) => [t.name, t.count]).sort());
  checkEq(types, sortedKeys({
    'Add To Cart': 1, 'App Open': 1, 'Loaded a Page': 1, 'Loaded a Screen': 1,
    'Order Completed': 1, 'Sign Up': 1, 'Viewed Product': 1, 'revenue_amount': 1,
    'Bulk Event': OVERSIZE_EVENTS, 'Legacy Checkout': 1, 'Legacy Purchase': 1,
  }), 'stats: event types and counts (nothing from the wrong keys, no identify/group/alias events)');
  checkEq(stats.events, 10 + OVERSIZE_EVENTS, 'stats: events');
  checkEq(stats.users, 7, 'stats: users');
  checkEq(stats.anonymous_devices, 0, 'stats: anonymous devices (every device linked to a user)');
  checkEq(stats.identity_links, 2, 'stats: identity links (Amplitude device + user, Segment alias)');
  checkEq(stats.duplicates_dropped, 0, 'stats: duplicates dropped');

  const asOf = Math.floor(Date.now() / 3600000) * 3600000 + 2 * 3600000;
  const csv = path.join(dataDir, 'features.csv');
  // Every event property the calls sent gets columns (there are more than the default 10).
  // A handful of users: every property value gets its columns (by default a value needs
  // 25 users, docs/FEATURES.md).
  runSibyl(['--quiet', 'features', '--as-of', String(asOf), '--top-properties', '40', '--min-value-actors', '1',
            '--out', csv]);
  const rows = Object.fromEntries(parseCsv(fs.readFileSync(csv, 'utf8')).map((r) => [r.user_id, r]));
  checkEq(Object.keys(rows).sort(),
    [AMP_USER, AMP_DEVICE_USER, SEG_USER, SEG_ALIAS_USER, AMP_BULK_USER, LEGACY_AMP_USER, LEGACY_SEG_USER].sort(),
    'features: user ids');
  const allTypes = Object.keys(types);
  const expectedEvents = {
    [AMP_USER]: { 'Add To Cart': 1, 'revenue_amount': 1 },
    [AMP_BULK_USER]: { 'Bulk Event': OVERSIZE_EVENTS },
    [LEGACY_AMP_USER]: { 'Legacy Checkout': 1 },
    [LEGACY_SEG_USER]: { 'Legacy Purchase': 1 },
    [AMP_DEVICE_USER]: { 'App Open': 1, 'Sign Up': 1 }, // App Open was sent with the device id only
    [SEG_USER]: { 'Order Completed': 1, 'Loaded a Page': 1, 'Loaded a Screen': 1 },
    [SEG_ALIAS_USER]: { 'Viewed Product': 1 }, // sent with the anonymousId, then alias
  };
  for (const [user, want] of Object.entries(expectedEvents)) {
    for (const t of allTypes) {
      const col = `count("${t}") week -1`;
      check(col in rows[user], `features: no column ${col}`);
      checkEq(Number(rows[user][col]), want[t] || 0, `features: ${user} ${t} events`);
    }
  }
  const num = (user, col) => {
    check(col in rows[user], `features: no column ${col}`);
    return Number(rows[user][col]);
  };
  checkEq(num(AMP_USER, 'sum("price") week -1'), 19.5 + 9.75, `${AMP_USER} price: Add To Cart's and the Revenue's $price`);
  checkEq(num(AMP_USER, 'sum("quantity") week -1'), 2 + 3, `${AMP_USER} quantity: Add To Cart's and the Revenue's $quantity`);
  checkEq(num(AMP_USER, 'sum("revenue") week -1'), 9.75 * 3, `${AMP_USER} revenue: the Revenue's price x quantity`);
  checkEq(num(AMP_USER, 'count("productId" = "prod-0009") week -1'), 1, `${AMP_USER} Revenue $productId`);
  checkEq(num(AMP_BULK_USER, 'sum("n") week -1'), (OVERSIZE_EVENTS * (OVERSIZE_EVENTS - 1)) / 2,
    `${AMP_BULK_USER} every oversize-batch event once (sum of n)`);
  checkEq(num(LEGACY_AMP_USER, 'sum("price") week -1'), 7.25, `${LEGACY_AMP_USER} price (@amplitude/node)`);
  checkEq(num(LEGACY_AMP_USER, 'last("tier") = "gold"'), 1, `${LEGACY_AMP_USER} identify tier (@amplitude/node)`);
  checkEq(num(LEGACY_SEG_USER, 'sum("revenue") week -1'), 12.5, `${LEGACY_SEG_USER} revenue (analytics-node)`);
  checkEq(num(LEGACY_SEG_USER, 'last("plan") = "starter"'), 1, `${LEGACY_SEG_USER} trait plan (analytics-node)`);
  checkEq(num(AMP_USER, 'count("sku" = "SKU-0042") week -1'), 1, `${AMP_USER} Add To Cart sku`);
  checkEq(num(AMP_DEVICE_USER, 'count("method" = "email") week -1'), 1, `${AMP_DEVICE_USER} Sign Up method`);
  checkEq(num(SEG_USER, 'sum("revenue") week -1'), 42.5, `${SEG_USER} Order Completed revenue (Segment properties)`);
  checkEq(num(SEG_USER, 'count("currency" = "EUR") week -1'), 1, `${SEG_USER} Order Completed currency`);
  checkEq(num(SEG_USER, 'count("name" = "Pricing") week -1'), 1, `${SEG_USER} page name`);
  checkEq(num(SEG_USER, 'count("path" = "/pricing") week -1'), 1, `${SEG_USER} page property path`);
  checkEq(num(SEG_USER, 'count("name" = "Home") week -1'), 1, `${SEG_USER} screen name`);
  checkEq(num(SEG_USER, 'count("orientation" = "portrait") week -1'), 1, `${SEG_USER} screen property orientation`);
  checkEq(num(SEG_ALIAS_USER, 'count("sku" = "SKU-0007") week -1'), 1, `${SEG_ALIAS_USER} Viewed Product sku`);
  checkEq(num(AMP_USER, 'last("plan") = "pro"'), 1, `${AMP_USER} user property plan`);
  checkEq(num(AMP_USER, 'last("logins") = 5.0'), 1, `${AMP_USER} user property logins ($add 3 + 2)`);
  checkEq(num(AMP_USER, 'last("signup_source") = "ads"'), 1, `${AMP_USER} user property signup_source ($setOnce)`);
  checkEq(num(SEG_USER, 'last("seats") = 12.0'), 1, `${SEG_USER} trait seats`);
  checkEq(num(SEG_USER, 'last("group.name") = "Acme"'), 1, `${SEG_USER} group trait name`);
  log(`store: ${stats.events} events of ${allTypes.length} types for ${Object.keys(rows).length} users, properties match`);
}

// --- 429 and retries (issue 17) ---------------------------------------------------------
// A server started with --test-refuse-ingest N answers the first N storable requests of each
// ingest endpoint exactly as a full commit queue does (429, Retry-After, the vendor's body).
// Each SDK must resend until it is accepted, and every event must be stored exactly once.
const REFUSED = 3;
const RETRY_EVENTS = 10;
const AMP_RETRY_USER = 'amp-retry-user-01';
const SEG_RETRY_USER = 'seg-retry-user-01';
const retryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sibyl-sdk-retry-'));

async function retryScenario() {
  const base = await startServer(retryDir, ['--test-refuse-ingest', String(REFUSED)]);
  const started = Date.now();
  // Amplitude retries a 429 on its scheduled flush (throttled_events is empty, so no 30 s
  // throttle wait), counting attempts against flushMaxRetries.
  const amp = amplitude.createInstance();
  await amp.init(INGEST_KEY, {
    serverUrl: `${base}/2/httpapi`,
    flushIntervalMillis: 100,
    flushQueueSize: 2 * RETRY_EVENTS,
    flushMaxRetries: REFUSED + 3,
    logLevel: amplitude.Types.LogLevel.None,
  }).promise;
  const now = Date.now();
  const tracked = [];
  for (let i = 0; i < RETRY_EVENTS; ++i) {
    tracked.push(amp.track('Retried Event', { n: i }, { user_id: AMP_RETRY_USER, time: now - 20000 + i,
      insert_id: `amp-retry-${i}` }).promise);
  }
  const ampResults = await Promise.all(tracked);
  checkEq(ampResults.map((r) => r.code), Array(RETRY_EVENTS).fill(200), 'Amplitude after 429s: result codes');

  // Segment retries 429 with its exponential backoff (25 ms doubling, up to maxRetries).
  const errors = [];
  const analytics = new Analytics({
    writeKey: INGEST_KEY,
    host: base,
    path: '/v1/batch',
    maxEventsInBatch: 2 * RETRY_EVENTS,
    flushInterval: 50,
    maxRetries: REFUSED + 2,
    httpRequestTimeout: 10000,
  });
  analytics.on('error', (e) => errors.push(`error event: ${e && (e.code || '')} ${e && (e.reason || e.message || e)}`));
  let delivered = 0;
  for (let i = 0; i < RETRY_EVENTS; ++i) {
    analytics.track({ userId: SEG_RETRY_USER, event: 'Retried Purchase', properties: { n: i } }, (err) => {
      if (err) errors.push(`track ${i}: ${(err.reason && err.reason.message) || err.message || err}`);
      else delivered++;
    });
  }
  await analytics.closeAndFlush({ timeout: 30000 });
  checkEq(errors, [], 'Segment after 429s: errors');
  checkEq(delivered, RETRY_EVENTS, 'Segment after 429s: events delivered');
  const seconds = (Date.now() - started) / 1000;

  // The 429s happened: counted per endpoint in /metrics and logged per request.
  const metrics = await (await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } })).text();
  for (const endpoint of ['/2/httpapi', '/v1/batch']) {
    check(metrics.includes(`sibyl_ingest_errors_total{endpoint="${endpoint}",code="429"} ${REFUSED}\n`),
      `/metrics: ${REFUSED} 429s at ${endpoint}: ${metrics.split('\n').filter((l) => l.includes('errors_total')).join('; ')}`);
    const escaped = endpoint.replace(/\//g, '\\/');
    const lines = (re) => (serverLog.match(new RegExp(`"path":"${escaped}"[^\n]*"status":${re}`, 'g')) || []).length;
    checkEq(lines(429), REFUSED, `server log: 429 answers at ${endpoint}`);
    // (One request normally; a loaded machine may split the events over two flushes.)
    check(lines(200) >= 1, `server log: no accepted request at ${endpoint}`);
  }
  const stopped = await stopServer();
  checkEq(stopped.code, 0, 'retry server exit code after SIGTERM');

  // Every event stored once: exact counts, nothing dropped as a duplicate, each n once.
  const stats = JSON.parse(runSibyl(['--json', 'stats'], retryDir));
  const types = Object.fromEntries(stats.event_types.map((t) => [t.name, t.count]).sort());
  checkEq(types, { 'Retried Event': RETRY_EVENTS, 'Retried Purchase': RETRY_EVENTS }, 'after retries: event types and counts');
  checkEq(stats.events, 2 * RETRY_EVENTS, 'after retries: events');
  checkEq(stats.duplicates_dropped, 0, 'after retries: duplicates dropped');
  const asOf = Math.floor(Date.now() / 3600000) * 3600000 + 2 * 3600000;
  const csv = path.join(retryDir, 'features.csv');
  runSibyl(['--quiet', 'features', '--as-of', String(asOf), '--out', csv], retryDir);
  const rows = Object.fromEntries(parseCsv(fs.readFileSync(csv, 'utf8')).map((r) => [r.user_id, r]));
  for (const user of [AMP_RETRY_USER, SEG_RETRY_USER]) {
    check(user in rows, `after retries: no features row for ${user}`);
    checkEq(Number(rows[user]['sum("n") week -1']), (RETRY_EVENTS * (RETRY_EVENTS - 1)) / 2, `after retries: ${user} sum of n`);
  }
  log(`429 x ${REFUSED} per endpoint, then every event stored once (both SDKs, ${seconds.toFixed(1)} s)`);
}

async function main() {
  const base = await startServer();
  await amplitudeCalls(base);
  await segmentCalls(base);
  await legacyAmplitudeCalls(base, INGEST_KEY, { checkEq, log });
  await legacySegmentCalls(base, INGEST_KEY, { checkEq, log });
  await checkUsersOverApi(base);
  const stopped = await stopServer();
  check(!stopped.killed, 'sibyl serve did not exit within 20 s of SIGTERM');
  checkEq(stopped.code, 0, 'sibyl serve exit code after SIGTERM');
  checkStore();
  await retryScenario();
}

const globalTimer = setTimeout(async () => {
  process.stderr.write(`[sdk_test] FAILED: global timeout of ${GLOBAL_TIMEOUT_MS / 1000} s\n`);
  await stopServer(5000);
  process.exit(1);
}, GLOBAL_TIMEOUT_MS);

const started = Date.now();
let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  process.stderr.write(`[sdk_test] FAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}\n`);
} finally {
  const stopped = await stopServer(10000);
  if (failed) {
    if (stopped) process.stderr.write(`[sdk_test] server stopped: ${JSON.stringify(stopped)}\n`);
    process.stderr.write(`[sdk_test] server log (last 4000 characters):\n${serverLog.slice(-4000)}\n`);
  }
  clearTimeout(globalTimer);
}
if (failed) {
  process.stderr.write(`[sdk_test] data directory kept: ${dataDir}\n`);
  process.exit(1);
}
if (!process.env.SIBYL_SDK_TEST_KEEP) {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(retryDir, { recursive: true, force: true });
}
log(`passed: ${checks} checks in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(0);

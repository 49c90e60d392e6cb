// How fast the workspace answers on a large store (issue 19's targets: with 1M scored
// users, the audience count follows the slider within 100 ms, the workspace's first load
// takes under 1 s, an export of 200,000 users arrives within 2 s). A benchmark command, not
// a CI test: it measures a server you started on a store you scored.
//   sibyl generate --users 1000000 --days 35 --out events.ndjson && sibyl --data D ingest events.ndjson
//   sibyl --data D predict create buy --kind propensity --event Purchase --horizon-days 7 --active-within-days 30
//   sibyl --data D train buy && sibyl --data D score buy
//   SIBYL_ADMIN_KEY=... SIBYL_INGEST_KEYS=... sibyl --data D serve &
//   SIBYL_ADMIN_KEY=... node tests/web/bench.mjs http://127.0.0.1:8080 buy
import puppeteer from 'puppeteer-core';

const base = process.argv[2] || 'http://127.0.0.1:8080';
const name = process.argv[3] || 'buy';
const key = process.env.SIBYL_ADMIN_KEY;
if (!key) {
  process.stderr.write('set SIBYL_ADMIN_KEY\n');
  process.exit(2);
}
const auth = { Authorization: `Bearer ${key}` };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs, q) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

async function timed(path) {
  const t0 = process.hrtime.bigint();
  const r = await fetch(base + path, { headers: auth });
  const body = await r.arrayBuffer();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${Buffer.from(body).toString()}`);
  return { ms: ms(t0), bytes: body.byteLength, body };
}

// The API alone: the first audience after start reads every written score; then the slider.
const first = await timed(`/api/v1/predictions/${name}/audience?from=80&to=100`);
const scored = JSON.parse(Buffer.from(first.body).toString()).scored_users;
console.log(`scored users: ${scored}`);
console.log(`audience, first request (reads the written scores): ${first.ms.toFixed(1)} ms`);
const api = [];
for (let from = 0; from <= 95; from += 5) api.push((await timed(`/api/v1/predictions/${name}/audience?from=${from}&to=100`)).ms);
console.log(`audience API, 20 ranges: p50 ${pct(api, 0.5).toFixed(1)} ms, max ${Math.max(...api).toFixed(1)} ms`);
const top = JSON.parse(Buffer.from((await timed(`/api/v1/predictions/${name}/audience?from=80&to=100`)).body).toString()).users;
const exported = await timed(`/api/v1/predictions/${name}/audience/export?from=80&to=100&format=csv`);
console.log(`export of ${top} users (CSV): ${exported.ms.toFixed(0)} ms, ${(exported.bytes / 1e6).toFixed(1)} MB`);

// In the browser: sign in, open the workspace, move the slider.
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
                                         args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage();
  await page.goto(base + '/login');
  await page.type('#key', key);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  let t0 = process.hrtime.bigint();
  await page.goto(`${base}/predictions/${name}`);
  await page.waitForFunction(() => document.getElementById('a-users').textContent !== '–');
  console.log(`workspace first load, to the audience shown: ${ms(t0).toFixed(0)} ms`);
  const moves = [];
  await page.focus('#a-from');
  for (let i = 0; i < 20; i++) {
    t0 = process.hrtime.bigint();
    const answered = page.waitForResponse((r) => r.url().includes('/audience?'));
    await page.keyboard.press('ArrowLeft');
    await (await answered).text();
    // The count is drawn in the same task that reads the answer.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    moves.push(ms(t0));
  }
  // Includes the page's 25 ms debounce of slider input.
  console.log(`slider move to new count, 20 moves: p50 ${pct(moves, 0.5).toFixed(0)} ms, max ${Math.max(...moves).toFixed(0)} ms`);
} finally {
  await browser.close();
}

// What the browser tests share (web_test.mjs, browser_sdk_test.mjs): checks that count and
// throw, a timestamped log, the list of browser problems that fail a run, and a main that
// runs the test under a global timeout and always cleans up (the browser, the servers),
// printing the server's log and keeping the work directory when it fails.
import fs from 'node:fs';

export class CheckFailed extends Error {}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function makeHarness(name) {
  const started = Date.now();
  const h = {
    checks: 0,
    problems: [], // console errors, page errors, failed requests: each fails the test
    check(cond, what) {
      h.checks++;
      if (!cond) throw new CheckFailed(what);
    },
    checkEq(actual, expected, what) {
      h.checks++;
      if (JSON.stringify(actual) !== JSON.stringify(expected))
        throw new CheckFailed(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    },
    log(msg) {
      process.stdout.write(`[${name} ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
    },
    // Runs `run`, then `cleanup(failed)`, which stops what the test started and returns
    // { serverLog, work, ok, why } (`ok` false fails a run that passed, e.g. a server that
    // did not exit 0; `work` is removed after a pass), and exits.
    async main({ run, cleanup, timeoutMs, passedNote = '' }) {
      let finishing = false;
      const finish = async (code) => {
        if (finishing) return;
        finishing = true;
        const { serverLog = '', work = '', ok = true, why = '' } = (await cleanup(code !== 0).catch((e) => ({ ok: false, why: String(e) }))) || {};
        if (code === 0 && !ok) {
          process.stderr.write(`[${name}] FAILED: ${why}\n`);
          code = 1;
        }
        if (code !== 0) {
          process.stderr.write(`[${name}] server log (last 4000 characters):\n${serverLog.slice(-4000)}\n`);
          if (work) process.stderr.write(`[${name}] work directory kept: ${work}\n`);
        } else {
          if (work) fs.rmSync(work, { recursive: true, force: true });
          h.log(`passed: ${h.checks} checks${passedNote}`);
        }
        process.exit(code);
      };
      const timer = setTimeout(() => {
        process.stderr.write(`[${name}] FAILED: global timeout of ${timeoutMs / 1000} s\n`);
        finish(1);
      }, timeoutMs);
      let failed = false;
      try {
        await run();
      } catch (e) {
        failed = true;
        process.stderr.write(`[${name}] FAILED: ${e instanceof CheckFailed ? e.message : e.stack}\n`);
        if (h.problems.length) process.stderr.write(`[${name}] also seen:\n  ${h.problems.join('\n  ')}\n`);
      }
      clearTimeout(timer);
      await finish(failed ? 1 : 0);
    },
  };
  return h;
}

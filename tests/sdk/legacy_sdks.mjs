// The previous generation of the vendors' Node SDKs, still in many apps: @amplitude/node
// (1.x, before @amplitude/analytics-node) and analytics-node (6.x, before
// @segment/analytics-node). Driven against the same server by tests/sdk/sdk_test.mjs.
import AmplitudeNode from '@amplitude/node';
import { Identify as LegacyIdentify } from '@amplitude/identify';  // what @amplitude/node 1.x uses
import LegacyAnalytics from 'analytics-node';

export const LEGACY_AMP_USER = 'amp-legacy-user-0001';
export const LEGACY_SEG_USER = 'seg-legacy-user-0001';

// @amplitude/node 1.x: logEvent and identify, then flush; each promise resolves to a
// Response whose status is 'success' when the server answered 200.
export async function legacyAmplitudeCalls(base, ingestKey, { checkEq, log }) {
  const client = AmplitudeNode.init(ingestKey, {
    serverUrl: `${base}/2/httpapi`,
    maxRetries: 1,
    uploadIntervalInSec: 0.05,
    logLevel: 0,
  });
  const now = Date.now();
  const tracked = client.logEvent({
    event_type: 'Legacy Checkout', user_id: LEGACY_AMP_USER, time: now - 1500,
    event_properties: { price: 7.25, quantity: 4 }, insert_id: 'amp-legacy-insert-1',
  });
  const identify = new LegacyIdentify().set('tier', 'gold');
  const identified = client.identify(LEGACY_AMP_USER, null, identify);
  await client.flush();
  for (const [what, p] of [['logEvent', tracked], ['identify', identified]]) {
    const r = await p;
    checkEq(r.status, 'success', `@amplitude/node ${what}: response status (code ${r.statusCode})`);
  }

  // A wrong key: the 1.x SDK reads 400 as a final "invalid" answer too.
  const wrong = AmplitudeNode.init('sdk-test-wrong-key-0002', { serverUrl: `${base}/2/httpapi`, maxRetries: 1, logLevel: 0 });
  const refused = wrong.logEvent({ event_type: 'Legacy Should Not Be Stored', user_id: LEGACY_AMP_USER, time: now });
  await wrong.flush();
  const r = await refused;
  checkEq(r.statusCode, 400, '@amplitude/node wrong api_key: status code');
  checkEq(r.status, 'invalid', '@amplitude/node wrong api_key: response status');
  log('@amplitude/node 1.x: logEvent and identify answered success, a wrong key "invalid"');
}

// analytics-node 6.x: track and identify, flushed; the callback gets an error on failure.
export async function legacySegmentCalls(base, ingestKey, { checkEq, log }) {
  const analytics = new LegacyAnalytics(ingestKey, { host: base, path: '/v1/batch', flushAt: 10, errorHandler: () => {} });
  const errors = [];
  const cb = (what) => (err) => { if (err) errors.push(`${what}: ${err.message || err}`); };
  analytics.track({ userId: LEGACY_SEG_USER, event: 'Legacy Purchase', properties: { revenue: 12.5 } }, cb('track'));
  analytics.identify({ userId: LEGACY_SEG_USER, traits: { plan: 'starter' } }, cb('identify'));
  await new Promise((resolve) => analytics.flush((err) => { if (err) errors.push(`flush: ${err.message || err}`); resolve(); }));
  checkEq(errors, [], 'analytics-node 6.x: errors');

  // The first message of a client is sent at once; its callback gets the error.
  const wrong = new LegacyAnalytics('sdk-test-wrong-key-0003', { host: base, path: '/v1/batch', flushAt: 10, retryCount: 0, errorHandler: () => {} });
  const flushError = await new Promise((resolve) =>
    wrong.track({ userId: LEGACY_SEG_USER, event: 'Legacy Should Not Be Stored' }, (err) => resolve(err)));
  checkEq(Boolean(flushError), true, 'analytics-node 6.x wrong write key: the flush reports an error');
  log(`analytics-node 6.x: track and identify delivered, a wrong key refused (${flushError && flushError.message})`);
}

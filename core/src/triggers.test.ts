import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { signWebhook, verifyWebhook } from './triggers.js';

// The receiver's side, written from the documented format only (WEBHOOK_HEADERS): the header is
// `t=<ms>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. Computed here with node:crypto, not with signWebhook.
const SECRET = 'whsec-of-at-least-16-characters';
const BODY = '{"type":"variant_request","request_id":"r1"}';
const T = 1_750_000_000_000;
const hmac = (secret: string, payload: string) => createHmac('sha256', secret).update(payload, 'utf8').digest('hex');

test('signWebhook: t and an HMAC-SHA256 over "<t>.<body>" that a receiver can recompute on its own', () => {
  assert.equal(signWebhook(SECRET, T, BODY), `t=${T},v1=${hmac(SECRET, `${T}.${BODY}`)}`);
  // A fixed vector, so a change of algorithm or payload layout shows even if both sides changed.
  assert.equal(hmac('key', '1.{}'), createHmac('sha256', Buffer.from('key')).update(Buffer.from('1.{}')).digest('hex'));
  assert.equal(signWebhook('key', 1, '{}'), `t=1,v1=${hmac('key', '1.{}')}`);
  // Multi-byte bodies are signed as UTF-8 bytes.
  assert.equal(signWebhook(SECRET, T, '{"reason":"ünïcode ✓"}'), `t=${T},v1=${hmac(SECRET, `${T}.{"reason":"ünïcode ✓"}`)}`);
});

test('verifyWebhook: accepts a header built independently; refuses another secret, body, timestamp or a cut signature', () => {
  const header = `t=${T},v1=${hmac(SECRET, `${T}.${BODY}`)}`;
  assert.equal(verifyWebhook(SECRET, header, BODY, T), true);
  assert.equal(verifyWebhook('another-secret-of-32-characters!', header, BODY, T), false);
  assert.equal(verifyWebhook(SECRET, header, `${BODY} `, T), false);
  // Moving t (to dodge the replay window) breaks the signature, which covers it.
  assert.equal(verifyWebhook(SECRET, `t=${T + 1000},v1=${hmac(SECRET, `${T}.${BODY}`)}`, BODY, T + 1000), false);
  assert.equal(verifyWebhook(SECRET, header.slice(0, -2), BODY, T), false, 'a shortened signature');
  const flipped = header.slice(0, -1) + (header.endsWith('0') ? '1' : '0');
  assert.equal(verifyWebhook(SECRET, flipped, BODY, T), false, 'one hex digit changed');
  for (const bad of [undefined, '', `v1=${hmac(SECRET, `${T}.${BODY}`)}`, `t=abc,v1=${hmac(SECRET, `abc.${BODY}`)}`, `t=${T}`, `t=${T},v1=zz`]) {
    assert.equal(verifyWebhook(SECRET, bad, BODY, T), false, String(bad));
  }
});

test('verifyWebhook: replays and clock skew beyond the tolerance are refused, on both sides, edges included', () => {
  const header = `t=${T},v1=${hmac(SECRET, `${T}.${BODY}`)}`;
  const tolerance = 5 * 60_000;
  assert.equal(verifyWebhook(SECRET, header, BODY, T + tolerance), true, 'exactly the default 5 min old');
  assert.equal(verifyWebhook(SECRET, header, BODY, T + tolerance + 1), false, 'a replay 5 min + 1 ms later');
  assert.equal(verifyWebhook(SECRET, header, BODY, T - tolerance), true, "a sender's clock 5 min ahead");
  assert.equal(verifyWebhook(SECRET, header, BODY, T - tolerance - 1), false, "a sender's clock more than 5 min ahead");
  assert.equal(verifyWebhook(SECRET, header, BODY, T + 10_000, 10_000), true, 'a tolerance of its own');
  assert.equal(verifyWebhook(SECRET, header, BODY, T + 10_001, 10_000), false);
  assert.equal(verifyWebhook(SECRET, header, BODY, T + 1, 0), false, 'tolerance 0: only the same millisecond');
});

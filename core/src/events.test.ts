import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { ALL_EVENT_KINDS, REJECT_REASONS, encodeEvent, isLate, readBusEvent, sealViewer, ulid, validateBusEvent, validateEvent, viewerHashKey, type RejectReason } from './events.js';
import type { EventLimits } from './config.js';

const limits: EventLimits = { maxAgeMs: 3_600_000, maxFutureMs: 60_000, liveLateMs: 600_000, maxAttrsBytes: 256, dedupWindowMs: 300_000 };
const NOW = 1_790_000_000_000;

function good(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { event_id: ulid(NOW), tenant_id: 't1', campaign_id: 'c1', asset_id: 'a1', kind: 'click', occurred_at: NOW - 1000, ...overrides };
}

test('a valid event is accepted, defaulted and stamped with the server clock', () => {
  const r = validateEvent(good({ received_at: 5, channel: 'social', attrs: { ab: 'x', n: 2 } }), limits, NOW);
  assert.ok(r.ok);
  assert.equal(r.event.value, 1);
  assert.equal(r.event.received_at, NOW, 'client-supplied received_at is overwritten');
  assert.equal(r.event.channel, 'social');
  assert.deepEqual(r.event.attrs, { ab: 'x', n: 2 });
  assert.equal('placement' in r.event, false, 'absent optional fields stay absent');
});

test('every kind is accepted; UUIDs and ISO timestamps too', () => {
  for (const kind of ALL_EVENT_KINDS) assert.ok(validateEvent(good({ kind, value: 1 }), limits, NOW).ok, kind);
  const iso = validateEvent(good({ event_id: randomUUID(), occurred_at: new Date(NOW - 5000).toISOString() }), limits, NOW);
  assert.ok(iso.ok);
  assert.equal(iso.event.occurred_at, NOW - 5000);
});

const cases: [string, unknown, RejectReason, string?][] = [
  ['not an object', 'click', 'not_an_object'],
  ['an array', [good()], 'not_an_object'],
  ['null', null, 'not_an_object'],
  ['missing event_id', { ...good(), event_id: undefined }, 'missing_field', 'event_id'],
  ['missing tenant_id', { ...good(), tenant_id: undefined }, 'missing_field', 'tenant_id'],
  ['missing campaign_id', { ...good(), campaign_id: undefined }, 'missing_field', 'campaign_id'],
  ['missing asset_id', { ...good(), asset_id: undefined }, 'missing_field', 'asset_id'],
  ['missing kind', { ...good(), kind: undefined }, 'missing_field', 'kind'],
  ['missing occurred_at', { ...good(), occurred_at: undefined }, 'missing_field', 'occurred_at'],
  ['event_id neither ULID nor UUID', good({ event_id: 'abc' }), 'invalid_event_id', 'event_id'],
  ['unknown kind', good({ kind: 'purchase' }), 'unknown_kind', 'kind'],
  ['asset id with spaces', good({ asset_id: 'a b' }), 'invalid_field', 'asset_id'],
  ['negative value', good({ value: -1 }), 'invalid_field', 'value'],
  ['NaN-ish value', good({ value: 'ten' }), 'invalid_field', 'value'],
  ['occurred_at as garbage', good({ occurred_at: 'yesterday' }), 'invalid_field', 'occurred_at'],
  ['too far in the future', good({ occurred_at: NOW + 60_001 }), 'too_far_in_future', 'occurred_at'],
  ['older than the late window', good({ occurred_at: NOW - 3_600_001 }), 'too_old', 'occurred_at'],
  ['attrs too large', good({ attrs: { blob: 'x'.repeat(300) } }), 'attrs_too_large', 'attrs'],
  ['attrs with nested objects', good({ attrs: { nested: { a: 1 } } }), 'invalid_field', 'attrs'],
  ['video progress over 99 %', good({ kind: 'video_progress', value: 101 }), 'value_out_of_range', 'value'],
  ['video progress of exactly 100 % (that is video_complete)', good({ kind: 'video_progress', value: 100 }), 'value_out_of_range', 'value'],
  ['video progress of 0 %', good({ kind: 'video_progress', value: 0 }), 'value_out_of_range', 'value'],
  ['fractional video progress', good({ kind: 'video_progress', value: 25.5 }), 'value_out_of_range', 'value'],
  ['video progress without a value', good({ kind: 'video_progress' }), 'missing_field', 'value'],
  ['negative video seconds', good({ kind: 'video_seconds', value: -3 }), 'invalid_field', 'value'],
  ['video seconds past a day', good({ kind: 'video_seconds', value: 86_401 }), 'value_out_of_range', 'value'],
  ['video watch of zero ms', good({ kind: 'video_watch', value: 0 }), 'value_out_of_range', 'value'],
  ['video watch over an hour in one report', good({ kind: 'video_watch', value: 3_600_001 }), 'value_out_of_range', 'value'],
  ['an infinite video watch (1e999 in JSON)', good({ kind: 'video_watch', value: JSON.parse('1e999') }), 'invalid_field', 'value'],
  ['a NaN video watch', good({ kind: 'video_watch', value: Number.NaN }), 'invalid_field', 'value'],
  ['video start counted twice in one event', good({ kind: 'video_start', value: 2 }), 'value_out_of_range', 'value'],
];

for (const [name, input, reason, field] of cases) {
  test(`rejects ${name} as ${reason}`, () => {
    const r = validateEvent(input, limits, NOW);
    assert.equal(r.ok, false);
    if (r.ok) return; // not-a-skip: narrows the type; the assert above already failed
    assert.equal(r.reason, reason);
    if (field) assert.equal(r.field, field);
    assert.ok(r.message.length > 0);
  });
}

test('the reject table covers every reason the validator raises (the others come from decoders, the key check and the history import)', () => {
  const covered = new Set(cases.map((c) => c[2]));
  assert.deepEqual(REJECT_REASONS.filter((r) => !covered.has(r)).sort(), ['placement_forbidden', 'tenant_forbidden', 'too_recent', 'undecodable']);
});

test('video values at the edges of their ranges are accepted, and start/complete default to 1', () => {
  for (const [kind, value] of [['video_progress', 1], ['video_progress', 99], ['video_seconds', 3], ['video_seconds', 86_400], ['video_watch', 0.5], ['video_watch', 3_600_000], ['video_start', 1], ['video_complete', 1]] as const) {
    const r = validateEvent(good({ kind, value }), limits, NOW);
    assert.ok(r.ok, `${kind} ${value}`);
    assert.equal(r.event.value, value);
  }
  for (const kind of ['video_start', 'video_complete']) {
    const r = validateEvent(good({ kind }), limits, NOW);
    assert.ok(r.ok);
    assert.equal(r.event.value, 1);
  }
});

test('edges of the time window are inclusive', () => {
  assert.ok(validateEvent(good({ occurred_at: NOW + 60_000 }), limits, NOW).ok);
  assert.ok(validateEvent(good({ occurred_at: NOW - 3_600_000 }), limits, NOW).ok);
});

test('bus events are judged against their own received_at, not the reader clock', () => {
  const receivedAt = NOW - 10 * 3_600_000; // a sink catching up ten hours later
  const e = { ...good({ occurred_at: receivedAt - 1000 }), received_at: receivedAt };
  const r = validateBusEvent(e, limits);
  assert.ok(r.ok);
  assert.equal(r.event.received_at, receivedAt);
  const missing = validateBusEvent(good(), limits);
  assert.equal(missing.ok, false);
});

test('ulid() makes valid, time-ordered, unique ids', () => {
  const a = ulid(1000);
  const b = ulid(2000);
  assert.match(a, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(a < b);
  assert.equal(new Set(Array.from({ length: 1000 }, () => ulid(NOW))).size, 1000);
  const now = Date.now();
  assert.ok(validateEvent(good({ event_id: ulid(), occurred_at: now }), limits, now).ok);
});

test('rejection messages say by how much, and the attrs limit is inclusive', () => {
  const future = validateEvent(good({ occurred_at: NOW + 60_001 }), limits, NOW);
  assert.deepEqual(future.ok ? null : [future.reason, future.field, future.message], ['too_far_in_future', 'occurred_at', 'occurred_at is 60001 ms in the future (limit 60000 ms)']);
  const old = validateEvent(good({ occurred_at: NOW - 3_600_001 }), limits, NOW);
  assert.deepEqual(old.ok ? null : [old.reason, old.field, old.message], ['too_old', 'occurred_at', 'occurred_at is 3600001 ms old (late window 3600000 ms)']);
  // {"k":"<n x's>"} is n + 8 bytes: exactly the 256-byte limit passes, one more byte does not.
  assert.ok(validateEvent(good({ attrs: { k: 'x'.repeat(248) } }), limits, NOW).ok);
  const big = validateEvent(good({ attrs: { k: 'x'.repeat(249) } }), limits, NOW);
  assert.deepEqual(big.ok ? null : [big.reason, big.message], ['attrs_too_large', 'attrs take 257 bytes (limit 256)']);
});

test('every optional field is copied when present and only then', () => {
  const all = { channel: 'social', placement: 'lobby', region: 'eu-west', device: 'mobile', edge_node: 'edge-3', attrs: { a: 1 } };
  const r = validateEvent(good(all), limits, NOW);
  assert.ok(r.ok);
  assert.deepEqual(
    Object.fromEntries(Object.keys(all).map((k) => [k, r.event[k as keyof typeof all]])),
    all,
  );
  const bare = validateEvent(good(), limits, NOW);
  assert.ok(bare.ok);
  for (const k of Object.keys(all)) assert.equal(k in bare.event, false, `${k} absent`);
});

test('bus events need a positive safe-integer received_at', () => {
  for (const receivedAt of [0, -1, 1.5, '1790000000000', null, Number.MAX_SAFE_INTEGER + 2]) {
    const r = validateBusEvent({ ...good(), received_at: receivedAt }, limits);
    assert.deepEqual(r.ok ? null : [r.reason, r.field], ['invalid_field', 'received_at'], String(receivedAt));
  }
  // received_at = 1 is valid; the event is then judged against 1 ms after the epoch (and too far in the future).
  const one = validateBusEvent({ ...good({ occurred_at: 1 }), received_at: 1 }, limits);
  assert.ok(one.ok);
});

test('a nested schema error names its path', () => {
  const r = validateEvent(good({ attrs: { nested: { no: 1 } } }), limits, NOW);
  assert.equal(r.ok, false);
  if (r.ok) return; // not-a-skip: narrows the type; the assert above already failed
  assert.equal(r.reason, 'invalid_field');
  assert.match(r.message, /^attrs\.nested: must be /, "the schema's own words, not a generic 'invalid'");
});

test('ulid() encodes the time in its first 10 characters, Crockford base 32', () => {
  assert.equal(ulid(0).slice(0, 10), '0000000000');
  assert.equal(ulid(31).slice(0, 10), '000000000Z');
  assert.equal(ulid(32).slice(0, 10), '0000000010');
  // Crockford's alphabet drops I, L, O and U: base-32 digit d is '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[d].
  const crockford = (n: number) => [...n.toString(32).padStart(10, '0')].map((d) => '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[parseInt(d, 32)]).join('');
  assert.equal(crockford(1_790_000_000_000), '01M3250V00', 'worked out by hand (Python: repeated divmod by 32)');
  assert.equal(ulid(1_790_000_000_000).slice(0, 10), crockford(1_790_000_000_000));
});

test('viewer ids leave ingest only as a keyed hash: per tenant, never client-set, dropped without a key', () => {
  const key = Buffer.alloc(32, 7);
  const event = (extra: Record<string, unknown>) => {
    const v = validateEvent(good(extra), limits, NOW);
    assert.ok(v.ok);
    return v.event;
  };
  const a = event({ viewer_id: 'ann@example.com', viewer_hash: 'f'.repeat(32) });
  sealViewer(a, key);
  assert.equal(a.viewer_id, undefined);
  assert.match(a.viewer_hash!, /^[0-9a-f]{32}$/);
  // HMAC-SHA256(key, tenant NUL id), computed here independently of viewerHash.
  assert.equal(a.viewer_hash, createHmac('sha256', key).update(`${a.tenant_id}\u0000ann@example.com`).digest('hex').slice(0, 32));
  const other = event({ viewer_id: 'ann@example.com', tenant_id: 'someone-else' });
  sealViewer(other, key);
  assert.notEqual(other.viewer_hash, a.viewer_hash);
  const forged = event({ viewer_hash: 'f'.repeat(32) });
  sealViewer(forged, key);
  assert.equal(forged.viewer_hash, undefined);
  const keyless = event({ viewer_id: 'ann@example.com' });
  sealViewer(keyless, undefined);
  assert.deepEqual([keyless.viewer_id, keyless.viewer_hash], [undefined, undefined]);
  assert.equal(viewerHashKey(undefined, undefined), undefined);
  assert.notDeepEqual(viewerHashKey(undefined, 'pepper-one-123456'), viewerHashKey(undefined, 'pepper-two-123456'));
  assert.deepEqual(viewerHashKey(key.toString('base64'), 'ignored-pepper-1234'), key);
});

test('readBusEvent: one record to an event with its late verdict, or the reason it is not one', () => {
  const accepted = validateEvent(good(), limits, NOW);
  assert.ok(accepted.ok);
  const onTime = readBusEvent(encodeEvent(accepted.event), limits);
  assert.ok(onTime.ok);
  assert.deepEqual(onTime.event, accepted.event);
  assert.equal(onTime.late, false);

  const lateEvent = { ...accepted.event, occurred_at: NOW - limits.liveLateMs - 1 };
  const late = readBusEvent(encodeEvent(lateEvent), limits);
  assert.ok(late.ok && late.late, 'received more than liveLateMs after it happened');
  assert.equal(isLate({ occurred_at: NOW - limits.liveLateMs, received_at: NOW }, limits), false, 'exactly the window is on time');

  const garbage = readBusEvent(Buffer.from('{not json'), limits);
  assert.ok(!garbage.ok);
  assert.equal(garbage.reason, 'undecodable');
  assert.match(garbage.message, /^not JSON: /);

  const noStamp = readBusEvent(Buffer.from(JSON.stringify(good())), limits);
  assert.ok(!noStamp.ok);
  assert.equal(noStamp.reason, 'invalid_field');
  assert.equal(noStamp.field, 'received_at');

  const bad = readBusEvent(new Uint8Array(Buffer.from(JSON.stringify({ ...accepted.event, kind: 'teleport' }))), limits);
  assert.ok(!bad.ok);
  assert.equal(bad.reason, 'unknown_kind');
});

test('readBusEvent: the same bytes read again (the in-process log hands one Buffer to every group) give an equal event of the reader\'s own', () => {
  const accepted = validateEvent({ ...good(), attrs: { variant: 'b' } }, limits, NOW);
  assert.ok(accepted.ok);
  const bytes = encodeEvent(accepted.event);
  const first = readBusEvent(bytes, limits);
  assert.ok(first.ok);
  first.event.asset_id = 'changed-by-the-first-reader';
  first.event.attrs!.variant = 'changed';
  const second = readBusEvent(bytes, limits);
  assert.ok(second.ok);
  assert.deepEqual(second.event, accepted.event, 'what one reader does to its event is not seen by the next');
  assert.notEqual(second.event, first.event);

  assert.equal(second.late, false);
  // Other limits judge the same bytes anew: 1 s after it happened is late for a zero late window.
  const again = readBusEvent(bytes, { ...limits, liveLateMs: 0 });
  assert.ok(again.ok);
  assert.equal(again.late, true);

  const garbage = Buffer.from('{not json');
  const refused = readBusEvent(garbage, limits);
  assert.ok(!refused.ok);
  (refused as { message: string }).message = 'changed';
  const refusedAgain = readBusEvent(garbage, limits);
  assert.ok(!refusedAgain.ok);
  assert.match(refusedAgain.message, /^not JSON: /);
});

test('a bus event keeps the viewer_hash ingest set (and a viewer_id, for the readers that get one)', () => {
  const hash = 'ab'.repeat(16);
  const r = validateBusEvent({ ...good(), viewer_hash: hash, viewer_id: 'v-7', received_at: NOW }, limits);
  assert.ok(r.ok);
  assert.deepEqual([r.event.viewer_hash, r.event.viewer_id], [hash, 'v-7']);
  const none = validateBusEvent({ ...good(), received_at: NOW }, limits);
  assert.ok(none.ok);
  assert.deepEqual(['viewer_hash' in none.event, 'viewer_id' in none.event], [false, false]);
});

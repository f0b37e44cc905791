import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { DedupWindow, decodeDedupEntries, encodeDedupEntries, eventFingerprint, fingerprintField, payloadDigest } from './dedup.js';
import type { EngagementEvent } from './events.js';

const MIN = 60_000;

test('dedup window: new, then retry for the same content and conflict for other content', () => {
  const w = new DedupWindow(5 * MIN);
  assert.equal(w.verdict(42, 7), 'new');
  w.add(42, 7, 10 * MIN);
  assert.equal(w.verdict(42, 7), 'retry');
  assert.equal(w.verdict(42, 8), 'conflict');
  assert.equal(w.verdict(43, 7), 'new');
  assert.equal(w.size, 1);
});

test('dedup window: an entry goes once the newest arrival is a whole window past its bucket', () => {
  const w = new DedupWindow(5 * MIN, MIN);
  w.add(1, 1, 10 * MIN + 30_000); // bucket 10
  w.add(2, 2, 15 * MIN + 59_000); // bucket 15: bucket 10 is exactly 5 buckets back, still kept
  assert.equal(w.verdict(1, 1), 'retry');
  w.add(3, 3, 16 * MIN); // bucket 16: bucket 10 is now 6 back
  assert.equal(w.verdict(1, 1), 'new');
  assert.equal(w.verdict(2, 2), 'retry');
  // An arrival older than the window is not remembered (its bucket is already gone).
  w.add(4, 4, 9 * MIN);
  assert.equal(w.verdict(4, 4), 'new');
});

test('dedup window: drain hands out each added entry once; loaded entries are known but not handed out', () => {
  const w = new DedupWindow(5 * MIN, MIN);
  w.load([[100, 9, 9]]);
  w.add(1, 11, 100 * MIN + 1);
  w.add(2, 22, 100 * MIN + 2);
  assert.deepEqual(w.drain(), [
    [100, 1, 11],
    [100, 2, 22],
  ]);
  assert.deepEqual(w.drain(), []);
  assert.equal(w.verdict(9, 9), 'retry');
});

test('dedup window: ids known without their payload are retries whatever the copy says, and leave with their bucket', () => {
  const w = new DedupWindow(2 * MIN, MIN);
  w.loadKnown([
    [100, 5],
    [101, 6],
  ]);
  assert.equal(w.verdict(5, 0), 'retry');
  assert.equal(w.verdict(6, 0xffffffff), 'retry');
  assert.equal(w.verdict(7, 0), 'new');
  assert.deepEqual(w.drain(), [], 'known ids are not handed out for persistence');
  // Bucket 103 makes 101 the oldest kept: 100 goes.
  w.add(8, 8, 103 * MIN);
  assert.equal(w.verdict(5, 0), 'new');
  assert.equal(w.verdict(6, 1), 'retry');
});

test('dedup entries: encoded strings concatenate and decode as one', () => {
  const max = 2 ** 52 - 1;
  const a = encodeDedupEntries([
    [0, 0],
    [max, 0xffffffff],
  ]);
  const b = encodeDedupEntries([[123456789012345, 42]]);
  assert.equal(a.length, 32, '16 characters an entry, no padding');
  assert.deepEqual(decodeDedupEntries(a + b, 7), [
    [7, 0, 0],
    [7, max, 0xffffffff],
    [7, 123456789012345, 42],
  ]);
});

test('fingerprint: the first 52 bits of SHA-1 over tenant NUL id; differs by tenant', () => {
  const h = createHash('sha1').update('acme\u000001HZX').digest();
  const expected = Number(BigInt(`0x${h.subarray(0, 7).toString('hex')}`) >> 4n);
  assert.equal(eventFingerprint('acme', '01HZX'), expected);
  assert.notEqual(eventFingerprint('acme', '01HZX'), eventFingerprint('other', '01HZX'));
  assert.ok(Number.isSafeInteger(expected));
});

test('fingerprint: the same 52 bits as node:crypto for short ASCII texts (computed here), longer and non-ASCII ones (node:crypto)', () => {
  const expected = (tenant: string, id: string) => {
    const h = createHash('sha1').update(`${tenant}\u0000${id}`).digest();
    return h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12);
  };
  // Lengths around the one-block limit (55 bytes of text), empty parts, every ASCII character.
  for (let n = 0; n <= 70; n++) assert.equal(eventFingerprint('t', 'x'.repeat(n)), expected('t', 'x'.repeat(n)), `length ${n + 2}`);
  assert.equal(eventFingerprint('', ''), expected('', ''));
  let ascii = '';
  for (let c = 0; c < 128; c++) ascii += String.fromCharCode(c);
  for (let i = 0; i < 128; i += 40) assert.equal(eventFingerprint('acme', ascii.slice(i, i + 40)), expected('acme', ascii.slice(i, i + 40)));
  for (const id of ['é', '01HZXé', '\u{1F600}', `${'x'.repeat(50)}ü`]) assert.equal(eventFingerprint('t', id), expected('t', id), id);
  for (let i = 0; i < 500; i++) assert.equal(eventFingerprint(`tenant-${i % 7}`, `01HZX${i}`), expected(`tenant-${i % 7}`, `01HZX${i}`));
});

test('fingerprint field: the base-36 string toString(36) gives, for every fingerprint size', () => {
  const values = [0, 1, 35, 36, 37, 36 ** 6 - 1, 36 ** 6, 2 ** 31, 2 ** 32 + 5, 2 ** 52 - 1, Number.MAX_SAFE_INTEGER, eventFingerprint('acme', '01HZX')];
  for (let i = 0; i < 200; i++) values.push(eventFingerprint('t', `id-${i}`));
  for (const v of values) assert.equal(fingerprintField(v), v.toString(36), String(v));
  assert.equal(fingerprintField(36 ** 3), '1000');
});

test('payload digest: FNV-1a of the fields joined by NULs (the digests hot state already holds stay valid)', () => {
  const joined = (e: EngagementEvent) => {
    const text = [e.campaign_id, e.asset_id, e.kind, e.value, e.occurred_at, e.channel ?? '', e.placement ?? '', e.region ?? '', e.device ?? '', e.edge_node ?? '', e.attrs ? JSON.stringify(e.attrs) : ''].join('\u0000');
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    return h >>> 0;
  };
  const base: EngagementEvent = { event_id: 'x', tenant_id: 't', campaign_id: 'c-1', asset_id: 'a-1', kind: 'dwell', value: 1234.5, occurred_at: 1_790_000_000_000, received_at: 5 };
  const variants: EngagementEvent[] = [
    base,
    { ...base, value: 0, kind: 'click' },
    { ...base, channel: 'social', placement: 'feed', region: 'eu-west', device: 'mobile', edge_node: 'fra-1' },
    { ...base, attrs: { variant: 'b', n: 2, ok: true, name: 'é\u{1F600}' } },
    { ...base, campaign_id: 'ça', asset_id: '' },
  ];
  for (const e of variants) assert.equal(payloadDigest(e), joined(e), JSON.stringify(e));
});

test('payload digest: ignores received_at (set by ingest), sees everything the client said', () => {
  const e: EngagementEvent = { event_id: 'x', tenant_id: 't', campaign_id: 'c', asset_id: 'a', kind: 'click', value: 1, occurred_at: 1000, received_at: 5 };
  assert.equal(payloadDigest(e), payloadDigest({ ...e, received_at: 9999 }));
  for (const other of [{ kind: 'like' as const }, { value: 2 }, { occurred_at: 1001 }, { asset_id: 'b' }, { placement: 'p' }, { attrs: { k: 1 } }]) {
    assert.notEqual(payloadDigest({ ...e, ...other }), payloadDigest(e), JSON.stringify(other));
  }
});

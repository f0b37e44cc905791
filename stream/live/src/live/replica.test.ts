import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_INDEX, Buckets, DIRTY_PUBLISH, windowLayout, windowSums } from './windows.js';
import { DEFAULT_LEGEND } from '@afterglow/core/live-protocol';
import { LEGEND, Replica } from './replica.js';
import type { Delta, EntityMeta, EntitySnapshot } from './state.js';

const layout = windowLayout(600_000);
const NOW = Date.UTC(2025, 5, 1, 12);
const meta = (n: number, epoch = 0): EntityMeta => ({ kind: 'asset', tenant: 't', id: 'a', partition: 0, n, epoch, campaign: 'c', master: '' });

/** The writer: an asset taking clicks, and the deltas it would publish. */
function writer() {
  const b = new Buckets(layout);
  let n = 0;
  let pub = 0;
  return {
    b,
    click(count: number, at = NOW) {
      for (let i = 0; i < count; i++) b.add(KIND_INDEX.click, 1, at);
      n += count;
    },
    delta(): Delta {
      const d: Delta = { meta: meta(n), n0: pub, rows: b.takeRows(DIRTY_PUBLISH), full: false, decay: undefined };
      pub = n;
      return d;
    },
    snapshot(): EntitySnapshot {
      const copy = new Buckets(layout);
      for (const [f, r] of Object.entries(b.takeRows(0, true))) copy.applyRow(f, r, 'replace');
      return { meta: meta(n), buckets: copy, decay: undefined, updatedAt: NOW };
    },
  };
}

const clicks = (r: Replica) => windowSums([r.buckets], NOW)[3]![KIND_INDEX.click];

test('replica: deltas merge in any order and twice; a gap is flagged and closed by a snapshot', () => {
  const w = writer();
  w.click(3);
  const d1 = w.delta();
  w.click(2, NOW - 120_000);
  const d2 = w.delta();
  w.click(4);
  const d3 = w.delta();
  const r = new Replica('k', 0, layout);
  r.mergeDelta(d1);
  r.mergeDelta(d3); // d2 lost (for now): the version chain shows it
  assert.equal(r.needN, d2.meta.n, 'gap up to the missing delta');
  assert.equal(clicks(r), 7);
  r.mergeDelta(d2); // late and out of order: merges by maximum
  r.mergeDelta(d1); // and a duplicate changes nothing
  assert.equal(clicks(r), 9);
  const r2 = new Replica('k', 0, layout);
  r2.mergeDelta(d1);
  r2.mergeDelta(d3);
  assert.ok(r2.needN > 0);
  r2.mergeSnapshot(w.snapshot());
  assert.equal(r2.needN, 0, 'a snapshot past the gap closes it');
  assert.equal(clicks(r2), 9);
  assert.equal(r2.n, 9);
});

test('replica: a higher epoch with the full state replaces the copy (counts may go down)', () => {
  const w = writer();
  w.click(10);
  const r = new Replica('k', 0, layout);
  r.mergeDelta(w.delta());
  const smaller = new Buckets(layout);
  smaller.add(KIND_INDEX.click, 1, NOW);
  r.mergeDelta({ meta: { ...meta(11, 5), kind: 'master' }, n0: 10, rows: smaller.takeRows(0, true), full: true, decay: undefined });
  assert.equal(clicks(r), 1);
  assert.equal(r.epoch, 5);
  assert.equal(r.needN, 0);
  // An older epoch is ignored.
  assert.equal(r.mergeDelta({ meta: meta(50, 1), n0: 0, rows: w.b.takeRows(0, true), full: true, decay: undefined }), false);
  assert.equal(clicks(r), 1);
});

test('legend: the server sends the legend the browser decoder (@afterglow/core/live-protocol) assumes', () => {
  assert.deepEqual(LEGEND, DEFAULT_LEGEND);
});

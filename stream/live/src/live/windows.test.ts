import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SUBJECTS, subjectToken, subjectTokenDecode } from '@afterglow/core';
import { hotToken, LiveKeys } from './keys.js';
import { metricsView, rate, wilson } from './rates.js';
import { Buckets, COLUMNS, KIND_INDEX, DIRTY_FLUSH, DIRTY_PUBLISH, isRowField, parseRow, windowLayout, windowSums } from './windows.js';

const MINUTE = 60_000;
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);
const layout = windowLayout(10 * MINUTE);
const CI = { maxRelWidth: 0.5, maxAbsWidth: 0.01 };

test('windows: events land in every window that covers their time, in any order', () => {
  const b = new Buckets(layout);
  const imp = KIND_INDEX.impression;
  // Out of order: 2 h ago, 30 s ago, 10 min ago, 50 min ago, 20 h ago, now.
  for (const ago of [2 * 60, 0.5, 10, 50, 20 * 60, 0]) b.add(imp, 1, NOW - ago * MINUTE);
  const [m1, m15, h1, h24] = windowSums([b], NOW).map((s) => s[imp]);
  assert.deepEqual([m1, m15, h1, h24], [2, 3, 4, 6]);
});

test('windows: the oldest bucket counts in proportion to the part of it inside the window (a clock off the bucket edges)', () => {
  const b = new Buckets(layout);
  // now = 12:00:22, on no 5 s, minute or hour edge, so every window's start cuts its oldest bucket.
  const now = NOW + 22_000;
  const at = (hh: number, mm: number, ss: number, dayBefore = false) => Date.UTC(2025, 5, dayBefore ? 0 : 1, hh, mm, ss);
  const put = (n: number, t: number) => { for (let i = 0; i < n; i++) b.add(KIND_INDEX.click, 1, t); };
  put(36, at(12, 0, 5, true)); //  hour bucket [yesterday 12:00, 13:00): 24 h starts at 12:00:22 -> 3578/3600 inside
  put(5, at(10, 59, 50)); //       minute bucket [10:59, 11:00): before the 1 h window's first bucket
  put(90, at(11, 0, 10)); //       [11:00, 11:01): 1 h starts at 11:00:22 -> 38/60 inside = 57 (though 11:00:10 itself is outside)
  put(7, at(11, 30, 0)); //        inside 1 h only
  put(30, at(11, 45, 5)); //       [11:45, 11:46): 15 min starts at 11:45:22 -> 38/60 inside = 19
  put(10, at(11, 59, 21)); //      5 s bucket [11:59:20, 11:59:25): 1 min starts at 11:59:22 -> 3/5 inside = 6
  put(3, at(12, 0, 10)); //        the current bucket of every tier
  const [m1, m15, h1, h24] = windowSums([b], now).map((s) => s[KIND_INDEX.click]!);
  assert.ok(Math.abs(m1! - 9) < 1e-9, `1 min: 6 + 3, got ${m1}`);
  assert.ok(Math.abs(m15! - 32) < 1e-9, `15 min: 19 + 10 + 3, got ${m15}`);
  assert.ok(Math.abs(h1! - 107) < 1e-9, `1 h: 57 + 7 + 30 + 10 + 3, got ${h1}`);
  assert.ok(Math.abs(h24! - (35.78 + 145)) < 1e-9, `24 h: 36 x 3578/3600 + all 145 of today, got ${h24}`);
});

test('windows: a late event inside the ring lands in its own bucket; rings never hold more than their slots', () => {
  const b = new Buckets(layout);
  for (let m = 0; m < 200; m++) b.add(KIND_INDEX.view, 1, NOW - m * MINUTE);
  // The 1 h window sees exactly 60 whole minutes and the partial one at the edge (here aligned: 0).
  const sums = windowSums([b], NOW);
  assert.equal(Math.round(sums[2]![KIND_INDEX.view]!), 61);
  assert.equal(Math.round(sums[3]![KIND_INDEX.view]!), 200);
  // A late event for 8 minutes ago (inside the late window): the 15 m and 1 h windows grow by one.
  b.add(KIND_INDEX.view, 1, NOW - 8 * MINUTE);
  const after = windowSums([b], NOW);
  assert.equal(Math.round(after[1]![KIND_INDEX.view]!), Math.round(sums[1]![KIND_INDEX.view]!) + 1);
  assert.equal(Math.round(after[0]![KIND_INDEX.view]!), Math.round(sums[0]![KIND_INDEX.view]!));
});

test('windows: rows round-trip, merge by maximum in any order, and re-attribution adds and removes', () => {
  const a = new Buckets(layout);
  for (let i = 0; i < 50; i++) a.add(i % 8, i % 8 === 7 ? 1500 : 1, NOW - (i % 30) * 7_000);
  const rows = a.takeRows(DIRTY_FLUSH);
  assert.ok(Object.keys(rows).length > 0);
  assert.deepEqual(a.takeRows(DIRTY_FLUSH), {}, 'the flush bit is cleared');
  const copy = new Buckets(layout);
  for (const [f, r] of Object.entries(rows)) copy.applyRow(f, r, 'replace');
  assert.deepEqual(windowSums([copy], NOW), windowSums([a], NOW));
  // A replica that gets an older row after a newer one keeps the newer (maximum).
  const early = a.takeRows(DIRTY_PUBLISH);
  a.add(0, 1, NOW);
  const late = a.takeRows(DIRTY_PUBLISH);
  const replica = new Buckets(layout);
  for (const [f, r] of Object.entries(late)) replica.applyRow(f, r, 'max');
  for (const [f, r] of Object.entries(early)) replica.applyRow(f, r, 'max');
  assert.deepEqual(windowSums([replica], NOW), windowSums([a], NOW));
  // Master share: += asset, then -= asset leaves it empty.
  const share = new Buckets(layout);
  share.addFrom(a, 1);
  assert.deepEqual(windowSums([share], NOW), windowSums([a], NOW));
  share.addFrom(a, -1);
  assert.ok(windowSums([share], NOW).every((s) => s.every((x) => x === 0)));
  assert.equal(copy.applyRow('S1', 'garbage', 'max'), false);
});

test('rates: Wilson intervals, the not-enough-data flag, and a view over several shares', () => {
  const w = wilson(20, 1000);
  assert.ok(Math.abs(w.value - 0.02) < 1e-12 && w.low < 0.02 && w.high > 0.02);
  assert.ok(Math.abs(w.low - 0.01298) < 1e-4 && Math.abs(w.high - 0.03069) < 1e-4);
  assert.deepEqual(wilson(0, 0), { value: 0, low: 0, high: 1 });
  assert.equal(rate(2, 10, CI).enough, false, '2 of 10 is too uncertain');
  assert.equal(rate(300, 10_000, CI).enough, true);
  assert.equal(rate(0, 2000, CI).enough, true, 'confidently near zero');
  const s = rate(5, 1000, CI, 1000);
  assert.equal(s.value, 5);
  const p1 = new Buckets(layout);
  const p2 = new Buckets(layout);
  for (let i = 0; i < 1000; i++) (i % 2 ? p1 : p2).add(KIND_INDEX.impression, 1, NOW - 1000);
  for (let i = 0; i < 30; i++) p1.add(KIND_INDEX.click, 1, NOW - 1000);
  const v = metricsView([p1, p2], NOW, CI);
  assert.equal(v.windows['1m'].counts.impression, 1000);
  assert.equal(v.windows['24h'].ctr.value, 0.03);
  assert.ok(v.velocity.per_min > 0);
});

test('velocity: the 15 min average is over the time that has data, not 15 min', () => {
  // 60 events a minute for the last 4 minutes (NOW is on a minute boundary).
  const b = new Buckets(layout);
  for (let m = 0; m < 4; m++) for (let i = 0; i < 60; i++) b.add(KIND_INDEX.impression, 1, NOW - 4 * MINUTE + m * MINUTE + i * 1000);
  const v = metricsView([b], NOW, CI).velocity;
  assert.equal(v.avg_ms, 4 * MINUTE);
  assert.equal(v.per_min_15m, 60);
  // Data over the whole window: 15 min. One event just now: at least a minute.
  const full = new Buckets(layout);
  for (let m = 0; m < 20; m++) for (let i = 0; i < 30; i++) full.add(KIND_INDEX.impression, 1, NOW - (m + 0.5) * MINUTE);
  const fv = metricsView([full], NOW, CI).velocity;
  assert.equal(fv.avg_ms, 15 * MINUTE);
  assert.equal(fv.per_min_15m, 30);
  const one = new Buckets(layout);
  one.add(KIND_INDEX.impression, 1, NOW - 100);
  assert.equal(metricsView([one], NOW, CI).velocity.avg_ms, MINUTE);
});

test('subjects and keys: ids with separators are encoded into single, distinct tokens', () => {
  for (const id of ['a.b', 'a:b', 'a%2Eb', 'x y', '*', '>', 'é']) {
    const t = subjectToken(id);
    assert.ok(!t.includes('.') && !/\s/.test(t) && t !== '*' && t !== '>', t);
    assert.equal(subjectTokenDecode(t), id);
  }
  assert.notEqual(subjectToken('a.b'), subjectToken('a%2Eb'));
  assert.equal(SUBJECTS.assetDelta('t.1', 'c.1', 'a.1'), 'live.t%2E1.campaign.c%2E1.asset.a%2E1');
  assert.equal(SUBJECTS.campaignAll('t', 'c'), 'live.t.campaign.c.>');
  assert.equal(hotToken('a:b'), 'a%3Ab');
  const keys = new LiveKeys('p');
  assert.notEqual(keys.asset('a:b', 'c'), keys.asset('a', 'b:c'));
});

test('windows: ring sizes follow the late window (14 + 72 + 27 slots at 10 min; a negative late window is 0)', () => {
  assert.deepEqual(layout.tiers.map((t) => [t.name, t.resMs, t.slots]), [['S', 5_000, 14], ['M', MINUTE, 72], ['H', 60 * MINUTE, 27]]);
  assert.deepEqual(windowLayout(0).tiers.map((t) => t.slots), [14, 62, 26]);
  assert.deepEqual(windowLayout(-5).tiers.map((t) => t.slots), [14, 62, 26]);
  assert.equal(windowLayout(-5).lateMs, 0);
  // 90 min late: M needs 60 + 90 minutes, H 24 h + 1.5 h -> 26 hours (rounded up), each + 2.
  assert.deepEqual(windowLayout(90 * MINUTE).tiers.map((t) => t.slots), [14, 152, 28]);
});

test('windows: a slot taken over by a newer bucket starts from zero, value sums included', () => {
  const b = new Buckets(layout);
  const t0 = NOW - 2 * MINUTE;
  b.add(KIND_INDEX.dwell, 1000, t0);
  b.add(KIND_INDEX.conversion, 7, t0);
  // 14 slots of 5 s: 70 s later the same tier-S slot holds the new bucket.
  const t1 = t0 + 70_000;
  b.add(KIND_INDEX.dwell, 500, t1);
  const [m1] = windowSums([b], t1);
  assert.equal(m1![KIND_INDEX.dwell], 1, 'one dwell event in the last minute');
  assert.equal(m1![COLUMNS - 2], 500, 'dwell ms of the new bucket only');
  assert.equal(m1![COLUMNS - 1], 0, 'no conversion value left from the old bucket');
});

test('windows: rows with a bucket that is not a non-negative 31-bit integer are refused', () => {
  const cols = ',1,0,0,0,0,0,0,0,0,0';
  assert.deepEqual(parseRow(`5${cols}`), { bucket: 5, columns: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0] });
  assert.deepEqual(parseRow(`${0x7fffffff}${cols}`)?.bucket, 0x7fffffff);
  for (const bucket of ['1.5', '-1', String(0x7fffffff + 1), 'x']) assert.equal(parseRow(`${bucket}${cols}`), undefined, bucket);
  assert.equal(parseRow(`5${cols},1`), undefined, 'one column too many');
  assert.equal(parseRow('5,1,0,0,0,0,0,0,0,-1,0'), undefined, 'a negative column');
});

test('windows: markAll flags every non-empty slot again (all three tiers), and only those', () => {
  const b = new Buckets(layout);
  b.add(KIND_INDEX.click, 1, NOW - 30 * MINUTE);
  b.add(KIND_INDEX.click, 1, NOW);
  b.takeRows(DIRTY_PUBLISH);
  assert.deepEqual(b.takeRows(DIRTY_PUBLISH), {});
  b.markAll(DIRTY_PUBLISH);
  // Two events 30 min apart: 2 tier-S slots, 2 tier-M slots, 1 or 2 tier-H slots (NOW is on the hour: 2).
  assert.deepEqual(Object.keys(b.takeRows(DIRTY_PUBLISH)).map((f) => f[0]).sort(), ['H', 'H', 'M', 'M', 'S', 'S']);
});

test('windows: minuteBuckets lists the held minutes oldest first, also when the ring has wrapped', () => {
  const b = new Buckets(layout);
  // Minute m sits in slot m % 72: pick one in slot 70 and one 5 minutes later, in slot 3.
  const base = (Math.floor(NOW / MINUTE / 72) * 72 + 70) * MINUTE;
  b.add(KIND_INDEX.click, 1, base + 5 * MINUTE);
  b.add(KIND_INDEX.click, 1, base + 5 * MINUTE);
  b.add(KIND_INDEX.click, 1, base);
  b.add(KIND_INDEX.view, 1, base);
  assert.deepEqual(b.minuteBuckets([KIND_INDEX.click]), [[base / MINUTE, 1], [base / MINUTE + 5, 2]]);
  assert.deepEqual(b.minuteBuckets([KIND_INDEX.click, KIND_INDEX.view]), [[base / MINUTE, 2], [base / MINUTE + 5, 2]]);
});

test('windows: a slot is listed for the bit it was marked with only (flush and publish apart)', () => {
  const b = new Buckets(layout);
  b.add(KIND_INDEX.click, 1, NOW, DIRTY_PUBLISH);
  assert.deepEqual(b.takeRows(DIRTY_FLUSH), {}, 'marked for publishing only: nothing to flush');
  // The slot of each tier: bucket number modulo the ring (14, 72 and 27 slots).
  const slots = [`S${(NOW / 5_000) % 14}`, `M${(NOW / MINUTE) % 72}`, `H${(NOW / 3_600_000) % 27}`];
  assert.deepEqual(Object.keys(b.takeRows(DIRTY_PUBLISH)).sort(), slots.sort());
  b.add(KIND_INDEX.click, 1, NOW, DIRTY_FLUSH);
  assert.deepEqual(b.takeRows(DIRTY_PUBLISH), {}, 'marked for flushing only: nothing to publish');
  assert.equal(Object.keys(b.takeRows(DIRTY_FLUSH)).length, 3);
});

test('windows: bucket 0 (the first 5 s, minute and hour of the epoch) is held like any other', () => {
  const b = new Buckets(layout);
  b.add(KIND_INDEX.click, 1, 1_000);
  assert.equal(b.isEmpty(), false);
  const zeroRow = '0,0,0,1,0,0,0,0,0,0,0';
  assert.deepEqual(b.takeRows(DIRTY_FLUSH), { S0: zeroRow, M0: zeroRow, H0: zeroRow });
  assert.deepEqual(b.takeRows(DIRTY_FLUSH, true), { S0: zeroRow, M0: zeroRow, H0: zeroRow }, 'the full state');
  b.takeRows(DIRTY_PUBLISH);
  b.markAll(DIRTY_PUBLISH);
  assert.deepEqual(Object.keys(b.takeRows(DIRTY_PUBLISH)).sort(), ['H0', 'M0', 'S0']);
  assert.deepEqual(b.minuteBuckets([KIND_INDEX.click]), [[0, 1]]);
  assert.equal(b.oldestMinute(), 0);
  assert.deepEqual(parseRow(zeroRow), { bucket: 0, columns: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0] });
  const share = new Buckets(layout);
  share.addFrom(b, 1);
  assert.deepEqual(share.minuteBuckets([KIND_INDEX.click]), [[0, 1]]);
  share.addFrom(b, -1);
  assert.deepEqual(share.minuteBuckets([KIND_INDEX.click]), [[0, 0]]);
});

test('windows: value sums go to their own column and slot (dwell ms and conversion value side by side)', () => {
  const b = new Buckets(layout);
  // Two neighbouring 5 s buckets: dwell in the first, a conversion worth 7 in the second.
  b.add(KIND_INDEX.dwell, 1_000, NOW - 10_000);
  b.add(KIND_INDEX.conversion, 7, NOW - 5_000);
  const [m1, m15] = windowSums([b], NOW);
  assert.deepEqual([m1![COLUMNS - 2], m1![COLUMNS - 1]], [1_000, 7]);
  assert.deepEqual([m15![COLUMNS - 2], m15![COLUMNS - 1]], [1_000, 7]);
});

test('windows: applyRow replace takes the row as it is; max keeps the larger value sums of the same bucket', () => {
  const bucket = NOW / MINUTE;
  // counts: impression..dwell (8), then dwell ms, conversion value.
  const row = (dwellCount: number, dwellMs: number, conversionValue: number) => `${bucket},5,0,0,0,0,0,0,${dwellCount},${dwellMs},${conversionValue}`;
  const field = `M${bucket % 72}`;
  const b = new Buckets(layout);
  assert.equal(b.applyRow(field, row(1, 900, 10), 'replace'), true);
  // Same bucket, lower figures: replace lowers them, max keeps what it has.
  assert.equal(b.applyRow(field, `${bucket},3,0,0,0,0,0,0,1,400,4`, 'replace'), true);
  assert.deepEqual(b.takeRows(DIRTY_FLUSH, true)[field], `${bucket},3,0,0,0,0,0,0,1,400,4`);
  assert.equal(b.applyRow(field, `${bucket},2,0,0,0,0,0,0,1,100,1`, 'max'), false);
  assert.deepEqual(b.takeRows(DIRTY_FLUSH, true)[field], `${bucket},3,0,0,0,0,0,0,1,400,4`);
  // A larger conversion value with a small dwell count: the value column is compared with the value column.
  assert.equal(b.applyRow(field, row(2, 400, 50), 'max'), true);
  assert.deepEqual(b.takeRows(DIRTY_FLUSH, true)[field], `${bucket},5,0,0,0,0,0,0,2,400,50`);
});

test('windows: addFrom twice is twice the source, counts and value sums, neighbouring slots included', () => {
  const a = new Buckets(layout);
  // Neighbouring slots in every tier: impressions and dwell at 12:00:00 and 11:59:55, 10:59:00 and 11:00:00.
  for (const at of [NOW, NOW - 5_000, NOW - 60 * MINUTE, NOW - 61 * MINUTE]) {
    a.add(KIND_INDEX.impression, 1, at);
    a.add(KIND_INDEX.dwell, 300, at);
  }
  const share = new Buckets(layout);
  share.addFrom(a, 1);
  share.addFrom(a, 1);
  const twice = windowSums([a, a], NOW);
  assert.deepEqual(windowSums([share], NOW), twice);
  share.addFrom(a, -1);
  assert.deepEqual(windowSums([share], NOW), windowSums([a], NOW));
  assert.deepEqual(share.minuteBuckets([KIND_INDEX.impression]), a.minuteBuckets([KIND_INDEX.impression]));
});

test('windows: minuteSeries reads [from, to) of the minute ring, 0 where it holds nothing, for the kinds asked', () => {
  const b = new Buckets(layout);
  const m = NOW / MINUTE;
  b.add(KIND_INDEX.click, 1, NOW - 2 * MINUTE);
  b.add(KIND_INDEX.click, 1, NOW - 2 * MINUTE);
  b.add(KIND_INDEX.like, 1, NOW - 2 * MINUTE);
  b.add(KIND_INDEX.view, 1, NOW);
  assert.deepEqual(b.minuteSeries(m - 3, m + 1, [KIND_INDEX.click, KIND_INDEX.like]), [0, 3, 0, 0]);
  assert.deepEqual(b.minuteSeries(m - 3, m + 1, [KIND_INDEX.view]), [0, 0, 0, 1]);
  assert.deepEqual(b.minuteSeries(m - 3, m - 3, [KIND_INDEX.view]), []);
  // 72 minutes later the slot belongs to another minute: the old one reads 0.
  assert.deepEqual(b.minuteSeries(m - 2 + 72, m - 1 + 72, [KIND_INDEX.click]), [0]);
});

test('windows: oldestMinute, newestAt, minuteSlotHolder and isEmpty on a wrapped ring', () => {
  const b = new Buckets(layout);
  assert.equal(b.oldestMinute(), undefined);
  assert.equal(b.newestAt(), 0);
  assert.equal(b.isEmpty(), true);
  // Minute m sits in slot m % 72: one in slot 70, one 5 minutes later in slot 3 (a lower slot).
  const base = Math.floor(NOW / MINUTE / 72) * 72 + 70;
  b.add(KIND_INDEX.click, 1, (base + 5) * MINUTE + 7_000);
  b.add(KIND_INDEX.click, 1, base * MINUTE);
  assert.equal(b.oldestMinute(), base);
  assert.equal(b.newestAt(), (base + 5) * MINUTE + 5_000, 'the 5 s bucket that holds the newest event starts there');
  assert.equal(b.minuteSlotHolder(base + 72), base, 'the minute 72 later would take the slot of minute base');
  assert.equal(b.minuteSlotHolder(base + 1), -1, 'an empty slot');
  assert.equal(b.minuteSlots, 72);
  assert.equal(b.isEmpty(), false);
});

test('windows: isRowField accepts a tier letter and a slot number only', () => {
  for (const f of ['S3', 'M41', 'H0', 'S0123']) assert.equal(isRowField(f), true, f);
  for (const f of ['', 'S', 'X3', 'X12', 'S3a', 'Sx', 's3', '3', 'M-1']) assert.equal(isRowField(f), false, f);
});

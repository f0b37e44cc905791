// Unit tests of the dashboard's range/filter URL state, its statistics for comparing creatives and
// the range CSV (dashboard/app/src/lib). Runs in Node; the expected values are worked out by hand
// or from textbook tables, never by the code under test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_ANALYTICS, parseAnalyticsState, rangeParams, resolveRange, withAnalytics } from '../app/src/lib/analytics-state.ts';
import { comparePairs, normalCdf, twoProportionZ, wilson } from '../app/src/lib/stats.ts';

describe('range and filters in the URL', () => {
  test('round-trip next to the view\'s own query; defaults are left out', () => {
    assert.equal(withAnalytics('', DEFAULT_ANALYTICS), '');
    assert.equal(withAnalytics('?w=15m', DEFAULT_ANALYTICS), '?w=15m');
    const s = { preset: 'custom' as const, from: Date.UTC(2026, 11, 1, 9, 30), to: Date.UTC(2026, 11, 7), by: 'placement' as const, filters: { channel: 'social', device: '' } };
    const q = withAnalytics('?w=15m&sort=impressions', s);
    assert.equal(q, '?w=15m&sort=impressions&range=custom&from=2026-12-01T09%3A30Z&to=2026-12-07T00%3A00Z&by=placement&f.channel=social&f.device=');
    assert.deepEqual(parseAnalyticsState(q), s);
  });
  test('what the page does not know is ignored; a custom range that is not one falls back to live', () => {
    assert.deepEqual(parseAnalyticsState('?range=2y&by=colour&f.colour=red'), DEFAULT_ANALYTICS);
    assert.equal(parseAnalyticsState('?range=custom&from=2026-12-07T00:00Z&to=2026-12-01T00:00Z').preset, 'live');
    assert.equal(parseAnalyticsState('?range=custom&from=2020-01-01T00:00Z&to=2026-01-01T00:00Z').preset, 'live');
    assert.equal(parseAnalyticsState('?range=custom&from=yesterday&to=2026-01-01T00:00Z').preset, 'live');
    assert.equal(parseAnalyticsState(`?f.region=${'x'.repeat(129)}`).filters.region, undefined);
    // A filter needs the stored rollups: without a range it reads the last 24 hours, not the live window.
    assert.deepEqual(parseAnalyticsState('?f.region=eu'), { ...DEFAULT_ANALYTICS, preset: '24h', filters: { region: 'eu' } });
  });
  test('presets end now; live follows the live window; filters become filter[dim] parameters', () => {
    const now = 1_800_000_000_000;
    assert.deepEqual(resolveRange({ ...DEFAULT_ANALYTICS, preset: '7d' }, now), { from: now - 7 * 86_400_000, to: now });
    assert.deepEqual(resolveRange(DEFAULT_ANALYTICS, now, '15m'), { from: now - 900_000, to: now });
    assert.deepEqual(rangeParams({ ...DEFAULT_ANALYTICS, preset: '24h', filters: { placement: 'feed' } }, now), { from: String(now - 86_400_000), to: String(now), 'filter[placement]': 'feed' });
  });
});

describe('comparing two click-through rates', () => {
  test('Wilson interval: 10 of 100 is 5.52%-17.44% (published value)', () => {
    const w = wilson(10, 100);
    assert.equal(w.value, 0.1);
    assert.equal(w.low.toFixed(4), '0.0552');
    assert.equal(w.high.toFixed(4), '0.1744');
    assert.deepEqual(wilson(0, 0), { value: 0, low: 0, high: 1 });
  });
  test('normal CDF matches the table at 0, 1.96 and -2.576', () => {
    assert.ok(Math.abs(normalCdf(0) - 0.5) < 1e-7);
    assert.ok(Math.abs(normalCdf(1.959964) - 0.975) < 1e-6);
    assert.ok(Math.abs(normalCdf(-2.575829) - 0.005) < 1e-6);
  });
  test('two-proportion z-test: 130/2000 vs 50/2000 by hand', () => {
    // pooled p = 180/4000 = 0.045; se = sqrt(0.045 * 0.955 * (2/2000)) = 0.0065556; z = 0.04 / se = 6.1017.
    const t = twoProportionZ(130, 2000, 50, 2000)!;
    assert.equal(t.z.toFixed(3), '6.102');
    assert.ok(t.p < 1e-8);
    // Equal rates: z = 0, p = 1; no trials or no variance: no test.
    const same = twoProportionZ(5, 100, 10, 200)!;
    assert.equal(same.z, 0);
    assert.ok(same.p > 0.9999999);
    assert.equal(twoProportionZ(1, 0, 1, 10), null);
    assert.equal(twoProportionZ(0, 100, 0, 100), null);
  });
  test('pairs are judged at 0.05 / pairs (Bonferroni), with the leaderboard\'s overlap rule beside', () => {
    // 50/2000 vs 30/800: z = 1.79, p = 0.073: not significant; 130/2000 vs 30/800: p = 0.0046 < 0.05/3.
    const pairs = comparePairs([
      { id: 'a', x: 130, n: 2000 },
      { id: 'b', x: 50, n: 2000 },
      { id: 'c', x: 30, n: 800 },
    ]);
    assert.deepEqual(pairs.map((p) => [p.a, p.b, p.significant, p.intervalsOverlap]), [
      ['a', 'b', true, false],
      ['a', 'c', true, false],
      ['b', 'c', false, true],
    ]);
    assert.equal(pairs[2]!.test!.p.toFixed(3), '0.073');
    // 0.03 < p < 0.05: significant alone, not among three pairs.
    const two = twoProportionZ(60, 1000, 40, 1000)!;
    assert.ok(two.p > 0.05 / 3 && two.p < 0.05, String(two.p));
    assert.equal(comparePairs([{ id: 'x', x: 60, n: 1000 }, { id: 'y', x: 40, n: 1000 }])[0]!.significant, true);
    assert.equal(comparePairs([{ id: 'x', x: 60, n: 1000 }, { id: 'y', x: 40, n: 1000 }, { id: 'z', x: 0, n: 0 }])[0]!.significant, false);
  });
});

describe('range CSV', () => {
  test('one row per creative with the range, the filters and the previous period; cells escaped', async () => {
    const { rangeCsv } = await import('../app/src/lib/csv.ts');
    const counts = (impression: number, click: number) => ({ impression, view: 0, click, like: 0, share: 1, comment: 0, conversion: 0, dwell: 0 });
    const totals = (i: number, c: number) => ({ counts: counts(i, c), values: counts(i, c), total: i + c + 1, ctr: i > 0 ? c / i : null });
    const csv = rangeCsv({
      tenant_id: 't',
      campaign_id: 'c',
      range: { from: '2026-12-06T00:00:00.000Z', to: '2026-12-07T00:00:00.000Z' },
      previous_range: { from: '2026-12-05T00:00:00.000Z', to: '2026-12-06T00:00:00.000Z' },
      filters: { channel: ['social'], placement: ['feed', 'story'] },
      current: totals(300, 30),
      previous: totals(100, 5),
      change: { counts: {} as never, ctr: null },
      assets: [{ asset_id: '=evil', current: totals(100, 10), previous: totals(50, 5), change: { counts: { impression: { abs: 50, rel: 1 } } as never, ctr: { abs: 0, rel: 0 } } }],
      assets_truncated: false,
      series: { step_ms: 60_000, points: [] },
    });
    const [header, row, end] = csv.split('\r\n');
    assert.equal(end, '');
    assert.match(header!, /^asset_id,from,to,filters,impressions,clicks,/);
    const cells = row!.split(',');
    assert.equal(cells[0], "'=evil");
    assert.equal(cells[3], 'channel=social;placement=feed|story');
    assert.equal(cells[4], '100');
    assert.equal(cells[9], '11'); // clicks + shares
    assert.equal(cells[10], '0.1');
    assert.equal(cells[11], String(Math.round(wilson(10, 100).low * 1e6) / 1e6));
    assert.equal(cells[14], '50');
    assert.equal(cells[17], '1');
  });
});

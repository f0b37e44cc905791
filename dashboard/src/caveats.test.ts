// Unit tests of the dashboard's pure logic for saying how true a number is (dashboard/app/src/lib):
// data freshness, ties in rank, weak models, averages over the time that has data, decay peak,
// trigger numbers in human units. Runs in Node; excluded from the server tsconfig (the app has its
// own, checked by svelte-check).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freshnessOf, fmtEventsPerSec } from '../app/src/lib/freshness.ts';
import { eventsLabel, overlappingLabels, plottedPeak } from '../app/src/lib/decay.ts';
import { WEAK_R2, modelFit } from '../app/src/lib/models.ts';

describe('data freshness', () => {
  const at = 1_800_000_000_000;
  test('green while events arrive, amber after 30 s, red after 2 min or at 0 ev/s after traffic', () => {
    const fresh = freshnessOf({ last_event_at: at - 400, events_per_sec: 2140, as_of: at }, 0, false);
    assert.equal(fresh.level, 'fresh');
    assert.equal(fresh.text, 'last event 0.4 s ago · 2,140 ev/s');
    // The age grows between polls with the browser's elapsed time, measured from the server's clock.
    const later = freshnessOf({ last_event_at: at - 400, events_per_sec: 2140, as_of: at }, 31_000, false);
    assert.equal(later.level, 'stale');
    assert.equal(later.ageMs, 31_400);
    assert.equal(freshnessOf({ last_event_at: at - 45_000, events_per_sec: 3.5, as_of: at }, 0, true).level, 'stale');
    assert.equal(freshnessOf({ last_event_at: at - 121_000, events_per_sec: 0.5, as_of: at }, 0, true).level, 'stopped');
    const zero = freshnessOf({ last_event_at: at - 61_000, events_per_sec: 0, as_of: at }, 0, true);
    assert.equal(zero.level, 'stopped');
    assert.equal(zero.text, 'last event 61 s ago · 0 ev/s');
    assert.equal(zero.short, '61 s ago · 0 ev/s');
  });
  test('no event yet is neutral; gone after traffic (restart) is red', () => {
    assert.deepEqual(freshnessOf({ last_event_at: null, events_per_sec: 0, as_of: at }, 0, false), { level: 'idle', ageMs: null, text: 'no events yet', short: 'no events yet' });
    assert.equal(freshnessOf({ last_event_at: null, events_per_sec: 0, as_of: at }, 0, true).level, 'stopped');
  });
  test('a browser clock far off the server does not matter', () => {
    // The browser is an hour ahead: only the time since the answer is taken from it.
    assert.equal(freshnessOf({ last_event_at: at - 1000, events_per_sec: 10, as_of: at }, 2000, false).ageMs, 3000);
  });
  test('events per second', () => {
    assert.equal(fmtEventsPerSec(2140.4), '2,140 ev/s');
    assert.equal(fmtEventsPerSec(12.54), '12.5 ev/s');
    assert.equal(fmtEventsPerSec(0.35), '0.35 ev/s');
    assert.equal(fmtEventsPerSec(0), '0 ev/s');
  });
});

describe('decay panel', () => {
  test('PEAK is the highest plotted point, not the fit\'s smoothed start', () => {
    const curve = [
      { t: 1, observed_per_min: 120, fitted_per_min: null },
      { t: 2, observed_per_min: 231, fitted_per_min: 167 },
      { t: 3, observed_per_min: 229, fitted_per_min: 150 },
      { t: 4, observed_per_min: 90, fitted_per_min: 80 },
    ];
    assert.deepEqual(plottedPeak(curve), { t: 2, perMin: 231 });
    assert.equal(plottedPeak([]), null);
    assert.equal(plottedPeak(undefined), null);
  });
  test('"fitted" only with a fit', () => {
    assert.equal(eventsLabel('ok'), 'Engagements fitted');
    assert.equal(eventsLabel('not_decaying'), 'Engagements fitted');
    assert.equal(eventsLabel('insufficient_data'), 'Engagements so far');
  });
  test('overlapping axis labels are counted', () => {
    assert.equal(overlappingLabels([0, 100, 200], [60, 60, 60]), 0);
    assert.equal(overlappingLabels([0, 50, 200], [60, 60, 60]), 1);
  });
});

describe('weak models', () => {
  test('validation R² below 0.1 (or unknown) is weak', () => {
    assert.equal(WEAK_R2, 0.1);
    const weak = modelFit({ metrics: { rmse: 0.03, mae: 0.02, r2: -1.69 } })!;
    assert.equal(weak.weak, true);
    assert.match(weak.note, /validation R² −1\.69 \(below 0\.1\).*worse than their average/);
    assert.equal(modelFit({ metrics: { rmse: 0.03, mae: 0.02, r2: 0.05 } })!.weak, true);
    assert.equal(modelFit({ metrics: { rmse: 0.03, mae: 0.02, r2: 0.38 } })!.weak, false);
    assert.equal(modelFit({ metrics: { rmse: 0.03, mae: 0.02, r2: null as unknown as number } })!.weak, true);
    assert.equal(modelFit(null), null);
  });
});

describe('triggers log numbers', () => {
  test('times as dates and relative times, *_ms as durations, rates with their interval', async () => {
    const { triggerNumbers } = await import('../app/src/lib/trigger-numbers.ts');
    const now = Date.UTC(2026, 11, 7, 13, 0, 0);
    const lines = triggerNumbers(
      {
        status: 'ok',
        events: 1204,
        peak_rate_per_min: 231.4,
        fraction: 0.25,
        fatigue_at: now + 252_000,
        half_life_ms: 126_000,
        engagement_rate_15m: 0.0412,
        engagement_rate_15m_low: 0.0381,
        engagement_rate_15m_high: 0.0445,
        forecast_in_ms: 252_000,
        p_value: 0.00002,
        ratio: 3.456,
        z: -4.12345,
      },
      now,
    );
    const by = Object.fromEntries(lines.map((l) => [l.key, `${l.label}: ${l.text}`]));
    assert.equal(by.events, 'events: 1,204');
    assert.equal(by.peak_rate_per_min, 'smoothed peak: 231/min');
    assert.equal(by.fraction, 'fatigue threshold: 25%');
    assert.match(by.fatigue_at!, /^fatigue at: \d{1,2}:04:12.*\(in 4\.2 min\)$/);
    assert.equal(by.half_life_ms, 'half-life: 2.1 min');
    assert.equal(by.engagement_rate_15m, 'engagement rate, 15 min: 4.12% (95% CI 3.81–4.45%)');
    assert.equal(by.forecast_in_ms, 'forecast in: 4.2 min');
    assert.equal(by.p_value, 'p-value: < 0.001');
    assert.equal(by.ratio, 'ratio: ×3.46');
    assert.equal(by.z, 'z: -4.12');
    // The bounds are shown with their rate, not on lines of their own; no raw epoch anywhere.
    assert.ok(!lines.some((l) => l.key.endsWith('_low') || l.key.endsWith('_high')));
    assert.ok(!lines.some((l) => /\d{1,3}(,\d{3}){4}/.test(l.text)), JSON.stringify(lines));
    // The under-performance rule's ci_low/ci_high belong to engagement_rate.
    const under = triggerNumbers({ engagement_rate: 0.021, ci_low: 0.018, ci_high: 0.025, predicted: 0.04 }, now);
    assert.deepEqual(under.map((l) => l.text), ['2.10% (95% CI 1.80–2.50%)', '4.00%']);
  });
});

describe('shareable campaign URLs and CSV export', () => {
  test('window, sort and filters round-trip through the URL; defaults are left out', async () => {
    const { campaignQuery, parseCampaignState, DEFAULT_STATE } = await import('../app/src/lib/view-state.ts');
    assert.equal(campaignQuery(DEFAULT_STATE), '');
    const s = { window: '15m' as const, sort: 'impressions' as const, dir: 'asc' as const, q: 'spring sale', hide: true };
    const q = campaignQuery(s);
    assert.equal(q, '?w=15m&sort=impressions&dir=asc&q=spring+sale&hide=1');
    assert.deepEqual(parseCampaignState(q), s);
    // Unknown values are ignored; no window named: null (the page keeps the one in use).
    assert.deepEqual(parseCampaignState('?w=2d&sort=evil&dir=up'), { window: null, sort: 'ctr', dir: 'desc', q: '', hide: false });
    assert.equal(campaignQuery({ ...DEFAULT_STATE, sort: 'asset', dir: 'asc' }), '?sort=asset');
    assert.deepEqual(parseCampaignState('?sort=asset').dir, 'asc');
  });
  test('CSV: the rows in order with rank, tie, counts and intervals; cells escaped', async () => {
    const { csvCell, leaderboardCsv } = await import('../app/src/lib/csv.ts');
    const { ViewDecoder } = await import('@afterglow/core/live-protocol');
    const { order, rowOf } = await import('../app/src/lib/leaderboard.ts');
    const d = new ViewDecoder();
    const mk = (id: string, imp: number, clicks: number, half: number) => {
      const p = clicks / imp;
      return rowOf(d.decode({ kind: 'asset', id, n: 1, w: { '1h': [imp, 0, clicks, 0, 0, 0, 0, 0, 0, 0, [p, p - half, p + half, 1], [p, p - half, p + half, 1], [0, 0, 1, 1]] }, vel: [12, 3, 0, 'steady'] }, 0), '1h');
    };
    const rows = new Map([mk('a', 1000, 50, 0.01), mk('b', 1000, 48, 0.01), mk('c', 1000, 10, 0.004)].map((r) => [r.id, r]));
    const o = order(rows.values(), 'ctr', 'desc', { text: '', hideNotEnough: false });
    const lines = leaderboardCsv(o, rows, '1h').trimEnd().split('\r\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^rank,tied,asset_id,window,impressions,clicks,/);
    assert.match(lines[1]!, /^1,true,a,1h,1000,50,0,0,0,50,0\.05,0\.04,0\.06,true,/);
    assert.match(lines[2]!, /^1,true,b,1h,1000,48,/);
    assert.match(lines[3]!, /^3,false,c,1h,1000,10,.*,12$/);
    assert.equal(csvCell('=cmd()'), "'=cmd()");
    assert.equal(csvCell('a,"b"'), '"a,""b"""');
    assert.equal(csvCell(null), '');
  });
});

describe('durations', () => {
  test('hours and minutes never read "60 min": 2 h 59.9 min is 3 h 0 min', async () => {
    const { fmtDuration } = await import('../app/src/lib/format.ts');
    const MIN = 60_000;
    assert.equal(fmtDuration(3 * 60 * MIN - 3_000), '3 h 0 min');
    assert.equal(fmtDuration(2 * 60 * MIN + 59 * MIN), '2 h 59 min');
    assert.equal(fmtDuration(90 * MIN), '1 h 30 min');
    assert.equal(fmtDuration(36 * 60 * MIN - 1_000), '1.5 d');
    assert.equal(fmtDuration(6 * 60 * MIN), '6 h 0 min');
    for (let ms = 90 * MIN; ms < 36 * 60 * MIN; ms += 7_919) assert.doesNotMatch(fmtDuration(ms), /\b60 min/, String(ms));
  });
});

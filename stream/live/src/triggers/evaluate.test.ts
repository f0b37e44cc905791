import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fatigueParamsSchema, mulberry32, tieAnomalyParamsSchema, underperformanceParamsSchema, velocitySpikeParamsSchema } from '@afterglow/core';
import { windowView, type WindowView } from '../live/rates.js';
import { COLUMNS, KIND_INDEX } from '../live/windows.js';
import { binomialLowerP, fatigue, normalCdf, poissonUpperTail, tieAnomaly, twoProportionZ, underMedian, underPredicted, velocitySpike } from './evaluate.js';
import { hintsOf } from './engine.js';

const CI = { maxRelWidth: 0.5, maxAbsWidth: 0.01 };
const view = (impressions: number, clicks: number): WindowView => {
  const sums = new Float64Array(COLUMNS);
  sums[KIND_INDEX.impression] = impressions;
  sums[KIND_INDEX.click] = clicks;
  return windowView(sums, CI);
};

test('normal CDF, Poisson tail and the proportion tests match known values', () => {
  assert.ok(Math.abs(normalCdf(0) - 0.5) < 1e-7);
  assert.ok(Math.abs(normalCdf(1.959963985) - 0.975) < 1e-6);
  assert.ok(Math.abs(normalCdf(-2.326347874) - 0.01) < 1e-6);
  // P(X >= 10 | Poisson(3)) = 0.0011025
  assert.ok(Math.abs(poissonUpperTail(10, 3) - 0.0011025) < 1e-6);
  // P(X >= 2 | Poisson(3)) = 1 - e^-3 (1 + 3) = 0.8008517
  assert.ok(Math.abs(poissonUpperTail(2, 3) - 0.8008517) < 1e-6);
  assert.equal(poissonUpperTail(0, 5), 1);
  const { p } = binomialLowerP(20, 1000, 0.04);
  assert.ok(p < 0.001, 'two percent out of 1,000 is clearly below four percent');
  assert.ok(binomialLowerP(38, 1000, 0.04).p > 0.3);
  assert.ok(twoProportionZ(100, 1000, 50, 1000) > 3);
  assert.equal(twoProportionZ(0, 0, 1, 10), 0);
});

test('fatigue: an exponentially fading series fires, a steady one does not', () => {
  const p = fatigueParamsSchema.parse({ fraction: 0.5 });
  const now = 20 * 60_000;
  const random = mulberry32(7);
  const poisson = (mean: number) => {
    let k = 0;
    let t = Math.exp(-mean);
    let s = t;
    const u = random();
    while (u > s && k < 10_000) {
      k++;
      t *= mean / k;
      s += t;
    }
    return k;
  };
  const series = (rate: (m: number) => number) => Array.from({ length: 20 }, (_, m) => ({ start: m * 60_000, end: (m + 1) * 60_000, count: poisson(rate(m)) }));
  const windows = { '15m': view(3000, 60), '1h': view(6000, 200) };
  const fading = fatigue({ bins: series((m) => 100 * Math.exp(-0.3 * m)), windows }, p, now);
  assert.equal(fading.holds, true, fading.reason);
  assert.ok(Number(fading.numbers.of_peak) < 0.5);
  assert.match(fading.reason, /fitted peak/);
  const steady = fatigue({ bins: series(() => 40), windows }, p, now);
  assert.equal(steady.holds, false, JSON.stringify(steady.numbers));
  // Forecast: a slow fade that will cross within the horizon fires early only when within_ms reaches it.
  const slow = series((m) => 100 * Math.exp(-0.02 * m));
  const later = fatigue({ bins: slow, windows }, p, now);
  assert.equal(later.holds, false, 'half-life ~35 min: not fatigued yet');
  const ahead = Number(later.numbers.forecast_in_ms);
  assert.ok(ahead > 0);
  assert.equal(fatigue({ bins: slow, windows }, { ...p, within_ms: ahead + 60_000 }, now).holds, true);
});

test('under-performance: against the prediction and against the campaign median', () => {
  const p = underperformanceParamsSchema.parse({ versus: 'predicted', margin: 0.2, min_impressions: 500 });
  assert.equal(underPredicted(view(2000, 30), { predicted: 0.04, model_version: 'm1' }, p).holds, true, '1.5 % vs 4 % predicted');
  assert.equal(underPredicted(view(2000, 75), { predicted: 0.04, model_version: 'm1' }, p).holds, false, '3.75 % is within the margin');
  assert.equal(underPredicted(view(100, 0), { predicted: 0.04, model_version: 'm1' }, p).holds, false, 'too few impressions');
  assert.equal(underPredicted(view(2000, 30), undefined, p).holds, false, 'nothing predicted');
  const m = underperformanceParamsSchema.parse({ versus: 'campaign_median', min_impressions: 500 });
  const peers = [
    { asset_id: 'a', window: view(4000, 200) },
    { asset_id: 'b', window: view(4000, 190) },
    { asset_id: 'c', window: view(4000, 210) },
    { asset_id: 'weak', window: view(4000, 80) },
    { asset_id: 'small', window: view(100, 0) },
  ];
  const v = underMedian('weak', peers, m);
  assert.equal(v.holds, true, v.reason);
  assert.ok(['a', 'b', 'c'].includes(String(v.numbers.median_asset_id)));
  assert.equal(underMedian('b', peers, m).holds, false);
  assert.equal(underMedian('small', peers, m).holds, false);
  assert.equal(underMedian('weak', peers.slice(3), m).holds, false, 'no median from two assets');
});

test('velocity spike and tie anomaly', () => {
  const s = velocitySpikeParamsSchema.parse({ factor: 3, min_per_min: 20 });
  assert.equal(velocitySpike(view(500, 90), view(3000, 90 + 14 * 10), s).holds, true, '90 in a minute after 10/min');
  assert.equal(velocitySpike(view(500, 12), view(3000, 12 + 14 * 10), s).holds, false);
  assert.equal(velocitySpike(view(500, 15), view(500, 15), s).holds, false, 'under min_per_min');
  const t = tieAnomalyParamsSchema.parse({ factor: 2, min_impressions: 500 });
  // The master's roll-up includes the ad itself.
  assert.equal(tieAnomaly(view(2000, 200), view(8000, 200 + 120), 3, 'm', t).holds, true, '10 % vs 2 %');
  assert.equal(tieAnomaly(view(2000, 10), view(8000, 10 + 240), 3, 'm', t).holds, true, '0.5 % vs 4 %');
  assert.equal(tieAnomaly(view(2000, 50), view(8000, 50 + 150), 3, 'm', t).holds, false);
  assert.equal(tieAnomaly(view(2000, 200), view(8000, 320), 0, 'm', t).holds, false, 'no other ads');
});

test('attribution hints: significant improvements first, readable', () => {
  const hints = hintsOf({
    attribution: [
      { element: 'subject_colour', edit: 'recolour:silver', delta: 0.08, ci_low: 0.05, ci_high: 0.11, n: 40 },
      { element: 'text_overlay', edit: 'remove_text', delta: 0.05, ci_low: 0.01, ci_high: 0.09, n: 40 },
      { element: 'background', edit: 'blur_background', delta: -0.04, ci_low: -0.07, ci_high: -0.01, n: 40 },
      { element: 'people', edit: 'remove_people', delta: 0.02, ci_low: -0.01, ci_high: 0.05, n: 40 },
    ],
  });
  assert.deepEqual(hints, ['subject colour silver +8% ± 3%', 'remove text overlay +5% ± 4%']);
  assert.deepEqual(hintsOf(undefined), []);
});

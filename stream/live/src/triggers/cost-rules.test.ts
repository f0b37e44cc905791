import assert from 'node:assert/strict';
import { test } from 'node:test';
import { costPerResultParamsSchema, frequencyParamsSchema, reachError, reachFigures, type DayCosts } from '@afterglow/core';
import { addDays, costPerResult, frequencyCap, poissonLowerTail } from './evaluate.js';

/** The frequency and cost-per-result conditions: each fires where it must and not a step short of it. */

const freq = (over: Record<string, unknown> = {}) => frequencyParamsSchema.parse({ max_frequency: 4, min_reach: 100, ...over });

test('frequency fires at the cap and not below it; too few viewers never judge', () => {
  const at = frequencyCap(reachFigures(200, 800), reachError(200), freq());
  assert.equal(at.holds, true);
  assert.equal(at.numbers.frequency, 4);
  assert.match(at.reason, /200 people saw it 4\.00 times each over the last 7 days/);
  const below = frequencyCap(reachFigures(200, 799), reachError(200), freq());
  assert.equal(below.holds, false);
  assert.equal(frequencyCap(reachFigures(99, 990), reachError(99), freq()).holds, false, 'reach 99 < min_reach 100, at frequency 10');
  assert.match(frequencyCap(reachFigures(99, 990), reachError(99), freq()).reason, /reach 99 < 100/);
  assert.equal(frequencyCap(undefined, reachError(0), freq()).holds, false);
  assert.equal(frequencyCap(reachFigures(200, 800), reachError(200), freq({ min_impressions: 801 })).holds, false);
});

test('frequency counts the sketch error against firing once the reach is an estimate', () => {
  const error = reachError(20_000);
  assert.equal(error.exact, false);
  assert.ok(error.relative_standard_error > 0.002 && error.relative_standard_error < 0.004);
  // 4.005 per viewer on the estimate, but under 4 with the reach at the top of its band: not fired.
  const edge = frequencyCap(reachFigures(20_000, 80_100), error, freq());
  assert.equal(edge.holds, false);
  assert.ok(Number(edge.numbers.frequency) >= 4 && Number(edge.numbers.frequency_low) < 4, JSON.stringify(edge.numbers));
  const clear = frequencyCap(reachFigures(20_000, 81_000), error, freq());
  assert.equal(clear.holds, true);
  assert.match(clear.reason, /reach \+\/- 0\.6% \(95%\)/);
});

const TODAY = '2026-06-20';
const cpr = (over: Record<string, unknown> = {}) => costPerResultParamsSchema.parse({ factor: 2, recent_days: 3, baseline_days: 28, min_results: 10, ...over });
const day = (d: string, spend: number, conversions: number, over: Partial<DayCosts> = {}): DayCosts => ({
  asset_id: 'a',
  day: d,
  currency: 'USD',
  spend,
  impressions: 1000,
  clicks: conversions * 10,
  conversions,
  conversion_value: 0,
  ...over,
});
/** 10 earlier days at 100 spend and 20 conversions a day: a CPA of 5. */
const history = Array.from({ length: 10 }, (_, i) => day(addDays(TODAY, -5 - i), 100, 20));

test('cost per result fires when the recent CPA is at least factor x its own earlier CPA, significantly', () => {
  // Recent: 600 spent for 40 conversions, a CPA of 15 = 3x. At 2x the spend should still have bought 60.
  const recent = [day(TODAY, 300, 20), day(addDays(TODAY, -2), 300, 20)];
  const v = costPerResult([...history, ...recent], TODAY, cpr());
  assert.equal(v.holds, true, v.reason);
  assert.deepEqual([v.numbers.baseline_cost_per_result, v.numbers.recent_cost_per_result, v.numbers.ratio], [5, 15, 3]);
  assert.ok(Number(v.numbers.p_value) < 0.01);
  assert.match(v.reason, /CPA over the last 3 days is 15\.00 USD, 3\.0x its own 5\.00 USD/);
  // The same spend buying 70: a CPA of 8.57, under 2x: not fired.
  const fine = costPerResult([...history, day(TODAY, 600, 70)], TODAY, cpr());
  assert.equal(fine.holds, false);
  // 3x on two conversions is noise: not fired.
  const noisy = costPerResult([...history, day(TODAY, 30, 2)], TODAY, cpr());
  assert.equal(noisy.numbers.ratio, 3);
  assert.equal(noisy.holds, false);
  // Spending with no result at all is an infinite CPA: fired once the spend should have bought enough.
  const nothing = costPerResult([...history, day(TODAY, 200, 0)], TODAY, cpr());
  assert.equal(nothing.holds, true, nothing.reason);
  assert.equal(nothing.numbers.recent_cost_per_result, null);
});

test('cost per result judges only its own window, currency and result kind', () => {
  const recent = [day(TODAY, 600, 40)];
  // Without earlier results enough, there is nothing of its own to compare with.
  assert.match(costPerResult([day(addDays(TODAY, -5), 100, 9), ...recent], TODAY, cpr()).reason, /9 conversions earlier < 10/);
  // A day before the baseline window (a very cheap one) changes nothing.
  const old = day(addDays(TODAY, -40), 1, 1000);
  assert.deepEqual(costPerResult([old, ...history, ...recent], TODAY, cpr()).numbers, costPerResult([...history, ...recent], TODAY, cpr()).numbers);
  // A day in the recent window of another currency is not mixed in.
  const eur = day(TODAY, 10_000, 0, { currency: 'EUR' });
  assert.equal(costPerResult([...history, ...recent, eur], TODAY, cpr()).numbers.recent_spend, 600);
  // Per click: clicks are 10x conversions here, so CPC rose 3x just the same.
  const cpc = costPerResult([...history, ...recent], TODAY, cpr({ result: 'click' }));
  assert.equal(cpc.holds, true);
  assert.deepEqual([cpc.numbers.baseline_cost_per_result, cpc.numbers.recent_cost_per_result], [0.5, 1.5]);
  // A day ahead of today (a clock skew) is not recent.
  assert.equal(costPerResult([...history, day(addDays(TODAY, 1), 600, 0)], TODAY, cpr()).holds, false);
});

test('Poisson lower tail matches known values', () => {
  // P(X <= 2 | 3) = e^-3 (1 + 3 + 4.5) = 0.4231901
  assert.ok(Math.abs(poissonLowerTail(2, 3) - 0.4231901) < 1e-6);
  // P(X <= 0 | 5) = e^-5
  assert.ok(Math.abs(poissonLowerTail(0, 5) - Math.exp(-5)) < 1e-9);
  assert.equal(poissonLowerTail(-1, 5), 0);
});

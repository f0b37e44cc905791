import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 as rng } from '@afterglow/core';
import { DecayTracker, fitDecay, type DecayBin } from './decay.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2025, 0, 1);


function poisson(mean: number, r: () => number): number {
  if (mean <= 0) return 0;
  if (mean > 60) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(r)));
  const l = Math.exp(-mean);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= r();
  } while (p > l);
  return k - 1;
}

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Gamma(shape, 1) by Marsaglia-Tsang, for overdispersed (bursty) rates. */
function gamma(shape: number, r: () => number): number {
  if (shape < 1) return gamma(shape + 1, r) * r() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = normal(r);
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    if (Math.log(r()) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** Minute bins: a linear rise to the peak over `riseMin`, then `rate(t)` after it. */
function series(minutes: number, riseMin: number, rate: (sincePeakMin: number) => number, r: () => number, burst = 0): DecayBin[] {
  const bins: DecayBin[] = [];
  for (let m = 0; m < minutes; m++) {
    let mean = m < riseMin ? (rate(0) * (m + 0.5)) / riseMin : rate(m + 0.5 - riseMin);
    if (burst > 0) mean *= gamma(1 / burst, r) * burst;
    bins.push({ start: T0 + m * MINUTE, end: T0 + (m + 1) * MINUTE, count: poisson(mean, r) });
  }
  return bins;
}

const within = (actual: number | null, expected: number, tolerance = 0.1) => {
  assert.ok(actual !== null, 'a half-life');
  assert.ok(Math.abs(actual - expected) / expected <= tolerance, `half-life ${(actual / MINUTE).toFixed(2)} min, expected ${(expected / MINUTE).toFixed(2)} min`);
};

const OPTIONS = { fatigueFraction: 0.25, now: T0 + 100 * 24 * 60 * MINUTE };

test('decay: exponential series with known half-lives are recovered within 10% and chosen as exponential', () => {
  for (const [i, halfLifeMin] of [8, 30, 90, 240].entries()) {
    const lambda = Math.LN2 / halfLifeMin;
    const bins = series(15 + halfLifeMin * 6, 15, (t) => 40 * Math.exp(-lambda * t), rng(100 + i));
    const fit = fitDecay(bins, OPTIONS);
    assert.equal(fit.status, 'ok');
    assert.equal(fit.model, 'exponential', `half-life ${halfLifeMin}`);
    within(fit.half_life_ms, halfLifeMin * MINUTE);
    const [lo, hi] = fit.half_life_ci!;
    assert.ok(lo <= fit.half_life_ms! && hi !== null && fit.half_life_ms! <= hi, 'the interval holds the estimate');
    // Fatigue at 25% of the peak: two half-lives after the peak.
    assert.ok(Math.abs(fit.fatigue_at! - (fit.peak_at! + 2 * fit.half_life_ms!)) < 2 * MINUTE + 0.05 * fit.half_life_ms!);
    assert.equal(fit.fatigued, true);
  }
});

test('decay: power-law series are recognised and their half-life recovered within 10%', () => {
  const cases = [
    { tau: 20, alpha: 1.5 },
    { tau: 60, alpha: 0.9 },
  ];
  for (const [i, { tau, alpha }] of cases.entries()) {
    const bins = series(12 * 60, 10, (t) => 60 * (1 + t / tau) ** -alpha, rng(200 + i));
    const fit = fitDecay(bins, OPTIONS);
    assert.equal(fit.status, 'ok');
    assert.equal(fit.model, 'power_law');
    within(fit.half_life_ms, tau * (2 ** (1 / alpha) - 1) * MINUTE);
    assert.ok(fit.models.exponential && fit.models.power_law!.qaic < fit.models.exponential.qaic);
  }
});

test('decay: the online tracker (adaptive bins, bounded state) recovers the same half-life', () => {
  for (const [i, halfLifeMin] of [15, 60, 180].entries()) {
    const lambda = Math.LN2 / halfLifeMin;
    const bins = series(10 + halfLifeMin * 7, 10, (t) => 30 * Math.exp(-lambda * t), rng(300 + i));
    const tracker = new DecayTracker();
    for (const b of bins) tracker.absorb(Math.floor(b.start / MINUTE), b.count);
    assert.ok(tracker.binCount <= 64);
    const restored = DecayTracker.fromJSON(tracker.toJSON());
    assert.deepEqual(restored.toBins(), tracker.toBins());
    const fit = fitDecay(restored.toBins(), OPTIONS);
    assert.equal(fit.status, 'ok');
    within(fit.half_life_ms, halfLifeMin * MINUTE);
  }
});

test('decay: noisy, bursty series do not crash and give sensible intervals that hold the truth', () => {
  let covered = 0;
  const runs = 12;
  for (let i = 0; i < runs; i++) {
    const r = rng(400 + i);
    const halfLifeMin = 20 + 10 * i;
    const lambda = Math.LN2 / halfLifeMin;
    // Gamma-mixed rates (variance 3x Poisson and more), random spikes and dead minutes.
    const bins = series(10 + halfLifeMin * 6, 10, (t) => 25 * Math.exp(-lambda * t), r, 0.6).map((b) => {
      const u = r();
      return u < 0.03 ? { ...b, count: b.count * 8 + 20 } : u < 0.08 ? { ...b, count: 0 } : b;
    });
    const fit = fitDecay(bins, { ...OPTIONS, curve: true });
    assert.equal(fit.status, 'ok', `run ${i}`);
    assert.ok(fit.dispersion! > 1.5, `burstiness is measured: ${fit.dispersion}`);
    const [lo, hi] = fit.half_life_ci!;
    assert.ok(Number.isFinite(lo) && lo > 0 && lo <= fit.half_life_ms!, `run ${i}: low end ${lo}`);
    assert.ok(hi === null || hi >= fit.half_life_ms!, `run ${i}: high end ${hi}`);
    // Sensible: not absurdly wide when the decay is clear.
    assert.ok(hi !== null && hi / lo < 4, `run ${i} interval ${lo}..${hi} est ${fit.half_life_ms} model ${fit.model} truth ${halfLifeMin * MINUTE}`);
    const truth = halfLifeMin * MINUTE;
    if (lo <= truth && (hi === null || truth <= hi)) covered++;
    assert.equal(fit.curve!.length, bins.length);
    assert.ok(fit.forecast!.length > 0, 'a forecast');
  }
  // A 95% interval (quasi-Poisson) should hold the truth in nearly every run.
  assert.ok(covered >= runs - 2, `covered ${covered}/${runs}`);
});

test('decay: degenerate series are reported, never thrown', () => {
  const opts = { ...OPTIONS, curve: true };
  assert.equal(fitDecay([], opts).status, 'insufficient_data');
  const zeros = Array.from({ length: 50 }, (_, m) => ({ start: T0 + m * MINUTE, end: T0 + (m + 1) * MINUTE, count: 0 }));
  assert.equal(fitDecay(zeros, opts).status, 'insufficient_data');
  assert.equal(fitDecay([{ start: T0, end: T0 + MINUTE, count: 500 }], opts).status, 'insufficient_data');
  // Still rising: the peak is the last bins, too few points after it.
  const rising = Array.from({ length: 60 }, (_, m) => ({ start: T0 + m * MINUTE, end: T0 + (m + 1) * MINUTE, count: m }));
  assert.equal(fitDecay(rising, opts).status, 'insufficient_data');
  // Flat: no decay to speak of; whatever is chosen, no crash and a coherent answer.
  const flat = series(300, 0, () => 20, rng(7));
  const f = fitDecay(flat, opts);
  assert.ok(f.status === 'not_decaying' || (f.half_life_ci !== null && (f.half_life_ci[1] === null || f.half_life_ms! > 60 * MINUTE)));
  // Garbage in the bins is ignored.
  const junk = [...series(120, 5, (t) => 30 * Math.exp(-t / 20), rng(8)), { start: T0, end: T0, count: 5 }, { start: T0, end: T0 + MINUTE, count: Number.NaN }];
  assert.equal(fitDecay(junk, opts).status, 'ok');
  assert.equal(DecayTracker.fromJSON('{not json').binCount, 0);
});

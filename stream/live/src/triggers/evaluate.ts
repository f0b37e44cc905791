import type {
  AssetScore,
  CostPerResultParams,
  DayCosts,
  FatigueParams,
  FrequencyParams,
  ReachFigures,
  TieAnomalyParams,
  UnderperformanceParams,
  VelocitySpikeParams,
} from '@afterglow/core';
import { fitDecay, type DecayFit } from '../live/decay.js';
import { ENGAGEMENT_KINDS, wilson, type WindowView } from '../live/rates.js';

/**
 * The trigger conditions, as pure functions of live metrics: each says whether its condition holds
 * now and, when it does, the numbers that crossed the threshold and a sentence a person can read.
 * Significance is tested, not eyeballed: one-sided binomial tests against a reference rate,
 * two-proportion z-tests between assets, a Poisson tail for spikes.
 */

export type Numbers = Record<string, number | string | null>;

export interface Verdict {
  holds: boolean;
  reason: string;
  numbers: Numbers;
}

const NO = (reason: string, numbers: Numbers = {}): Verdict => ({ holds: false, reason, numbers });

// ---- statistics -----------------------------------------------------------------------------------

/** Standard normal CDF, from the Abramowitz-Stegun 7.1.26 erfc approximation (absolute error < 1.5e-7). */
export function normalCdf(z: number): number {
  if (!Number.isFinite(z)) return z > 0 ? 1 : 0;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erfc = poly * Math.exp(-x * x);
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** log Gamma (Lanczos, g = 7); exact enough for Poisson tails. */
export function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const xx = x - 1;
  let a = c[0]!;
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** P(X >= k) for X ~ Poisson(lambda). */
export function poissonUpperTail(k: number, lambda: number): number {
  if (k <= 0) return 1;
  if (!(lambda > 0)) return 0;
  // Sum the upper tail from k while terms matter (it is the smaller side when k > lambda).
  if (k > lambda) {
    let logTerm = -lambda + k * Math.log(lambda) - logGamma(k + 1);
    let sum = 0;
    for (let j = k; j < k + 10_000; j++) {
      const term = Math.exp(logTerm);
      sum += term;
      if (term < sum * 1e-12) break;
      logTerm += Math.log(lambda) - Math.log(j + 1);
    }
    return Math.min(1, sum);
  }
  let logTerm = -lambda;
  let below = 0;
  for (let j = 0; j < k; j++) {
    below += Math.exp(logTerm);
    logTerm += Math.log(lambda) - Math.log(j + 1);
  }
  return Math.max(0, 1 - below);
}

/** One-sided test of H0: p >= p0 from s successes in n trials (normal approximation); the p-value. */
export function binomialLowerP(s: number, n: number, p0: number): { z: number; p: number } {
  if (!(n > 0) || !(p0 > 0) || !(p0 < 1)) return { z: 0, p: 1 };
  const z = (s / n - p0) / Math.sqrt((p0 * (1 - p0)) / n);
  return { z, p: normalCdf(z) };
}

/** Two-proportion z-test (pooled); z > 0 when the first rate is higher. */
export function twoProportionZ(s1: number, n1: number, s2: number, n2: number): number {
  if (!(n1 > 0) || !(n2 > 0)) return 0;
  const p = (s1 + s2) / (n1 + n2);
  const se = Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
  return se > 0 ? (s1 / n1 - s2 / n2) / se : 0;
}

// ---- window helpers ---------------------------------------------------------------------------------

export function engagements(w: WindowView): number {
  return ENGAGEMENT_KINDS.reduce((a, k) => a + w.counts[k], 0);
}

/** Engagement successes capped at trials (a proportion's test needs s <= n). */
function successes(w: WindowView): number {
  return Math.min(engagements(w), w.counts.impression);
}

const r4 = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)) : null);
const pct = (x: number) => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)}%`;

// ---- conditions -------------------------------------------------------------------------------------

export interface DecayInput {
  /** The decay series of the asset (stream/live/src/live/state.ts decaySeries). */
  bins: Parameters<typeof fitDecay>[0];
  windows: Record<'15m' | '1h', WindowView>;
}

/** Fatigue: the fitted engagement rate is below `fraction` of its fitted peak, or will be within `within_ms`. */
export function fatigue(input: DecayInput, p: FatigueParams, now: number): Verdict & { fit: DecayFit } {
  const fit = fitDecay(input.bins, { fatigueFraction: p.fraction, now, minEvents: p.min_events });
  const er = input.windows['15m'].engagement_rate;
  const numbers: Numbers = {
    status: fit.status,
    events: fit.events,
    peak_rate_per_min: fit.peak_rate_per_min,
    fraction: p.fraction,
    fatigue_at: fit.fatigue_at,
    half_life_ms: fit.half_life_ms,
    model: fit.model,
    engagement_rate_15m: r4(er.value),
    engagement_rate_15m_low: r4(er.low),
    engagement_rate_15m_high: r4(er.high),
  };
  if (fit.status !== 'ok' || fit.fatigue_at === null) return { ...NO(`decay fit: ${fit.status}`, numbers), fit };
  const fitted = fittedNow(fit, now);
  numbers.fitted_now_per_min = r4(fitted);
  const peak = fit.models[fit.model!]?.rate0_per_min ?? fit.peak_rate_per_min ?? 0;
  numbers.fitted_peak_per_min = r4(peak);
  numbers.of_peak = peak > 0 ? r4(fitted / peak) : null;
  const ahead = fit.fatigue_at - now;
  numbers.forecast_in_ms = Math.max(0, Math.round(ahead));
  const holds = fit.fatigued || ahead <= p.within_ms;
  const half = fit.half_life_ms === null ? 'n/a' : `${(fit.half_life_ms / 60_000).toFixed(1)} min`;
  const reason = fit.fatigued
    ? `engagement fell to ${pct(peak > 0 ? fitted / peak : 0)} of its fitted peak (${fitted.toFixed(2)}/min vs ${peak.toFixed(2)}/min; threshold ${pct(p.fraction)}), half-life ${half}`
    : `engagement is forecast to fall below ${pct(p.fraction)} of its fitted peak in ${Math.round(ahead / 60_000)} min (within ${Math.round(p.within_ms / 60_000)} min), half-life ${half}`;
  return { holds, reason: holds ? reason : 'not fatigued', numbers, fit };
}

function fittedNow(fit: DecayFit, now: number): number {
  const m = fit.model === 'power_law' ? fit.models.power_law : fit.models.exponential;
  if (!m || fit.peak_at === null) return 0;
  const t = Math.max(0, (now - fit.peak_at) / 60_000);
  if (m.model === 'exponential') return m.rate0_per_min * Math.exp(-(m.lambda_per_min ?? 0) * t);
  return m.rate0_per_min * (1 + t / (m.tau_min ?? 1)) ** -(m.alpha ?? 0);
}

/** Under-performance against the model's prediction: the rate is significantly below predicted x (1 - margin). */
export function underPredicted(w: WindowView, score: Pick<AssetScore, 'predicted' | 'model_version'> | undefined, p: UnderperformanceParams): Verdict {
  if (!score) return NO('no prediction (assets.scores) for this asset');
  const n = w.counts.impression;
  if (n < p.min_impressions) return NO(`${n} impressions < ${p.min_impressions}`);
  const threshold = score.predicted * (1 - p.margin);
  const s = successes(w);
  const { z, p: pValue } = binomialLowerP(s, n, threshold);
  const ci = wilson(s, n);
  const numbers: Numbers = {
    window: p.window,
    impressions: n,
    engagements: s,
    engagement_rate: r4(s / n),
    ci_low: r4(ci.low),
    ci_high: r4(ci.high),
    predicted: r4(score.predicted),
    threshold: r4(threshold),
    z: r4(z),
    p_value: r4(pValue),
    model_version: score.model_version,
  };
  const holds = pValue < p.alpha;
  return {
    holds,
    reason: holds
      ? `engagement rate ${pct(s / n)} (95% CI ${pct(ci.low)}-${pct(ci.high)}, ${n} impressions, ${p.window}) is below ${pct(threshold)} = predicted ${pct(score.predicted)} - ${Math.round(p.margin * 100)}% (p = ${pValue.toExponential(1)})`
      : 'as predicted',
    numbers,
  };
}

export interface Peer {
  asset_id: string;
  window: WindowView;
}

/** Under-performance against the campaign: significantly below the median asset (by rate) of the campaign. */
export function underMedian(assetId: string, peers: readonly Peer[], p: UnderperformanceParams): Verdict {
  const self = peers.find((x) => x.asset_id === assetId);
  if (!self) return NO('no live window');
  const n = self.window.counts.impression;
  if (n < p.min_impressions) return NO(`${n} impressions < ${p.min_impressions}`);
  const eligible = peers.filter((x) => x.window.counts.impression >= p.min_impressions).map((x) => ({ ...x, rate: successes(x.window) / x.window.counts.impression }));
  if (eligible.length < 3) return NO(`${eligible.length} assets with enough impressions in the campaign (3 needed for a median)`);
  eligible.sort((a, b) => a.rate - b.rate || (a.asset_id < b.asset_id ? -1 : 1));
  const median = eligible[Math.floor(eligible.length / 2)]!;
  if (median.asset_id === assetId) return NO('is the median');
  const s = successes(self.window);
  const rate = s / n;
  const ms = successes(median.window);
  const mn = median.window.counts.impression;
  const z = twoProportionZ(s, n, ms, mn);
  const pValue = normalCdf(z);
  const ci = wilson(s, n);
  const mci = wilson(ms, mn);
  const numbers: Numbers = {
    window: p.window,
    impressions: n,
    engagement_rate: r4(rate),
    ci_low: r4(ci.low),
    ci_high: r4(ci.high),
    median_asset_id: median.asset_id,
    median_rate: r4(median.rate),
    median_ci_low: r4(mci.low),
    median_ci_high: r4(mci.high),
    assets_compared: eligible.length,
    z: r4(z),
    p_value: r4(pValue),
  };
  const holds = pValue < p.alpha && rate <= median.rate * (1 - p.margin);
  return {
    holds,
    reason: holds
      ? `engagement rate ${pct(rate)} (95% CI ${pct(ci.low)}-${pct(ci.high)}) is ${Math.round((1 - rate / median.rate) * 100)}% below the campaign median ${pct(median.rate)} (${median.asset_id}, ${eligible.length} assets, ${p.window}; p = ${pValue.toExponential(1)})`
      : 'not significantly below the campaign median',
    numbers,
  };
}

/** A velocity spike: the last minute's engagements against the 14 minutes before (Poisson tail). */
export function velocitySpike(w1m: WindowView, w15m: WindowView, p: VelocitySpikeParams): Verdict {
  const last = engagements(w1m);
  const baseline = Math.max(0, engagements(w15m) - last) / 14;
  const lambda = Math.max(baseline, 0.5);
  const ratio = last / lambda;
  const pValue = poissonUpperTail(Math.round(last), lambda);
  const numbers: Numbers = {
    engagements_1m: Math.round(last),
    baseline_per_min: r4(baseline),
    ratio: r4(ratio),
    factor: p.factor,
    p_value: r4(pValue),
    impressions_1m: w1m.counts.impression,
  };
  const holds = last >= p.min_per_min && ratio >= p.factor && pValue < p.alpha;
  return {
    holds,
    reason: holds
      ? `${Math.round(last)} engagements in the last minute, ${ratio.toFixed(1)}x the baseline of ${baseline.toFixed(1)}/min (p = ${pValue.toExponential(1)})`
      : 'no spike',
    numbers,
  };
}

/**
 * A tie anomaly: an ad performs far outside (`factor` either way) the other ads tied to the same
 * master (the master's roll-up minus this ad), significantly (two-sided two-proportion test).
 */
export function tieAnomaly(ad: WindowView, master: WindowView, otherAds: number, masterId: string, p: TieAnomalyParams): Verdict {
  if (otherAds < p.min_other_ads) return NO(`${otherAds} other ads tied to ${masterId}`);
  const n = ad.counts.impression;
  const on = master.counts.impression - n;
  if (n < p.min_impressions || on < p.min_impressions) return NO('not enough impressions');
  const s = successes(ad);
  const os = Math.max(0, Math.min(engagements(master) - engagements(ad), on));
  const rate = s / n;
  const others = os / on;
  const z = twoProportionZ(s, n, os, on);
  const pValue = 2 * (1 - normalCdf(Math.abs(z)));
  const ratio = others > 0 ? rate / others : rate > 0 ? Infinity : 1;
  const numbers: Numbers = {
    window: p.window,
    master_asset_id: masterId,
    impressions: n,
    engagement_rate: r4(rate),
    others_rate: r4(others),
    others_impressions: on,
    other_ads: otherAds,
    ratio: r4(ratio),
    z: r4(z),
    p_value: r4(pValue),
  };
  const far = ratio >= p.factor || ratio <= 1 / p.factor;
  const holds = far && pValue < p.alpha;
  return {
    holds,
    reason: holds
      ? `engagement rate ${pct(rate)} is ${ratio >= 1 ? `${ratio.toFixed(1)}x above` : `${(1 / Math.max(ratio, 1e-9)).toFixed(1)}x below`} the ${otherAds} other ads of master ${masterId} (${pct(others)}; p = ${pValue.toExponential(1)}): a wrong tie, or a variant worth learning from`
      : 'in line with its master',
    numbers,
  };
}

/**
 * Frequency fatigue: the same people see the creative too often. Fires when impressions per unique
 * viewer over the rule's days reach `max_frequency` even with the reach taken at the top of its
 * sketch's 95 % band (an over-counted reach makes the frequency look lower, never higher), so the
 * sketch's error cannot make it fire.
 */
export function frequencyCap(reach: ReachFigures | undefined, error: { exact: boolean; relative_standard_error: number }, p: FrequencyParams): Verdict {
  if (!reach || reach.reach === 0) return NO(`no viewer ids in the last ${p.days} days`);
  if (reach.impressions < p.min_impressions) return NO(`${reach.impressions} impressions with a viewer < ${p.min_impressions}`);
  if (reach.reach < p.min_reach) return NO(`reach ${reach.reach} < ${p.min_reach}`);
  const frequency = reach.impressions / reach.reach;
  const reachHigh = error.exact ? reach.reach : reach.reach * (1 + 2 * error.relative_standard_error);
  const frequencyLow = reach.impressions / reachHigh;
  const numbers: Numbers = {
    days: p.days,
    reach: reach.reach,
    impressions: reach.impressions,
    frequency: r4(frequency),
    frequency_low: r4(frequencyLow),
    max_frequency: p.max_frequency,
    reach_exact: error.exact ? 1 : 0,
    reach_relative_standard_error: error.relative_standard_error,
  };
  const holds = frequencyLow >= p.max_frequency;
  const band = error.exact ? 'reach exact' : `reach +/- ${(2 * error.relative_standard_error * 100).toFixed(1)}% (95%)`;
  return {
    holds,
    reason: holds
      ? `${reach.reach} people saw it ${frequency.toFixed(2)} times each over the last ${p.days} days (${reach.impressions} impressions; ${band}), at or above the cap of ${p.max_frequency}`
      : 'frequency under the cap',
    numbers,
  };
}

/** P(X <= k) for X ~ Poisson(lambda). */
export function poissonLowerTail(k: number, lambda: number): number {
  if (k < 0) return 0;
  return Math.max(0, 1 - poissonUpperTail(Math.floor(k) + 1, lambda));
}

/** Adds days to a YYYY-MM-DD day. */
export function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/**
 * Cost per result against the asset's own history: the last `recent_days` (today included) against
 * the `baseline_days` before them, in the currency the asset spent most in earlier. Fires when the
 * recent cost per result is at least `factor` x the earlier one AND significantly so: under "it is
 * below factor x", the recent spend should have bought at least spend x (earlier results per unit
 * spent) / factor results; fewer than that by chance has a Poisson probability below `alpha`.
 */
export function costPerResult(days: readonly DayCosts[], today: string, p: CostPerResultParams): Verdict {
  const recentFrom = addDays(today, -(p.recent_days - 1));
  const baseFrom = addDays(recentFrom, -p.baseline_days);
  const resultsOf = (d: DayCosts) => (p.result === 'click' ? d.clicks : d.conversions);
  const sums = new Map<string, { base: { spend: number; results: number }; recent: { spend: number; results: number; impressions: number } }>();
  for (const d of days) {
    if (d.day < baseFrom || d.day > today) continue;
    const s = sums.get(d.currency) ?? { base: { spend: 0, results: 0 }, recent: { spend: 0, results: 0, impressions: 0 } };
    if (d.day >= recentFrom) {
      s.recent.spend += d.spend;
      s.recent.results += resultsOf(d);
      s.recent.impressions += d.impressions;
    } else {
      s.base.spend += d.spend;
      s.base.results += resultsOf(d);
    }
    sums.set(d.currency, s);
  }
  const [currency, s] = [...sums].sort((a, b) => b[1].base.spend - a[1].base.spend)[0] ?? [];
  const label = p.result === 'click' ? 'CPC' : 'CPA';
  if (!currency || !s || s.base.spend <= 0) return NO(`no spend in the ${p.baseline_days} days before the last ${p.recent_days}`);
  if (s.base.results < p.min_results) return NO(`${s.base.results} ${p.result}s earlier < ${p.min_results}: no ${label} of its own to compare with`);
  if (s.recent.spend <= 0) return NO(`no spend in the last ${p.recent_days} days`);
  if (s.recent.impressions < p.min_impressions) return NO(`${s.recent.impressions} impressions in the last ${p.recent_days} days < ${p.min_impressions}`);
  const baseCost = s.base.spend / s.base.results;
  const recentCost = s.recent.results > 0 ? s.recent.spend / s.recent.results : Infinity;
  const expectedAtFactor = (s.recent.spend / baseCost) / p.factor;
  const pValue = poissonLowerTail(s.recent.results, expectedAtFactor);
  const ratio = recentCost / baseCost;
  const numbers: Numbers = {
    result: p.result,
    currency,
    recent_from: recentFrom,
    baseline_from: baseFrom,
    recent_spend: r4(s.recent.spend),
    recent_results: s.recent.results,
    recent_cost_per_result: Number.isFinite(recentCost) ? r4(recentCost) : null,
    baseline_spend: r4(s.base.spend),
    baseline_results: s.base.results,
    baseline_cost_per_result: r4(baseCost),
    ratio: Number.isFinite(ratio) ? r4(ratio) : null,
    factor: p.factor,
    p_value: r4(pValue),
  };
  const holds = ratio >= p.factor && pValue < p.alpha;
  const recentText = Number.isFinite(recentCost) ? `${recentCost.toFixed(2)} ${currency}` : `no ${p.result}s for ${s.recent.spend.toFixed(2)} ${currency}`;
  const times = Number.isFinite(ratio) ? `${ratio.toFixed(1)}x` : 'infinitely';
  const earlier = `its own ${baseCost.toFixed(2)} ${currency} over the ${p.baseline_days} days before`;
  return {
    holds,
    reason: holds
      ? `${label} over the last ${p.recent_days} days is ${recentText}, ${times} ${earlier} (threshold ${p.factor}x; p = ${pValue.toExponential(1)})`
      : `${label} not significantly ${p.factor}x its own earlier`,
    numbers,
  };
}

import { EVENT_KINDS, type EventKind } from '@afterglow/core';
import { COLUMNS, KIND_COUNT, KIND_INDEX, WINDOWS, type Buckets, type WindowName } from './windows.js';

/**
 * Rates over window sums, with 95% Wilson score intervals. A rate whose interval is wider than
 * max(absolute, relative x rate) is flagged `enough: false` ("not enough data"): it is shown, but
 * leaderboards do not rank it.
 *
 *   CTR              clicks / impressions
 *   engagement rate  (clicks + likes + shares + comments) / impressions
 *   shares per 1k    1000 x shares / impressions
 */

export const Z95 = 1.959963984540054;
export const ENGAGEMENT_KINDS: readonly EventKind[] = ['click', 'like', 'share', 'comment'];
export const ENGAGEMENT_INDEXES: readonly number[] = ENGAGEMENT_KINDS.map((k) => KIND_INDEX[k]);
export const RATE_NAMES = ['ctr', 'engagement_rate', 'shares_per_1k'] as const;
export type RateName = (typeof RATE_NAMES)[number];

export interface CiPolicy {
  /** Interval wider than this fraction of the rate is not enough data... */
  maxRelWidth: number;
  /** ...unless it is narrower than this absolute width (rates near zero). */
  maxAbsWidth: number;
}

export interface Interval {
  value: number;
  low: number;
  high: number;
}

export interface RateEstimate extends Interval {
  /** False: the interval is too wide to rank on ("not enough data"). */
  enough: boolean;
}

/** Wilson score interval for `successes` out of `trials` (successes are capped at trials). */
export function wilson(successes: number, trials: number, z = Z95): Interval {
  if (!(trials > 0)) return { value: 0, low: 0, high: 1 };
  const s = Math.min(Math.max(successes, 0), trials);
  const p = s / trials;
  const z2 = z * z;
  const denom = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denom;
  return { value: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** A proportion with its interval and the not-enough-data flag; `scale` turns it into per-1k etc. */
export function rate(successes: number, trials: number, policy: CiPolicy, scale = 1): RateEstimate {
  const w = wilson(successes, trials);
  const width = w.high - w.low;
  const enough = trials > 0 && width <= Math.max(policy.maxAbsWidth, policy.maxRelWidth * w.value);
  // The point value is the plain ratio (engagements can outnumber impressions); the interval is
  // the proportion's, which is what the ranking relies on.
  const value = trials > 0 ? successes / trials : 0;
  return { value: value * scale, low: w.low * scale, high: w.high * scale, enough };
}

export interface WindowView {
  counts: Record<EventKind, number>;
  dwell_ms: number;
  conversion_value: number;
  ctr: RateEstimate;
  engagement_rate: RateEstimate;
  shares_per_1k: RateEstimate;
}

export function windowView(sums: Float64Array, policy: CiPolicy): WindowView {
  const counts = {} as Record<EventKind, number>;
  for (let k = 0; k < KIND_COUNT; k++) counts[EVENT_KINDS[k]!] = Math.round(sums[k]!);
  const impressions = sums[KIND_INDEX.impression]!;
  let engagements = 0;
  for (const k of ENGAGEMENT_INDEXES) engagements += sums[k]!;
  return {
    counts,
    dwell_ms: round(sums[KIND_COUNT]!, 3),
    conversion_value: round(sums[KIND_COUNT + 1]!, 3),
    ctr: rate(sums[KIND_INDEX.click]!, impressions, policy),
    engagement_rate: rate(engagements, impressions, policy),
    shares_per_1k: rate(sums[KIND_INDEX.share]!, impressions, policy, 1000),
  };
}

export interface Velocity {
  /** Events per minute over the last minute. */
  per_min: number;
  /** Events per minute averaged over the last 15 minutes that have data (see avg_ms). */
  per_min_15m: number;
  /**
   * The time per_min_15m is averaged over: from the first minute with data in the last 15 to now
   * (1 to 15 min). Dividing by 15 after 4 minutes of data would understate the rate by almost 4x.
   */
  avg_ms: number;
  /** Least-squares slope of events/min over the last 10 whole minutes, in events/min per minute. */
  trend: number;
  direction: 'rising' | 'falling' | 'steady';
}

const ALL_KINDS: readonly number[] = EVENT_KINDS.map((_, i) => i);
const TREND_MINUTES = 10;

/** Velocity from window sums (1 min, 15 min) and tier M's last whole minutes of each entity. */
export function velocity(sums1m: Float64Array, sums15m: Float64Array, parts: readonly Buckets[], now: number): Velocity {
  const total = (s: Float64Array) => {
    let n = 0;
    for (let k = 0; k < KIND_COUNT; k++) n += s[k]!;
    return n;
  };
  const thisMinute = Math.floor(now / 60_000);
  // The first minute of the last 15 with any event: the average covers the time with data only.
  let firstMinute = thisMinute;
  for (const p of parts) {
    const mins = p.minuteSeries(thisMinute - 15, thisMinute, ALL_KINDS);
    const i = mins.findIndex((v) => v > 0);
    if (i >= 0) firstMinute = Math.min(firstMinute, thisMinute - 15 + i);
  }
  const avgMs = Math.min(15 * 60_000, Math.max(60_000, now - Math.max(now - 15 * 60_000, firstMinute * 60_000)));
  const series = new Array<number>(TREND_MINUTES).fill(0);
  for (const p of parts) p.minuteSeries(thisMinute - TREND_MINUTES, thisMinute, ALL_KINDS).forEach((v, i) => (series[i]! += v));
  const trend = slope(series);
  const mean = series.reduce((a, b) => a + b, 0) / series.length;
  // Relative change across the 10 minutes; below a quarter (or under 1 event/min) it is noise.
  const relative = (trend * TREND_MINUTES) / Math.max(mean, 1);
  return {
    per_min: round(total(sums1m), 2),
    per_min_15m: round(total(sums15m) / (avgMs / 60_000), 2),
    avg_ms: avgMs,
    trend: round(trend, 3),
    direction: relative > 0.25 ? 'rising' : relative < -0.25 ? 'falling' : 'steady',
  };
}

/** Least-squares slope of y over x = 0..n-1. */
export function slope(y: readonly number[]): number {
  const n = y.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - mx) * (y[i]! - my);
    den += (i - mx) * (i - mx);
  }
  return num / den;
}

export interface MetricsView {
  windows: Record<WindowName, WindowView>;
  velocity: Velocity;
}

/** The metrics of an entity made of `parts` (one for an asset, a share per partition for a campaign or master). */
export function metricsView(parts: readonly Buckets[], now: number, policy: CiPolicy): MetricsView {
  const sums = WINDOWS.map((w) => {
    const out = new Float64Array(COLUMNS);
    for (const p of parts) p.addWindow(w, now, out);
    return out;
  });
  const windows = {} as Record<WindowName, WindowView>;
  WINDOWS.forEach((w, i) => (windows[w.name] = windowView(sums[i]!, policy)));
  return { windows, velocity: velocity(sums[0]!, sums[1]!, parts, now) };
}

/**
 * The compact form a WebSocket client gets per window: the 8 counts in EVENT_KINDS order, dwell ms,
 * conversion value, then per rate [value, low, high, enough(1|0)] in RATE_NAMES order.
 */
export function compactWindow(v: WindowView): (number | number[])[] {
  const out: (number | number[])[] = EVENT_KINDS.map((k) => v.counts[k]);
  out.push(v.dwell_ms, v.conversion_value);
  for (const r of RATE_NAMES) {
    const e = v[r];
    out.push([sig(e.value), sig(e.low), sig(e.high), e.enough ? 1 : 0]);
  }
  return out;
}

/** Numbers for the wire: 5 significant digits are plenty for a dashboard. */
export function sig(n: number): number {
  if (n === 0 || !Number.isFinite(n)) return 0;
  return Number(n.toPrecision(5));
}

export function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

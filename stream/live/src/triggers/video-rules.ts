import type { VideoDropParams } from '@afterglow/core';
import { HOOK_SECONDS, type VideoCounts, type VideoSource } from '../live/video.js';
import { normalCdf, twoProportionZ, type Numbers, type Verdict } from './evaluate.js';

/**
 * Video fatigue rules: a video's hook rate (plays past 3 s) or completion rate, over the recent
 * minutes, against the same asset's rate over the hours before them. Fires when the recent rate is
 * at least `drop` (relative) below the earlier one AND a one-sided two-proportion z-test says the
 * fall is significant at `alpha`, with `min_starts` plays in each period. Plays are read from the
 * video rollup (exact, deduplicated), so a client's retries cannot fake a drop or hide one.
 */

export type VideoMetricName = 'hook_rate' | 'completion_rate';

/** Successes of a metric, capped at starts (duplicates beyond the plays never count; see video.ts). */
export function successesOf(c: VideoCounts, metric: VideoMetricName): number {
  const s = metric === 'hook_rate' ? (c.seconds.get(HOOK_SECONDS) ?? 0) : c.completes;
  return Math.min(s, c.starts);
}

export function videoDrop(recent: VideoCounts | undefined, earlier: VideoCounts | undefined, metric: VideoMetricName, p: VideoDropParams): Verdict {
  const name = metric === 'hook_rate' ? 'hook rate' : 'completion rate';
  const n1 = recent?.starts ?? 0;
  const n0 = earlier?.starts ?? 0;
  if (n1 < p.min_starts || n0 < p.min_starts) return { holds: false, reason: `not enough plays (${n1} recent, ${n0} earlier; ${p.min_starts} needed in each)`, numbers: {} };
  const s1 = successesOf(recent!, metric);
  const s0 = successesOf(earlier!, metric);
  const r1 = s1 / n1;
  const r0 = s0 / n0;
  // z < 0 when the recent rate is lower; the p-value of "no fall" is the lower tail.
  const z = twoProportionZ(s1, n1, s0, n0);
  const pValue = normalCdf(z);
  const relative = r0 > 0 ? (r0 - r1) / r0 : 0;
  const numbers: Numbers = {
    metric,
    recent_rate: r4(r1),
    recent_starts: n1,
    earlier_rate: r4(r0),
    earlier_starts: n0,
    relative_drop: r4(relative),
    z: r4(z),
    p_value: r4(pValue),
    recent_minutes: p.recent_minutes,
    baseline_hours: p.baseline_hours,
  };
  const holds = relative >= p.drop && r0 > 0 && pValue < p.alpha;
  return {
    holds,
    reason: holds
      ? `${name} fell to ${pct(r1)} over the last ${p.recent_minutes} min from ${pct(r0)} in the ${p.baseline_hours} h before (${n1} and ${n0} plays; p = ${pValue.toExponential(1)})`
      : `${name} holding`,
    numbers,
  };
}

/** The two periods a rule compares, as times. */
export function periods(now: number, p: Pick<VideoDropParams, 'recent_minutes' | 'baseline_hours'>): { recent: { from: number; to: number }; earlier: { from: number; to: number } } {
  const split = now - p.recent_minutes * 60_000;
  return { recent: { from: split, to: now }, earlier: { from: split - p.baseline_hours * 3_600_000, to: split } };
}

/** Reads a campaign's plays for the rules, at most every `refreshMs` per (campaign, periods). */
export class VideoPlays {
  private readonly cache = new Map<string, { at: number; value: Promise<[Map<string, VideoCounts>, Map<string, VideoCounts>]> }>();

  constructor(
    private readonly source: Pick<VideoSource, 'campaignCounts'>,
    private readonly refreshMs: number,
  ) {}

  read(tenant: string, campaign: string, p: Pick<VideoDropParams, 'recent_minutes' | 'baseline_hours'>, now: number): Promise<[Map<string, VideoCounts>, Map<string, VideoCounts>]> {
    const key = [tenant, campaign, p.recent_minutes, p.baseline_hours].join('\u0000');
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.refreshMs) return hit.value;
    const { recent, earlier } = periods(now, p);
    const value = Promise.all([this.source.campaignCounts(tenant, campaign, recent), this.source.campaignCounts(tenant, campaign, earlier)]);
    value.catch(() => {
      if (this.cache.get(key)?.value === value) this.cache.delete(key);
    });
    this.cache.delete(key);
    this.cache.set(key, { at: now, value });
    // Bounded like the cost cache: the oldest entry goes first.
    if (this.cache.size > 2_000) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }
}

function r4(n: number): number {
  return Math.round(n * 1e4) / 1e4;
}

function pct(n: number): string {
  return `${(n * 100).toFixed(1)} %`;
}

import { TABLES, sqlString, type Store } from '@afterglow/core';
import { rate, type CiPolicy, type RateEstimate } from './rates.js';

/**
 * Video engagement of an asset or a master, from the per-minute video rollup (migration 16: plays
 * by kind and milestone; exact and deduplicated, since the sink inserts every event id once).
 *
 * Definitions (all per play, a play being one `video_start`):
 *   hook rate        plays that reached 3 s (`video_seconds` 3; the web SDK also sends it when a
 *                    shorter video ends) / starts
 *   hold rate        plays that reached 50 % (`video_progress` 50) / starts
 *   completion rate  `video_complete` / starts
 *   avg watch time   sum of `video_watch` ms / starts
 *   retention        at 0 % (1 by definition), every percent step that has data (25/50/75 from the
 *                    SDK) and 100 % (completes): the share of starts still watching
 * Every share carries a 95 % Wilson interval (rates.ts). Counts are events, not viewers: a client
 * that sends a milestone twice, or progress without a start, would push a share over 1, so each
 * step is capped at the nearest step before it that has data (and at starts) and the excess is reported as `excess`
 * instead of being hidden. Ingest's rate limits bound what one viewer can send at all.
 */

export const HOOK_SECONDS = 3;
export const HOLD_PERCENT = 50;
/** Retention steps always reported (the SDK's quartiles), with or without data. */
export const QUARTILES = [25, 50, 75] as const;

export interface VideoCounts {
  starts: number;
  completes: number;
  watchMs: number;
  /** video_progress events by percent reached. */
  progress: Map<number, number>;
  /** video_seconds events by second reached. */
  seconds: Map<number, number>;
}

export interface RetentionPoint {
  percent: number;
  /** Plays counted at this step (after capping; weighted for a master). */
  plays: number;
  share: RateEstimate;
}

export interface VideoMetrics {
  starts: number;
  hook_rate: RateEstimate;
  hold_rate: RateEstimate;
  completion_rate: RateEstimate;
  avg_watch_ms: number;
  watch_ms: number;
  retention: RetentionPoint[];
  /** Milestone events beyond what the plays before them allow (duplicates, progress before/without start). */
  excess: number;
}

export function emptyCounts(): VideoCounts {
  return { starts: 0, completes: 0, watchMs: 0, progress: new Map(), seconds: new Map() };
}

/** `into += weight * from` (a master's roll-up of its ads). */
export function addCounts(into: VideoCounts, from: VideoCounts, weight = 1): VideoCounts {
  into.starts += weight * from.starts;
  into.completes += weight * from.completes;
  into.watchMs += weight * from.watchMs;
  for (const [p, n] of from.progress) into.progress.set(p, (into.progress.get(p) ?? 0) + weight * n);
  for (const [s, n] of from.seconds) into.seconds.set(s, (into.seconds.get(s) ?? 0) + weight * n);
  return into;
}

export function videoMetrics(c: VideoCounts, ci: CiPolicy): VideoMetrics {
  const starts = c.starts;
  let excess = 0;
  const steps = [...new Set([...QUARTILES, ...c.progress.keys()])].sort((a, b) => a - b);
  const retention: RetentionPoint[] = [{ percent: 0, plays: starts, share: rate(starts, starts, ci) }];
  let before = starts;
  const capped = new Map<number, number>();
  for (const percent of steps) {
    const n = c.progress.get(percent) ?? 0;
    const plays = Math.min(n, before);
    excess += n - plays;
    capped.set(percent, plays);
    retention.push({ percent, plays: round(plays), share: rate(plays, starts, ci) });
    // A step nobody reported (a client that skips 25 %) does not cap the ones after it.
    if (n > 0) before = plays;
  }
  const completes = Math.min(c.completes, before);
  excess += c.completes - completes;
  retention.push({ percent: 100, plays: round(completes), share: rate(completes, starts, ci) });
  const hooks = Math.min(c.seconds.get(HOOK_SECONDS) ?? 0, starts);
  excess += (c.seconds.get(HOOK_SECONDS) ?? 0) - hooks;
  return {
    starts: round(starts),
    hook_rate: rate(hooks, starts, ci),
    hold_rate: rate(capped.get(HOLD_PERCENT) ?? 0, starts, ci),
    completion_rate: rate(completes, starts, ci),
    avg_watch_ms: starts > 0 ? round(c.watchMs / starts) : 0,
    watch_ms: round(c.watchMs),
    retention,
    excess: round(excess),
  };
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

export interface ShotSpan {
  start: number;
  end: number;
  /** The master the shot was cut from (auto-tied), null/absent when none. */
  auto_tie?: string | null;
}

/**
 * A video ad's share in each master it was cut from: the time on screen of the shots tied to that
 * master over the time of all its shots (so an ad whose shots are half from M1 and half from M2
 * gives each half of its plays). Shots tied to nothing keep their share unattributed.
 */
export function shotWeights(shots: readonly ShotSpan[]): Map<string, number> {
  const total = shots.reduce((t, s) => t + Math.max(0, s.end - s.start), 0);
  const seconds = new Map<string, number>();
  if (!(total > 0)) return seconds;
  for (const s of shots) {
    if (!s.auto_tie) continue;
    seconds.set(s.auto_tie, (seconds.get(s.auto_tie) ?? 0) + Math.max(0, s.end - s.start));
  }
  return new Map([...seconds].map(([master, t]) => [master, t / total]));
}

export interface Contributor {
  asset_id: string;
  weight: number;
  via: 'self' | 'shots' | 'tie';
}

/**
 * What a master's video metrics add up (attribution rule): the master's own plays (weight 1); each
 * video ad with shots tied to the master, weighted by those shots' share of its time on screen;
 * each other ad whose current tie decision ties it whole to the master (weight 1). An ad with
 * shot-level ties is counted by its shots only, never also as a whole.
 */
export function contributors(master: string, shotAds: ReadonlyMap<string, readonly ShotSpan[]>, wholeTies: readonly string[]): Contributor[] {
  const out: Contributor[] = [{ asset_id: master, weight: 1, via: 'self' }];
  const seen = new Set([master]);
  for (const [ad, shots] of shotAds) {
    if (seen.has(ad)) continue;
    const w = shotWeights(shots).get(master);
    if (w && w > 0) out.push({ asset_id: ad, weight: w, via: 'shots' });
    if (shots.some((s) => s.auto_tie)) seen.add(ad);
  }
  for (const ad of wholeTies) {
    if (seen.has(ad)) continue;
    seen.add(ad);
    out.push({ asset_id: ad, weight: 1, via: 'tie' });
  }
  return out;
}

export interface TimeRange {
  from: number;
  to: number;
}

/** Reads video plays and ties from the store. */
export class VideoSource {
  constructor(private readonly store: Store) {}

  /** Plays per asset over [from, to) (whole minutes of the rollup). */
  async counts(tenant: string, assets: readonly string[], range: TimeRange): Promise<Map<string, VideoCounts>> {
    const out = new Map<string, VideoCounts>(assets.map((a) => [a, emptyCounts()]));
    if (assets.length === 0) return out;
    return this.read(out, `asset_id IN (${assets.map(sqlString).join(',')})`, { tenant }, range);
  }

  /** Plays of every asset of a campaign that has any over [from, to). */
  campaignCounts(tenant: string, campaign: string, range: TimeRange): Promise<Map<string, VideoCounts>> {
    return this.read(new Map(), 'campaign_id = {campaign:String}', { tenant, campaign }, range);
  }

  private async read(out: Map<string, VideoCounts>, where: string, params: Record<string, string>, range: TimeRange): Promise<Map<string, VideoCounts>> {
    const rs = await this.store.client.query({
      query: `SELECT asset_id, toString(kind) AS kind, milestone, sum(events) AS n, sum(value_sum) AS v
              FROM ${this.store.table(TABLES.videoMinute)}
              WHERE tenant_id = {tenant:String} AND ${where}
                AND minute >= fromUnixTimestamp({from:UInt32}) AND minute < fromUnixTimestamp({to:UInt32})
              GROUP BY asset_id, kind, milestone`,
      query_params: { ...params, from: Math.floor(range.from / 1000), to: Math.ceil(range.to / 1000) },
      format: 'JSONEachRow',
    });
    for (const r of await rs.json<{ asset_id: string; kind: string; milestone: number | string; n: number | string; v: number }>()) {
      let c = out.get(r.asset_id);
      if (!c) out.set(r.asset_id, (c = emptyCounts()));
      const n = Number(r.n);
      const m = Number(r.milestone);
      if (r.kind === 'video_start') c.starts += n;
      else if (r.kind === 'video_complete') c.completes += n;
      else if (r.kind === 'video_watch') c.watchMs += Number(r.v);
      else if (r.kind === 'video_progress') c.progress.set(m, (c.progress.get(m) ?? 0) + n);
      else if (r.kind === 'video_seconds') c.seconds.set(m, (c.seconds.get(m) ?? 0) + n);
    }
    return out;
  }

  /** The contributors of a master (see `contributors`), from the latest video analyses and tie decisions. */
  async contributorsOf(tenant: string, master: string): Promise<Contributor[]> {
    const needle = JSON.stringify({ auto_tie: master }).slice(1, -1);
    const videos = await this.store.client.query({
      // Only videos some version of which names the master are folded (their latest version decides).
      query: `SELECT asset_id, argMax(shots, version) AS shots FROM ${this.store.table(TABLES.assetVideos)}
              WHERE tenant_id = {tenant:String}
                AND asset_id IN (SELECT asset_id FROM ${this.store.table(TABLES.assetVideos)} WHERE tenant_id = {tenant:String} AND position(shots, {needle:String}) > 0)
              GROUP BY asset_id HAVING position(shots, {needle:String}) > 0`,
      query_params: { tenant, needle },
      format: 'JSONEachRow',
    });
    const shotAds = new Map<string, ShotSpan[]>();
    for (const r of await videos.json<{ asset_id: string; shots: string }>()) shotAds.set(r.asset_id, parseShots(r.shots));
    const ties = await this.store.client.query({
      query: `SELECT ad_asset_id FROM ${this.store.table(TABLES.tieDecisions)} WHERE tenant_id = {tenant:String}
              GROUP BY ad_asset_id
              HAVING argMax(toString(action), (decided_at, decision_id)) = 'tie' AND argMax(target_asset_id, (decided_at, decision_id)) = {master:String}`,
      query_params: { tenant, master },
      format: 'JSONEachRow',
    });
    const whole = (await ties.json<{ ad_asset_id: string }>()).map((r) => r.ad_asset_id).sort();
    return contributors(master, shotAds, whole);
  }
}

function parseShots(text: string): ShotSpan[] {
  try {
    const shots = JSON.parse(text) as unknown;
    if (!Array.isArray(shots)) return [];
    return shots
      .filter((s): s is ShotSpan => typeof s === 'object' && s !== null && Number.isFinite(s.start) && Number.isFinite(s.end))
      .map((s) => ({ start: s.start, end: s.end, auto_tie: typeof s.auto_tie === 'string' ? s.auto_tie : null }));
  } catch {
    return [];
  }
}

export interface VideoReport {
  tenant_id: string;
  asset_id: string;
  source: 'clickhouse';
  from: number;
  to: number;
  /** The asset's own plays. */
  asset: VideoMetrics;
  /** The asset as a master: its own plays and those of the ads cut from it (see `contributors`). */
  master: VideoMetrics & { contributors: Contributor[] };
}

/** The video metrics of one asset, alone and as a master, over a range. */
export async function videoReport(source: VideoSource, tenant: string, asset: string, range: TimeRange, ci: CiPolicy): Promise<VideoReport> {
  const parts = await source.contributorsOf(tenant, asset);
  const counts = await source.counts(
    tenant,
    parts.map((p) => p.asset_id),
    range,
  );
  const total = emptyCounts();
  for (const p of parts) addCounts(total, counts.get(p.asset_id)!, p.weight);
  return {
    tenant_id: tenant,
    asset_id: asset,
    source: 'clickhouse',
    from: range.from,
    to: range.to,
    asset: videoMetrics(counts.get(asset)!, ci),
    master: { ...videoMetrics(total, ci), contributors: parts.map((p) => ({ ...p, weight: round(p.weight) })) },
  };
}

import type { EventKind } from '@afterglow/core';
import type { Range, RollupRepository } from './store-repository.js';
import type { DecayBin } from './decay.js';
import { ENGAGEMENT_KINDS, windowView, type CiPolicy, type WindowView } from './rates.js';
import { rankLeaderboard, type Leaderboard, type LeaderboardMetric } from './reader.js';
import { COLUMNS, KIND_INDEX, KIND_COUNT } from './windows.js';

/**
 * History for the live REST routes, from the per-minute ClickHouse rollups (exact, deduplicated
 * counts; see the sink). Used when a request names `from`/`to`/`step`.
 */

export type { Range };

export interface SeriesPoint extends WindowView {
  t: number;
}

const MINUTE = 60_000;

export class LiveHistory {
  constructor(
    private readonly rollups: RollupRepository,
    private readonly ci: CiPolicy,
  ) {}

  /** Per-step counts, value sums and rates of one asset; totals over the whole range. */
  async assetSeries(tenant: string, asset: string, range: Range, campaign?: string): Promise<{ series: SeriesPoint[]; totals: WindowView }> {
    const rows = await this.rollups.assetSteps(tenant, asset, range, campaign);
    const byT = new Map<number, Float64Array>();
    const total = new Float64Array(COLUMNS);
    for (const r of rows) {
      const t = Number(r.t);
      let sums = byT.get(t);
      if (!sums) byT.set(t, (sums = new Float64Array(COLUMNS)));
      add(sums, r.kind as EventKind, Number(r.n), Number(r.v));
      add(total, r.kind as EventKind, Number(r.n), Number(r.v));
    }
    // Every step, empty ones included, so a chart needs no gap filling.
    const series: SeriesPoint[] = [];
    const first = Math.floor(range.from / range.stepMs) * range.stepMs;
    for (let t = first; t < range.to; t += range.stepMs) series.push({ t, ...windowView(byT.get(t) ?? new Float64Array(COLUMNS), this.ci) });
    return { series, totals: windowView(total, this.ci) };
  }

  /** Engagement counts per step, as bins for a decay fit. */
  async engagementBins(tenant: string, asset: string, range: Range, campaign?: string): Promise<DecayBin[]> {
    const rows = await this.rollups.engagementSteps(tenant, asset, range, campaign);
    const byT = new Map(rows.map((r) => [Number(r.t), Number(r.n)]));
    const bins: DecayBin[] = [];
    const first = Math.floor(range.from / range.stepMs) * range.stepMs;
    for (let t = first; t < range.to; t += range.stepMs) {
      const count = byT.get(t) ?? 0;
      if (bins.length === 0 && count === 0) continue;
      bins.push({ start: t, end: Math.min(t + range.stepMs, Math.max(range.to, t + MINUTE)), count });
    }
    // Trailing empty steps after the last engagement are kept: they are evidence of decay.
    return bins;
  }

  /** A campaign's assets ranked over [from, to). */
  async leaderboard(tenant: string, campaign: string, range: Range, metric: LeaderboardMetric, limit: number, now: number): Promise<Leaderboard> {
    const rows = await this.rollups.campaignAssets(tenant, campaign, range);
    const byAsset = new Map<string, Float64Array>();
    for (const r of rows) {
      const id = String(r.asset_id);
      let sums = byAsset.get(id);
      if (!sums) byAsset.set(id, (sums = new Float64Array(COLUMNS)));
      add(sums, r.kind as EventKind, Number(r.n), Number(r.v));
    }
    const minutes = Math.max(1, (range.to - range.from) / MINUTE);
    return rankLeaderboard(
      tenant,
      campaign,
      'range',
      metric,
      limit,
      now,
      'clickhouse',
      [...byAsset].map(([id, sums]) => {
        const v = windowView(sums, this.ci);
        let events = 0;
        for (let k = 0; k < KIND_COUNT; k++) events += sums[k]!;
        return {
          id,
          impressions: v.counts.impression,
          engagements: ENGAGEMENT_KINDS.reduce((a, k) => a + v.counts[k], 0),
          rates: v,
          velocity: events / minutes,
        };
      }),
    );
  }

}

function add(sums: Float64Array, kind: EventKind, n: number, v: number): void {
  const k = KIND_INDEX[kind];
  if (k === undefined) return;
  sums[k]! += n;
  if (kind === 'dwell') sums[KIND_COUNT]! += v;
  else if (kind === 'conversion') sums[KIND_COUNT + 1]! += v;
}


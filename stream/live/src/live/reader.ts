import type { HotState } from '@afterglow/core';
import type { DecayFit } from './decay.js';
import { readFreshness, type Freshness } from './freshness.js';
import type { LiveKeys } from './keys.js';
import { ENGAGEMENT_KINDS, metricsView, type CiPolicy, type MetricsView, type RateEstimate } from './rates.js';
import { fitEntityDecay, parseEntityHash, type EntitySnapshot } from './state.js';
import { parseTie } from './ties.js';
import { WINDOWS, windowLayout, type Layout, type WindowName } from './windows.js';

/** REST reads of live state, straight from hot state (no gateway needed). */

export const LEADERBOARD_METRICS = ['ctr', 'engagement_rate', 'shares_per_1k', 'velocity', 'impressions', 'engagements'] as const;
export type LeaderboardMetric = (typeof LEADERBOARD_METRICS)[number];

export interface AssetMetrics extends MetricsView {
  tenant_id: string;
  asset_id: string;
  campaign_id: string | null;
  master_id: string | null;
  source: 'live';
  at: number;
  version: number;
  /** When the asset is a master with tied ads: their roll-up. */
  master?: MetricsView & { ads: number };
}

export interface LeaderboardEntry {
  rank: number | null;
  asset_id: string;
  value: number;
  low?: number;
  high?: number;
  enough: boolean;
  impressions: number;
}

export interface Leaderboard {
  tenant_id: string;
  campaign_id: string;
  /** A live window, or 'range' for a from/to query on ClickHouse. */
  window: WindowName | 'range';
  metric: LeaderboardMetric;
  source: 'live' | 'clickhouse';
  at: number;
  /** Assets ranked by the metric (rates: only those with enough data). */
  ranked: LeaderboardEntry[];
  /** Rates too uncertain to rank ("not enough data"), most impressions first. */
  not_enough_data: LeaderboardEntry[];
  assets_considered: number;
}

export class LiveReader {
  private readonly layout: Layout;

  constructor(
    private readonly hot: HotState,
    private readonly keys: LiveKeys,
    lateMs: number,
    private readonly ci: CiPolicy,
    private readonly fatigueFraction: number,
  ) {
    this.layout = windowLayout(lateMs);
  }

  /** The newest event counted live for the tenant and the rate over the last minute. */
  async freshness(tenant: string, now: number): Promise<Freshness> {
    return readFreshness(await this.hot.hgetall(this.keys.freshness(tenant)), now);
  }

  async asset(tenant: string, id: string): Promise<EntitySnapshot | undefined> {
    return parseEntityHash(await this.hot.hgetall(this.keys.asset(tenant, id)), this.layout);
  }

  /** Every partition's share of a campaign or master. */
  async shares(kind: 'campaign' | 'master', tenant: string, id: string): Promise<EntitySnapshot[]> {
    const parts = await this.hot.zrange(this.keys.parts(kind, tenant, id), 0, -1);
    const hashes = await Promise.all(parts.map((p) => this.hot.hgetall(this.keys.entity(kind, tenant, id, Number(p.member)))));
    return hashes.map((h) => parseEntityHash(h, this.layout)).filter((s): s is EntitySnapshot => s !== undefined);
  }

  async assetMetrics(tenant: string, id: string, now: number): Promise<AssetMetrics | undefined> {
    const [asset, masterShares] = await Promise.all([this.asset(tenant, id), this.shares('master', tenant, id)]);
    if (!asset && masterShares.length === 0) return undefined;
    const own = metricsView(asset ? [asset.buckets] : [], now, this.ci);
    const out: AssetMetrics = {
      tenant_id: tenant,
      asset_id: id,
      campaign_id: asset?.meta.campaign || null,
      master_id: asset?.meta.master || null,
      source: 'live',
      at: now,
      version: asset?.meta.n ?? 0,
      ...own,
    };
    if (masterShares.length > 0) {
      const ads = await this.masterAdIds(tenant, id);
      out.master = { ads: ads.length, ...metricsView(masterShares.map((s) => s.buckets), now, this.ci) };
    }
    return out;
  }

  /** The master each ad counts for now, as the tie recorder holds it (null: none). */
  async tieMasters(tenant: string, ads: readonly string[]): Promise<Map<string, string | null>> {
    const unique = [...new Set(ads)];
    const ties = unique.length ? await this.hot.mget(unique.map((ad) => this.keys.tie(tenant, ad))) : [];
    return new Map(unique.map((ad, i) => [ad, parseTie(ties[i] ?? null).master || null]));
  }

  /**
   * The ads counted in a master's roll-up now: those its shares were fed by whose tie still names
   * it (the index keeps an ad until it goes quiet; the tie is what says whether it still counts).
   */
  async masterAdIds(tenant: string, id: string): Promise<string[]> {
    const members = (await this.hot.zrange(this.keys.masterAds(tenant, id), 0, -1)).map((m) => m.member);
    if (members.length === 0) return [];
    const ties = await this.hot.mget(members.map((ad) => this.keys.tie(tenant, ad)));
    return members.filter((_, i) => parseTie(ties[i] ?? null).master === id);
  }

  async campaignMetrics(tenant: string, id: string, now: number): Promise<(MetricsView & { partitions: number }) | undefined> {
    const shares = await this.shares('campaign', tenant, id);
    if (shares.length === 0) return undefined;
    return { partitions: shares.length, ...metricsView(shares.map((s) => s.buckets), now, this.ci) };
  }

  async leaderboard(tenant: string, campaign: string, window: WindowName, metric: LeaderboardMetric, limit: number, maxAssets: number, now: number): Promise<Leaderboard> {
    const members = await this.hot.zrange(this.keys.campaignAssets(tenant, campaign), 0, maxAssets - 1, { reverse: true });
    const ids = members.map((m) => m.member);
    const snapshots: (EntitySnapshot | undefined)[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const hashes = await Promise.all(chunk.map((a) => this.hot.hgetall(this.keys.asset(tenant, a))));
      for (const h of hashes) snapshots.push(parseEntityHash(h, this.layout));
    }
    const w = WINDOWS.findIndex((x) => x.name === window);
    const rows = ids.flatMap((id, i) => {
      const s = snapshots[i];
      if (!s) return [];
      const m = metricsView([s.buckets], now, this.ci);
      const win = m.windows[WINDOWS[w]!.name];
      return [{ id, win, velocity: m.velocity.per_min }];
    });
    return rankLeaderboard(
      tenant,
      campaign,
      window,
      metric,
      limit,
      now,
      'live',
      rows.map((r) => ({ id: r.id, impressions: r.win.counts.impression, engagements: ENGAGEMENT_KINDS.reduce((a, k) => a + r.win.counts[k], 0), rates: r.win, velocity: r.velocity })),
    );
  }

  async decay(tenant: string, id: string, now: number, fatigueFraction = this.fatigueFraction): Promise<(DecayFit & { tenant_id: string; asset_id: string; source: 'live' }) | undefined> {
    const asset = await this.asset(tenant, id);
    if (!asset) return undefined;
    return { tenant_id: tenant, asset_id: id, source: 'live', ...fitEntityDecay(asset.decay, asset.buckets, now, fatigueFraction, true) };
  }
}

export interface RankInput {
  id: string;
  impressions: number;
  engagements: number;
  rates: { ctr: RateEstimate; engagement_rate: RateEstimate; shares_per_1k: RateEstimate };
  velocity: number;
}

/** Rank assets by `metric`; rates whose interval is too wide go to not_enough_data instead. */
export function rankLeaderboard(
  tenant: string,
  campaign: string,
  window: WindowName | 'range',
  metric: LeaderboardMetric,
  limit: number,
  now: number,
  source: 'live' | 'clickhouse',
  rows: RankInput[],
): Leaderboard {
  const ranked: LeaderboardEntry[] = [];
  const weak: LeaderboardEntry[] = [];
  for (const r of rows) {
    if (metric === 'ctr' || metric === 'engagement_rate' || metric === 'shares_per_1k') {
      const e = r.rates[metric];
      const entry: LeaderboardEntry = { rank: null, asset_id: r.id, value: e.value, low: e.low, high: e.high, enough: e.enough, impressions: r.impressions };
      (e.enough ? ranked : weak).push(entry);
    } else {
      const value = metric === 'velocity' ? r.velocity : metric === 'impressions' ? r.impressions : r.engagements;
      ranked.push({ rank: null, asset_id: r.id, value, enough: true, impressions: r.impressions });
    }
  }
  ranked.sort((a, b) => b.value - a.value || (b.low ?? 0) - (a.low ?? 0) || b.impressions - a.impressions || (a.asset_id < b.asset_id ? -1 : 1));
  ranked.forEach((e, i) => (e.rank = i + 1));
  weak.sort((a, b) => b.impressions - a.impressions || (a.asset_id < b.asset_id ? -1 : 1));
  return {
    tenant_id: tenant,
    campaign_id: campaign,
    window,
    metric,
    source,
    at: now,
    ranked: ranked.slice(0, limit),
    not_enough_data: weak.slice(0, limit),
    assets_considered: rows.length,
  };
}


import { TABLES } from '../contracts.js';
import { sqlString, type Store } from './clickhouse.js';

/**
 * Reads of spend and reach that several roles share (the read API, the dashboard's panels, the
 * trigger rules on frequency and cost per result): per asset over whole UTC days, and the reach of
 * a set of assets as ONE merge of their uniqCombined states (a viewer seen on two of them counts once).
 */

/**
 * What a reach figure may be off by. uniqCombined (precision 17) counts exactly while the set is
 * small (an array, then a hash set) and switches to HyperLogLog with 2^17 cells past that, whose
 * relative standard error is 1.04 / sqrt(2^17). Measured in test/reach.test.ts: 59,978 for 60,000.
 */
export const REACH_ERROR = {
  /** Below about this many viewers the count is exact (the hash-set phase). */
  exactBelow: 10_000,
  /** Relative standard error above it (about 0.29 %); a 95 % band is about twice that. */
  relativeStandardError: 1.04 / Math.sqrt(2 ** 17),
} as const;

export interface ReachFigures {
  /** Unique viewers (estimate, see REACH_ERROR). */
  reach: number;
  /** Impressions that carried a viewer id. */
  impressions: number;
  /** Impressions per unique viewer; null without viewers. */
  frequency: number | null;
}

export function reachFigures(reach: number, impressions: number): ReachFigures {
  return { reach, impressions, frequency: reach > 0 ? impressions / reach : null };
}

/** The state of a reach estimate's error, for a response or a firing's numbers. */
export function reachError(reach: number): { exact: boolean; relative_standard_error: number } {
  const exact = reach < REACH_ERROR.exactBelow;
  return { exact, relative_standard_error: exact ? 0 : Number(REACH_ERROR.relativeStandardError.toPrecision(3)) };
}

const n = (x: unknown): number => Number(x ?? 0);

/**
 * A set of asset ids written into the query text. As parameters they would travel in the URL over
 * HTTP, which the server bounds (a master's few hundred tied ads are past some servers' 16 KiB);
 * the query text goes in the body, with its size allowed by ID_LIST_SETTINGS.
 */
const idList = (ids: readonly string[]): string => `(${[...new Set(ids)].map(sqlString).join(',')})`;
const ID_LIST_SETTINGS = { max_query_size: '16777216' } as const;

/** Reach per asset over days [from, to] (YYYY-MM-DD), of the assets in `assets` or of a campaign's assets. */
export async function reachByAsset(
  store: Store,
  tenant: string,
  scope: { campaign: string } | { assets: readonly string[] },
  from: string,
  to: string,
): Promise<Map<string, ReachFigures>> {
  const byCampaign = 'campaign' in scope;
  if (!byCampaign && scope.assets.length === 0) return new Map();
  const rs = await store.client.query({
    query: `SELECT asset_id, uniqCombinedMerge(viewers) AS reach, sum(impressions) AS impressions
            FROM ${store.table(TABLES.reachDay)}
            WHERE tenant_id = {tenant:String} AND ${byCampaign ? 'campaign_id = {campaign:String}' : `asset_id IN ${idList(scope.assets)}`}
              AND day BETWEEN {from:Date} AND {to:Date}
            GROUP BY asset_id`,
    query_params: { tenant, campaign: byCampaign ? scope.campaign : '', from, to },
    format: 'JSONEachRow',
    clickhouse_settings: ID_LIST_SETTINGS,
  });
  const rows = await rs.json<{ asset_id: string; reach: unknown; impressions: unknown }>();
  return new Map(rows.map((r) => [r.asset_id, reachFigures(n(r.reach), n(r.impressions))]));
}

/** The reach of a set of assets together: their states merged, so each viewer counts once. */
export async function unionReach(store: Store, tenant: string, assets: readonly string[], from: string, to: string): Promise<ReachFigures> {
  if (assets.length === 0) return reachFigures(0, 0);
  const rs = await store.client.query({
    query: `SELECT uniqCombinedMerge(viewers) AS reach, sum(impressions) AS impressions
            FROM ${store.table(TABLES.reachDay)}
            WHERE tenant_id = {tenant:String} AND asset_id IN ${idList(assets)} AND day BETWEEN {from:Date} AND {to:Date}`,
    query_params: { tenant, from, to },
    format: 'JSONEachRow',
    clickhouse_settings: ID_LIST_SETTINGS,
  });
  const [row] = await rs.json<{ reach: unknown; impressions: unknown }>();
  return reachFigures(n(row?.reach), n(row?.impressions));
}

export interface DayCosts {
  asset_id: string;
  day: string;
  currency: string;
  spend: number;
  impressions: number;
  clicks: number;
  conversions: number;
  conversion_value: number;
}

/**
 * Spend (the latest figure per asset, placement and day) beside the day's engagement, per asset,
 * currency and UTC day, over [from, to]: the series cost per result is judged on. Days with
 * engagement and no spend are left out (nothing was paid for, or spend is not imported yet).
 */
export async function dailyCosts(
  store: Store,
  tenant: string,
  scope: { campaign: string } | { assets: readonly string[] },
  from: string,
  to: string,
): Promise<DayCosts[]> {
  const byCampaign = 'campaign' in scope;
  if (!byCampaign && scope.assets.length === 0) return [];
  const where = byCampaign ? 'campaign_id = {campaign:String}' : `asset_id IN ${idList(scope.assets)}`;
  const rs = await store.client.query({
    query: `SELECT s.asset_id AS asset_id, toString(s.day) AS day, s.currency AS currency, s.spend AS spend,
                   e.impressions AS impressions, e.clicks AS clicks, e.conversions AS conversions, e.conversion_value AS conversion_value
            FROM (
              SELECT asset_id, day, currency, sum(spend) AS spend FROM ${store.table(TABLES.spendDaily)} FINAL
              WHERE tenant_id = {tenant:String} AND ${where} AND day BETWEEN {from:Date} AND {to:Date}
              GROUP BY asset_id, day, currency
            ) AS s
            LEFT JOIN (
              SELECT asset_id, toDate(minute) AS day,
                     sumIf(events, kind = 'impression') AS impressions, sumIf(events, kind = 'click') AS clicks,
                     sumIf(events, kind = 'conversion') AS conversions, sumIf(value_sum, kind = 'conversion') AS conversion_value
              FROM ${store.table(TABLES.assetMinute)}
              WHERE tenant_id = {tenant:String} AND ${where}
                AND minute >= toDateTime({from:Date}, 'UTC') AND minute < toDateTime({to:Date}, 'UTC') + INTERVAL 1 DAY
              GROUP BY asset_id, day
            ) AS e ON e.asset_id = s.asset_id AND e.day = s.day
            ORDER BY asset_id, day, currency`,
    query_params: { tenant, campaign: byCampaign ? scope.campaign : '', from, to },
    format: 'JSONEachRow',
    // A day with spend and no engagement joins as zeros, not as NULLs.
    clickhouse_settings: { join_use_nulls: 0, ...ID_LIST_SETTINGS },
  });
  const rows = await rs.json<Record<string, unknown>>();
  return rows.map((r) => ({
    asset_id: String(r.asset_id),
    day: String(r.day),
    currency: String(r.currency),
    spend: n(r.spend),
    impressions: n(r.impressions),
    clicks: n(r.clicks),
    conversions: n(r.conversions),
    conversion_value: n(r.conversion_value),
  }));
}

/** Whole UTC day (YYYY-MM-DD) of an epoch ms. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Longest chain of duplicates followed (the registry's and the live ties' depth). */
const MAX_DUPLICATE_DEPTH = 16;

/**
 * The ads that count for `master` now, from each ad's latest tie decision: tied to it, or a
 * duplicate (through a chain of at most MAX_DUPLICATE_DEPTH) of an ad tied to it. The registry's
 * rule over the same decisions, read in SQL so any role can use it.
 */
export async function tiedAdsOf(store: Store, tenant: string, master: string): Promise<string[]> {
  const rs = await store.client.query({
    query: `SELECT ad_asset_id, toString(argMax(action, (decided_at, decision_id))) AS action, argMax(target_asset_id, (decided_at, decision_id)) AS target
            FROM ${store.table(TABLES.tieDecisions)} WHERE tenant_id = {tenant:String} GROUP BY ad_asset_id`,
    query_params: { tenant },
    format: 'JSONEachRow',
  });
  const latest = new Map((await rs.json<{ ad_asset_id: string; action: string; target: string }>()).map((r) => [r.ad_asset_id, r]));
  const masterOf = (ad: string): string => {
    let at = ad;
    for (let depth = 0; depth <= MAX_DUPLICATE_DEPTH; depth++) {
      const d = latest.get(at);
      if (!d) return '';
      if (d.action === 'tie') return d.target;
      if (d.action !== 'duplicate' || !d.target || d.target === ad) return '';
      at = d.target;
    }
    return '';
  };
  return [...latest.keys()].filter((ad) => masterOf(ad) === master).sort();
}

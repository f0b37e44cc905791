import { TABLES, dailyCosts, reachByAsset, reachError, reachFigures, tiedAdsOf, unionReach, type DayCosts, type ReachFigures, type Store } from '@afterglow/core';
import { costs, type AssetCosts } from './spend.js';

/**
 * Reach and frequency over whole UTC days: unique viewers (by the keyed viewer hash) among
 * impressions that carry one, per asset and for the campaign. The campaign's reach merges the
 * assets' uniqCombined states, so a viewer who saw two creatives counts once; it is not the sum.
 */
export interface ReachRow {
  /** Unique viewers (uniqCombined estimate; exact below about 10^4 viewers, see README). */
  reach: number;
  /** Impressions that carried a viewer id. */
  impressions: number;
  /** Impressions per unique viewer; null without viewers. */
  frequency: number | null;
}

export interface CampaignReach extends ReachRow {
  tenant_id: string;
  reach_error: ReturnType<typeof reachError>;
  campaign_id: string;
  from: string;
  to: string;
  assets: (ReachRow & { asset_id: string })[];
}

export async function campaignReach(store: Store, tenantId: string, campaignId: string, from: string, to: string): Promise<CampaignReach> {
  const params = { tenant: tenantId, campaign: campaignId, from, to };
  const where = `tenant_id = {tenant:String} AND campaign_id = {campaign:String} AND day BETWEEN {from:Date} AND {to:Date}`;
  const perAsset = await store.client.query({
    query: `SELECT asset_id, uniqCombinedMerge(viewers) AS reach, sum(impressions) AS impressions
            FROM ${store.table(TABLES.reachDay)} WHERE ${where}
            GROUP BY asset_id ORDER BY reach DESC, asset_id`,
    query_params: params,
    format: 'JSONEachRow',
  });
  // The campaign's own merge (not WITH TOTALS: chDB writes invalid JSON for its totals on an empty result).
  const merged = await store.client.query({
    query: `SELECT uniqCombinedMerge(viewers) AS reach, sum(impressions) AS impressions FROM ${store.table(TABLES.reachDay)} WHERE ${where}`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const row = (reach: number, impressions: number): ReachRow => ({ reach, impressions, frequency: reach > 0 ? impressions / reach : null });
  const assets = (await perAsset.json<{ asset_id: string; reach: string | number; impressions: string | number }>()).map((r) => ({
    asset_id: r.asset_id,
    ...row(Number(r.reach), Number(r.impressions)),
  }));
  const [t] = await merged.json<{ reach: string | number; impressions: string | number }>();
  const total = row(Number(t?.reach ?? 0), Number(t?.impressions ?? 0));
  return { tenant_id: tenantId, campaign_id: campaignId, from, to, ...total, reach_error: reachError(total.reach), assets };
}

type CostTotals = Omit<AssetCosts, 'asset_id'>;

/** Per-currency totals of daily costs (spends in different currencies are never added). */
function totalsByCurrency(days: readonly DayCosts[]): CostTotals[] {
  const by = new Map<string, { spend: number; impressions: number; clicks: number; conversions: number; conversion_value: number }>();
  for (const d of days) {
    const t = by.get(d.currency) ?? { spend: 0, impressions: 0, clicks: 0, conversions: 0, conversion_value: 0 };
    t.spend += d.spend;
    t.impressions += d.impressions;
    t.clicks += d.clicks;
    t.conversions += d.conversions;
    t.conversion_value += d.conversion_value;
    by.set(d.currency, t);
  }
  return [...by].sort((a, b) => b[1].spend - a[1].spend).map(([currency, t]) => {
    const { asset_id: _a, ...rest } = costs('', currency, t.spend, t);
    return rest;
  });
}

export interface AssetCostsAndReach {
  tenant_id: string;
  asset_id: string;
  from: string;
  to: string;
  /** Over the days with spend: engagement on days without spend is not in these. */
  costs: CostTotals[];
  days: Omit<DayCosts, 'asset_id'>[];
  reach: ReachFigures;
  reach_error: ReturnType<typeof reachError>;
}

export async function assetCostsAndReach(store: Store, tenantId: string, assetId: string, from: string, to: string): Promise<AssetCostsAndReach> {
  const [days, reach] = await Promise.all([dailyCosts(store, tenantId, { assets: [assetId] }, from, to), reachByAsset(store, tenantId, { assets: [assetId] }, from, to)]);
  const r = reach.get(assetId) ?? reachFigures(0, 0);
  return {
    tenant_id: tenantId,
    asset_id: assetId,
    from,
    to,
    costs: totalsByCurrency(days),
    days: days.map(({ asset_id: _a, ...d }) => d),
    reach: r,
    reach_error: reachError(r.reach),
  };
}

export interface MasterReach extends ReachFigures {
  tenant_id: string;
  master_id: string;
  from: string;
  to: string;
  reach_error: ReturnType<typeof reachError>;
  /** What adding the ads' reach would claim: more than `reach` when viewers saw several ads. */
  sum_of_ad_reach: number;
  ads: (ReachFigures & { asset_id: string })[];
  costs: CostTotals[];
}

/** A master over days [from, to]: the union of its tied ads' viewers (one merge of their sketches), and their costs. */
export async function masterReach(store: Store, tenantId: string, masterId: string, from: string, to: string): Promise<MasterReach> {
  const ads = await tiedAdsOf(store, tenantId, masterId);
  const [union, perAd, days] = await Promise.all([
    unionReach(store, tenantId, ads, from, to),
    reachByAsset(store, tenantId, { assets: ads }, from, to),
    dailyCosts(store, tenantId, { assets: ads }, from, to),
  ]);
  const adRows = ads.map((asset_id) => ({ asset_id, ...(perAd.get(asset_id) ?? reachFigures(0, 0)) })).sort((a, b) => b.reach - a.reach || a.asset_id.localeCompare(b.asset_id));
  return {
    tenant_id: tenantId,
    master_id: masterId,
    from,
    to,
    ...union,
    reach_error: reachError(union.reach),
    sum_of_ad_reach: adRows.reduce((s, a) => s + a.reach, 0),
    ads: adRows,
    costs: totalsByCurrency(days),
  };
}

import { TABLES, type Store } from '@afterglow/core';

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
  return { tenant_id: tenantId, campaign_id: campaignId, from, to, ...total, assets };
}

import { EVENT_KINDS, TABLES, type EventKind, type Store } from '@afterglow/core';

export interface CampaignTotals {
  tenant_id: string;
  campaign_id: string;
  /** Exact event counts per kind (every kind present, zero when none). */
  counts: Record<EventKind, number>;
  /** Sum of `value` per kind (dwell ms, conversion value). */
  values: Record<EventKind, number>;
  /** Events that arrived after the live late window (counted, and flagged). */
  late: number;
  total: number;
  source: 'rollup' | 'raw';
}

function emptyByKind(): Record<EventKind, number> {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>;
}

/**
 * Exact per-kind counts for one campaign. `rollup` reads the per-minute summing table (cheap,
 * what dashboards use); `raw` recounts events_raw with FINAL, an independent check operators and
 * tests use to prove that the rollups neither lost nor double-counted anything.
 */
export async function campaignTotals(store: Store, tenantId: string, campaignId: string, source: 'rollup' | 'raw' = 'rollup'): Promise<CampaignTotals> {
  const query =
    source === 'rollup'
      ? `SELECT toString(kind) AS kind, sum(events) AS n, sum(value_sum) AS v, sum(late_events) AS late
         FROM ${store.table(TABLES.campaignMinute)}
         WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String}
         GROUP BY kind`
      : `SELECT toString(kind) AS kind, count() AS n, sum(value) AS v, countIf(late) AS late
         FROM ${store.table(TABLES.eventsRaw)} FINAL
         WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String}
         GROUP BY kind`;
  const rs = await store.client.query({ query, query_params: { tenant: tenantId, campaign: campaignId }, format: 'JSONEachRow' });
  const rows = await rs.json<{ kind: EventKind; n: number | string; v: number | string; late: number | string }>();
  const counts = emptyByKind();
  const values = emptyByKind();
  let late = 0;
  for (const r of rows) {
    counts[r.kind] = Number(r.n);
    values[r.kind] = Number(r.v);
    late += Number(r.late);
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return { tenant_id: tenantId, campaign_id: campaignId, counts, values, late, total, source };
}

export interface CampaignSummary {
  campaign_id: string;
  assets: number;
  counts: Record<EventKind, number>;
  total: number;
  last_minute: string;
}

/** Every campaign of a tenant with its per-kind counts, for overview pages. */
export async function listCampaigns(store: Store, tenantId: string): Promise<CampaignSummary[]> {
  const rs = await store.client.query({
    query: `SELECT campaign_id, toString(kind) AS kind, sum(events) AS n,
                   toString(max(minute)) AS last_minute, uniqExact(asset_id) AS assets
            FROM ${store.table(TABLES.assetMinute)}
            WHERE tenant_id = {tenant:String}
            GROUP BY campaign_id, kind
            ORDER BY campaign_id`,
    query_params: { tenant: tenantId },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{ campaign_id: string; kind: EventKind; n: number | string; last_minute: string; assets: number | string }>();
  const byCampaign = new Map<string, CampaignSummary>();
  for (const r of rows) {
    let c = byCampaign.get(r.campaign_id);
    if (!c) {
      c = { campaign_id: r.campaign_id, assets: 0, counts: emptyByKind(), total: 0, last_minute: r.last_minute };
      byCampaign.set(r.campaign_id, c);
    }
    c.counts[r.kind] = Number(r.n);
    c.total += Number(r.n);
    c.assets = Math.max(c.assets, Number(r.assets));
    if (r.last_minute > c.last_minute) c.last_minute = r.last_minute;
  }
  return [...byCampaign.values()];
}

/**
 * The prediction tables in ClickHouse, one repository per family: the training data (the per-minute
 * rollups' outcomes, stored features, tie decisions for resampling clusters) and the model versions
 * (prediction_models, prediction_model_active). The code that needs them receives these objects.
 */
import { TABLES, sqlString, type Store } from '@afterglow/core';

export const ENGAGEMENT_KINDS = ['click', 'like', 'share', 'comment', 'conversion'] as const;

/** An asset's impressions and engagements within [first impression, + horizon), as stored. */
export interface OutcomeRow {
  campaign_id: string;
  asset_id: string;
  first_ms: number | string;
  impressions: number | string;
  engagements: number | string;
}

/** A stored feature row, as ClickHouse returns it. */
export interface FeatureRow {
  asset_id: string;
  named: string;
  words: string[];
  embedding: number[];
  meta: string;
}

/** The training data: outcomes from the rollups, stored features, ties. */
export class PredictionDataRepository {
  constructor(private readonly store: Store) {}

  async outcomes(tenantId: string, campaignId: string | undefined, horizonMs: number): Promise<OutcomeRow[]> {
    const store = this.store;
    const o = { tenantId, campaignId, horizonMs };
    const t = store.table(TABLES.assetMinute);
    const kinds = ENGAGEMENT_KINDS.map((k) => `'${k}'`).join(',');
    const rs = await store.client.query({
      query: `
      WITH firsts AS (
        SELECT campaign_id, asset_id, min(minute) AS first_at
        FROM ${t}
        WHERE tenant_id = {tenant:String} AND kind = 'impression' ${o.campaignId ? 'AND campaign_id = {campaign:String}' : ''}
        GROUP BY campaign_id, asset_id
      )
      SELECT m.campaign_id AS campaign_id, m.asset_id AS asset_id, toUnixTimestamp(f.first_at) * 1000 AS first_ms,
             sumIf(m.events, m.kind = 'impression') AS impressions,
             sumIf(m.events, m.kind IN (${kinds})) AS engagements
      FROM ${t} AS m
      INNER JOIN firsts AS f ON m.campaign_id = f.campaign_id AND m.asset_id = f.asset_id
      WHERE m.tenant_id = {tenant:String} AND m.minute >= f.first_at AND m.minute < f.first_at + toIntervalSecond({horizon:UInt32})
      GROUP BY m.campaign_id, m.asset_id, f.first_at`,
      query_params: { tenant: o.tenantId, campaign: o.campaignId ?? '', horizon: Math.ceil(o.horizonMs / 1000) },
      format: 'JSONEachRow',
    });
    return rs.json<OutcomeRow>();
  }

  /** One asset's outcome over the horizon from its first impression. */
  async assetOutcome(tenantId: string, assetId: string, horizonMs: number): Promise<{ impressions: number; engagements: number }> {
    const t = this.store.table(TABLES.assetMinute);
    const rs = await this.store.client.query({
      query: `WITH (SELECT minIf(minute, kind = 'impression') FROM ${t} WHERE tenant_id = {tenant:String} AND asset_id = {asset:String}) AS first
              SELECT sumIf(events, kind = 'impression') AS imp, sumIf(events, kind IN (${ENGAGEMENT_KINDS.map(sqlString).join(',')})) AS eng
              FROM ${t} WHERE tenant_id = {tenant:String} AND asset_id = {asset:String} AND minute >= first AND minute < first + toIntervalSecond({horizon:UInt32})`,
      query_params: { tenant: tenantId, asset: assetId, horizon: Math.ceil(horizonMs / 1000) },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ imp: string | number; eng: string | number }>();
    return { impressions: Number(row?.imp ?? 0), engagements: Number(row?.eng ?? 0) };
  }

  /** A campaign's impressions and engagements since `since` (epoch ms). */
  async campaignTotals(tenantId: string, campaignId: string, since: number): Promise<{ imp: number; eng: number }> {
    const store = this.store;
    const rs = await store.client.query({
      query: `SELECT sumIf(events, kind = 'impression') AS imp, sumIf(events, kind IN (${ENGAGEMENT_KINDS.map((k) => `'${k}'`).join(',')})) AS eng
            FROM ${store.table(TABLES.campaignMinute)}
            WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String} AND minute >= fromUnixTimestamp64Milli({since:Int64})`,
      query_params: { tenant: tenantId, campaign: campaignId, since },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ imp: number | string; eng: number | string }>();
    return { imp: Number(row?.imp ?? 0), eng: Number(row?.eng ?? 0) };
  }

  /** Latest stored features of each asset for one featurizer kind (some assets only, with `assetIds`). */
  async features(tenantId: string, provider: string, assetIds?: readonly string[]): Promise<FeatureRow[]> {
    const store = this.store;
    const rs = await store.client.query({
      query: `SELECT asset_id, argMax(named, computed_at) AS named, argMax(words, computed_at) AS words, argMax(embedding, computed_at) AS embedding, argMax(meta, computed_at) AS meta
            FROM ${store.table(TABLES.assetFeatures)}
            WHERE tenant_id = {tenant:String} AND provider = {provider:String} ${assetIds ? 'AND asset_id IN {ids:Array(String)}' : ''}
            GROUP BY asset_id`,
      query_params: { tenant: tenantId, provider, ids: assetIds ?? [] },
      format: 'JSONEachRow',
    });
    return rs.json<FeatureRow>();
  }

  async insertFeatures(rows: readonly (Omit<FeatureRow, 'embedding'> & { tenant_id: string; provider: string; campaign_id: string; content_hash: string; embedding: number[]; computed_at: number })[]): Promise<void> {
    await this.store.client.insert({ table: this.store.table(TABLES.assetFeatures), values: [...rows], format: 'JSONEachRow' });
  }

  /** Assets of a tenant with stored features, with their campaign ('' when none), in asset order. */
  async featuredAssets(tenantId: string, provider: string): Promise<{ asset_id: string; campaign_id: string }[]> {
    const rs = await this.store.client.query({
      query: `SELECT asset_id, argMax(campaign_id, computed_at) AS campaign_id FROM ${this.store.table(TABLES.assetFeatures)}
              WHERE tenant_id = {tenant:String} AND provider = {provider:String} GROUP BY asset_id ORDER BY asset_id`,
      query_params: { tenant: tenantId, provider },
      format: 'JSONEachRow',
    });
    return rs.json<{ asset_id: string; campaign_id: string }>();
  }

  /** Each ad's latest tie decision: its action and target. Throws when the registry's table is missing. */
  async latestTies(tenantId: string): Promise<{ ad_asset_id: string; action: string; target: string }[]> {
    const store = this.store;
    const rs = await store.client.query({
      query: `SELECT ad_asset_id, argMax(action, (decided_at, decision_id)) AS action, argMax(target_asset_id, (decided_at, decision_id)) AS target
              FROM ${store.table(TABLES.tieDecisions)} WHERE tenant_id = {tenant:String} GROUP BY ad_asset_id`,
      query_params: { tenant: tenantId },
      format: 'JSONEachRow',
    });
    return rs.json<{ ad_asset_id: string; action: string; target: string }>();
  }
}

/** A model version's row in prediction_models. */
export interface ModelRow {
  tenant_id: string;
  version: string;
  provider: string;
  schema_id: string;
  trained_at: number;
  n_train: number;
  n_valid: number;
  metrics: string;
  params: string;
  path: string;
}

/** Model versions and each tenant's active one. */
export class ModelRepository {
  constructor(private readonly store: Store) {}

  async insertModel(row: ModelRow): Promise<void> {
    await this.store.client.insert({ table: this.store.table(TABLES.predictionModels), values: [row], format: 'JSONEachRow' });
  }

  /** A tenant's versions, newest first (latest row of each). */
  async versions(tenantId: string): Promise<{ version: string; trained_ms: string | number; metrics: string; n_train: number; n_valid: number; schema_id: string }[]> {
    const rs = await this.store.client.query({
      query: `SELECT version, toUnixTimestamp64Milli(argMax(trained_at, trained_at)) AS trained_ms, argMax(metrics, trained_at) AS metrics,
                     argMax(n_train, trained_at) AS n_train, argMax(n_valid, trained_at) AS n_valid, argMax(schema_id, trained_at) AS schema_id
              FROM ${this.store.table(TABLES.predictionModels)} WHERE tenant_id = {tenant:String} GROUP BY version ORDER BY trained_ms DESC`,
      query_params: { tenant: tenantId },
      format: 'JSONEachRow',
    });
    return rs.json();
  }

  async exists(tenantId: string, version: string): Promise<boolean> {
    const known = await this.store.client.query({
      query: `SELECT count() AS n FROM ${this.store.table(TABLES.predictionModels)} WHERE tenant_id = {tenant:String} AND version = {version:String}`,
      query_params: { tenant: tenantId, version },
      format: 'JSONEachRow',
    });
    const [row] = await known.json<{ n: string | number }>();
    return Boolean(Number(row?.n));
  }

  async insertActivation(tenantId: string, version: string, at: number): Promise<void> {
    await this.store.client.insert({
      table: this.store.table(TABLES.activeModels),
      values: [{ tenant_id: tenantId, version, activated_at: at }],
      format: 'JSONEachRow',
    });
  }

  async activeVersion(tenantId: string): Promise<string | undefined> {
    const rs = await this.store.client.query({
      query: `SELECT argMax(version, activated_at) AS version FROM ${this.store.table(TABLES.activeModels)} WHERE tenant_id = {tenant:String} HAVING count() > 0`,
      query_params: { tenant: tenantId },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<{ version: string }>();
    return row?.version || undefined;
  }

  async activeVersions(): Promise<Map<string, string>> {
    const rs = await this.store.client.query({
      query: `SELECT tenant_id, argMax(version, activated_at) AS version FROM ${this.store.table(TABLES.activeModels)} GROUP BY tenant_id`,
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ tenant_id: string; version: string }>();
    return new Map(rows.filter((r) => r.version).map((r) => [r.tenant_id, r.version]));
  }
}

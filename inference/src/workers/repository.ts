/**
 * The scoring workers' tables in ClickHouse: each asset's scores (asset_scores, the latest per asset
 * wins) and its occlusion maps (asset_occlusion, one per model version). The engine receives it.
 */
import { TABLES, type Store } from '@afterglow/core';

/** A score as stored: the numbers the table indexes, and the whole score (with its members) as JSON. */
export interface ScoreRow {
  tenant_id: string;
  asset_id: string;
  campaign_id: string;
  model_version: string;
  predicted: number;
  actual: number | null;
  flag: string;
  reason: string;
  scored_at: number;
  score: string;
}

export interface OcclusionRow {
  grid_w: number;
  grid_h: number;
  cell_values: number[];
}

export class ScoreRepository {
  constructor(private readonly store: Store) {}

  async insertScore(row: ScoreRow): Promise<void> {
    await this.store.client.insert({ table: this.store.table(TABLES.assetScores), values: [row], format: 'JSONEachRow' });
  }

  /** The latest score JSON of each of a tenant's assets that `where` (an AND clause over `params`) keeps. */
  async latestOf(tenantId: string, where: string, params: Record<string, unknown>): Promise<string[]> {
    const rs = await this.store.client.query({
      query: `SELECT argMax(score, scored_at) AS score FROM ${this.store.table(TABLES.assetScores)}
              WHERE tenant_id = {tenant:String} ${where} GROUP BY asset_id`,
      query_params: { tenant: tenantId, ...params },
      format: 'JSONEachRow',
    });
    return (await rs.json<{ score: string }>()).map((r) => r.score);
  }

  /** The latest score JSON of every asset (all tenants), most recently scored first, at most `limit`. */
  async latestOfAll(limit: number): Promise<string[]> {
    const rs = await this.store.client.query({
      query: `SELECT argMax(score, scored_at) AS score, max(scored_at) AS at FROM ${this.store.table(TABLES.assetScores)}
              GROUP BY tenant_id, asset_id ORDER BY at DESC LIMIT {limit:UInt32}`,
      query_params: { limit },
      format: 'JSONEachRow',
    });
    return (await rs.json<{ score: string }>()).map((r) => r.score);
  }

  async occlusion(tenantId: string, assetId: string, version: string): Promise<OcclusionRow | undefined> {
    const rs = await this.store.client.query({
      query: `SELECT argMax(grid_w, computed_at) AS grid_w, argMax(grid_h, computed_at) AS grid_h, argMax(cell_values, computed_at) AS cell_values
              FROM ${this.store.table(TABLES.assetOcclusion)} WHERE tenant_id = {tenant:String} AND asset_id = {asset:String} AND model_version = {version:String} GROUP BY asset_id`,
      query_params: { tenant: tenantId, asset: assetId, version },
      format: 'JSONEachRow',
    });
    const [row] = await rs.json<OcclusionRow>();
    return row;
  }

  async insertOcclusion(row: OcclusionRow & { tenant_id: string; asset_id: string; model_version: string; computed_at: number }): Promise<void> {
    await this.store.client.insert({ table: this.store.table(TABLES.assetOcclusion), values: [row], format: 'JSONEachRow' });
  }
}

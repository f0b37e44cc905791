import { EVENT_KINDS, TABLES, type EventKind, type Store } from '@afterglow/core';
import { ENGAGEMENT_KINDS } from './rates.js';

/**
 * What the live role reads from the store, by table family: the per-minute rollup (history for
 * the REST routes, the windows a restart rebuilds) and the logs a rebuild replays (the raw events'
 * ids, the tie decisions). LiveHistory and StoreHistorySource receive these.
 */

/** A time range cut into steps (epoch ms). */
export interface Range {
  from: number;
  to: number;
  stepMs: number;
}

export type RollupRow = Record<string, unknown>;

/** The per-minute rollup (asset_minute). */
export class RollupRepository {
  constructor(private readonly store: Store) {}

  /** One asset's events and value sums per step and kind: rows {t, kind, n, v}. */
  async assetSteps(tenant: string, asset: string, range: Range, campaign?: string): Promise<RollupRow[]> {
    return this.query(
      `SELECT toUnixTimestamp(toStartOfInterval(minute, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, toString(kind) AS kind,
              sum(events) AS n, sum(value_sum) AS v
       FROM ${this.store.table(TABLES.assetMinute)}
       WHERE tenant_id = {tenant:String} ${campaign ? 'AND campaign_id = {campaign:String}' : ''} AND asset_id = {asset:String}
         AND minute >= fromUnixTimestamp({from:UInt32}) AND minute < fromUnixTimestamp({to:UInt32})
       GROUP BY t, kind ORDER BY t`,
      { tenant, asset, ...(campaign ? { campaign } : {}), ...params(range) },
    );
  }

  /** One asset's engagements per step: rows {t, n}. */
  async engagementSteps(tenant: string, asset: string, range: Range, campaign?: string): Promise<RollupRow[]> {
    return this.query(
      `SELECT toUnixTimestamp(toStartOfInterval(minute, INTERVAL {step:UInt32} SECOND)) * 1000 AS t, sum(events) AS n
       FROM ${this.store.table(TABLES.assetMinute)}
       WHERE tenant_id = {tenant:String} ${campaign ? 'AND campaign_id = {campaign:String}' : ''} AND asset_id = {asset:String}
         AND kind IN ({kinds:Array(String)})
         AND minute >= fromUnixTimestamp({from:UInt32}) AND minute < fromUnixTimestamp({to:UInt32})
       GROUP BY t ORDER BY t`,
      { tenant, asset, kinds: [...ENGAGEMENT_KINDS], ...(campaign ? { campaign } : {}), ...params(range) },
    );
  }

  /** A campaign's assets' events and value sums per kind over the range: rows {asset_id, kind, n, v}. */
  async campaignAssets(tenant: string, campaign: string, range: Range): Promise<RollupRow[]> {
    return this.query(
      `SELECT asset_id, toString(kind) AS kind, sum(events) AS n, sum(value_sum) AS v
       FROM ${this.store.table(TABLES.assetMinute)}
       WHERE tenant_id = {tenant:String} AND campaign_id = {campaign:String}
         AND minute >= fromUnixTimestamp({from:UInt32}) AND minute < fromUnixTimestamp({to:UInt32})
       GROUP BY asset_id, kind`,
      { tenant, campaign, ...params(range) },
    );
  }

  /**
   * Live events (late ones left out) and value sums of every asset since `since`: per minute from
   * `minutesSince` on, per hour before it.
   */
  async windowRows(since: number, minutesSince: number): Promise<{ tenant: string; campaign: string; asset: string; kind: EventKind; at_ms: string | number; events: string | number; value: number }[]> {
    const rs = await this.store.client.query({
      query: `SELECT tenant, campaign, asset, kind, toUnixTimestamp(at) * 1000 AS at_ms, sum(live) AS events, sum(live_value) AS value
              FROM (
                SELECT tenant_id AS tenant, campaign_id AS campaign, asset_id AS asset, toString(kind) AS kind, minute AS m,
                       sum(events) - sum(late_events) AS live, sum(value_sum) * (sum(events) - sum(late_events)) / sum(events) AS live_value
                FROM ${this.store.table(TABLES.assetMinute)}
                WHERE minute >= toDateTime({since:UInt32}, 'UTC') AND kind IN (${EVENT_KINDS.map((k) => `'${k}'`).join(', ')})
                GROUP BY tenant, campaign, asset, kind, m
                HAVING live > 0
              )
              GROUP BY tenant, campaign, asset, kind, if(m < toDateTime({minutes:UInt32}, 'UTC'), toStartOfHour(m), m) AS at
              ORDER BY at`,
      query_params: { since: Math.floor(since / 1000), minutes: Math.floor(minutesSince / 1000) },
      format: 'JSONEachRow',
    });
    return rs.json<{ tenant: string; campaign: string; asset: string; kind: EventKind; at_ms: string | number; events: string | number; value: number }>();
  }

  private async query(query: string, query_params: Record<string, unknown>): Promise<Record<string, unknown>[]> {
    const rs = await this.store.client.query({ query, query_params, format: 'JSONEachRow' });
    return rs.json<Record<string, unknown>>();
  }
}

/** The logs a rebuild replays: the raw events' ids (events_raw), the tie decisions, and the store's clock. */
export class StoreLogRepository {
  constructor(private readonly store: Store) {}

  /** The store's clock, epoch ms. */
  async now(): Promise<number> {
    const rs = await this.store.client.query({ query: 'SELECT toUnixTimestamp64Milli(now64(3)) AS now', format: 'JSONEachRow' });
    const [row] = await rs.json<{ now: string | number }>();
    return Number(row?.now);
  }

  /** [tenant, event, asset, received ms] of the events received since `since` that the store held at `heldAt`. */
  async storedEventIds(since: number, heldAt: number): Promise<[string, string, string, string | number][]> {
    // Compact rows: at 2,000 events/s five minutes are 600k ids. FINAL is not needed: a copy the
    // merge has not removed yet names the same id again.
    const rs = await this.store.client.query({
      query: `SELECT tenant_id, event_id, asset_id, toUnixTimestamp64Milli(received_at) AS received
              FROM ${this.store.table(TABLES.eventsRaw)}
              WHERE received_at >= fromUnixTimestamp64Milli({since:Int64}) AND inserted_at <= fromUnixTimestamp64Milli({held:Int64}) AND NOT late`,
      query_params: { since: Math.floor(since), held: Math.floor(heldAt) },
      format: 'JSONCompactEachRow',
    });
    return rs.json<[string, string, string, string | number]>();
  }

  /** Up to `limit` tie decisions after `after` (decided_at, then decision id), oldest first, as stored. */
  async tieDecisionPage(after: { at: number; id: string } | undefined, limit: number): Promise<Record<string, unknown>[]> {
    const rs = await this.store.client.query({
      query: `SELECT decision_id, tenant_id, ad_asset_id, toString(action) AS action, target_asset_id, score, auto, decided_by,
                     toUnixTimestamp64Milli(decided_at) AS decided_at, because_of
              FROM ${this.store.table(TABLES.tieDecisions)} FINAL
              ${after ? 'WHERE (decided_at, decision_id) > (fromUnixTimestamp64Milli({at:Int64}), {id:String})' : ''}
              ORDER BY decided_at, decision_id
              LIMIT ${limit}`,
      query_params: after ? { at: after.at, id: after.id } : {},
      format: 'JSONEachRow',
    });
    return rs.json<Record<string, unknown>>();
  }
}

function params(range: Range): Record<string, number> {
  return { from: Math.floor(range.from / 1000), to: Math.ceil(range.to / 1000), step: Math.round(range.stepMs / 1000) };
}

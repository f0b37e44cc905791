import { EVENT_KINDS, TABLES, tieDecisionSchema, type EventKind, type Store, type TieDecision } from '@afterglow/core';

/**
 * What the live role rebuilds from the store when hot state does not hold a partition's windows
 * (the memory adapter after a restart, or the in-process log, which starts empty with every
 * process): the per-minute counts of the last day, which the windows are made of, the ids of the
 * events stored lately, which a replay of the log's last minutes must skip, and the tie decisions,
 * which the master roll-ups follow.
 */

/** Events of one asset, kind and minute that the live windows count (late ones left out, as live does). */
export interface WindowRow {
  tenant: string;
  campaign: string;
  asset: string;
  kind: EventKind;
  /** Start of the minute, epoch ms. */
  minute: number;
  events: number;
  /** Sum of the events' values (dwell ms, conversion value; 1 each otherwise). */
  value: number;
}

/** An event the store holds, as the live dedup window knows events: by who sent it and when it arrived. */
export interface StoredEventId {
  tenant: string;
  event: string;
  asset: string;
  /** received_at, epoch ms. */
  received: number;
}

export interface LiveHistorySource {
  /**
   * Rows of every asset from `since` (epoch ms) on: per minute from `minutesSince` on, per hour
   * (stamped at the hour's start) before it. Only the minute tier needs minutes, and it reaches back
   * little more than an hour; a day of minutes would be 24x the rows held while a process starts.
   */
  windowRows(since: number, minutesSince: number): Promise<WindowRow[]>;
  /** Every tie decision, oldest first (decided_at, then decision id): replaying them gives today's ties. */
  tieDecisions(): AsyncIterable<TieDecision[]>;
  /** The store's clock, epoch ms: what "stored before now" means for storedEventIds. */
  now(): Promise<number>;
  /**
   * Events received since `since` (epoch ms) that the store held at `heldAt` (its clock): those a
   * replay of the log from about `since` must not count again, because windowRows counted them.
   */
  storedEventIds(since: number, heldAt: number): Promise<StoredEventId[]>;
}

const TIE_PAGE = 10_000;

export class StoreHistorySource implements LiveHistorySource {
  constructor(private readonly store: Store) {}

  async windowRows(since: number, minutesSince: number): Promise<WindowRow[]> {
    // Late events (received more than the late window after they occurred) are in ClickHouse but
    // not in live windows; the rollups count them apart, but sum their values in. Their share of
    // the value is taken out in proportion, minute by minute (values only matter for dwell and
    // conversions), before minutes are summed into hours. Video plays are not windowed (video.ts reads them).
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
    const rows = await rs.json<{ tenant: string; campaign: string; asset: string; kind: EventKind; at_ms: string | number; events: string | number; value: number }>();
    return rows.map((r) => ({ tenant: r.tenant, campaign: r.campaign, asset: r.asset, kind: r.kind, minute: Number(r.at_ms), events: Number(r.events), value: Number(r.value) }));
  }

  async now(): Promise<number> {
    const rs = await this.store.client.query({ query: 'SELECT toUnixTimestamp64Milli(now64(3)) AS now', format: 'JSONEachRow' });
    const [row] = await rs.json<{ now: string | number }>();
    return Number(row?.now);
  }

  async storedEventIds(since: number, heldAt: number): Promise<StoredEventId[]> {
    // Compact rows: at 2,000 events/s five minutes are 600k ids. FINAL is not needed: a copy the
    // merge has not removed yet names the same id again.
    const rs = await this.store.client.query({
      query: `SELECT tenant_id, event_id, asset_id, toUnixTimestamp64Milli(received_at) AS received
              FROM ${this.store.table(TABLES.eventsRaw)}
              WHERE received_at >= fromUnixTimestamp64Milli({since:Int64}) AND inserted_at <= fromUnixTimestamp64Milli({held:Int64}) AND NOT late`,
      query_params: { since: Math.floor(since), held: Math.floor(heldAt) },
      format: 'JSONCompactEachRow',
    });
    const rows = await rs.json<[string, string, string, string | number]>();
    return rows.map(([tenant, event, asset, received]) => ({ tenant, event, asset, received: Number(received) }));
  }

  async *tieDecisions(): AsyncIterable<TieDecision[]> {
    let after: { at: number; id: string } | undefined;
    for (;;) {
      const rs = await this.store.client.query({
        query: `SELECT decision_id, tenant_id, ad_asset_id, toString(action) AS action, target_asset_id, score, auto, decided_by,
                       toUnixTimestamp64Milli(decided_at) AS decided_at, because_of
                FROM ${this.store.table(TABLES.tieDecisions)} FINAL
                ${after ? 'WHERE (decided_at, decision_id) > (fromUnixTimestamp64Milli({at:Int64}), {id:String})' : ''}
                ORDER BY decided_at, decision_id
                LIMIT ${TIE_PAGE}`,
        query_params: after ? { at: after.at, id: after.id } : {},
        format: 'JSONEachRow',
      });
      const rows = await rs.json<Record<string, unknown>>();
      const page: TieDecision[] = [];
      for (const r of rows) {
        const parsed = tieDecisionSchema.safeParse({
          ...r,
          decided_at: Number(r.decided_at),
          target_asset_id: r.target_asset_id || undefined,
          score: r.score ?? undefined,
          because_of: r.because_of || undefined,
          auto: Boolean(r.auto),
        });
        if (parsed.success) page.push(parsed.data);
      }
      if (page.length > 0) yield page;
      if (rows.length < TIE_PAGE) return;
      const last = rows[rows.length - 1]!;
      after = { at: Number(last.decided_at), id: String(last.decision_id) };
    }
  }
}

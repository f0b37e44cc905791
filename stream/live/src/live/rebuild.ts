import { tieDecisionSchema, type EventKind, type TieDecision } from '@afterglow/core';
import type { RollupRepository, StoreLogRepository } from './store-repository.js';

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
  constructor(
    private readonly rollups: RollupRepository,
    private readonly log: StoreLogRepository,
  ) {}

  async windowRows(since: number, minutesSince: number): Promise<WindowRow[]> {
    // Late events (received more than the late window after they occurred) are in ClickHouse but
    // not in live windows; the rollups count them apart, but sum their values in. Their share of
    // the value is taken out in proportion, minute by minute (values only matter for dwell and
    // conversions), before minutes are summed into hours. Video plays are not windowed (video.ts reads them).
    const rows = await this.rollups.windowRows(since, minutesSince);
    return rows.map((r) => ({ tenant: r.tenant, campaign: r.campaign, asset: r.asset, kind: r.kind, minute: Number(r.at_ms), events: Number(r.events), value: Number(r.value) }));
  }

  async now(): Promise<number> {
    return this.log.now();
  }

  async storedEventIds(since: number, heldAt: number): Promise<StoredEventId[]> {
    // Compact rows: at 2,000 events/s five minutes are 600k ids. FINAL is not needed: a copy the
    // merge has not removed yet names the same id again.
    const rows = await this.log.storedEventIds(since, heldAt);
    return rows.map(([tenant, event, asset, received]) => ({ tenant, event, asset, received: Number(received) }));
  }

  async *tieDecisions(): AsyncIterable<TieDecision[]> {
    let after: { at: number; id: string } | undefined;
    for (;;) {
      const rows = await this.log.tieDecisionPage(after, TIE_PAGE);
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

import {
  Counter,
  EventsRawRepository,
  dedupeWithinBatch,
  rawRowKey,
  sealViewer,
  splitByDayPartitions,
  toRawRow,
  validateEvent,
  type EventLimits,
  type RawRow,
  type RejectReason,
  type Registry,
  type Store,
} from '@afterglow/core';
import { Slicer, type DecodedItem } from './decode.js';
import type { IntakeGuard, Rejection } from './intake.js';

/**
 * History import: engagement older than the live late window, written straight to events_raw
 * (the rollups follow by their materialized views) instead of through the bus. The live windows
 * have long closed for such events, so the live role never needs to see them; what it shares with
 * live ingest is the validation, the tenant guard and the exactly-once write, so an event id counts
 * once whichever way it arrived, and re-running an import adds nothing.
 */
export interface HistoryImportOptions {
  store: Store;
  limits: EventLimits;
  /** Oldest occurred_at accepted, as an age. */
  maxAgeMs: number;
  /** events_raw insert settings (the cluster's on a ClickHouse cluster). */
  insertSettings: Readonly<Record<string, string | number>>;
  registry?: Registry;
  clock?: () => number;
  /** As live ingest: viewer ids are replaced by their keyed hash (dropped without a key). */
  viewerKey?: Buffer | undefined;
}

export interface ImportResult {
  /** Events in the request. */
  received: number;
  /** Written now (0 on a dry run). */
  inserted: number;
  /** Valid and new: what a real run writes (equals `inserted` unless dry_run). */
  new: number;
  /** Already stored (or repeated within the request): the first write wins. */
  duplicates: number;
  rejected: number;
  rejections: Rejection[];
  dry_run: boolean;
}

export class HistoryImport {
  private readonly repo: EventsRawRepository;
  private readonly clock: () => number;
  /**
   * One import step at a time per tenant in this process: two overlapping requests for the same
   * ids would otherwise both find them absent and both insert.
   */
  private readonly running = new Map<string, Promise<unknown>>();
  private readonly metrics: { inserted: Counter<string>; duplicates: Counter<string>; rejected: Counter<'reason'> };

  constructor(private readonly options: HistoryImportOptions) {
    this.repo = new EventsRawRepository(options.store);
    this.clock = options.clock ?? Date.now;
    const registers = options.registry ? [options.registry] : [];
    this.metrics = {
      inserted: new Counter({ name: 'afterglow_import_events_inserted_total', help: 'History events written by POST /v1/import/events', registers }),
      duplicates: new Counter({ name: 'afterglow_import_duplicates_total', help: 'Imported events already stored (first write wins)', registers }),
      rejected: new Counter({ name: 'afterglow_import_events_rejected_total', help: 'Imported events refused, by reason', labelNames: ['reason'], registers }),
    };
  }

  async run(items: readonly DecodedItem[], guard: IntakeGuard | undefined, dryRun: boolean): Promise<ImportResult> {
    const tenant = guard?.tenantId ?? '';
    const before = this.running.get(tenant) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(() => this.step(items, guard, dryRun));
    this.running.set(tenant, mine);
    try {
      return await mine;
    } finally {
      if (this.running.get(tenant) === mine) this.running.delete(tenant);
    }
  }

  private async step(items: readonly DecodedItem[], guard: IntakeGuard | undefined, dryRun: boolean): Promise<ImportResult> {
    const now = this.clock();
    const { limits, maxAgeMs } = this.options;
    const importLimits: EventLimits = { ...limits, maxAgeMs };
    const newest = now - limits.liveLateMs;
    const rows: RawRow[] = [];
    const rejections: Rejection[] = [];
    const slicer = new Slicer();
    for (let index = 0; index < items.length; index++) {
      if ((index & 511) === 511) await slicer.maybeYield();
      const item = items[index]!;
      if (!item.ok) {
        rejections.push({ index, reason: 'undecodable', message: item.message });
        continue;
      }
      const v = validateEvent(item.value, importLimits, now);
      if (!v.ok) {
        const eventId = (item.value as { event_id?: unknown } | null)?.event_id;
        const r: Rejection = { index, reason: v.reason, message: v.message };
        if (typeof eventId === 'string') r.event_id = eventId.slice(0, 64);
        if (v.field) r.field = v.field;
        rejections.push(r);
      } else if (guard && v.event.tenant_id !== guard.tenantId) {
        rejections.push({ index, event_id: v.event.event_id, reason: 'tenant_forbidden', field: 'tenant_id', message: 'the API key belongs to another tenant' });
      } else if (v.event.occurred_at > newest) {
        rejections.push({
          index,
          event_id: v.event.event_id,
          reason: 'too_recent',
          field: 'occurred_at',
          message: `occurred_at is within the live late window (${limits.liveLateMs} ms): send it to POST /v1/events, where the live views count it`,
        });
      } else {
        sealViewer(v.event, this.options.viewerKey);
        rows.push(toRawRow(v.event, limits.liveLateMs));
      }
    }
    const unique = dedupeWithinBatch(rows);
    const existing = unique.length > 0 ? await this.repo.existingKeys(unique) : new Set<string>();
    const fresh = existing.size === 0 ? unique : unique.filter((r) => !existing.has(rawRowKey(r)));
    if (!dryRun) {
      for (const run of splitByDayPartitions(fresh)) await this.repo.insert(run, this.options.insertSettings);
      this.metrics.inserted.inc(fresh.length);
      this.metrics.duplicates.inc(rows.length - fresh.length);
      const byReason = new Map<RejectReason, number>();
      for (const r of rejections) byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
      for (const [reason, n] of byReason) this.metrics.rejected.inc({ reason }, n);
    }
    return {
      received: items.length,
      inserted: dryRun ? 0 : fresh.length,
      new: fresh.length,
      duplicates: rows.length - fresh.length,
      rejected: rejections.length,
      rejections,
      dry_run: dryRun,
    };
  }
}

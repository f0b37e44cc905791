import { Counter, type DedupWindow, Gauge, Histogram, type Registry } from '@afterglow/core';

/** The live aggregator's parts (aggregator.ts orchestrates them) share these: time units, a partition's state, the metrics. */

export const DAY = 86_400_000;
export const HOUR = 3_600_000;
export const MINUTE = 60_000;
export const LOAD_CHUNK = 500;
/** Arrival buckets of the dedup window: a bucket's entries are one appended string in hot state. */
export const DEDUP_BUCKET_MS = MINUTE;

export interface PartitionState {
  partition: number;
  /** Next offset to apply; undefined until something was applied when hot state had no offset. */
  applied: bigint | undefined;
  /** What hot state holds (as far as this member knows). */
  persisted: bigint | undefined;
  committed: bigint | undefined;
  /** Bumped on revocation, so an in-flight batch can tell its partition went away. */
  generation: number;
  /** Events counted lately, as of `applied` (persisted with the offset, so a replay decides alike). */
  dedup: DedupWindow;
  /** Per tenant: live assets and campaigns this partition holds in hot state (loaded on first use). */
  quota: Map<string, { assets: number; campaigns: number }>;
}

/** What the aggregator has counted since it started (read by tests and benches). */
export type AggregatorTotals = Record<'received' | 'applied' | 'replayed' | 'duplicates' | 'late' | 'invalid' | 'expired' | 'published' | 'flushes' | 'reattributed' | 'quotaRefused', number>;

export type AggregatorMetrics = ReturnType<typeof createMetrics>;

export function createMetrics(registry: Registry | undefined, entities: () => number, dirty: () => number) {
  const registers = registry ? [registry] : [];
  new Gauge({
    name: 'afterglow_live_entities',
    help: 'Assets and campaign/master shares held in aggregator memory',
    registers,
    collect() {
      this.set(entities());
    },
  });
  new Gauge({
    name: 'afterglow_live_dirty_entities',
    help: 'Entities changed since the last hot-state flush',
    registers,
    collect() {
      this.set(dirty());
    },
  });
  return {
    applied: new Counter({ name: 'afterglow_live_events_applied_total', help: 'Events counted in live windows', registers }),
    skipped: new Counter({
      name: 'afterglow_live_events_skipped_total',
      help:
        'Events not counted live: replayed (already in hot state), duplicate (a re-sent event id), conflicting_duplicate (a re-used id with other content), ' +
        "late, invalid, expired (older than every window), tenant_quota (a new asset or campaign past the tenant's live quota)",
      labelNames: ['reason'],
      registers,
    }),
    published: new Counter({ name: 'afterglow_live_deltas_published_total', help: 'Entity deltas published on the fan-out', registers }),
    quotaRefused: new Counter({
      name: 'afterglow_live_quota_refused_total',
      help: 'Events not counted live because their new asset or campaign would pass the tenant\'s quota (LIVE_MAX_ASSETS_PER_TENANT, LIVE_MAX_CAMPAIGNS_PER_TENANT)',
      labelNames: ['kind'],
      registers,
    }),
    evicted: new Counter({
      name: 'afterglow_live_entities_evicted_total',
      help: 'Clean entities dropped from aggregator memory (reloaded from hot state on demand): tenant (past LIVE_MAX_ENTITIES_PER_TENANT), total (past LIVE_MAX_ENTITIES, from the largest tenant)',
      labelNames: ['reason'],
      registers,
    }),
    reattributed: new Counter({ name: 'afterglow_live_reattributed_total', help: 'Assets moved between masters after a tie change', registers }),
    retries: new Counter({ name: 'afterglow_live_flush_retries_total', help: 'Retried hot-state flushes', registers }),
    flushSeconds: new Histogram({
      name: 'afterglow_live_flush_seconds',
      help: 'Hot-state flush (fence, MULTI, commit) duration',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    lag: new Histogram({
      name: 'afterglow_live_apply_lag_seconds',
      help: 'From ingest (received_at) to applied in the live windows, per batch',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers,
    }),
  };
}

import { TOPICS, eventFingerprint, partitionForKey, type Bus, type EventLimits, type HotState, type Logger, type PartitionOffset } from '@afterglow/core';
import { DAY, DEDUP_BUCKET_MS, HOUR, MINUTE, type PartitionState } from './aggregator-shared.js';
import type { AssetRef, Entity } from './entity-cache.js';
import type { LiveHistorySource, WindowRow } from './rebuild.js';
import { KIND_INDEX } from './windows.js';

/** What a start rebuilds from the store: per partition, the windows' rows and the stored ids a replay must skip. */
export interface Rebuild {
  rows: Map<number, WindowRow[]>;
  known: Map<number, [bucket: number, fingerprint: number][]>;
}

export interface RestartRebuildOptions {
  bus: Bus;
  hot: HotState;
  log: Logger;
  limits: EventLimits;
  storeGroupId?: string;
  clock: () => number;
  partitions: ReadonlyMap<number, PartitionState>;
  offsetKey: (partition: number) => string;
  /** Loads (and pins) every entity the rows touch; callers unpin. */
  ensureFor: (events: readonly AssetRef[], partition: number) => Promise<Entity[]>;
  /** Counts `count` events of one asset and kind at `at` into its windows and its shares. */
  count: (e: AssetRef, kind: number, count: number, value: number, at: number, partition: number, now: number, local: Map<string, Entity>) => void;
  schedulePublish: () => void;
}

/**
 * Brings back, on start, the windows hot state lost (the memory adapter, the in-process log):
 * which partitions lack them, where their replay starts, the store's rows and ids for them, and
 * counting those rows in. Holds the rebuild while a rebuilt partition has not been flushed.
 */
export class RestartRebuild {
  /** The last day's per-minute counts (and stored ids) from the store, by partition, while a rebuild is due. */
  pending: Promise<Rebuild> | undefined;
  private readonly options: Pick<RestartRebuildOptions, 'bus' | 'hot' | 'log' | 'limits' | 'storeGroupId'>;
  private readonly clock: () => number;
  private readonly partitions: ReadonlyMap<number, PartitionState>;
  private readonly offsetKey: (partition: number) => string;
  private readonly ensureFor: RestartRebuildOptions['ensureFor'];
  private readonly count: RestartRebuildOptions['count'];
  private readonly schedulePublish: () => void;

  constructor(options: RestartRebuildOptions) {
    this.options = options;
    this.clock = options.clock;
    this.partitions = options.partitions;
    this.offsetKey = options.offsetKey;
    this.ensureFor = options.ensureFor;
    this.count = options.count;
    this.schedulePublish = options.schedulePublish;
  }

  /**
   * Hot state holds these partitions' windows now: their share of the rebuild is not needed again,
   * and once no partition's share is left, neither is the rebuild.
   */
  flushed(done: number[]): void {
    const rebuild = this.pending;
    if (!rebuild) return;
    void rebuild
      .then((r) => {
        for (const p of done) {
          r.rows.delete(p);
          r.known.delete(p);
        }
        if (r.rows.size === 0 && r.known.size === 0 && this.pending === rebuild) this.pending = undefined;
      })
      .catch(() => undefined);
  }

  /** Partitions of the events topic whose applied offset hot state does not hold (all of them in a fresh memory adapter). */
  async partitionsHotStateLacks(): Promise<number[]> {
    const partitions = (await this.options.bus.endOffsets(TOPICS.events)).map((o) => o.partition);
    const stored = await this.options.hot.mget(partitions.map((p) => this.offsetKey(p)));
    return partitions.filter((_, i) => stored[i] == null);
  }

  /**
   * Where a rebuilt partition's replay starts: the records of the last half dedup window (the
   * stored ids of a whole window are skipped, so a record appended a little after its received_at
   * is still recognised), and never later than what the store's writer has committed (records it
   * may not have stored). A writer that committed nothing: from the beginning.
   */
  async replayOffsets(partitions: number[]): Promise<PartitionOffset[]> {
    const { bus, storeGroupId } = this.options;
    const [recent, stored, earliest] = await Promise.all([
      bus.offsetsForTime(TOPICS.events, this.clock() - this.options.limits.dedupWindowMs / 2),
      storeGroupId ? bus.committedOffsets(storeGroupId, TOPICS.events) : undefined,
      bus.offsetsForTime(TOPICS.events, 0),
    ]);
    return partitions.map((partition) => {
      let offset = BigInt(recent.find((o) => o.partition === partition)?.offset ?? '0');
      if (stored) {
        const committed = BigInt(stored.find((o) => o.partition === partition)?.offset ?? '-1');
        const from = committed >= 0n ? committed : BigInt(earliest.find((o) => o.partition === partition)?.offset ?? '0');
        if (from < offset) offset = from;
      }
      return { topic: TOPICS.events, partition, offset: offset.toString() };
    });
  }

  /**
   * The store's per-minute rows of the last day for `partitions`, and — when the log will be
   * replayed — the ids it stored lately, which the replay must not count again.
   */
  async loadRebuild(history: LiveHistorySource, partitions: Set<number>, replay: boolean): Promise<Rebuild> {
    const partitionCount = (await this.options.bus.endOffsets(TOPICS.events)).length;
    const now = this.clock();
    const since = now - DAY - this.options.limits.liveLateMs;
    // Older than the minute tier reaches (1 h + the late window, and a bucket of slack): hours suffice.
    const minutesSince = Math.floor((now - HOUR - this.options.limits.liveLateMs - 2 * MINUTE) / HOUR) * HOUR;
    // The store's clock before the rows are read: an id stored after it may be missing from the
    // rows, so it is not claimed (the replay counts it).
    const heldAt = replay ? await history.now() : 0;
    const rows = new Map<number, WindowRow[]>();
    for (const row of await history.windowRows(since, minutesSince)) {
      const p = partitionForKey(row.asset, partitionCount);
      if (!partitions.has(p)) continue;
      let list = rows.get(p);
      if (!list) rows.set(p, (list = []));
      list.push(row);
    }
    const known = new Map<number, [number, number][]>();
    if (replay) {
      // The replay starts half a window back, and each of its records must see the window before it.
      for (const id of await history.storedEventIds(now - 1.5 * this.options.limits.dedupWindowMs, heldAt)) {
        const p = partitionForKey(id.asset, partitionCount);
        if (!partitions.has(p)) continue;
        let list = known.get(p);
        if (!list) known.set(p, (list = []));
        list.push([Math.floor(id.received / DEDUP_BUCKET_MS), eventFingerprint(id.tenant, id.event)]);
      }
    }
    return { rows, known };
  }

  /**
   * Counts what the store holds for the partition's assets into their windows before the first
   * event of this process (the log started empty, so nothing is counted twice). Oldest minute first.
   */
  async rebuildPartition(ps: PartitionState, rows: WindowRow[]): Promise<void> {
    if (rows.length === 0) return;
    const refs = rows.map((r) => ({ tenant_id: r.tenant, asset_id: r.asset, campaign_id: r.campaign }));
    const pinned = await this.ensureFor(refs, ps.partition);
    try {
      if (this.partitions.get(ps.partition) !== ps) return; // revoked meanwhile
      const local = new Map(pinned.map((e) => [e.key, e]));
      rows.forEach((r, i) => this.count(refs[i]!, KIND_INDEX[r.kind], r.events, r.value, r.minute, ps.partition, r.minute + MINUTE, local));
    } finally {
      for (const e of pinned) e.pins--;
    }
    this.options.log.info({ partition: ps.partition, rows: rows.length, events: rows.reduce((n, r) => n + r.events, 0) }, 'live windows rebuilt from the store');
    this.schedulePublish();
  }
}

import { DAY, DEDUP_BUCKET_MS, HOUR, MINUTE, type AggregatorMetrics, type AggregatorTotals, type PartitionState } from './aggregator-shared.js';
import { TOPICS, encodeDedupEntries, type BusConsumer, type EventLimits, type HotOp, type HotState, type Logger } from '@afterglow/core';
import type { Entity } from './entity-cache.js';
import type { FreshnessCounter } from './freshness.js';
import type { LiveKeys } from './keys.js';
import { metaFields } from './state.js';
import { DIRTY_FLUSH } from './windows.js';

export interface FlusherOptions {
  hot: HotState;
  log: Logger;
  limits: EventLimits;
  offsetScope: string;
  keys: LiveKeys;
  clock: () => number;
  /** Keys live this long after their last write. */
  ttlMs: number;
  /** This member's field in the tenants' freshness hashes. */
  memberId: string;
  freshness: FreshnessCounter;
  entities: ReadonlyMap<string, Entity>;
  partitions: ReadonlyMap<number, PartitionState>;
  /** Entities changed since the last flush; emptied by each capture. */
  flushQueue: Set<Entity>;
  totals: Pick<AggregatorTotals, 'flushes'>;
  metrics: Pick<AggregatorMetrics, 'flushSeconds' | 'retries'>;
  /** The consumer whose offsets are committed after a flush (undefined before start). */
  consumer: () => BusConsumer | undefined;
  evict: () => void;
  revoke: (partition: number) => void;
  /** Folds an asset's finished minutes before `until` into its decay tracker. */
  absorbUntil: (asset: Entity, until: number) => void;
  offsetKey: (partition: number) => string;
  dedupKey: (partition: number, bucket: number) => string;
  quotaOn: () => boolean;
  isStopping: () => boolean;
  isAbandoned: () => boolean;
  /** Hot state now holds these partitions' windows. */
  onFlushed: (partitions: number[]) => void;
}

/**
 * Writes dirty entities, the dedup windows and the applied offsets to hot state in one atomic
 * batch, after fencing off partitions another member moved on, then commits the offsets to the bus.
 */
export class Flusher {
  private readonly options: { hot: HotState; log: Logger; limits: EventLimits; offsetScope: string };
  private readonly keys: LiveKeys;
  private readonly clock: () => number;
  private readonly ttlMs: number;
  private readonly memberId: string;
  private readonly freshness: FreshnessCounter;
  private readonly entities: ReadonlyMap<string, Entity>;
  private readonly partitions: ReadonlyMap<number, PartitionState>;
  private readonly flushQueue: Set<Entity>;
  private readonly totals: Pick<AggregatorTotals, 'flushes'>;
  private readonly metrics: Pick<AggregatorMetrics, 'flushSeconds' | 'retries'>;
  private readonly evict: () => void;
  private readonly revoke: (partition: number) => void;
  private readonly absorbUntil: (asset: Entity, until: number) => void;
  private readonly offsetKey: (partition: number) => string;
  private readonly dedupKey: (partition: number, bucket: number) => string;
  private readonly onFlushed: (partitions: number[]) => void;
  private readonly hooks: Pick<FlusherOptions, 'consumer' | 'quotaOn' | 'isStopping' | 'isAbandoned'>;
  private flushing: Promise<void> = Promise.resolve();

  constructor(options: FlusherOptions) {
    this.options = { hot: options.hot, log: options.log, limits: options.limits, offsetScope: options.offsetScope };
    this.keys = options.keys;
    this.clock = options.clock;
    this.ttlMs = options.ttlMs;
    this.memberId = options.memberId;
    this.freshness = options.freshness;
    this.entities = options.entities;
    this.partitions = options.partitions;
    this.flushQueue = options.flushQueue;
    this.totals = options.totals;
    this.metrics = options.metrics;
    this.evict = options.evict;
    this.revoke = options.revoke;
    this.absorbUntil = options.absorbUntil;
    this.offsetKey = options.offsetKey;
    this.dedupKey = options.dedupKey;
    this.onFlushed = options.onFlushed;
    this.hooks = options;
  }

  private get consumer(): BusConsumer | undefined {
    return this.hooks.consumer();
  }

  private get quotaOn(): boolean {
    return this.hooks.quotaOn();
  }

  private get stopping(): boolean {
    return this.hooks.isStopping();
  }

  private get abandoned(): boolean {
    return this.hooks.isAbandoned();
  }

  /** Waits for the flush in progress, if any (never rejects). */
  settled(): Promise<void> {
    return this.flushing;
  }

  offsetsBehind(): boolean {
    for (const ps of this.partitions.values()) if (ps.applied !== undefined && ps.applied !== ps.persisted) return true;
    return false;
  }

  /** Persist dirty entities and applied offsets atomically, then commit the offsets. Serialized. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.flushOnce());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async flushOnce(): Promise<void> {
    if (this.flushQueue.size === 0 && !this.offsetsBehind()) {
      this.evict();
      return;
    }
    const stop = this.metrics.flushSeconds.startTimer();
    try {
      await this.fence();
      if (this.abandoned) return;
      const { ops, entities, offsets } = this.capture();
      if (ops.length === 0) return;
      let delay = 100;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.options.hot.batch(ops);
          break;
        } catch (err) {
          if (this.stopping && attempt >= 3) {
            // Give up: the rows are dirty again and the next owner replays from what hot state holds.
            for (const e of entities) if (this.entities.get(e.key) === e) this.flushQueue.add(e);
            throw err;
          }
          this.metrics.retries.inc();
          this.options.log.warn({ err, attempt }, `live flush failed; retrying in ${delay} ms`);
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 5_000);
        }
      }
      this.totals.flushes++;
      for (const [ps, offset] of offsets) ps.persisted = offset;
      this.onFlushed(offsets.map(([ps]) => ps.partition));
      await this.commit(offsets.map(([ps]) => ps));
    } finally {
      stop();
      this.evict();
    }
  }

  /**
   * Partitions another member has moved past (it wrote a higher offset than ours) are not ours
   * any more, whatever the group said last: forget them before writing anything.
   */
  private async fence(): Promise<void> {
    const states = [...this.partitions.values()].filter((ps) => ps.persisted !== undefined || ps.applied !== undefined);
    if (states.length === 0) return;
    const stored = await this.options.hot.mget(states.map((ps) => this.offsetKey(ps.partition)));
    states.forEach((ps, i) => {
      const s = stored[i];
      if (s === null || s === undefined || !/^[0-9]+$/.test(s)) return;
      const theirs = BigInt(s);
      if (ps.persisted === undefined ? theirs > 0n : theirs > ps.persisted) {
        this.options.log.warn({ partition: ps.partition, ours: String(ps.persisted), theirs: s }, 'another aggregator moved this partition on; reloading it from hot state');
        this.revoke(ps.partition);
      }
    });
  }

  /** One consistent cut of everything dirty, as hot-state ops (synchronous). */
  private capture(): { ops: HotOp[]; entities: Entity[]; offsets: [PartitionState, bigint][] } {
    const ops: HotOp[] = [];
    const entities: Entity[] = [];
    const now = this.clock();
    const ttl = this.ttlMs;
    const lateCutoff = Math.floor((now - this.options.limits.liveLateMs) / MINUTE) - 1;
    for (const e of this.flushQueue) {
      if (this.entities.get(e.key) !== e) continue;
      if (e.kind === 'asset') this.absorbUntil(e, lateCutoff);
      const fields: Record<string, string | number> = { ...e.buckets.takeRows(DIRTY_FLUSH), ...metaFields(e.meta(), now) };
      if (e.decayDirty & DIRTY_FLUSH && e.tracker) fields.db = e.tracker.toJSON();
      e.decayDirty &= ~DIRTY_FLUSH;
      e.metaDirty = false;
      ops.push({ op: 'hset', key: e.key, fields }, { op: 'expire', key: e.key, ttlMs: ttl });
      if (e.kind === 'asset') {
        if (e.campaign) {
          const index = this.keys.campaignAssets(e.tenant, e.campaign);
          ops.push({ op: 'zadd', key: index, member: e.id, score: e.lastEventAt || now }, { op: 'expire', key: index, ttlMs: ttl });
        }
        if (e.master) {
          const ads = this.keys.masterAds(e.tenant, e.master);
          ops.push({ op: 'zadd', key: ads, member: e.id, score: e.lastEventAt || now }, { op: 'expire', key: ads, ttlMs: ttl });
        }
      }
      if (e.kind !== 'master' && this.quotaOn && e.n > 0 && now - e.quotaAt >= HOUR) {
        // Its score only has to stay within the hash's TTL (which has an hour to spare) for the prune.
        const quota = this.keys.quota(e.kind, e.tenant, e.partition);
        ops.push({ op: 'zadd', key: quota, member: e.id, score: now }, { op: 'expire', key: quota, ttlMs: ttl });
        e.quotaAt = now;
      }
      if (e.kind !== 'asset') {
        const parts = this.keys.parts(e.kind, e.tenant, e.id);
        ops.push({ op: 'zadd', key: parts, member: String(e.partition), score: now }, { op: 'expire', key: parts, ttlMs: ttl });
      }
      entities.push(e);
    }
    this.flushQueue.clear();
    for (const [tenant, value] of this.freshness.fields(now)) {
      const key = this.keys.freshness(tenant);
      ops.push({ op: 'hset', key, fields: { [this.memberId]: value } }, { op: 'expire', key, ttlMs: ttl });
    }
    const offsets: [PartitionState, bigint][] = [];
    const dedupTtl = this.options.limits.dedupWindowMs + 2 * DEDUP_BUCKET_MS;
    for (const ps of this.partitions.values()) {
      const byBucket = new Map<number, [number, number][]>();
      for (const [bucket, fingerprint, digest] of ps.dedup.drain()) {
        let list = byBucket.get(bucket);
        if (!list) byBucket.set(bucket, (list = []));
        list.push([fingerprint, digest]);
      }
      for (const [bucket, entries] of byBucket) {
        const key = this.dedupKey(ps.partition, bucket);
        ops.push({ op: 'append', key, value: encodeDedupEntries(entries) }, { op: 'expire', key, ttlMs: dedupTtl });
      }
      if (ps.applied === undefined || ps.applied === ps.persisted) continue;
      const key = this.offsetKey(ps.partition);
      ops.push(this.options.offsetScope.startsWith('process-') ? { op: 'set', key, value: ps.applied.toString(), ttlMs: 2 * DAY } : { op: 'set', key, value: ps.applied.toString() });
      offsets.push([ps, ps.applied]);
    }
    return { ops, entities, offsets };
  }

  private async commit(states: PartitionState[]): Promise<void> {
    const due = states.filter((ps) => ps.persisted !== undefined && ps.persisted !== ps.committed && this.partitions.get(ps.partition) === ps);
    if (due.length === 0 || !this.consumer) return;
    try {
      await this.consumer.commit(due.map((ps) => ({ topic: TOPICS.events, partition: ps.partition, offset: ps.persisted!.toString() })));
      for (const ps of due) ps.committed = ps.persisted;
    } catch (err) {
      // Only bounds the replay after a restart: hot state already has these offsets.
      this.options.log.warn({ err }, 'live offsets not committed; they are retried with the next flush');
    }
  }
}

import {
  AfterglowError,
  SUBJECTS,
  TOPICS,
  DedupWindow,
  decodeDedupEntries,
  eventFingerprint,
  fingerprintField,
  isWindowKind,
  payloadDigest,
  readBusEvent,
  type Bus,
  type BusConsumer,
  type DeliveredBatch,
  type EngagementEvent,
  type EventLimits,
  type FanOut,
  type HotState,
  type Logger,
  type PartitionOffset,
  type Registry,
  type Subscription,
} from '@afterglow/core';
import { randomUUID } from 'node:crypto';
import { DecayTracker } from './decay.js';
import { FreshnessCounter } from './freshness.js';
import type { LiveKeys } from './keys.js';
import { ENGAGEMENT_INDEXES } from './rates.js';
import type { LiveHistorySource, WindowRow } from './rebuild.js';
import { TieRecorder } from './ties.js';
import { DIRTY_FLUSH, DIRTY_PUBLISH, KIND_INDEX, windowLayout, type Layout } from './windows.js';
import { DAY, DEDUP_BUCKET_MS, HOUR, MINUTE, createMetrics, type AggregatorMetrics, type AggregatorTotals, type PartitionState } from './aggregator-shared.js';
import { EntityCache, type AssetRef, type Entity } from './entity-cache.js';
import { Flusher } from './flusher.js';
import { DeltaPublisher } from './publisher.js';
import { TieReattribution } from './reattribution.js';
import { RestartRebuild, type Rebuild } from './restart.js';

/**
 * The live aggregator: one member of consumer group `groupId` on `engagement.events`. It keeps,
 * for the partitions it owns, every asset's sliding windows (windows.ts), each partition's share of
 * every campaign, and — through the ties recorded from `assets.ties` — each partition's share of
 * every master. Changed entities go out as compact deltas on the fan-out at most every
 * `publishMs`; state goes to the hot-state port at most every `flushMs`.
 *
 * Exactly-once live counts across crashes and rebalances
 * -------------------------------------------------------
 * Delivery is at-least-once (Kafka redelivers from the group's committed offset). Hot state holds,
 * per partition, the next offset whose effects it contains, and every flush writes that offset in
 * the SAME hot-state batch (one Redis MULTI/EXEC, atomic) as the rows the records changed. Rows are
 * absolute values, not increments. So hot state is always "the partition's entities as of offset
 * X", never a mix. A member that gets a partition (after a crash, a rebalance, a restart) reads X
 * first, skips redelivered records below X, and loads entities lazily from hot state before it
 * changes them: whatever was applied before the crash and flushed is not applied again, whatever
 * was applied but not flushed is applied exactly once more. Kafka offsets are committed after the
 * flush and only bound how much is redelivered; they are never trusted for correctness.
 * Because all events of an asset share a partition (keyed by asset_id), an asset has one writer;
 * campaigns and masters span partitions, so each partition owns its own share ("part") of them
 * and readers add the parts up: no two writers ever touch the same hash.
 * The gap left is a zombie: a member that lost its partitions without noticing (paused past the
 * session timeout) and flushes after the new owner started. Before each flush we read the stored
 * offsets and drop partitions another member has moved past, which narrows that window to one
 * in-flight MULTI; closing it fully would take a compare-and-set in the hot-state port.
 * Offsets cannot tell a client's retry (the same event posted again: a new record, a new offset)
 * from a new event. Each partition keeps a DedupWindow of the (tenant_id, event_id) it counted in
 * the last EVENT_DEDUP_WINDOW_MS (all of an asset's events share a partition) and persists what it
 * learnt in the same MULTI as the rows and the offset, so after a crash the window is "as of
 * offset X" too and the replay decides exactly as the first pass did.
 * Deltas may be published before the flush: after a crash the replay recomputes the same absolute
 * rows, and receivers merge rows by maximum (counts only grow), so a repeat changes nothing.
 *
 * An id re-used for another asset lands on another partition, out of reach of that window: the
 * first partition to see an id claims it in hot state (its payload digest, set-if-absent in a hash
 * per tenant and window-long bucket, see claim()), and a copy whose digest differs from the claim
 * is a conflict on every partition.
 *
 * Memory: entities are held in an LRU map of at most `maxEntities`; clean ones (already flushed)
 * are evicted and reloaded from hot state when an event needs them again. Consumption waits for a
 * flush when too much is dirty, which bounds the rest. Ids are the clients' to choose, so the map
 * is also bounded per tenant (`quotas.entitiesPerTenant`), and past `maxEntities` the largest
 * tenant's go first: a tenant inventing ids pushes out only its own. What a tenant may hold in hot
 * state is bounded too: each partition counts the tenant's live assets and campaigns (a sorted set
 * by last activity, written in the flush's MULTI, pruned by the sweep once they expire), and an
 * event that would make one more than the quota is not counted live (ClickHouse still has it).
 */

export interface LiveAggregatorOptions {
  bus: Bus;
  hot: HotState;
  fanout: FanOut;
  log: Logger;
  limits: EventLimits;
  groupId: string;
  keys: LiveKeys;
  /**
   * Scopes the applied-offset keys to one log: the Kafka cluster/namespace, or a per-process id for
   * the in-process bus (whose offsets restart at 0 with every process).
   */
  offsetScope: string;
  flushMs: number;
  publishMs: number;
  maxEntities: number;
  tiesSweepMs: number;
  /**
   * Per-tenant bounds on what client-chosen ids can make us hold (config LIVE_MAX_*_PER_TENANT).
   * Defaults: entities up to maxEntities, assets and campaigns unbounded.
   */
  quotas?: { entitiesPerTenant?: number; assetsPerTenant?: number; campaignsPerTenant?: number };
  /** Partitions of the events topic, when the bus cannot tell (it is asked first). */
  partitions?: number;
  /** Also record decisions from `assets.ties` into hot state (a second consumer group). Default true. */
  recordTies?: boolean;
  registry?: Registry;
  clock?: () => number;
  /**
   * Where ties and the last day's per-minute counts are rebuilt from on start, for the partitions
   * whose windows hot state does not hold (the memory adapter after a restart; the in-process log
   * starts empty with every process): the store.
   */
  history?: LiveHistorySource;
  /**
   * The group that writes events into the store (the sink): what it has committed is stored, so a
   * replay after a rebuild never starts later than that. Without it, the replay starts from the
   * last few minutes only.
   */
  storeGroupId?: string;
}

export class LiveAggregator {
  private readonly layout: Layout;
  private readonly keys: LiveKeys;
  private readonly clock: () => number;
  private consumer: BusConsumer | undefined;
  private ties: TieRecorder | undefined;
  private tieNotices: Subscription | undefined;
  private readonly cache: EntityCache;
  private readonly reattribution: TieReattribution;
  private readonly publisher: DeltaPublisher;
  private readonly flusher: Flusher;
  private readonly restart: RestartRebuild;
  private readonly entities: Map<string, Entity>;
  /** The same entities by tenant, each tenant's in least recently used order. */
  private readonly byTenant: Map<string, Map<string, Entity>>;
  private readonly quotas: { entitiesPerTenant: number; assetsPerTenant: number; campaignsPerTenant: number };
  /** Partitions of the events topic (set on start); with one, the partition's window sees every copy. */
  private partitionCount = 0;
  /** Tenants warned about their quota, and when (one line a minute each). */
  private readonly quotaWarned = new Map<string, number>();
  private readonly partitions = new Map<number, PartitionState>();
  private readonly partitionLoads = new Map<number, Promise<PartitionState>>();
  private readonly owned = new Set<number>();
  private readonly flushQueue = new Set<Entity>();
  private readonly pubQueue = new Set<Entity>();
  private flushTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private abandoned = false;
  private generationSeq = 0;
  /** Keys live this long after their last write: the 24 h window, the late window, an hour to spare. */
  private readonly ttlMs: number;
  private readonly metrics: AggregatorMetrics;
  private readonly freshness = new FreshnessCounter();
  /** This member's field in the tenants' freshness hashes. */
  private readonly memberId = randomUUID();
  readonly totals: AggregatorTotals = { received: 0, applied: 0, replayed: 0, duplicates: 0, late: 0, invalid: 0, expired: 0, published: 0, flushes: 0, reattributed: 0, quotaRefused: 0 };

  constructor(private readonly options: LiveAggregatorOptions) {
    this.layout = windowLayout(options.limits.liveLateMs);
    this.keys = options.keys;
    this.clock = options.clock ?? Date.now;
    this.ttlMs = DAY + options.limits.liveLateMs + HOUR;
    this.metrics = createMetrics(options.registry, () => this.entities.size, () => this.flushQueue.size);
    const q = options.quotas ?? {};
    this.quotas = {
      entitiesPerTenant: Math.min(q.entitiesPerTenant ?? options.maxEntities, options.maxEntities),
      assetsPerTenant: q.assetsPerTenant ?? Infinity,
      campaignsPerTenant: q.campaignsPerTenant ?? Infinity,
    };
    const { hot, log, keys } = options;
    const clock = this.clock;
    const isStopping = () => this.stopping;
    const { flushQueue, pubQueue, partitions, totals, metrics } = this;
    this.cache = new EntityCache({
      hot,
      keys,
      layout: this.layout,
      maxEntities: options.maxEntities,
      entitiesPerTenant: this.quotas.entitiesPerTenant,
      partitions,
      flushQueue,
      pubQueue,
      metrics,
      reattribute: (asset, target) => this.reattribute(asset, target),
    });
    this.entities = this.cache.entities;
    this.byTenant = this.cache.byTenant;
    this.publisher = new DeltaPublisher({ fanout: options.fanout, log, publishMs: options.publishMs, clock, pubQueue, totals, metrics, isStopping });
    this.reattribution = new TieReattribution({
      hot,
      log,
      keys,
      clock,
      entities: this.entities,
      owned: this.owned,
      partitions,
      flushQueue,
      pubQueue,
      totals,
      metrics,
      load: (specs) => this.cache.load(specs),
      schedulePublish: () => this.schedulePublish(),
      isStopping,
    });
    this.restart = new RestartRebuild({
      bus: options.bus,
      hot,
      log,
      limits: options.limits,
      storeGroupId: options.storeGroupId,
      clock,
      partitions,
      offsetKey: (partition) => this.offsetKey(partition),
      ensureFor: (events, partition) => this.ensureFor(events, partition),
      count: (...args) => this.count(...args),
      schedulePublish: () => this.schedulePublish(),
    });
    this.flusher = new Flusher({
      hot,
      log,
      limits: options.limits,
      offsetScope: options.offsetScope,
      keys,
      clock,
      ttlMs: this.ttlMs,
      memberId: this.memberId,
      freshness: this.freshness,
      entities: this.entities,
      partitions,
      flushQueue,
      totals,
      metrics,
      consumer: () => this.consumer,
      evict: () => this.cache.evict(),
      revoke: (partition) => this.revoke(partition),
      absorbUntil: (asset, until) => this.absorbUntil(asset, until),
      offsetKey: (partition) => this.offsetKey(partition),
      dedupKey: (partition, bucket) => this.dedupKey(partition, bucket),
      quotaOn: () => this.quotaOn,
      isStopping,
      isAbandoned: () => this.abandoned,
      onFlushed: (done) => this.restart.flushed(done),
    });
  }

  /** Entities held in memory for `tenant`. */
  entitiesOf(tenant: string): number {
    return this.cache.entitiesOf(tenant);
  }

  /** Entities held in memory in all. */
  get entityCount(): number {
    return this.entities.size;
  }

  private get quotaOn(): boolean {
    return Number.isFinite(this.quotas.assetsPerTenant) || Number.isFinite(this.quotas.campaignsPerTenant);
  }

  /** A tenant's asset quota on one partition: its assets spread evenly over them (keyed by asset id). */
  private get assetsPerPartition(): number {
    return Math.ceil(this.quotas.assetsPerTenant / Math.max(1, this.partitionCount));
  }

  async start(): Promise<void> {
    const { bus, groupId, fanout } = this.options;
    this.tieNotices = fanout.subscribe(SUBJECTS.tieChangedAll, (data) => this.onTieNotice(data));
    const history = this.options.history;
    this.partitionCount = await bus
      .endOffsets(TOPICS.events)
      .then((ends) => ends.length)
      .catch(() => 0);
    if (this.partitionCount === 0) this.partitionCount = this.options.partitions ?? 0;
    if (this.options.recordTies !== false) {
      this.ties = new TieRecorder({ bus, hot: this.options.hot, fanout, keys: this.keys, log: this.options.log, groupId: `${groupId}-ties`, registry: this.options.registry });
      // Ties first, so the rebuilt windows land in the right masters' shares. Replaying decisions
      // is idempotent (older ones than recorded are ignored), so a durable hot state loses nothing.
      if (history) await this.ties.replay(history);
      await this.ties.start();
    }
    let startAt: PartitionOffset[] | undefined;
    // A hot state of this process's own (the memory adapter) starts empty: its windows come back
    // from the store. A shared one (Redis) keeps them; there a partition without an offset is one
    // nobody counted yet, which the group's commit (or the log's beginning) is right for, while a
    // replay point chosen here could skip what another member flushed meanwhile.
    const forgotten = history && (!bus.replayable || !this.options.hot.shared) ? await this.partitionsHotStateLacks() : [];
    if (history && forgotten.length > 0) {
      // Read now, before this process takes events (the composition root listens after start()).
      // The in-process log starts empty: the store holds exactly what it will never replay. A
      // replayable log is replayed from a few minutes back instead of from the group's commit,
      // skipping what the store already counted (see loadRebuild).
      const replayFrom = bus.replayable ? await this.replayOffsets(forgotten) : undefined;
      const rebuild = this.loadRebuild(history, new Set(forgotten), bus.replayable);
      this.rebuild = rebuild;
      await rebuild.then(
        () => {
          startAt = replayFrom;
        },
        (err) => {
          this.options.log.warn({ err }, 'live windows not rebuilt from the store; they fill from new events');
          this.rebuild = undefined;
        },
      );
    }
    this.consumer = bus.consumer({
      groupId,
      topics: [TOPICS.events],
      fromBeginning: true,
      ...(startAt && { startAt }),
      onAssign: (assigned) => this.onAssign(assigned.filter((a) => a.topic === TOPICS.events).map((a) => a.partition)),
    });
    this.flushTimer = setInterval(() => {
      if (this.flushQueue.size > 0 || this.offsetsBehind()) void this.flush().catch(() => undefined);
    }, this.options.flushMs);
    this.flushTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep().catch((err) => this.options.log.warn({ err }, 'live sweep failed')), this.options.tiesSweepMs);
    this.sweepTimer.unref();
    await this.consumer.run((batch) => this.onBatch(batch));
  }

  /** Graceful: publish and flush what was applied, commit it, then leave the group. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.clearTimers();
    this.tieNotices?.unsubscribe();
    this.publish();
    await this.flush().catch((err) => this.options.log.warn({ err }, 'final live flush failed; the next owner replays from hot state'));
    await this.consumer?.stop();
    await this.ties?.stop();
  }

  /** As a crash would: nothing more is flushed, published or committed. */
  async abandon(): Promise<void> {
    this.stopping = true;
    this.abandoned = true;
    this.clearTimers();
    this.tieNotices?.unsubscribe();
    this.flushQueue.clear();
    this.pubQueue.clear();
    this.entities.clear();
    this.byTenant.clear();
    // Offsets go with the rows they describe: a flush already queued must not write offsets for
    // changes that were just forgotten.
    this.partitions.clear();
    await this.flusher.settled();
    await this.consumer?.stop();
    await this.ties?.stop();
  }

  /** The scope of this member's applied-offset keys (another member of the group must use the same). */
  get offsetScope(): string {
    return this.options.offsetScope;
  }

  /** Partitions this member owns now. */
  get ownedPartitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  private clearTimers(): void {
    clearInterval(this.flushTimer);
    clearInterval(this.sweepTimer);
    this.publisher.cancel();
  }

  /** Whether the store's rows for a rebuild are still held (until every rebuilt partition has flushed). */
  get rebuilding(): boolean {
    return this.restart.pending !== undefined;
  }

  // ---- parts (entity-cache.ts, reattribution.ts, publisher.ts, flusher.ts, restart.ts) ---------

  private get rebuild(): Promise<Rebuild> | undefined {
    return this.restart.pending;
  }

  private set rebuild(rebuild: Promise<Rebuild> | undefined) {
    this.restart.pending = rebuild;
  }

  /** Persist dirty entities and applied offsets atomically, then commit the offsets. Serialized. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  private offsetsBehind(): boolean {
    return this.flusher.offsetsBehind();
  }

  private schedulePublish(): void {
    this.publisher.schedulePublish();
  }

  private publish(): void {
    this.publisher.publish();
  }

  private ensureFor(events: readonly AssetRef[], partition: number): Promise<Entity[]> {
    return this.cache.ensureFor(events, partition);
  }

  private drop(e: Entity): void {
    this.cache.drop(e);
  }

  private reattribute(asset: Entity, target: string): void {
    this.reattribution.reattribute(asset, target);
  }

  private onTieNotice(data: Uint8Array): void {
    this.reattribution.onTieNotice(data);
  }

  private sweepTies(): Promise<void> {
    return this.reattribution.sweepTies();
  }

  private partitionsHotStateLacks(): Promise<number[]> {
    return this.restart.partitionsHotStateLacks();
  }

  private replayOffsets(partitions: number[]): Promise<PartitionOffset[]> {
    return this.restart.replayOffsets(partitions);
  }

  private loadRebuild(history: LiveHistorySource, partitions: Set<number>, replay: boolean): Promise<Rebuild> {
    return this.restart.loadRebuild(history, partitions, replay);
  }

  private rebuildPartition(ps: PartitionState, rows: WindowRow[]): Promise<void> {
    return this.restart.rebuildPartition(ps, rows);
  }

  // ---- consumption ----------------------------------------------------------------------------

  private onAssign(partitions: number[]): void {
    const next = new Set(partitions);
    for (const p of this.owned) if (!next.has(p)) this.revoke(p);
    // In place: the parts hold this set.
    this.owned.clear();
    for (const p of next) this.owned.add(p);
    // A rebuild must not wait for the partition's first event: readers want the numbers now.
    if (this.rebuild) for (const p of partitions) void this.partitionState(p).catch((err) => this.options.log.warn({ err, partition: p }, 'live partition not loaded'));
    this.options.log.info({ partitions }, 'live aggregator partitions assigned');
  }

  /**
   * Forget a partition: its entities (dirty or not: the next owner replays what was not flushed)
   * and its offsets. If it comes back, everything is reloaded from hot state.
   */
  private revoke(partition: number): void {
    const ps = this.partitions.get(partition);
    if (ps) ps.generation = -1;
    this.partitions.delete(partition);
    this.partitionLoads.delete(partition);
    for (const e of this.entities.values()) {
      if (e.partition !== partition) continue;
      this.drop(e);
      this.flushQueue.delete(e);
      this.pubQueue.delete(e);
    }
  }

  private async partitionState(partition: number): Promise<PartitionState> {
    // The load (not the map) first: a partition being rebuilt is in the map before it is ready.
    let loading = this.partitionLoads.get(partition);
    if (!loading) {
      const known = this.partitions.get(partition);
      if (known) return known;
      loading = (async () => {
        const stored = await this.options.hot.get(this.offsetKey(partition));
        const offset = stored !== null && /^[0-9]+$/.test(stored) ? BigInt(stored) : undefined;
        const dedup = await this.loadDedup(partition);
        const ps: PartitionState = { partition, applied: offset, persisted: offset, committed: undefined, generation: ++this.generationSeq, dedup, quota: new Map() };
        this.partitions.set(partition, ps);
        if (offset === undefined && this.rebuild) {
          const rebuild = await this.rebuild;
          dedup.loadKnown(rebuild.known.get(partition) ?? []);
          await this.rebuildPartition(ps, rebuild.rows.get(partition) ?? []);
        }
        return ps;
      })();
      this.partitionLoads.set(partition, loading);
      loading.catch(() => this.partitionLoads.delete(partition));
    }
    return loading;
  }

  /** The partition's recent events as hot state holds them (written with its offset). */
  private async loadDedup(partition: number): Promise<DedupWindow> {
    const window = new DedupWindow(this.options.limits.dedupWindowMs, DEDUP_BUCKET_MS);
    const newest = Math.floor(this.clock() / DEDUP_BUCKET_MS) + 1;
    const buckets: number[] = [];
    for (let b = newest - Math.ceil(window.windowMs / DEDUP_BUCKET_MS) - 1; b <= newest; b++) buckets.push(b);
    const stored = await this.options.hot.mget(buckets.map((b) => this.dedupKey(partition, b)));
    buckets.forEach((b, i) => {
      const text = stored[i];
      if (text) window.load(decodeDedupEntries(text, b));
    });
    return window;
  }

  private dedupKey(partition: number, bucket: number): string {
    return this.keys.dedup(this.options.offsetScope, this.options.groupId, partition, bucket);
  }

  private offsetKey(partition: number): string {
    return this.keys.offset(this.options.offsetScope, this.options.groupId, TOPICS.events, partition);
  }

  private async onBatch(batch: DeliveredBatch): Promise<void> {
    if (this.stopping || batch.topic !== TOPICS.events || batch.records.length === 0) return;
    const partition = batch.partition;
    // The group delivers only what it assigned us (onAssign may lag the first batches a little).
    this.owned.add(partition);
    const ps = await this.partitionState(partition);
    const generation = ps.generation;
    const now = this.clock();
    const late = this.options.limits.liveLateMs;
    // Nothing older than this is inside any window: skip it without decoding (broker time ~ received_at).
    const horizon = now - DAY - late - HOUR;
    const events: EngagementEvent[] = [];
    /** [fingerprint, digest, arrival] of the events counted below, remembered once they are applied. */
    const counted: [number, number, number][] = [];
    const inBatch = new Map<number, number>();
    for (const record of batch.records) {
      this.totals.received++;
      if (ps.applied !== undefined && BigInt(record.offset) < ps.applied) {
        this.totals.replayed++;
        this.metrics.skipped.inc({ reason: 'replayed' });
        continue;
      }
      if (record.timestamp < horizon) {
        this.totals.expired++;
        this.metrics.skipped.inc({ reason: 'expired' });
        continue;
      }
      const v = readBusEvent(record.value, this.options.limits);
      if (!v.ok) {
        // The sink sends these to the DLQ; the live path just does not count them.
        this.totals.invalid++;
        this.metrics.skipped.inc({ reason: 'invalid' });
        continue;
      }
      const e = v.event;
      // Video plays are measured from the store's video rollup (video.ts), not in the live windows.
      if (!isWindowKind(e.kind)) {
        this.metrics.skipped.inc({ reason: 'not_windowed' });
        continue;
      }
      // Late (core's isLate, the sink's `late` flag) or before every window: counted in ClickHouse, not here.
      if (v.late || e.occurred_at < now - DAY - late) {
        this.totals.late++;
        this.metrics.skipped.inc({ reason: 'late' });
        continue;
      }
      // A client's retry is a new record of an event already counted: first write wins.
      const fingerprint = eventFingerprint(e.tenant_id, e.event_id);
      const digest = payloadDigest(e);
      const earlier = inBatch.get(fingerprint);
      const verdict = earlier !== undefined ? (earlier === digest ? 'retry' : 'conflict') : ps.dedup.verdict(fingerprint, digest);
      if (verdict !== 'new') {
        this.totals.duplicates++;
        this.metrics.skipped.inc({ reason: verdict === 'retry' ? 'duplicate' : 'conflicting_duplicate' });
        if (verdict === 'conflict') this.options.log.warn({ tenant: e.tenant_id, event_id: e.event_id }, 'event id re-used with other content; the first one counts');
        continue;
      }
      inBatch.set(fingerprint, digest);
      counted.push([fingerprint, digest, record.timestamp]);
      events.push(e);
    }
    const next = BigInt(batch.records[batch.records.length - 1]!.offset) + 1n;
    // Side by side (round trips to hot state): the claims drop conflicting copies from `events`,
    // whose entities are then loaded for nothing (they are unpinned below like the others).
    let pinned: Entity[] = [];
    if (events.length > 0) {
      const [loaded, ...rest] = await Promise.allSettled([this.ensureFor(events.slice(), partition), this.claim(events, counted), this.quotaOn ? this.loadQuotas(ps, events.slice()) : undefined]);
      if (loaded.status === 'fulfilled') pinned = loaded.value;
      const failed = [loaded, ...rest].find((r) => r.status === 'rejected');
      if (failed) {
        for (const e of pinned) e.pins--;
        throw failed.reason;
      }
    }
    let applied = 0;
    try {
      if (this.stopping) return;
      if (ps.generation !== generation || this.partitions.get(partition) !== ps) {
        // Revoked by the group: the new owner has these records. Still ours but reloaded (the
        // fence saw another writer): have the bus redeliver from the committed offset, so the
        // reloaded state decides what is applied; returning would skip this batch.
        if (!this.owned.has(partition)) return;
        throw new AfterglowError('live_partition_reloaded', `live partition ${partition} was reloaded during a batch; redelivering it`);
      }
      // From here on everything is synchronous: a flush sees all of this batch or none of it.
      const local = new Map(pinned.map((e) => [e.key, e]));
      events.forEach((e, i) => {
        if (this.quotaOn && !this.admit(ps, e, local)) return;
        this.apply(e, partition, now, local);
        this.freshness.count(e.tenant_id, e.received_at, now);
        const [fingerprint, digest, at] = counted[i]!;
        ps.dedup.add(fingerprint, digest, at);
        applied++;
      });
      if (ps.applied === undefined || next > ps.applied) ps.applied = next;
    } finally {
      for (const e of pinned) e.pins--;
    }
    this.totals.applied += applied;
    this.metrics.applied.inc(applied);
    if (events.length > 0) {
      const lastReceived = events[events.length - 1]!.received_at;
      this.metrics.lag.observe(Math.max(0, this.clock() - lastReceived) / 1000);
    }
    this.schedulePublish();
    // Backpressure: stop reading until a flush makes room (bounded memory while hot state is slow).
    if (this.flushQueue.size > this.options.maxEntities / 2 || this.entities.size > this.options.maxEntities * 1.5) await this.flush();
  }

  /**
   * First write wins across partitions: an id re-used for another asset goes to that asset's
   * partition, where this partition's window cannot see it. Each event claims its fingerprint in
   * hot state with its payload digest for the dedup window (a hash per tenant and window, one
   * round trip per tenant and batch); a copy finding another digest there is a conflict and leaves
   * the batch (in place: `events` and `counted` stay aligned). A claim holding our own digest is
   * ours (a replay after a crash, or a batch redelivered).
   */
  private async claim(events: EngagementEvent[], counted: [number, number, number][]): Promise<void> {
    if (this.partitionCount === 1) return;
    const windowMs = this.options.limits.dedupWindowMs;
    // One call per (tenant, arrival bucket of one window): a claim is looked for in its bucket and
    // the one before, so it is seen for at least a window; buckets expire two windows on.
    const groups = new Map<string, { tenant: string; bucket: number; at: number[] }>();
    events.forEach((e, i) => {
      const bucket = Math.floor(counted[i]![2] / windowMs);
      const id = `${bucket}:${e.tenant_id}`;
      let g = groups.get(id);
      if (!g) groups.set(id, (g = { tenant: e.tenant_id, bucket, at: [] }));
      g.at.push(i);
    });
    const conflicts = new Set<number>();
    await Promise.all(
      [...groups.values()].map(async ({ tenant, bucket, at }) => {
        const entries = at.map((i) => [fingerprintField(counted[i]![0]), String(counted[i]![1])] as const);
        const held = await this.options.hot.claimFields(this.keys.eventClaims(tenant, bucket), this.keys.eventClaims(tenant, bucket - 1), entries, 2 * windowMs + MINUTE);
        at.forEach((i, j) => {
          if (held[j] !== null && held[j] !== entries[j]![1]) conflicts.add(i);
        });
      }),
    );
    for (const i of conflicts) {
      const e = events[i]!;
      this.totals.duplicates++;
      this.metrics.skipped.inc({ reason: 'conflicting_duplicate' });
      this.options.log.warn({ tenant: e.tenant_id, event_id: e.event_id, asset: e.asset_id }, 'event id re-used with other content (another asset); the first one counts');
    }
    if (conflicts.size === 0) return;
    let w = 0;
    for (let r = 0; r < events.length; r++) {
      if (conflicts.has(r)) continue;
      events[w] = events[r]!;
      counted[w++] = counted[r]!;
    }
    events.length = w;
    counted.length = w;
  }

  /** The partition's quota counts of the tenants in `events` that it has not read yet. */
  private async loadQuotas(ps: PartitionState, events: readonly EngagementEvent[]): Promise<void> {
    const tenants = [...new Set(events.map((e) => e.tenant_id))].filter((t) => !ps.quota.has(t));
    if (tenants.length === 0) return;
    const { hot } = this.options;
    const counts = await Promise.all(tenants.map((t) => Promise.all([hot.zcard(this.keys.quota('asset', t, ps.partition)), hot.zcard(this.keys.quota('campaign', t, ps.partition))])));
    tenants.forEach((t, i) => {
      if (!ps.quota.has(t)) ps.quota.set(t, { assets: counts[i]![0], campaigns: counts[i]![1] });
    });
  }

  /**
   * Whether the event may be counted live: it may if its asset and campaign are live already, or
   * if making them live keeps the tenant within its quota on this partition. Synchronous.
   */
  private admit(ps: PartitionState, e: EngagementEvent, local: Map<string, Entity>): boolean {
    const find = (key: string) => this.entities.get(key) ?? local.get(key);
    const asset = find(this.keys.asset(e.tenant_id, e.asset_id));
    const campaign = find(this.keys.entity('campaign', e.tenant_id, e.campaign_id, ps.partition));
    const q = ps.quota.get(e.tenant_id) ?? { assets: 0, campaigns: 0 };
    ps.quota.set(e.tenant_id, q);
    // Counted (n > 0) means it is live in hot state, or will be with the next flush.
    const newAsset = !asset || asset.n === 0;
    const newCampaign = !campaign || campaign.n === 0;
    const refused = newAsset && q.assets >= this.assetsPerPartition ? 'asset' : newCampaign && q.campaigns >= this.quotas.campaignsPerTenant ? 'campaign' : undefined;
    if (refused) {
      this.totals.quotaRefused++;
      this.metrics.skipped.inc({ reason: 'tenant_quota' });
      this.metrics.quotaRefused.inc({ kind: refused });
      const now = this.clock();
      if ((this.quotaWarned.get(e.tenant_id) ?? 0) < now - MINUTE) {
        if (this.quotaWarned.size >= 10_000) this.quotaWarned.clear();
        this.quotaWarned.set(e.tenant_id, now);
        const at = { tenant: e.tenant_id, partition: ps.partition, kind: refused, assets: q.assets, campaigns: q.campaigns };
        this.options.log.warn(at, 'tenant past its live quota; events of new ids are stored but not counted live');
      }
      return false;
    }
    if (newAsset) q.assets++;
    if (newCampaign) q.campaigns++;
    return true;
  }

  private apply(e: EngagementEvent, partition: number, now: number, local: Map<string, Entity>): void {
    this.count(e, KIND_INDEX[e.kind], 1, e.value, Math.min(e.occurred_at, e.received_at), partition, now, local);
  }

  /** Count `count` events of one asset and kind at `at` (their values summing to `value`). */
  private count(e: AssetRef, kind: number, count: number, value: number, at: number, partition: number, now: number, local: Map<string, Entity>): void {
    const find = (key: string) => this.entities.get(key) ?? local.get(key);
    const asset = find(this.keys.asset(e.tenant_id, e.asset_id))!;
    this.absorbBeforeReuse(asset, Math.floor(at / MINUTE));
    this.add(asset, kind, value, at, now, count);
    if (asset.campaign !== e.campaign_id) {
      asset.campaign = e.campaign_id;
      asset.metaDirty = true;
    }
    this.add(find(this.keys.entity('campaign', e.tenant_id, e.campaign_id, partition))!, kind, value, at, now, count);
    if (asset.master) {
      const share = find(this.keys.entity('master', e.tenant_id, asset.master, partition));
      if (share) this.add(share, kind, value, at, now, count);
      // Cannot happen (ensureFor loads and pins the shares; reattribute needs both loaded), but a
      // missing share must not take the consumer down: the asset is re-attributed by the sweep.
      else this.options.log.error({ asset: asset.id, master: asset.master }, 'master share not loaded; event not counted for the master');
    }
  }

  private add(entity: Entity, kind: number, value: number, at: number, now: number, count = 1): void {
    entity.buckets.add(kind, value, at, DIRTY_FLUSH | DIRTY_PUBLISH, count);
    entity.n += count;
    entity.lastEventAt = now;
    this.flushQueue.add(entity);
    this.pubQueue.add(entity);
  }

  /**
   * Before a minute slot of an asset's ring is reused, the minutes up to the one leaving are
   * absorbed into its decay tracker (they are older than the late window, hence final).
   */
  private absorbBeforeReuse(asset: Entity, minute: number): void {
    const holder = asset.buckets.minuteSlotHolder(minute);
    if (holder >= 0 && holder < minute) this.absorbUntil(asset, holder + 1);
  }

  /** Absorb every finished minute before `until` that the tracker has not seen. */
  private absorbUntil(asset: Entity, until: number): void {
    const tracker = (asset.tracker ??= new DecayTracker());
    if (tracker.absorbedUntil >= until) return;
    let changed = false;
    for (const [minute, count] of asset.buckets.minuteBuckets(ENGAGEMENT_INDEXES)) {
      if (minute >= until) break;
      if (minute < tracker.absorbedUntil) continue;
      tracker.absorb(minute, count);
      changed = true;
    }
    if (tracker.absorbedUntil >= 0 && tracker.absorbedUntil < until) {
      tracker.skipTo(until);
      changed = true;
    }
    if (changed) {
      asset.decayDirty = DIRTY_FLUSH | DIRTY_PUBLISH;
      this.flushQueue.add(asset);
      this.pubQueue.add(asset);
    }
  }

  /** Periodic upkeep: ties re-read, campaign indexes and quota counts pruned. */
  private async sweep(): Promise<void> {
    await this.sweepTies();
    await this.pruneIndexes();
    await this.pruneQuotas();
  }

  /** Assets and campaigns quiet for longer than their hashes live no longer count against a quota. */
  private async pruneQuotas(): Promise<void> {
    const cutoff = this.clock() - this.ttlMs;
    for (const ps of [...this.partitions.values()]) {
      for (const [tenant, q] of [...ps.quota]) {
        for (const kind of ['asset', 'campaign'] as const) {
          if (this.stopping) return;
          const key = this.keys.quota(kind, tenant, ps.partition);
          const stale = (await this.options.hot.zrange(key, 0, 999)).filter((m) => m.score < cutoff).map((m) => m.member);
          if (stale.length === 0) continue;
          const removed = await this.options.hot.zrem(key, stale);
          if (kind === 'asset') q.assets = Math.max(0, q.assets - removed);
          else q.campaigns = Math.max(0, q.campaigns - removed);
        }
      }
    }
  }

  /**
   * A campaign's asset index (a sorted set by last activity) keeps assets that have been quiet
   * for longer than every window: drop them, oldest first, for the campaigns this member holds.
   */
  private async pruneIndexes(): Promise<void> {
    const cutoff = this.clock() - this.ttlMs;
    const seen = new Set<string>();
    for (const e of [...this.entities.values()]) {
      if (e.kind !== 'campaign' || this.stopping) continue;
      const index = this.keys.campaignAssets(e.tenant, e.id);
      if (seen.has(index)) continue;
      seen.add(index);
      const oldest = await this.options.hot.zrange(index, 0, 199);
      const stale = oldest.filter((m) => m.score < cutoff).map((m) => m.member);
      if (stale.length > 0) await this.options.hot.zrem(index, stale);
    }
  }
}

import {
  AfterglowError,
  Counter,
  Gauge,
  Histogram,
  SUBJECTS,
  TOPICS,
  DedupWindow,
  partitionForKey,
  decodeDedupEntries,
  encodeDedupEntries,
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
  type HotOp,
  type HotState,
  type Logger,
  type PartitionOffset,
  type Registry,
  type Subscription,
} from '@afterglow/core';
import { randomUUID } from 'node:crypto';
import { DecayTracker } from './decay.js';
import { FreshnessCounter } from './freshness.js';
import type { LiveKeys, EntityKind } from './keys.js';
import { ENGAGEMENT_INDEXES } from './rates.js';
import { encodeDelta, metaFields, parseEntityHash, type EntityMeta } from './state.js';
import type { LiveHistorySource, WindowRow } from './rebuild.js';
import { TieRecorder, parseTie } from './ties.js';
import { Buckets, DIRTY_FLUSH, DIRTY_PUBLISH, KIND_INDEX, windowLayout, type Layout } from './windows.js';

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

/** What a start rebuilds from the store: per partition, the windows' rows and the stored ids a replay must skip. */
interface Rebuild {
  rows: Map<number, WindowRow[]>;
  known: Map<number, [bucket: number, fingerprint: number][]>;
}

/** What locates an event's entities: its tenant, asset and campaign. */
type AssetRef = Pick<EngagementEvent, 'tenant_id' | 'asset_id' | 'campaign_id'>;

interface Spec {
  kind: EntityKind;
  tenant: string;
  id: string;
  partition: number;
}

class Entity {
  n = 0;
  epoch = 0;
  campaign = '';
  master = '';
  /** Assets: the master hot state says it is tied to (checked on load and on tie notices). */
  tieMaster: string | undefined;
  tracker: DecayTracker | undefined;
  /** Version carried by the last published delta. */
  pubN = 0;
  /** Publish every row next time (after an epoch change). */
  full = false;
  /** Decay tracker changed since the last flush / publish. */
  decayDirty = 0;
  metaDirty = false;
  pins = 0;
  lastEventAt = 0;
  /** When its entry in the tenant's quota set was last written (refreshed hourly, not every flush). */
  quotaAt = 0;

  constructor(
    readonly key: string,
    readonly kind: EntityKind,
    readonly tenant: string,
    readonly id: string,
    readonly partition: number,
    readonly buckets: Buckets,
  ) {}

  meta(): EntityMeta {
    return { kind: this.kind, tenant: this.tenant, id: this.id, partition: this.partition, n: this.n, epoch: this.epoch, campaign: this.campaign, master: this.master };
  }
}

interface PartitionState {
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

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const LOAD_CHUNK = 500;
/** Arrival buckets of the dedup window: a bucket's entries are one appended string in hot state. */
const DEDUP_BUCKET_MS = MINUTE;

export class LiveAggregator {
  private readonly layout: Layout;
  private readonly keys: LiveKeys;
  private readonly clock: () => number;
  private consumer: BusConsumer | undefined;
  private ties: TieRecorder | undefined;
  private tieNotices: Subscription | undefined;
  private readonly entities = new Map<string, Entity>();
  /** The same entities by tenant, each tenant's in least recently used order. */
  private readonly byTenant = new Map<string, Map<string, Entity>>();
  private readonly quotas: { entitiesPerTenant: number; assetsPerTenant: number; campaignsPerTenant: number };
  /** Partitions of the events topic (set on start); with one, the partition's window sees every copy. */
  private partitionCount = 0;
  /** Tenants warned about their quota, and when (one line a minute each). */
  private readonly quotaWarned = new Map<string, number>();
  private readonly loading = new Map<string, Promise<Entity>>();
  private readonly partitions = new Map<number, PartitionState>();
  private readonly partitionLoads = new Map<number, Promise<PartitionState>>();
  private owned = new Set<number>();
  private readonly flushQueue = new Set<Entity>();
  private readonly pubQueue = new Set<Entity>();
  private flushing: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | undefined;
  private pubTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private lastPublish = 0;
  /** The last day's per-minute counts (and stored ids) from the store, by partition, while a rebuild is due. */
  private rebuild: Promise<Rebuild> | undefined;
  private stopping = false;
  private abandoned = false;
  private generationSeq = 0;
  /** Keys live this long after their last write: the 24 h window, the late window, an hour to spare. */
  private readonly ttlMs: number;
  private readonly metrics: ReturnType<typeof createMetrics>;
  private readonly freshness = new FreshnessCounter();
  /** This member's field in the tenants' freshness hashes. */
  private readonly memberId = randomUUID();
  readonly totals = { received: 0, applied: 0, replayed: 0, duplicates: 0, late: 0, invalid: 0, expired: 0, published: 0, flushes: 0, reattributed: 0, quotaRefused: 0 };

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
  }

  /** Entities held in memory for `tenant`. */
  entitiesOf(tenant: string): number {
    return this.byTenant.get(tenant)?.size ?? 0;
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
    await this.flushing;
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
    clearTimeout(this.pubTimer);
    this.pubTimer = undefined;
  }

  // ---- consumption ----------------------------------------------------------------------------

  private onAssign(partitions: number[]): void {
    const next = new Set(partitions);
    for (const p of this.owned) if (!next.has(p)) this.revoke(p);
    this.owned = next;
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

  /** Partitions of the events topic whose applied offset hot state does not hold (all of them in a fresh memory adapter). */
  private async partitionsHotStateLacks(): Promise<number[]> {
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
  private async replayOffsets(partitions: number[]): Promise<PartitionOffset[]> {
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
  private async loadRebuild(history: LiveHistorySource, partitions: Set<number>, replay: boolean): Promise<Rebuild> {
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
  private async rebuildPartition(ps: PartitionState, rows: WindowRow[]): Promise<void> {
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

  // ---- entities ---------------------------------------------------------------------------------

  /** Loads (and pins) every entity the events touch, re-attributing assets whose tie changed. */
  private async ensureFor(events: readonly AssetRef[], partition: number): Promise<Entity[]> {
    const specs = new Map<string, Spec>();
    for (const e of events) {
      specs.set(this.keys.asset(e.tenant_id, e.asset_id), { kind: 'asset', tenant: e.tenant_id, id: e.asset_id, partition });
      specs.set(this.keys.entity('campaign', e.tenant_id, e.campaign_id, partition), { kind: 'campaign', tenant: e.tenant_id, id: e.campaign_id, partition });
    }
    const first = await this.load([...specs.values()]);
    const masters = new Map<string, Spec>();
    for (const e of first) {
      if (e.kind !== 'asset') continue;
      for (const m of [e.master, e.tieMaster ?? e.master]) {
        if (m) masters.set(this.keys.entity('master', e.tenant, m, partition), { kind: 'master', tenant: e.tenant, id: m, partition });
      }
    }
    const second = masters.size > 0 ? await this.load([...masters.values()]) : [];
    for (const e of first) if (e.kind === 'asset' && e.tieMaster !== undefined && e.tieMaster !== e.master) this.reattribute(e, e.tieMaster);
    return [...first, ...second];
  }

  /** The entities for `specs`, from memory or hot state, each pinned once (callers unpin). */
  private async load(specs: Spec[]): Promise<Entity[]> {
    const keys = specs.map((s) => this.keys.entity(s.kind, s.tenant, s.id, s.partition));
    const missing: number[] = [];
    const asked = new Set<string>();
    keys.forEach((key, i) => {
      if (this.entities.has(key) || this.loading.has(key) || asked.has(key)) return;
      asked.add(key);
      missing.push(i);
    });
    for (let c = 0; c < missing.length; c += LOAD_CHUNK) {
      const chunk = missing.slice(c, c + LOAD_CHUNK);
      const fetched = this.fetch(chunk.map((i) => specs[i]!), chunk.map((i) => keys[i]!));
      chunk.forEach((i, j) => this.loading.set(keys[i]!, fetched.then((all) => all[j]!)));
      fetched
        .finally(() => {
          for (const i of chunk) this.loading.delete(keys[i]!);
        })
        .catch(() => undefined);
    }
    const found = await Promise.all(keys.map((key) => this.entities.get(key) ?? this.loading.get(key)!));
    // Synchronous from here: settle each entity in the map (an eviction may have run while we
    // waited; a clean copy is simply put back) and pin it.
    return found.map((e, i) => {
      const key = keys[i]!;
      const current = this.entities.get(key);
      if (current && current !== e) e = current;
      else if (!current) {
        if (this.partitions.has(e.partition)) this.hold(e);
      } else this.touch(e);
      e.pins++;
      return e;
    });
  }

  private async fetch(specs: Spec[], keys: string[]): Promise<Entity[]> {
    const { hot } = this.options;
    const assetIdx = specs.flatMap((s, i) => (s.kind === 'asset' ? [i] : []));
    const [hashes, ties] = await Promise.all([
      Promise.all(keys.map((k) => hot.hgetall(k))),
      assetIdx.length > 0 ? hot.mget(assetIdx.map((i) => this.keys.tie(specs[i]!.tenant, specs[i]!.id))) : Promise.resolve([]),
    ]);
    const tieOf = new Map<number, string | null>(assetIdx.map((i, j) => [i, ties[j] ?? null]));
    return specs.map((spec, i) => {
      const key = keys[i]!;
      // Loaded meanwhile by someone else (a tie notice): keep the one in memory.
      const existing = this.entities.get(key);
      if (existing) return existing;
      const snap = parseEntityHash(hashes[i]!, this.layout);
      const e = new Entity(key, spec.kind, spec.tenant, spec.id, spec.partition, snap?.buckets ?? new Buckets(this.layout));
      if (snap) {
        e.n = snap.meta.n;
        e.pubN = snap.meta.n;
        e.epoch = snap.meta.epoch;
        e.campaign = snap.meta.campaign;
        e.master = snap.meta.master;
        if (spec.kind === 'asset') e.tracker = DecayTracker.fromJSON(snap.decay);
      }
      if (spec.kind === 'asset') e.tieMaster = parseTie(tieOf.get(i) ?? null).master;
      // A partition revoked while we read: its entities must not linger (stale if it comes back).
      if (this.partitions.has(spec.partition)) this.hold(e);
      return e;
    });
  }

  private hold(e: Entity): void {
    this.entities.set(e.key, e);
    let held = this.byTenant.get(e.tenant);
    if (!held) this.byTenant.set(e.tenant, (held = new Map()));
    held.set(e.key, e);
  }

  private drop(e: Entity): void {
    this.entities.delete(e.key);
    const held = this.byTenant.get(e.tenant);
    held?.delete(e.key);
    if (held?.size === 0) this.byTenant.delete(e.tenant);
  }

  private touch(e: Entity): void {
    this.entities.delete(e.key);
    this.entities.set(e.key, e);
    const held = this.byTenant.get(e.tenant);
    if (held?.delete(e.key)) held.set(e.key, e);
  }

  /**
   * Drop clean, unpinned entities, least recently used first: a tenant's own past its quota, then,
   * past maxEntities, the largest tenant's (a tenant keeps its entities until every larger one has
   * been cut to its size).
   */
  private evict(): void {
    const evictable = (e: Entity) => e.pins === 0 && !this.flushQueue.has(e) && !this.pubQueue.has(e);
    const perTenant = this.quotas.entitiesPerTenant;
    for (const held of [...this.byTenant.values()]) {
      if (held.size <= perTenant) continue;
      let excess = held.size - perTenant;
      for (const e of [...held.values()]) {
        if (excess <= 0) break;
        if (!evictable(e)) continue;
        this.drop(e);
        this.metrics.evicted.inc({ reason: 'tenant' });
        excess--;
      }
    }
    let excess = this.entities.size - this.options.maxEntities;
    if (excess <= 0) return;
    const sizes = new Map([...this.byTenant].map(([t, held]) => [t, held.size]));
    const cursors = new Map<string, Iterator<Entity>>();
    // A larger tenant whose entities are all in use (pinned by a batch, or dirty) is not a reason
    // to take a smaller one's: memory waits for the next flush instead.
    let stuckAt = -1;
    while (excess > 0 && sizes.size > 0) {
      let victim = '';
      let most = -1;
      for (const [t, n] of sizes) if (n > most) [victim, most] = [t, n];
      if (most < stuckAt) break;
      let cursor = cursors.get(victim);
      if (!cursor) cursors.set(victim, (cursor = this.byTenant.get(victim)!.values()));
      let next = cursor.next();
      while (!next.done && !evictable(next.value)) next = cursor.next();
      if (next.done) {
        sizes.delete(victim);
        stuckAt = Math.max(stuckAt, most);
        continue;
      }
      this.drop(next.value);
      this.metrics.evicted.inc({ reason: 'total' });
      sizes.set(victim, most - 1);
      excess--;
    }
  }

  // ---- ties -------------------------------------------------------------------------------------

  /**
   * Move an asset's history from its old master's share to its new one, in one synchronous step
   * (both shares must be loaded). Removing counts is the one non-monotonic change there is, so the
   * old share's epoch moves forward and its next delta carries every row.
   */
  private reattribute(asset: Entity, target: string): void {
    if (asset.master === target) return;
    const now = this.clock();
    const old = asset.master ? this.entities.get(this.keys.entity('master', asset.tenant, asset.master, asset.partition)) : undefined;
    const next = target ? this.entities.get(this.keys.entity('master', asset.tenant, target, asset.partition)) : undefined;
    // Both shares must be in memory (callers load them), or nothing changes.
    if ((asset.master && !old) || (target && !next)) return;
    if (old) {
      old.buckets.addFrom(asset.buckets, -1);
      old.epoch = Math.max(old.epoch + 1, now);
      old.n++;
      old.full = true;
      this.flushQueue.add(old);
      this.pubQueue.add(old);
    }
    if (next) {
      next.buckets.addFrom(asset.buckets, 1);
      next.n++;
      next.lastEventAt = now;
      this.flushQueue.add(next);
      this.pubQueue.add(next);
    }
    asset.master = target;
    asset.tieMaster = target;
    asset.metaDirty = true;
    asset.n++;
    this.flushQueue.add(asset);
    this.pubQueue.add(asset);
    this.totals.reattributed++;
    this.metrics.reattributed.inc();
    this.schedulePublish();
  }

  /** A tie changed somewhere: if the ad is ours, re-read its tie and re-attribute it. */
  private onTieNotice(data: Uint8Array): void {
    if (this.stopping) return;
    let notice: { t?: unknown; ad?: unknown };
    try {
      notice = JSON.parse(Buffer.from(data).toString('utf8')) as { t?: unknown; ad?: unknown };
    } catch {
      return;
    }
    if (typeof notice.t !== 'string' || typeof notice.ad !== 'string') return;
    void this.refreshTie(notice.t, notice.ad).catch((err) => this.options.log.warn({ err }, 'tie refresh failed; the sweep retries'));
  }

  private async refreshTie(tenant: string, ad: string): Promise<void> {
    const key = this.keys.asset(tenant, ad);
    let partition = this.entities.get(key)?.partition;
    if (partition === undefined) {
      // Not in memory: its hash says which partition it lives on; only that partition's owner acts.
      const stored = await this.options.hot.hgetall(key);
      if (!stored.p) return;
      partition = Number(stored.p);
    }
    if (!this.owned.has(partition) || !this.partitions.has(partition)) return;
    const [asset] = await this.load([{ kind: 'asset', tenant, id: ad, partition }]);
    try {
      const tie = parseTie(await this.options.hot.get(this.keys.tie(tenant, ad)));
      await this.retarget([asset!], [tie.master]);
    } finally {
      asset!.pins--;
    }
  }

  /** Load the master shares involved and re-attribute each asset to its target. */
  private async retarget(assets: Entity[], targets: string[]): Promise<void> {
    const specs: Spec[] = [];
    assets.forEach((a, i) => {
      a.tieMaster = targets[i]!;
      if (a.master === targets[i]) return;
      for (const m of [a.master, targets[i]!]) if (m) specs.push({ kind: 'master', tenant: a.tenant, id: m, partition: a.partition });
    });
    if (specs.length === 0) return;
    const pinned = await this.load(specs);
    try {
      assets.forEach((a, i) => {
        if (this.entities.get(a.key) === a && this.partitions.has(a.partition)) this.reattribute(a, targets[i]!);
      });
    } finally {
      for (const e of pinned) e.pins--;
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

  /** Re-read the ties of every asset in memory (catches notices the fan-out lost). */
  private async sweepTies(): Promise<void> {
    const assets = [...this.entities.values()].filter((e) => e.kind === 'asset' && this.owned.has(e.partition));
    for (let i = 0; i < assets.length && !this.stopping; i += LOAD_CHUNK) {
      const chunk = assets.slice(i, i + LOAD_CHUNK);
      const ties = await this.options.hot.mget(chunk.map((a) => this.keys.tie(a.tenant, a.id)));
      const changed: Entity[] = [];
      const targets: string[] = [];
      chunk.forEach((a, j) => {
        const master = parseTie(ties[j] ?? null).master;
        if (master !== a.master) {
          changed.push(a);
          targets.push(master);
        }
      });
      if (changed.length > 0) await this.retarget(changed, targets);
    }
  }

  // ---- publish ----------------------------------------------------------------------------------

  /** Leading edge: publish now if the last publish is `publishMs` old, else when it will be. */
  private schedulePublish(): void {
    if (this.pubTimer || this.stopping) return;
    const wait = Math.max(0, this.lastPublish + this.options.publishMs - this.clock());
    this.pubTimer = setTimeout(() => {
      this.pubTimer = undefined;
      this.publish();
    }, wait);
  }

  private publish(): void {
    this.lastPublish = this.clock();
    const { fanout } = this.options;
    for (const e of this.pubQueue) {
      const rows = e.buckets.takeRows(DIRTY_PUBLISH, e.full);
      const decay = e.decayDirty & DIRTY_PUBLISH ? e.tracker?.toJSON() : undefined;
      e.decayDirty &= ~DIRTY_PUBLISH;
      const delta = { meta: e.meta(), n0: e.pubN, rows, full: e.full, decay };
      e.pubN = e.n;
      e.full = false;
      try {
        fanout.publish(subjectOf(e), encodeDelta(delta));
        this.totals.published++;
        this.metrics.published.inc();
      } catch (err) {
        // At-most-once by contract: receivers notice the version gap and resync from hot state.
        this.options.log.warn({ err }, 'live delta not published');
      }
    }
    this.pubQueue.clear();
  }

  // ---- flush ------------------------------------------------------------------------------------

  private offsetsBehind(): boolean {
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
      // Hot state holds these partitions' windows now: their share of the rebuild is not needed again.
      if (this.rebuild) {
        const done = offsets.map(([ps]) => ps.partition);
        void this.rebuild
          .then((r) => {
            for (const p of done) {
              r.rows.delete(p);
              r.known.delete(p);
            }
          })
          .catch(() => undefined);
      }
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

function subjectOf(e: Entity): string {
  if (e.kind === 'asset') return SUBJECTS.assetDelta(e.tenant, e.campaign || '-', e.id);
  if (e.kind === 'campaign') return SUBJECTS.campaignDelta(e.tenant, e.id);
  return SUBJECTS.masterDelta(e.tenant, e.id);
}

function createMetrics(registry: Registry | undefined, entities: () => number, dirty: () => number) {
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

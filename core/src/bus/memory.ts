import { BackpressureError, BusUnavailableError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { createPartitioner } from './partitioner.js';
import type {
  Bus,
  BusConsumer,
  BusProducer,
  BusRecord,
  ConsumerOptions,
  DeliveredBatch,
  DeliveredRecord,
  PartitionOffset,
  TopicBacklog,
  TopicSpec,
} from './types.js';

/**
 * The embedded bus: an in-process log with Kafka's semantics, so that a single-process
 * deployment behaves like a Kafka one (per-partition order, offsets, consumer groups with
 * rebalances, at-least-once delivery, commit only on request).
 *
 * Memory is bounded per topic: records are dropped once every group that ever subscribed to the
 * topic has committed past them, and a topic holding more than `maxBacklogBytes` of such
 * retained records refuses sends with BackpressureError. A topic no group has subscribed to yet
 * keeps everything (a group created later reads it from the beginning), so it fills up and
 * pushes back too. A group that subscribed once and went away keeps pinning the records it has
 * not committed, as Kafka keeps a group's offsets, unless it was declared `ephemeral`.
 *
 * The bus keeps the value Buffers given to send() and hands the same Buffers to every consumer:
 * callers must not mutate them afterwards.
 */

export interface MemoryBusOptions {
  /** Partition count of auto-created topics. */
  partitions: number;
  /** Per-topic bound on retained (not yet committed by every group) bytes. */
  maxBacklogBytes: number;
  /** Where handler failures are reported (they are retried either way). Default: warn to stdout. */
  logger?: Logger;
}

const MAX_BATCH_RECORDS = 10_000;
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Approximate per-record bookkeeping (offset, timestamp, object) counted against the bound. */
const RECORD_OVERHEAD_BYTES = 64;
const BACKPRESSURE_RETRY_AFTER_MS = 200;
const HANDLER_BACKOFF_MIN_MS = 100;
const HANDLER_BACKOFF_MAX_MS = 5_000;

interface StoredRecord {
  key: string | null;
  value: Buffer;
  headers: Record<string, string> | undefined;
  timestamp: number;
  /** Approximate footprint, counted against maxBacklogBytes. */
  bytes: number;
}

interface TopicPartition {
  topic: string;
  partition: number;
}

function recordBytes(record: BusRecord): number {
  let bytes = RECORD_OVERHEAD_BYTES + record.value.length + (record.key?.length ?? 0);
  if (record.headers) for (const [k, v] of Object.entries(record.headers)) bytes += k.length + v.length;
  return bytes;
}

function parseOffset(offset: string): number {
  const n = Number(offset);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid offset ${JSON.stringify(offset)}`);
  return n;
}

/** One partition's log. Offsets are absolute: dropping old records never renumbers the rest. */
class Partition {
  /** records[i] has offset base + i; entries below `start` were dropped (kept until compaction). */
  private records: (StoredRecord | undefined)[] = [];
  private base = 0;
  private start = 0;
  /** Wake-ups of consumers waiting for records past the end. */
  private waiters: (() => void)[] = [];

  constructor(
    readonly topic: string,
    readonly index: number,
  ) {}

  get lowWatermark(): number {
    return this.base + this.start;
  }

  get endOffset(): number {
    return this.base + this.records.length;
  }

  /** The first retained offset appended at or after `timestamp` (appends are in time order), else the end. */
  offsetForTime(timestamp: number): number {
    let lo = this.start;
    let hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.records[mid]?.timestamp ?? -Infinity) < timestamp) lo = mid + 1;
      else hi = mid;
    }
    return this.base + lo;
  }

  append(record: StoredRecord): void {
    this.records.push(record);
  }

  /** Wakes every consumer waiting on this partition (called once per send, not per record). */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  onAppend(wake: () => void): void {
    this.waiters.push(wake);
  }

  /** Up to one batch of records from `from` (clamped to what is retained). */
  read(from: number): DeliveredRecord[] {
    const out: DeliveredRecord[] = [];
    let bytes = 0;
    for (let offset = Math.max(from, this.lowWatermark); offset < this.endOffset; offset++) {
      const r = this.records[offset - this.base];
      if (!r) break;
      if (out.length === MAX_BATCH_RECORDS || (out.length > 0 && bytes + r.bytes > MAX_BATCH_BYTES)) break;
      bytes += r.bytes;
      const delivered: DeliveredRecord = {
        topic: this.topic,
        partition: this.index,
        offset: String(offset),
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
      };
      if (r.headers) delivered.headers = r.headers;
      out.push(delivered);
    }
    return out;
  }

  /** Drops records below `offset`; returns the bytes freed. */
  trim(offset: number): number {
    const to = Math.min(offset, this.endOffset) - this.base;
    let freed = 0;
    for (; this.start < to; this.start++) {
      freed += this.records[this.start]?.bytes ?? 0;
      this.records[this.start] = undefined;
    }
    // Compact once the dead prefix dominates, so trimming stays amortised O(1) per record.
    if (this.start > 1024 && this.start * 2 > this.records.length) {
      this.records = this.records.slice(this.start);
      this.base += this.start;
      this.start = 0;
    }
    return freed;
  }
}

class Topic {
  readonly partitions: Partition[];
  /** Bytes of records not yet dropped by retention, checked against maxBacklogBytes. */
  retainedBytes = 0;
  /** Every group that ever subscribed: its offsets hold records back from retention. */
  readonly groups = new Set<Group>();

  constructor(
    readonly name: string,
    partitions: number,
  ) {
    this.partitions = Array.from({ length: partitions }, (_, i) => new Partition(name, i));
  }

  /** Drops what every subscribed group has committed past. */
  applyRetention(partition: Partition): void {
    if (this.groups.size === 0) return;
    let low = Infinity;
    for (const group of this.groups) low = Math.min(low, group.resumeOffset(this.name, partition.index));
    this.retainedBytes -= partition.trim(low);
  }

  /** The group furthest behind (records not yet committed, summed over partitions): who pins the backlog. */
  laggiest(): { group: string; records: number } | undefined {
    let worst: { group: string; records: number } | undefined;
    for (const group of this.groups) {
      let records = 0;
      for (const p of this.partitions) records += Math.max(0, p.endOffset - Math.max(p.lowWatermark, group.resumeOffset(this.name, p.index)));
      if (!worst || records > worst.records) worst = { group: group.id, records };
    }
    return worst;
  }
}

/** A consumer group: its members, their assignment, and its committed offsets. */
class Group {
  private readonly members: MemoryConsumer[] = [];
  /** topic -> committed offset per partition (-1: none yet). */
  private readonly committed = new Map<string, number[]>();
  /**
   * topic -> where the group starts on a partition it has not committed: the low watermark or the
   * end offset, fixed when the group first subscribes. Fixing it (rather than re-reading "latest"
   * on every rebalance, as Kafka does) means a member that dies before its first commit cannot make
   * the group skip records, and lets retention treat it like a commit.
   */
  private readonly resetOffsets = new Map<string, number[]>();
  /** Rebalances run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    private readonly bus: MemoryBus,
  ) {}

  subscribe(topic: Topic, fromBeginning: boolean): void {
    if (this.resetOffsets.has(topic.name)) return;
    const parts = topic.partitions;
    this.resetOffsets.set(topic.name, parts.map((p) => (fromBeginning ? p.lowWatermark : p.endOffset)));
    this.committed.set(topic.name, parts.map(() => -1));
    topic.groups.add(this);
  }

  /** Stops holding records back on every topic (an ephemeral group whose consumer stopped). */
  release(): void {
    for (const name of this.resetOffsets.keys()) {
      const topic = this.bus.topic(name);
      topic.groups.delete(this);
      for (const partition of topic.partitions) topic.applyRetention(partition);
    }
  }

  get memberCount(): number {
    return this.members.length;
  }

  committedOffset(topic: string, partition: number): number {
    return this.committed.get(topic)?.[partition] ?? -1;
  }

  /** Where delivery of a partition (re)starts: the committed offset, else the reset offset. */
  resumeOffset(topic: string, partition: number): number {
    const committed = this.committedOffset(topic, partition);
    return committed >= 0 ? committed : (this.resetOffsets.get(topic)?.[partition] ?? 0);
  }

  /** Stores a commit; a commit lower than the current one is ignored (offsets never go back). */
  commit(topic: string, partition: number, offset: number): void {
    const offsets = this.committed.get(topic);
    if (!offsets || partition < 0 || partition >= offsets.length) {
      throw new RangeError(`group ${this.id} does not consume ${topic}/${partition}`);
    }
    if (offset > (offsets[partition] ?? -1)) offsets[partition] = offset;
  }

  join(member: MemoryConsumer): Promise<void> {
    return this.enqueue(async () => {
      this.members.push(member);
      await this.assign();
    });
  }

  leave(member: MemoryConsumer): Promise<void> {
    return this.enqueue(async () => {
      const i = this.members.indexOf(member);
      if (i < 0) return;
      this.members.splice(i, 1);
      await member.revoke(new Set());
      await this.assign();
    });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Kafka's round-robin assignment over the live members: partitions leave their old owner
   * (which finishes its in-flight batch) before a new owner starts them from the committed offset.
   */
  private async assign(): Promise<void> {
    const target = new Map<MemoryConsumer, TopicPartition[]>(this.members.map((m) => [m, []]));
    const topics = [...new Set(this.members.flatMap((m) => m.topics))].sort();
    let next = 0;
    for (const name of topics) {
      const subscribers = this.members.filter((m) => m.topics.includes(name));
      for (const partition of this.bus.topic(name).partitions) {
        target.get(subscribers[next++ % subscribers.length]!)!.push({ topic: name, partition: partition.index });
      }
    }
    await Promise.all(this.members.map((m) => m.revoke(new Set(target.get(m)!.map(tpKey)))));
    for (const member of this.members) member.assign(target.get(member)!);
  }
}

function tpKey(tp: TopicPartition): string {
  return `${tp.topic}\u0000${tp.partition}`;
}

/**
 * Delivers one partition to one member: a batch at a time, awaiting the handler before the next.
 * On a handler failure it backs off and restarts from the group's committed offset.
 */
class PartitionWorker {
  private stopping = false;
  private wake: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(
    private readonly topic: Topic,
    private readonly partition: Partition,
    private readonly group: Group,
    private readonly handler: (batch: DeliveredBatch) => Promise<void>,
    private readonly logger: Logger,
    /** Where this member starts the partition instead of the group's commit (ConsumerOptions.startAt), while it applies. */
    private readonly startAt: () => number | undefined,
  ) {
    this.done = this.loop();
  }

  /** Resolves once the in-flight batch (if any) has been handled. */
  stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    return this.done;
  }

  private async loop(): Promise<void> {
    const { topic, partition, group } = this;
    let position = this.startAt() ?? group.resumeOffset(topic.name, partition.index);
    let backoff = HANDLER_BACKOFF_MIN_MS;
    while (!this.stopping) {
      const records = partition.read(position);
      const first = records[0];
      if (!first) {
        await this.sleep(partition);
        continue;
      }
      try {
        await this.handler({ topic: topic.name, partition: partition.index, records });
        position = Number(first.offset) + records.length;
        backoff = HANDLER_BACKOFF_MIN_MS;
      } catch (err) {
        this.logger.warn(
          { err, topic: topic.name, partition: partition.index, offset: first.offset, retryInMs: backoff },
          'bus handler failed; redelivering from the committed offset',
        );
        await this.sleep(null, backoff);
        backoff = Math.min(backoff * 2, HANDLER_BACKOFF_MAX_MS);
        position = this.startAt() ?? group.resumeOffset(topic.name, partition.index);
      }
    }
  }

  /** Waits for an append to `partition`, or `ms`, or stop(), whichever comes first. */
  private sleep(partition: Partition | null, ms?: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => wake(), ms);
      const wake = () => {
        // A stale wake-up (left on the partition after stop or a timeout) is a no-op.
        if (this.wake !== wake) return;
        this.wake = undefined;
        clearTimeout(timer);
        resolve();
      };
      this.wake = wake;
      partition?.onAppend(wake);
    });
  }
}

class MemoryConsumer implements BusConsumer {
  /** `stopping`: leaving the group; batches in flight finish and may still commit, nothing new starts. */
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  private handler: ((batch: DeliveredBatch) => Promise<void>) | undefined;
  private readonly workers = new Map<string, PartitionWorker>();
  readonly topics: string[];

  constructor(
    private readonly bus: MemoryBus,
    private readonly group: Group,
    private readonly options: ConsumerOptions,
    private readonly logger: Logger,
  ) {
    this.topics = [...new Set(options.topics)];
    this.startAt = new Map((options.startAt ?? []).map((o) => [tpKey(o), parseOffset(o.offset)]));
  }

  /** ConsumerOptions.startAt, by partition, until this member commits the partition. */
  private readonly startAt: Map<string, number>;

  async run(handler: (batch: DeliveredBatch) => Promise<void>): Promise<void> {
    if (this.state !== 'idle') throw new Error('MemoryBus consumer: run() may be called once');
    this.bus.assertOpen();
    this.handler = handler;
    this.state = 'running';
    for (const name of this.topics) this.group.subscribe(this.bus.topic(name), this.options.fromBeginning ?? true);
    await this.group.join(this);
  }

  /**
   * A member that stopped (or never started) commits nothing; a batch still in flight while it
   * stops may commit what it made durable, as on Kafka.
   */
  async commit(offsets: PartitionOffset[]): Promise<void> {
    if (this.state !== 'running' && this.state !== 'stopping') return;
    const parsed = offsets.map((o) => parseOffset(o.offset));
    offsets.forEach((o, i) => {
      this.group.commit(o.topic, o.partition, parsed[i]!);
      this.startAt.delete(tpKey(o));
    });
    for (const o of offsets) {
      const topic = this.bus.topic(o.topic);
      const partition = topic.partitions[o.partition];
      if (partition) topic.applyRetention(partition);
    }
  }

  /** One stop for every caller: a second call resolves when the first is done. */
  private stopping: Promise<void> | undefined;

  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }

  private async leave(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    this.bus.forget(this);
    if (wasRunning) await this.group.leave(this);
    this.state = 'stopped';
    if (this.options.ephemeral && this.group.memberCount === 0) this.bus.dropGroup(this.group);
  }

  /** Rebalance, first half: stop every partition not in `keep` and wait for its in-flight batch. */
  async revoke(keep: Set<string>): Promise<void> {
    const stopping: Promise<void>[] = [];
    for (const [key, worker] of this.workers) {
      if (keep.has(key)) continue;
      this.workers.delete(key);
      stopping.push(worker.stop());
    }
    await Promise.all(stopping);
  }

  /** Rebalance, second half: start the partitions this member gained and announce the assignment. */
  assign(assignment: TopicPartition[]): void {
    const handler = this.handler;
    if (this.state !== 'running' || !handler) return;
    try {
      this.options.onAssign?.(assignment.map((tp) => ({ ...tp })));
    } catch (err) {
      this.logger.error({ err }, 'bus onAssign callback failed');
    }
    for (const tp of assignment) {
      const key = tpKey(tp);
      if (this.workers.has(key)) continue;
      const topic = this.bus.topic(tp.topic);
      const partition = topic.partitions[tp.partition];
      if (!partition) continue;
      this.workers.set(key, new PartitionWorker(topic, partition, this.group, handler, this.logger, () => this.startAt.get(key)));
    }
  }

  /** Used by MemoryBus.close(): the group is being torn down, so no rebalance follows. */
  async halt(): Promise<void> {
    this.state = 'stopped';
    await this.revoke(new Set());
  }
}

class MemoryProducer implements BusProducer {
  private closed = false;

  constructor(private readonly bus: MemoryBus) {}

  async send(topic: string, records: BusRecord[]): Promise<void> {
    if (this.closed) throw new BusUnavailableError('MemoryBus producer is closed');
    this.bus.append(topic, records);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export class MemoryBus implements Bus {
  readonly kind = 'memory' as const;
  readonly replayable = false;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly consumers = new Set<MemoryConsumer>();
  private readonly partitioner = createPartitioner();
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly options: MemoryBusOptions) {
    this.logger = options.logger ?? createLogger('warn', { component: 'bus' });
    if (!Number.isInteger(options.partitions) || options.partitions < 1) {
      throw new RangeError(`partitions must be a positive integer, got ${options.partitions}`);
    }
  }

  assertOpen(): void {
    if (this.closed) throw new BusUnavailableError('MemoryBus is closed');
  }

  /** The topic, created with the default partition count on first use. */
  topic(name: string, partitions = this.options.partitions): Topic {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = new Topic(name, partitions);
      this.topics.set(name, topic);
    }
    return topic;
  }

  /** Creates missing topics; like Kafka's createTopics, an existing topic is left as it is. */
  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    this.assertOpen();
    for (const spec of specs) {
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
        throw new RangeError(`topic ${spec.topic}: partitions must be a positive integer`);
      }
      this.topic(spec.topic, spec.partitions);
    }
  }

  async producer(): Promise<BusProducer> {
    this.assertOpen();
    return new MemoryProducer(this);
  }

  consumer(options: ConsumerOptions): BusConsumer {
    let group = this.groups.get(options.groupId);
    if (!group) {
      group = new Group(options.groupId, this);
      this.groups.set(options.groupId, group);
    }
    const consumer = new MemoryConsumer(this, group, options, this.logger);
    this.consumers.add(consumer);
    return consumer;
  }

  forget(consumer: MemoryConsumer): void {
    this.consumers.delete(consumer);
  }

  /** An ephemeral group is gone for good: its offsets no longer hold records back. */
  dropGroup(group: Group): void {
    if (this.groups.get(group.id) !== group) return;
    this.groups.delete(group.id);
    group.release();
  }

  /** Per topic: bytes retained against the bound and the group furthest behind (diagnostics, tests). */
  backlog(): TopicBacklog[] {
    return [...this.topics.values()].map((t) => ({ topic: t.name, retainedBytes: t.retainedBytes, laggiest: t.laggiest() }));
  }

  /** Appends all records or none: the whole send is refused when it would exceed the bound. */
  append(topicName: string, records: BusRecord[]): void {
    this.assertOpen();
    if (records.length === 0) return;
    const topic = this.topic(topicName);
    const sizes = records.map(recordBytes);
    const bytes = sizes.reduce((a, b) => a + b, 0);
    // An oversized send into an empty backlog still goes through, or it could never succeed.
    if (topic.retainedBytes > 0 && topic.retainedBytes + bytes > this.options.maxBacklogBytes) {
      // Name the group holding the records back: a consumer that never commits shows up here.
      const laggiest = topic.laggiest();
      const pinnedBy = laggiest ? `; furthest behind: group ${laggiest.group}, ${laggiest.records} records` : '; no group subscribed yet';
      throw new BackpressureError(
        `topic ${topicName} holds ${topic.retainedBytes} unconsumed bytes (bound ${this.options.maxBacklogBytes})${pinnedBy}`,
        BACKPRESSURE_RETRY_AFTER_MS,
      );
    }
    const timestamp = Date.now();
    const partitions = topic.partitions;
    const touched = new Set<Partition>();
    records.forEach((record, i) => {
      const partition = partitions[this.partitioner(topicName, record.key, partitions.length)]!;
      partition.append({
        key: record.key,
        value: record.value,
        headers: record.headers,
        timestamp,
        bytes: sizes[i]!,
      });
      touched.add(partition);
    });
    topic.retainedBytes += bytes;
    for (const partition of touched) partition.notify();
  }

  async committedOffsets(groupId: string, topicName: string): Promise<PartitionOffset[]> {
    const group = this.groups.get(groupId);
    return this.topic(topicName).partitions.map((p) => ({
      topic: topicName,
      partition: p.index,
      offset: String(group ? group.committedOffset(topicName, p.index) : -1),
    }));
  }

  async endOffsets(topicName: string): Promise<PartitionOffset[]> {
    return this.topic(topicName).partitions.map((p) => ({
      topic: topicName,
      partition: p.index,
      offset: String(p.endOffset),
    }));
  }

  async offsetsForTime(topicName: string, timestamp: number): Promise<PartitionOffset[]> {
    return this.topic(topicName).partitions.map((p) => ({ topic: topicName, partition: p.index, offset: String(p.offsetForTime(timestamp)) }));
  }

  /** Stops every consumer (in-flight batches finish) and refuses further sends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.halt()));
    this.consumers.clear();
  }
}

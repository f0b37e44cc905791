import {
  Admin,
  Base,
  Consumer,
  ListOffsetTimestamps,
  Producer,
  type BaseOptions,
  type CallbackWithPromise,
  type fetchV17,
  type GroupOptions,
  type KafkaRecord,
  type RecordsBatch,
} from '@platformatic/kafka';
import { BusUnavailableError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { createPartitioner, type Partitioner } from './partitioner.js';
import type {
  Bus,
  BusConsumer,
  BusProducer,
  BusRecord,
  ConsumerOptions,
  DeliveredBatch,
  DeliveredRecord,
  PartitionOffset,
  TopicSpec,
} from './types.js';

/**
 * The production bus: Apache Kafka (4.x and 3.9) through @platformatic/kafka, a maintained pure-JS
 * client. Its consumer streams single messages; the bus port wants per-partition batches, a handler
 * awaited before that partition's next batch, and redelivery from the committed offset when the
 * handler fails. So the client keeps the group membership (join, sync, heartbeats on a timer,
 * rejoin on rebalance) and this adapter runs the fetch loop itself.
 */

type FetchRequestTopic = fetchV17.FetchRequestTopic;
type FetchResponse = fetchV17.FetchResponse;

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  replicationFactor: number;
  logger?: Logger;
  /** Managed Kafka: SASL credentials. */
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
  /** TLS to the brokers; `ca` (PEM) replaces the system roots when given. */
  tls?: { ca?: string };
}

/** Broker-side ack timeout of a produce request, and the client's per-request timeout. */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * One produce request carries at most one chunk per partition, and the broker refuses a
 * partition's record batch above message.max.bytes (1 MiB by default): stay well below it.
 */
const MAX_CHUNK_BYTES = 900 * 1024;
/** Per-record framing in a v2 record batch (varint lengths, deltas, attributes), rounded up. */
const RECORD_OVERHEAD_BYTES = 24;
const PARTITION_COUNT_TTL_MS = 60_000;
const SESSION_TIMEOUT_MS = 10_000;
const HEARTBEAT_EVERY_MS = 1_000;
/** Idle long-poll: short, so partitions freed by a finished handler are fetched again soon. */
const FETCH_MAX_WAIT_MS = 500;
const FETCH_MAX_BYTES = 32 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 4 * 1024 * 1024;
/** Partitions whose handlers run at once per member (as kafkajs's partitionsConsumedConcurrently was). */
const PARTITIONS_CONCURRENTLY = 4;
const HANDLER_BACKOFF_MIN_MS = 100;
const HANDLER_BACKOFF_MAX_MS = 5_000;
const FETCH_ERROR_BACKOFF_MS = 500;
const REJOIN_BACKOFF_MS = 1_000;
/**
 * How long a stopping member waits to leave its group and close its connections. A LeaveGroup sent
 * while a JoinGroup is parked at the coordinator is answered only after it (up to the rebalance
 * timeout); past this bound the connections are dropped and the group evicts the member when its
 * session times out.
 */
const LEAVE_TIMEOUT_MS = 5_000;
/** Retries with backoff: ~3 s in all before an operation fails. */
const RETRIES = 5;
const RETRY_DELAY_MS = 250;
/** Control batches (transaction markers) carry no records for the handler. */
const IS_CONTROL = 0b100000;
/** Errors that mean "this member's generation is over": the partition's next owner redelivers. */
const REBALANCE_ERRORS = ['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR'];

export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly replayable = true;
  private readonly logger: Logger;
  private readonly base: BaseOptions;
  private admin: Admin | undefined;
  /** Partition counts by topic, for partitioning sends ourselves (see KafkaProducer.send). */
  private readonly partitionCounts = new Map<string, { count: Promise<number>; expires: number }>();
  private readonly producers = new Set<KafkaProducer>();
  private readonly consumers = new Set<KafkaConsumer>();

  constructor(private readonly options: KafkaBusOptions) {
    this.logger = options.logger ?? createLogger('warn', { component: 'kafka' });
    this.base = {
      clientId: options.clientId,
      bootstrapBrokers: options.brokers,
      timeout: REQUEST_TIMEOUT_MS,
      retries: RETRIES,
      retryDelay: RETRY_DELAY_MS,
      // Topics are created by ensureTopics with the configured partitions, never by a typo.
      autocreateTopics: false,
      ...(options.sasl ? { sasl: { ...options.sasl } } : {}),
      // SNI with each broker's host name, which managed services route on.
      ...(options.tls ? { tls: options.tls.ca ? { ca: options.tls.ca } : {}, tlsServerName: true } : {}),
    };
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    if (specs.length === 0) return;
    const admin = this.connectedAdmin();
    for (const spec of specs) {
      try {
        await admin.createTopics({ topics: [spec.topic], partitions: spec.partitions, replicas: this.options.replicationFactor });
      } catch (err) {
        // An existing topic is left as it is.
        if (!hasApiError(err, ['TOPIC_ALREADY_EXISTS'])) throw unavailable(`createTopics ${spec.topic}`, err);
      }
    }
    // Like kafkajs's waitForLeaders: producers and consumers may start right after this resolves.
    const deadline = Date.now() + REQUEST_TIMEOUT_MS;
    for (;;) {
      try {
        const metadata = await admin.metadata({ topics: specs.map((s) => s.topic), forceUpdate: true });
        const ready = specs.every((s) => {
          const topic = metadata.topics.get(s.topic);
          return topic !== undefined && topic.partitionsCount > 0 && topic.partitions.every((p) => p.leader >= 0);
        });
        if (ready) return;
      } catch (err) {
        if (Date.now() > deadline) throw unavailable('metadata after createTopics', err);
      }
      if (Date.now() > deadline) throw new BusUnavailableError('kafka createTopics: partitions have no leader yet');
      await sleep(100);
    }
  }

  async producer(): Promise<BusProducer> {
    const producer = new Producer({
      ...this.base,
      // Retries cannot duplicate or reorder records: the broker drops re-sent sequence numbers.
      idempotent: true,
      acks: -1,
    });
    try {
      // Connects and fetches the producer id now, so a dead cluster fails here and not on first send.
      await producer.metadata({ topics: [] });
    } catch (err) {
      await producer.close().catch(() => undefined);
      throw unavailable('producer connect', err);
    }
    const wrapped = new KafkaProducer(producer, this, () => this.producers.delete(wrapped));
    this.producers.add(wrapped);
    return wrapped;
  }

  consumer(options: ConsumerOptions): BusConsumer {
    const consumer = new KafkaConsumer(this.base, options, this.logger, this, () => this.consumers.delete(consumer));
    this.consumers.add(consumer);
    return consumer;
  }

  async committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
    const partitions = await this.partitionCount(topic, true);
    const admin = this.connectedAdmin();
    try {
      const [group] = await admin.listConsumerGroupOffsets({
        groups: [{ groupId, topics: [{ name: topic, partitionIndexes: range(partitions) }] }],
      });
      const committed = new Map<number, bigint>();
      for (const t of group?.topics ?? []) {
        if (t.name === topic) for (const p of t.partitions) committed.set(p.partitionIndex, p.committedOffset);
      }
      return range(partitions).map((partition) => ({ topic, partition, offset: (committed.get(partition) ?? -1n).toString() }));
    } catch (err) {
      throw unavailable('listConsumerGroupOffsets', err);
    }
  }

  async endOffsets(topic: string): Promise<PartitionOffset[]> {
    const partitions = await this.partitionCount(topic, true);
    const admin = this.connectedAdmin();
    try {
      const [listed] = await admin.listOffsets({
        topics: [{ name: topic, partitions: range(partitions).map((partitionIndex) => ({ partitionIndex, timestamp: ListOffsetTimestamps.LATEST })) }],
      });
      return (listed?.partitions ?? [])
        .map((p) => ({ topic, partition: p.partitionIndex, offset: p.offset.toString() }))
        .sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw unavailable('listOffsets', err);
    }
  }

  async offsetsForTime(topic: string, timestamp: number): Promise<PartitionOffset[]> {
    const partitions = await this.partitionCount(topic, true);
    const admin = this.connectedAdmin();
    try {
      // Kafka answers -1 for a partition with no record at or after the time: that is its end.
      const [atTime, ends] = await Promise.all([
        admin.listOffsets({ topics: [{ name: topic, partitions: range(partitions).map((partitionIndex) => ({ partitionIndex, timestamp: BigInt(Math.max(0, Math.floor(timestamp))) })) }] }),
        this.endOffsets(topic),
      ]);
      const found = new Map((atTime[0]?.partitions ?? []).map((p) => [p.partitionIndex, p.offset]));
      return ends.map((end) => {
        const offset = found.get(end.partition);
        return { topic, partition: end.partition, offset: offset !== undefined && offset >= 0n ? offset.toString() : end.offset };
      });
    } catch (err) {
      throw unavailable('listOffsets', err);
    }
  }

  /**
   * The topic's partition count, cached for a while (added partitions are picked up) and dropped
   * when a send fails.
   */
  partitionCount(topic: string, fresh = false): Promise<number> {
    const cached = this.partitionCounts.get(topic);
    if (!fresh && cached && cached.expires > Date.now()) return cached.count;
    const count = this.fetchPartitionCount(topic);
    this.partitionCounts.set(topic, { count, expires: Date.now() + PARTITION_COUNT_TTL_MS });
    count.catch(() => this.partitionCounts.delete(topic));
    return count;
  }

  forgetPartitionCount(topic: string): void {
    this.partitionCounts.delete(topic);
  }

  /** Deletes a consumer group (an ephemeral member's, once it stopped); a group still in use stays. */
  async deleteGroup(groupId: string): Promise<void> {
    try {
      await this.connectedAdmin().deleteGroups({ groups: [groupId] });
    } catch (err) {
      this.logger.debug({ err, groupId }, 'kafka: ephemeral consumer group not deleted (offsets expire instead)');
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.stop()));
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    const admin = this.admin;
    this.admin = undefined;
    if (admin) await admin.close().catch(() => undefined);
  }

  private async fetchPartitionCount(topic: string): Promise<number> {
    try {
      const metadata = await this.connectedAdmin().metadata({ topics: [topic], forceUpdate: true });
      const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
      if (count === 0) throw new Error(`topic ${topic} has no partitions`);
      return count;
    } catch (err) {
      throw unavailable(`metadata of topic ${topic}`, err);
    }
  }

  private connectedAdmin(): Admin {
    // The client connects lazily on the first request; nothing to await here.
    this.admin ??= new Admin({ ...this.base });
    return this.admin;
  }
}

class KafkaProducer implements BusProducer {
  private readonly partitioner: Partitioner = createPartitioner();

  constructor(
    private readonly producer: Producer,
    private readonly bus: KafkaBus,
    private readonly onClose: () => void,
  ) {}

  /**
   * Partitions the records here (Kafka's murmur2, as the Java client does) and sends them in waves:
   * each wave holds at most one chunk (MAX_CHUNK_BYTES) per partition, so no record batch exceeds
   * the broker's message.max.bytes, all partitions travel in parallel, and a partition's chunks go
   * one after the other, which keeps per-key order across chunks and retries.
   */
  async send(topic: string, records: BusRecord[]): Promise<void> {
    if (records.length === 0) return;
    const partitions = await this.bus.partitionCount(topic);
    type Outgoing = { topic: string; partition: number; key?: Buffer; value: Buffer; headers?: Map<Buffer, Buffer> };
    const chunks: Outgoing[][][] = Array.from({ length: partitions }, () => []);
    const chunkBytes = new Array<number>(partitions).fill(0);
    for (const record of records) {
      const partition = this.partitioner(topic, record.key, partitions);
      const bytes = recordBytes(record);
      const perPartition = chunks[partition]!;
      let current = perPartition.at(-1);
      if (!current || chunkBytes[partition]! + bytes > MAX_CHUNK_BYTES) {
        current = [];
        perPartition.push(current);
        chunkBytes[partition] = 0;
      }
      const message: Outgoing = { topic, partition, value: record.value };
      if (record.key !== null) message.key = Buffer.from(record.key, 'utf8');
      if (record.headers) {
        message.headers = new Map(Object.entries(record.headers).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')]));
      }
      current.push(message);
      chunkBytes[partition]! += bytes;
    }
    const waves = Math.max(...chunks.map((c) => c.length));
    try {
      for (let wave = 0; wave < waves; wave++) {
        await this.producer.send({ messages: chunks.flatMap((c) => c[wave] ?? []) });
      }
    } catch (err) {
      // Partitions may have been added, or the topic recreated: look the count up again next time.
      this.bus.forgetPartitionCount(topic);
      throw unavailable(`produce to ${topic}`, err);
    }
  }

  async close(): Promise<void> {
    this.onClose();
    await this.producer.close();
  }
}

/** Why the client of a stopping member refuses to join its group again. */
class LeavingGroupError extends Error {
  override readonly name = 'LeavingGroupError';
}

/**
 * The client, kept from joining its group again once its member is leaving: the client answers a
 * commit refused for a rebalance by joining the group and committing again, which a stopping
 * member must not do (it would re-enter the group it is leaving, and its stop would wait on the rebalance).
 */
class GroupMember extends Consumer {
  leaving = false;

  override joinGroup(options: GroupOptions, callback: CallbackWithPromise<string>): void;
  override joinGroup(options?: GroupOptions): Promise<string>;
  // biome-ignore lint/suspicious/noConfusingVoidType: the library's overloads (callback: void, else a promise)
  override joinGroup(options?: GroupOptions, callback?: CallbackWithPromise<string>): void | Promise<string> {
    if (this.leaving) {
      const error = new LeavingGroupError(`consumer of group ${this.groupId} is leaving it: not joining again`);
      if (callback) return callback(error);
      return Promise.reject(error);
    }
    return callback ? super.joinGroup(options ?? {}, callback) : super.joinGroup(options);
  }

  /**
   * Closes the connections without leaving the group (the client's own close() leaves first, and may
   * wait or fail): requests in flight fail, retries waiting are cancelled, nothing stays open.
   */
  disconnect(): Promise<void> {
    return Base.prototype.close.call(this);
  }
}

/** One assigned partition of the current generation. */
interface PartitionState {
  topic: string;
  partition: number;
  /** Next offset to fetch; undefined until read from the group's commit (lazily, see fetchLoop). */
  position: bigint | undefined;
  /** Where a failing handler rewinds to: the position read from the group at the assignment. */
  fetchedFrom: bigint;
  /** The highest offset this member committed since the assignment. */
  committed: bigint;
  failures: number;
  /** Not fetched before this time (handler backoff). */
  notBefore: number;
  /**
   * Records fetched while the partition's handler was busy (one batch ahead, as kafkajs
   * prefetched): handed over the moment the handler resolves, so a partition does not wait for
   * the next fetch round trip; the partition is not fetched again while they wait.
   */
  pending: DeliveredRecord[] | undefined;
}

class KafkaConsumer implements BusConsumer {
  private readonly consumer: GroupMember;
  /** 'stopping': no new batches; the handlers running finish and may still commit. */
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  private stopped: Promise<void> | undefined;
  private generation = 0;
  private partitions = new Map<string, PartitionState>();
  /**
   * Partitions whose handler is running, with the generation that started it (across generations:
   * a partition is never handled twice at once).
   */
  private readonly busy = new Map<string, { run: Promise<void>; generation: number }>();
  private handler: ((batch: DeliveredBatch) => Promise<void>) | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private topicIds = new Map<string, string>();
  /** ConsumerOptions.startAt, by partition key, until this member commits the partition. */
  private readonly startAt: Map<string, bigint>;

  constructor(
    base: BaseOptions,
    private readonly options: ConsumerOptions,
    private readonly logger: Logger,
    private readonly bus: KafkaBus,
    private readonly onStop: () => void,
  ) {
    this.startAt = new Map((options.startAt ?? []).map((o) => [key(o), BigInt(o.offset)]));
    this.consumer = new GroupMember({
      ...base,
      groupId: options.groupId,
      // Short enough for quick rebalances; the client heartbeats on a timer, so a long handler
      // keeps its member in the group.
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: SESSION_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_EVERY_MS,
      maxWaitTime: FETCH_MAX_WAIT_MS,
      maxBytes: FETCH_MAX_BYTES,
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
      autocommit: false,
    });
    this.consumer.on('consumer:group:join', ({ assignments }) => {
      // A join or sync in flight when the stop began may still complete: a stopping member takes nothing new.
      if (this.state !== 'running') return;
      // Fresh generation: positions are read from the group's commits again (lazily, per partition).
      this.generation++;
      const assigned = (assignments ?? []).flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })));
      this.partitions = new Map(
        assigned.map(({ topic, partition }) => [
          key({ topic, partition }),
          { topic, partition, position: undefined, fetchedFrom: -1n, committed: -1n, failures: 0, notBefore: 0, pending: undefined },
        ]),
      );
      this.topicIds.clear();
      try {
        this.options.onAssign?.(assigned);
      } catch (err) {
        this.logger.error({ err }, 'bus onAssign callback failed');
      }
      this.poke();
    });
    this.consumer.on('consumer:heartbeat:error', ({ error }) => this.logger.debug({ err: error, groupId: options.groupId }, 'kafka heartbeat failed'));
    // The client emits 'error' when a rejoin failed for good (the coordinator was unreachable for
    // all its retries, e.g. across a broker restart) and then stops heartbeating: this member is
    // out of the group. Stop handling the old assignment and join again until it works.
    this.consumer.on('error', (err: unknown) => {
      // A stopping member's join or sync cut short by its leave ends this way too: nothing to rejoin.
      if (this.state !== 'running') return this.logger.debug({ err, groupId: options.groupId }, 'kafka consumer group error while stopping');
      this.logger.warn({ err, groupId: options.groupId }, 'kafka consumer left the group; joining again');
      this.generation++;
      this.partitions = new Map();
      this.rejoin();
    });
  }

  private rejoining = false;

  private rejoin(): void {
    if (this.rejoining || this.state !== 'running') return;
    this.rejoining = true;
    setTimeout(() => {
      if (this.state !== 'running') {
        this.rejoining = false;
        return;
      }
      this.consumer.joinGroup({}).then(
        () => {
          this.rejoining = false;
        },
        (err: unknown) => {
          this.rejoining = false;
          this.logger.warn({ err, groupId: this.options.groupId }, 'kafka consumer could not join its group yet');
          this.rejoin();
        },
      );
    }, REJOIN_BACKOFF_MS).unref();
  }

  async run(handler: (batch: DeliveredBatch) => Promise<void>): Promise<void> {
    if (this.state !== 'idle') throw new Error('KafkaBus consumer: run() may be called once');
    this.state = 'running';
    try {
      this.consumer.topics.trackAll(...this.options.topics);
      await this.consumer.joinGroup({});
    } catch (err) {
      // Stopped while joining: the stop ended the join, which is no failure to start.
      if (this.state !== 'running') return;
      this.state = 'stopped';
      this.stopped = this.consumer.close(true).catch(() => this.consumer.disconnect());
      await this.stopped;
      throw unavailable(`consumer ${this.options.groupId} start`, err);
    }
    if (this.state !== 'running') return;
    this.loop = this.fetchLoop(handler).catch((err: unknown) => {
      this.logger.error({ err, groupId: this.options.groupId }, 'kafka fetch loop stopped');
    });
  }

  /**
   * Commits, ignoring offsets not above what this member already committed. A commit refused
   * because the group is rebalancing is dropped (the partition's next owner redelivers from the
   * last commit: at-least-once); other failures reject with BusUnavailableError. The handlers still
   * running when stop() is called may commit (what they wrote is durable); a stopped member commits nothing.
   */
  async commit(offsets: PartitionOffset[]): Promise<void> {
    if (this.state !== 'running' && this.state !== 'stopping') return;
    const fresh = offsets.filter((o) => BigInt(o.offset) > (this.partitions.get(key(o))?.committed ?? -1n));
    if (fresh.length === 0) return;
    try {
      await this.consumer.commit({
        offsets: fresh.map(({ topic, partition, offset }) => ({ topic, partition, offset: BigInt(offset), leaderEpoch: -1 })),
      });
    } catch (err) {
      if (hasApiError(err, REBALANCE_ERRORS) || err instanceof LeavingGroupError) {
        this.logger.warn({ err, groupId: this.options.groupId }, 'commit dropped: group is rebalancing');
        return;
      }
      throw unavailable(`commit for ${this.options.groupId}`, err);
    }
    for (const o of fresh) {
      this.startAt.delete(key(o));
      const state = this.partitions.get(key(o));
      if (state && BigInt(o.offset) > state.committed) state.committed = BigInt(o.offset);
    }
  }

  /**
   * Leaves the group after the in-flight batches finish (their commits still count); an ephemeral
   * group is then deleted. A rebalance under way is not waited for: the client is kept from joining
   * again, the leave is bounded, and the connections are closed in any case. Every call resolves
   * when the member is stopped.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    this.consumer.leaving = true;
    this.onStop();
    this.poke();
    // The fetch loop hands out nothing more; the handlers running now finish and may commit.
    await Promise.allSettled([...this.busy.values()].map((b) => b.run));
    this.state = 'stopped';
    await this.leaveAndClose();
    // Its requests in flight failed with the closed client.
    await this.loop;
    // An ephemeral group is never resumed: delete it now rather than leave its offsets to expire
    // (offsets.retention.minutes, 7 days by default).
    if (wasRunning && this.options.ephemeral) await this.bus.deleteGroup(this.options.groupId);
  }

  /**
   * LeaveGroup, then close. leaveGroup() ends the membership in the client at once, so a join or sync
   * still in flight is dropped when it completes; the client's close() alone leaves the membership
   * active, and such a join then resumes heartbeats on the closed client, retried every second for
   * ever. Both are bounded together; past the bound, or when either fails, the connections are dropped.
   */
  private async leaveAndClose(): Promise<void> {
    const groupId = this.options.groupId;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), LEAVE_TIMEOUT_MS);
    });
    const leave = async (): Promise<'done'> => {
      await new Promise<void>((resolve) => {
        this.consumer.leaveGroup(false, (err) => {
          if (err) this.logger.warn({ err, groupId }, 'kafka consumer could not leave its group');
          resolve();
        });
      });
      await this.consumer.close();
      return 'done';
    };
    try {
      const outcome = await Promise.race([leave(), bound]);
      if (outcome === 'done') return;
      this.logger.warn({ groupId, waitedMs: LEAVE_TIMEOUT_MS }, 'kafka consumer did not leave its group in time; dropping its connections');
    } catch (err) {
      this.logger.warn({ err, groupId }, 'kafka consumer close failed; dropping its connections');
    } finally {
      clearTimeout(timer);
    }
    await this.consumer.disconnect().catch((err: unknown) => this.logger.warn({ err, groupId }, 'kafka consumer connections not closed'));
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Waits until a handler finishes, the assignment changes, the consumer stops, or `ms` passes. */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * One fetch at a time for all this member's partitions (a fetch session per broker, as the client
   * keeps them). Each partition's records go to the handler as one batch; while it runs, at most
   * one more batch of that partition is fetched and held, and the partition is fetched again only
   * once that one was handed over: the backpressure the port promises.
   */
  private async fetchLoop(handler: (batch: DeliveredBatch) => Promise<void>): Promise<void> {
    this.handler = handler;
    while (this.state === 'running') {
      const generation = this.generation;
      const now = Date.now();
      const ready = [...this.partitions.values()].filter((p) => {
        const busy = this.busy.get(key(p));
        // A handler of an earlier generation may still commit: read the position after it is done.
        return p.pending === undefined && p.notBefore <= now && (!busy || busy.generation === generation);
      });
      if (ready.length === 0) {
        // Woken early by a handler finishing or a new assignment; otherwise until a backoff ends.
        const backoffs = [...this.partitions.values()].filter((p) => p.notBefore > now).map((p) => p.notBefore - now);
        const waitFor = Math.min(FETCH_MAX_WAIT_MS, ...backoffs);
        await this.idle(waitFor);
        continue;
      }
      let response: FetchResponse;
      let requested: Map<string, bigint>;
      try {
        await this.resolvePositions(ready, generation);
        if (generation !== this.generation || this.state !== 'running') continue;
        const request = await this.fetchRequest(ready);
        requested = request.requested;
        response = await this.consumer.fetch({ node: request.node, topics: request.topics, maxWaitTime: FETCH_MAX_WAIT_MS });
      } catch (err) {
        if (this.state !== 'running') return;
        if (hasApiError(err, ['OFFSET_OUT_OF_RANGE'])) {
          // Retention removed the records at our position: start over from the group's commit or the reset policy.
          for (const p of ready) p.position = undefined;
        } else {
          this.logger.warn({ err, groupId: this.options.groupId }, 'kafka fetch failed; retrying');
          this.topicIds.clear();
        }
        await this.idle(FETCH_ERROR_BACKOFF_MS);
        continue;
      }
      if (generation !== this.generation || this.state !== 'running') continue;
      for (const topicResponse of response.responses) {
        const topic = this.topicIds.get(topicResponse.topicId) ?? topicResponse.topicId;
        for (const partitionResponse of topicResponse.partitions) {
          const state = this.partitions.get(key({ topic, partition: partitionResponse.partitionIndex }));
          const from = requested.get(key({ topic, partition: partitionResponse.partitionIndex }));
          if (!state || from === undefined || state.position !== from || state.pending !== undefined) continue;
          const { records, next } = delivered(topic, state.partition, partitionResponse.records ?? [], from);
          if (next > from) state.position = next;
          if (records.length > 0) state.pending = records;
        }
      }
      this.handOver(generation);
    }
  }

  /** Starts the handler on every partition with records waiting and no handler running (up to the cap). */
  private handOver(generation: number): void {
    const handler = this.handler;
    if (!handler || generation !== this.generation || this.state !== 'running') return;
    for (const state of this.partitions.values()) {
      if (this.busy.size >= PARTITIONS_CONCURRENTLY) return;
      if (state.pending === undefined || this.busy.has(key(state))) continue;
      const records = state.pending;
      state.pending = undefined;
      this.dispatch(handler, state, records, generation);
    }
  }

  /** Reads the group's committed offset (or applies the reset policy) for partitions with no position yet. */
  private async resolvePositions(states: PartitionState[], generation: number): Promise<void> {
    let missing = states.filter((s) => s.position === undefined);
    if (missing.length === 0) return;
    if (this.startAt.size > 0) {
      missing = missing.filter((s) => {
        const start = this.startAt.get(key(s));
        if (start === undefined) return true;
        setPosition(s, start);
        return false;
      });
      if (missing.length === 0) return;
    }
    const byTopic = groupByTopic(missing);
    const committed = await this.consumer.listCommittedOffsets({
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
    });
    const reset: PartitionState[] = [];
    for (const s of missing) {
      const offset = committed.get(s.topic)?.[s.partition];
      if (offset !== undefined && offset >= 0n) setPosition(s, offset);
      else reset.push(s);
    }
    if (reset.length > 0) {
      const timestamp = (this.options.fromBeginning ?? true) ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST;
      const resetByTopic = groupByTopic(reset);
      const listed = await this.consumer.listOffsets({
        topics: [...resetByTopic.keys()],
        partitions: Object.fromEntries(resetByTopic),
        timestamp,
      });
      if (generation !== this.generation) return;
      for (const s of reset) {
        const offset = listed.get(s.topic)?.[s.partition];
        if (offset === undefined) throw new Error(`no ${timestamp === ListOffsetTimestamps.EARLIEST ? 'earliest' : 'latest'} offset for ${s.topic}/${s.partition}`);
        setPosition(s, offset);
      }
    }
  }

  private async fetchRequest(states: PartitionState[]): Promise<{ node: number; topics: FetchRequestTopic[]; requested: Map<string, bigint> }> {
    const metadata = await this.consumer.metadata({ topics: this.options.topics });
    const topics = new Map<string, FetchRequestTopic>();
    const requested = new Map<string, bigint>();
    let node = metadata.controllerId;
    for (const s of states) {
      if (s.position === undefined) continue;
      const topicMetadata = metadata.topics.get(s.topic);
      if (!topicMetadata) continue;
      this.topicIds.set(topicMetadata.id, s.topic);
      const leader = topicMetadata.partitions[s.partition]?.leader;
      if (leader !== undefined && leader >= 0) node = leader;
      let t = topics.get(topicMetadata.id);
      if (!t) topics.set(topicMetadata.id, (t = { topicId: topicMetadata.id, partitions: [] }));
      t.partitions.push({
        partition: s.partition,
        fetchOffset: s.position,
        partitionMaxBytes: FETCH_MAX_BYTES_PER_PARTITION,
        currentLeaderEpoch: -1,
        lastFetchedEpoch: -1,
      });
      requested.set(key(s), s.position);
    }
    // The client sends to each partition's leader itself; `node` is only its fallback.
    return { node, topics: [...topics.values()], requested };
  }

  private dispatch(handler: (batch: DeliveredBatch) => Promise<void>, state: PartitionState, records: DeliveredRecord[], generation: number): void {
    const tp = key(state);
    const run = (async () => {
      try {
        await handler({ topic: state.topic, partition: state.partition, records });
        if (generation === this.generation) state.failures = 0;
      } catch (err) {
        if (generation !== this.generation || this.state !== 'running') return;
        // biome-ignore lint/complexity/useMathMinMax: bigints (Math.max throws on them)
        const restart = state.committed > state.fetchedFrom ? state.committed : state.fetchedFrom;
        const delay = Math.min(HANDLER_BACKOFF_MIN_MS * 2 ** state.failures, HANDLER_BACKOFF_MAX_MS);
        state.failures++;
        this.logger.warn(
          { err, topic: state.topic, partition: state.partition, offset: records[0]!.offset, restartAt: restart.toString(), retryInMs: delay },
          'bus handler failed; redelivering from the committed offset',
        );
        // Records fetched ahead came after the failed ones: drop them, they come again from `restart`.
        state.pending = undefined;
        state.position = restart;
        state.notBefore = Date.now() + delay;
      } finally {
        this.busy.delete(tp);
        this.handOver(this.generation);
        this.poke();
      }
    })();
    this.busy.set(tp, { run, generation });
  }
}

function setPosition(state: PartitionState, offset: bigint): void {
  state.position = offset;
  state.fetchedFrom = offset;
}

function groupByTopic(states: PartitionState[]): Map<string, number[]> {
  const byTopic = new Map<string, number[]>();
  for (const s of states) {
    const list = byTopic.get(s.topic) ?? [];
    list.push(s.partition);
    byTopic.set(s.topic, list);
  }
  return byTopic;
}

/** The records of a partition's batches from `from` on (a batch may start earlier), and the next offset to fetch. */
function delivered(topic: string, partition: number, batches: RecordsBatch[], from: bigint): { records: DeliveredRecord[]; next: bigint } {
  const records: DeliveredRecord[] = [];
  let next = from;
  for (const batch of batches) {
    const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    if (last + 1n > next) next = last + 1n;
    if (batch.attributes & IS_CONTROL) continue;
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < from) continue;
      records.push(toDelivered(topic, partition, offset, batch.firstTimestamp + record.timestampDelta, record));
    }
  }
  return { records, next };
}

function toDelivered(topic: string, partition: number, offset: bigint, timestamp: bigint, record: KafkaRecord): DeliveredRecord {
  const out: DeliveredRecord = {
    topic,
    partition,
    offset: offset.toString(),
    timestamp: Number(timestamp),
    key: record.key ? record.key.toString('utf8') : null,
    value: record.value ?? Buffer.alloc(0),
  };
  if (record.headers.length > 0) {
    const headers: Record<string, string> = {};
    // Repeated header keys: the last one wins.
    for (const [k, v] of record.headers) if (k) headers[k.toString('utf8')] = v ? v.toString('utf8') : '';
    out.headers = headers;
  }
  return out;
}

function key(tp: { topic: string; partition: number }): string {
  return `${tp.topic}\u0000${tp.partition}`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function recordBytes(record: BusRecord): number {
  let bytes = RECORD_OVERHEAD_BYTES + record.value.length + (record.key ? Buffer.byteLength(record.key) : 0);
  if (record.headers) {
    for (const [k, v] of Object.entries(record.headers)) bytes += 8 + Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  return bytes;
}

/** Whether the client's error (or one it wraps) is a broker error with one of these ids. */
function hasApiError(err: unknown, ids: string[]): boolean {
  const seen = new Set<unknown>();
  const walk = (e: unknown, depth: number): boolean => {
    if (!e || typeof e !== 'object' || depth > 6 || seen.has(e)) return false;
    seen.add(e);
    const { apiId, errors, cause } = e as { apiId?: unknown; errors?: unknown; cause?: unknown };
    if (typeof apiId === 'string' && ids.includes(apiId)) return true;
    if (Array.isArray(errors) && errors.some((x) => walk(x, depth + 1))) return true;
    return walk(cause, depth + 1);
  };
  return walk(err, 0);
}

function unavailable(what: string, err: unknown): BusUnavailableError {
  if (err instanceof BusUnavailableError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BusUnavailableError(`kafka ${what} failed: ${message}`, { cause: err });
}

import {
  CompressionTypes,
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type KafkaMessage,
  type LogEntry,
  type Message,
  type Producer,
} from 'kafkajs';
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

/** The production bus: Apache Kafka through kafkajs. */

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  replicationFactor: number;
  logger?: Logger;
}

/** Broker-side ack timeout of a produce request. */
const PRODUCE_TIMEOUT_MS = 10_000;
/**
 * One produce request carries at most one chunk per partition, and the broker refuses a
 * partition's record batch above message.max.bytes (1 MiB by default): stay well below it.
 */
const MAX_CHUNK_BYTES = 900 * 1024;
/**
 * kafkajs groups a request's messages per partition by copying an array per message (quadratic in
 * the messages of one partition), so large chunks cost more CPU than they save in round trips.
 */
const MAX_CHUNK_RECORDS = 1_000;
/** Per-record framing in a v2 record batch (varint lengths, deltas, attributes), rounded up. */
const RECORD_OVERHEAD_BYTES = 24;
const PARTITION_COUNT_TTL_MS = 60_000;
const HEARTBEAT_EVERY_MS = 1_000;
const HANDLER_BACKOFF_MIN_MS = 100;
const HANDLER_BACKOFF_MAX_MS = 5_000;
/** Errors that mean "this member's generation is over": the partition's next owner redelivers. */
const REBALANCE_ERRORS = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'NOT_COORDINATOR_FOR_GROUP']);
/** kafkajs retries with backoff: ~3 s in all before an operation fails. */
const RETRY = { initialRetryTime: 100, maxRetryTime: 2_000, retries: 5 };

export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly replayable = true;
  private readonly kafka: Kafka;
  private readonly logger: Logger;
  private admin: Promise<Admin> | undefined;
  /** Partition counts by topic, for partitioning sends ourselves (see KafkaProducer.send). */
  private readonly partitionCounts = new Map<string, { count: Promise<number>; expires: number }>();
  private readonly producers = new Set<KafkaProducer>();
  private readonly consumers = new Set<KafkaConsumer>();

  constructor(private readonly options: KafkaBusOptions) {
    this.logger = options.logger ?? createLogger('warn', { component: 'kafka' });
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => logEntry(this.logger, entry),
      retry: RETRY,
    });
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    if (specs.length === 0) return;
    const admin = await this.connectedAdmin();
    try {
      // Resolves false (no error) when the topics exist already; an existing topic is left as it is.
      await admin.createTopics({
        waitForLeaders: true,
        topics: specs.map((s) => ({ topic: s.topic, numPartitions: s.partitions, replicationFactor: this.options.replicationFactor })),
      });
    } catch (err) {
      throw unavailable('createTopics', err);
    }
  }

  async producer(): Promise<BusProducer> {
    const producer = this.kafka.producer({
      // Explicit so kafkajs does not warn about its v2 default change; partitions are chosen by
      // the shared partitioner anyway (same murmur2), see KafkaProducer.send.
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      maxInFlightRequests: 5,
      retry: RETRY,
    });
    try {
      await producer.connect();
    } catch (err) {
      throw unavailable('producer connect', err);
    }
    const wrapped = new KafkaProducer(producer, this, () => this.producers.delete(wrapped));
    this.producers.add(wrapped);
    return wrapped;
  }

  consumer(options: ConsumerOptions): BusConsumer {
    const consumer = new KafkaConsumer(this.kafka, options, this.logger, () => this.consumers.delete(consumer));
    this.consumers.add(consumer);
    return consumer;
  }

  async committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]> {
    const admin = await this.connectedAdmin();
    try {
      const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return (result?.partitions ?? [])
        .map((p) => ({ topic, partition: p.partition, offset: p.offset }))
        .sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw unavailable('fetchOffsets', err);
    }
  }

  async endOffsets(topic: string): Promise<PartitionOffset[]> {
    const admin = await this.connectedAdmin();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.map((p) => ({ topic, partition: p.partition, offset: p.high })).sort((a, b) => a.partition - b.partition);
    } catch (err) {
      throw unavailable('fetchTopicOffsets', err);
    }
  }

  /**
   * The topic's partition count, cached for a while (added partitions are picked up, as kafkajs
   * picks them up with its metadata refresh) and dropped when a send fails.
   */
  partitionCount(topic: string): Promise<number> {
    const cached = this.partitionCounts.get(topic);
    if (cached && cached.expires > Date.now()) return cached.count;
    const count = this.fetchPartitionCount(topic);
    this.partitionCounts.set(topic, { count, expires: Date.now() + PARTITION_COUNT_TTL_MS });
    count.catch(() => this.partitionCounts.delete(topic));
    return count;
  }

  forgetPartitionCount(topic: string): void {
    this.partitionCounts.delete(topic);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.stop()));
    await Promise.allSettled([...this.producers].map((p) => p.close()));
    const admin = this.admin;
    this.admin = undefined;
    if (admin) await admin.then((a) => a.disconnect()).catch(() => undefined);
  }

  private async fetchPartitionCount(topic: string): Promise<number> {
    const admin = await this.connectedAdmin();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const count = topics[0]?.partitions.length ?? 0;
      if (count === 0) throw new Error(`topic ${topic} has no partitions`);
      return count;
    } catch (err) {
      throw unavailable(`metadata of topic ${topic}`, err);
    }
  }

  private connectedAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin({ retry: RETRY });
      this.admin = admin.connect().then(
        () => admin,
        (err: unknown) => {
          this.admin = undefined;
          throw unavailable('admin connect', err);
        },
      );
    }
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
   * Partitions the records here (the same murmur2 kafkajs would use) and sends them in waves:
   * each wave holds at most one chunk (MAX_CHUNK_RECORDS, MAX_CHUNK_BYTES) per partition, so no
   * record batch exceeds the broker's message.max.bytes, all partitions travel in parallel, and a
   * partition's chunks go one after the other, which keeps per-key order across chunks and retries.
   */
  async send(topic: string, records: BusRecord[]): Promise<void> {
    if (records.length === 0) return;
    const partitions = await this.bus.partitionCount(topic);
    const chunks: Message[][][] = Array.from({ length: partitions }, () => []);
    const chunkBytes = new Array<number>(partitions).fill(0);
    for (const record of records) {
      const partition = this.partitioner(topic, record.key, partitions);
      const bytes = recordBytes(record);
      const perPartition = chunks[partition]!;
      let current = perPartition.at(-1);
      const full = current && (current.length === MAX_CHUNK_RECORDS || chunkBytes[partition]! + bytes > MAX_CHUNK_BYTES);
      if (!current || full) {
        current = [];
        perPartition.push(current);
        chunkBytes[partition] = 0;
      }
      current.push({ key: record.key, value: record.value, headers: record.headers, partition });
      chunkBytes[partition]! += bytes;
    }
    const waves = Math.max(...chunks.map((c) => c.length));
    try {
      for (let wave = 0; wave < waves; wave++) {
        await this.producer.send({
          topic,
          messages: chunks.flatMap((c) => c[wave] ?? []),
          acks: -1,
          timeout: PRODUCE_TIMEOUT_MS,
          compression: CompressionTypes.None,
        });
      }
    } catch (err) {
      // Partitions may have been added, or the topic recreated: look the count up again next time.
      this.bus.forgetPartitionCount(topic);
      throw unavailable(`produce to ${topic}`, err);
    }
  }

  async close(): Promise<void> {
    this.onClose();
    await this.producer.disconnect();
  }
}

/** Per assigned partition, what a failing handler rewinds to. Reset on every rebalance. */
interface PartitionState {
  /** The first offset fetched since the assignment: the group's committed (or reset) offset then. */
  fetchedFrom: bigint;
  /** The highest offset this member committed since the assignment. */
  committed: bigint;
  failures: number;
}

class KafkaConsumer implements BusConsumer {
  private readonly consumer: Consumer;
  private readonly partitions = new Map<string, PartitionState>();
  private state: 'idle' | 'running' | 'stopped' = 'idle';

  constructor(
    kafka: Kafka,
    private readonly options: ConsumerOptions,
    private readonly logger: Logger,
    private readonly onStop: () => void,
  ) {
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      // Short enough for quick rebalances; long handlers are covered by heartbeats (eachBatch).
      sessionTimeout: 10_000,
      rebalanceTimeout: 10_000,
      heartbeatInterval: HEARTBEAT_EVERY_MS,
      // kafkajs only notices a rebalance between fetches: keep idle long-polls short.
      maxWaitTimeInMs: 500,
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      allowAutoTopicCreation: false,
      retry: RETRY,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      // Fresh generation: kafkajs refetches committed offsets, so must we (lazily, see eachBatch).
      this.partitions.clear();
      const assigned = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      try {
        this.options.onAssign?.(assigned);
      } catch (err) {
        this.logger.error({ err }, 'bus onAssign callback failed');
      }
    });
  }

  async run(handler: (batch: DeliveredBatch) => Promise<void>): Promise<void> {
    if (this.state !== 'idle') throw new Error('KafkaBus consumer: run() may be called once');
    this.state = 'running';
    try {
      await this.consumer.connect();
      await this.consumer.subscribe({ topics: this.options.topics, fromBeginning: this.options.fromBeginning ?? true });
      await this.consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: (payload) => this.eachBatch(handler, payload),
      });
    } catch (err) {
      throw unavailable(`consumer ${this.options.groupId} start`, err);
    }
  }

  /**
   * Commits, ignoring offsets not above what this member already committed. A commit refused
   * because the group is rebalancing is dropped (the partition's next owner redelivers from the
   * last commit: at-least-once); other failures reject with BusUnavailableError. Like kafkajs,
   * a stopped member commits nothing.
   */
  async commit(offsets: PartitionOffset[]): Promise<void> {
    if (this.state !== 'running') return;
    const fresh = offsets.filter((o) => BigInt(o.offset) > (this.partitions.get(key(o))?.committed ?? -1n));
    if (fresh.length === 0) return;
    try {
      await this.consumer.commitOffsets(fresh.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
    } catch (err) {
      if (isRebalanceError(err)) {
        this.logger.warn({ err, groupId: this.options.groupId }, 'commit dropped: group is rebalancing');
        return;
      }
      throw unavailable(`commit for ${this.options.groupId}`, err);
    }
    for (const o of fresh) {
      const state = this.partitions.get(key(o));
      if (state && BigInt(o.offset) > state.committed) state.committed = BigInt(o.offset);
    }
  }

  /** Leaves the group after the in-flight batches finish (kafkajs disconnect). */
  async stop(): Promise<void> {
    this.state = 'stopped';
    this.onStop();
    await this.consumer.disconnect();
  }

  private async eachBatch(
    handler: (batch: DeliveredBatch) => Promise<void>,
    { batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload,
  ): Promise<void> {
    const { topic, partition, messages } = batch;
    const first = messages[0];
    const last = messages.at(-1);
    if (!first || !last || !isRunning() || isStale()) return;
    const tp = key({ topic, partition });
    let state = this.partitions.get(tp);
    if (!state) {
      state = { fetchedFrom: BigInt(first.offset), committed: -1n, failures: 0 };
      this.partitions.set(tp, state);
    }

    // The handler may wait on a slow downstream flush: keep the session alive meanwhile.
    const beat = setInterval(() => heartbeat().catch(() => undefined), HEARTBEAT_EVERY_MS);
    let failure: { err: unknown } | undefined;
    try {
      await handler({ topic, partition, records: messages.map((m) => delivered(topic, partition, m)) });
    } catch (err) {
      failure = { err };
    } finally {
      clearInterval(beat);
    }
    if (!failure) {
      state.failures = 0;
      resolveOffset(last.offset);
      return;
    }

    const restart = state.committed > state.fetchedFrom ? state.committed : state.fetchedFrom;
    const delay = Math.min(HANDLER_BACKOFF_MIN_MS * 2 ** state.failures, HANDLER_BACKOFF_MAX_MS);
    state.failures++;
    this.logger.warn(
      { err: failure.err, topic, partition, offset: first.offset, restartAt: restart.toString(), retryInMs: delay },
      'bus handler failed; redelivering from the committed offset',
    );
    // With autoCommit off, seek only moves the fetch position (it commits nothing). Returning
    // without resolveOffset leaves the batch unconsumed.
    this.consumer.seek({ topic, partition, offset: restart.toString() });
    await pause(delay, heartbeat, isRunning);
  }
}

/** Sleeps `ms` while heartbeating, cut short when the consumer stops. */
async function pause(ms: number, heartbeat: () => Promise<void>, isRunning: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (isRunning() && Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(HEARTBEAT_EVERY_MS, until - Date.now())));
    await heartbeat().catch(() => undefined);
  }
}

function key(tp: { topic: string; partition: number }): string {
  return `${tp.topic}\u0000${tp.partition}`;
}

function recordBytes(record: BusRecord): number {
  let bytes = RECORD_OVERHEAD_BYTES + record.value.length + (record.key ? Buffer.byteLength(record.key) : 0);
  if (record.headers) {
    for (const [k, v] of Object.entries(record.headers)) bytes += 8 + Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  return bytes;
}

function delivered(topic: string, partition: number, m: KafkaMessage): DeliveredRecord {
  const record: DeliveredRecord = {
    topic,
    partition,
    offset: m.offset,
    timestamp: Number(m.timestamp),
    key: m.key ? m.key.toString('utf8') : null,
    value: m.value ?? Buffer.alloc(0),
  };
  const headers = m.headers && stringHeaders(m.headers);
  if (headers) record.headers = headers;
  return record;
}

/** kafkajs hands header values over as Buffers (arrays for repeated keys: the last one wins). */
function stringHeaders(raw: IHeaders): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const [name, value] of Object.entries(raw)) {
    const v = Array.isArray(value) ? value.at(-1) : value;
    if (v === undefined) continue;
    (out ??= {})[name] = v.toString();
  }
  return out;
}

function isRebalanceError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const { type, cause } = e as { type?: unknown; cause?: unknown };
    if (typeof type === 'string' && REBALANCE_ERRORS.has(type)) return true;
    e = cause;
  }
  return false;
}

function unavailable(what: string, err: unknown): BusUnavailableError {
  if (err instanceof BusUnavailableError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BusUnavailableError(`kafka ${what} failed: ${message}`, { cause: err });
}

/**
 * kafkajs log entries to pino, keeping kafkajs's namespace and extra fields. kafkajs logs every
 * error response at ERROR in its Connection layer even when the caller expects and handles it
 * (a heartbeat answered "rebalancing", createTopics answered "already exists"); real failures
 * surface again from the operation itself, so those entries go to debug, and the runner's
 * routine "re-joining" notice to info.
 */
function logEntry(logger: Logger, { namespace, level, log }: LogEntry): void {
  const { message, timestamp: _timestamp, ...extra } = log;
  const fields = { kafkajs: namespace, ...extra };
  if (namespace === 'Connection' && message.startsWith('Response ')) logger.debug(fields, message);
  else if (namespace === 'Runner' && message.startsWith('The group is rebalancing')) logger.info(fields, message);
  else if (level === logLevel.ERROR) logger.error(fields, message);
  else if (level === logLevel.WARN) logger.warn(fields, message);
  else if (level === logLevel.INFO) logger.info(fields, message);
  else logger.debug(fields, message);
}

/**
 * The bus port: a partitioned, ordered, replayable log with consumer groups, as Kafka offers it.
 * Two adapters: Kafka through @platformatic/kafka (production) and an in-process log (embedded default) with the same
 * semantics: per-partition order, offsets, at-least-once delivery, commit only on request.
 */

export interface BusRecord {
  /** Partitioning key: records with the same key land on the same partition, in order. */
  key: string | null;
  value: Buffer;
  headers?: Record<string, string>;
}

export interface DeliveredRecord extends BusRecord {
  topic: string;
  partition: number;
  /** Offset as a decimal string (Kafka offsets are int64). */
  offset: string;
  /** Broker/append time, epoch ms. */
  timestamp: number;
}

export interface DeliveredBatch {
  topic: string;
  partition: number;
  records: DeliveredRecord[];
}

/** `offset` is the NEXT offset to read, as in Kafka's commit semantics. */
export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: string;
}

export interface TopicSpec {
  topic: string;
  partitions: number;
}

export interface BusProducer {
  /**
   * Append records; resolves once the bus holds them durably (Kafka: acks=all).
   * Rejects with BusUnavailableError / BackpressureError; never buffers without bound.
   */
  send(topic: string, records: BusRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  /** Where a group with no committed offset starts. Default: earliest. */
  fromBeginning?: boolean;
  /**
   * The group belongs to this one consumer and is never resumed once it stops (a per-process group
   * that re-reads the log from the beginning on every start). When it stops, the in-process log
   * stops holding records back for it and Kafka deletes the group with its offsets (rather than
   * keep them until offsets.retention.minutes expires them).
   */
  ephemeral?: boolean;
  /** Called with the partitions this member now owns, after every rebalance. */
  onAssign?: (assigned: { topic: string; partition: number }[]) => void;
  /**
   * Where to start these partitions when this member is given them, instead of the group's
   * committed offset, until this member commits an offset of its own for them: a member that
   * rebuilt its state up to there from elsewhere (the store) replays only what that state lacks,
   * and again after a rebalance that came before its first commit.
   */
  startAt?: PartitionOffset[];
}

export interface BusConsumer {
  /**
   * Start delivering. The handler is awaited: no further batch of that partition is delivered
   * until it resolves, which is how a consumer applies backpressure. Offsets are NOT committed
   * automatically; call commit() once the records are durable downstream.
   * If the handler throws, delivery of that partition restarts from the last committed offset.
   */
  run(handler: (batch: DeliveredBatch) => Promise<void>): Promise<void>;
  commit(offsets: PartitionOffset[]): Promise<void>;
  /** Leave the group (partitions move to other members) and stop delivering. */
  stop(): Promise<void>;
}

/** What the in-process log retains for one topic against its bound, and which group holds it back. */
export interface TopicBacklog {
  topic: string;
  retainedBytes: number;
  /** The subscribed group furthest behind (uncommitted records over all partitions). */
  laggiest: { group: string; records: number } | undefined;
}

export interface Bus {
  readonly kind: 'kafka' | 'memory';
  /**
   * Whether the log outlives the process: Kafka's does; the in-process log starts empty with
   * every process, so state derived from it must be rebuilt from elsewhere (the store) on start.
   */
  readonly replayable: boolean;
  /** The in-process log only (Kafka's retention is by time and size, not by consumers): per topic. */
  backlog?(): TopicBacklog[];
  ensureTopics(specs: TopicSpec[]): Promise<void>;
  producer(): Promise<BusProducer>;
  consumer(options: ConsumerOptions): BusConsumer;
  /** Committed offset per partition for a group (lag reporting, tests). */
  committedOffsets(groupId: string, topic: string): Promise<PartitionOffset[]>;
  /** Latest offset (next to be written) per partition. */
  endOffsets(topic: string): Promise<PartitionOffset[]>;
  /**
   * Per partition, the first offset whose record was appended at or after `timestamp` (epoch ms),
   * or the end offset when none was: where to replay from to see everything since then.
   */
  offsetsForTime(topic: string, timestamp: number): Promise<PartitionOffset[]>;
  close(): Promise<void>;
}

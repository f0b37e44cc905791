import {
  Counter,
  DLQ_HEADERS,
  Gauge,
  Histogram,
  SINGLE_NODE_SINK_INSERT_SETTINGS,
  EventsRawRepository,
  TOPICS,
  dedupeWithinBatch,
  rawRowKey,
  readBusEvent,
  toRawRow,
  type Bus,
  type BusConsumer,
  type BusProducer,
  type BusRecord,
  type DeliveredBatch,
  type DeliveredRecord,
  type EventLimits,
  type Logger,
  type PartitionOffset,
  type RawRow,
  type Registry,
  type SinkSettings,
  type Store,
} from '@afterglow/core';

/** The sink settings are config.sink's (lanes default 2). */
export interface SinkOptions extends Pick<SinkSettings, 'groupId' | 'batchMaxRows' | 'batchMaxMs'>, Partial<Pick<SinkSettings, 'lanes'>> {
  bus: Bus;
  store: Store;
  limits: EventLimits;
  log: Logger;
  /**
   * Exactly-once settings of the events_raw insert (the token is added per batch): the composition
   * root passes `sinkInsertSettings(config.store)`, i.e. the cluster's on a ClickHouse cluster.
   */
  insertSettings?: Readonly<Record<string, string | number>>;
  registry?: Registry;
  /** What "batchMaxMs old" is measured with (tests inject one). Default Date.now. */
  clock?: () => number;
}

/** The outcome of reading one bus record: a row to store, or a poison record for the DLQ. */
type Decoded = { ok: true; row: RawRow } | { ok: false; reason: string; message: string };

interface Lane {
  pending: Pending;
  /** The flush in progress; each lane's flushes chain so its batches and commits stay in order. */
  flushing: Promise<void>;
}

interface Pending {
  rows: RawRow[];
  dlq: BusRecord[];
  /** Next offset to commit per topic-partition, once this buffer is durable. */
  offsets: Map<string, PartitionOffset>;
  firstAt: number;
  /**
   * The rows the first attempt decided to insert (after the existence lookup). Retries re-send
   * exactly these with the same token, never a fresh lookup: an insert can fail after events_raw
   * took the rows but before the materialized views wrote the rollups (the store crashed or the
   * connection dropped mid-insert); a new lookup would then find the rows and skip them, and the
   * rollups would miss them for good. The same token makes events_raw drop the repeat while the
   * views' targets, which keep their own dedup window (migration 9), add only what they lack.
   */
  fresh?: RawRow[];
  /** Keys of `fresh`, held in the sink's in-flight set until the insert lands or is given up. */
  claimed?: string[];
}

export interface FlushReport {
  received: number;
  duplicates: number;
  inserted: number;
  deadLettered: number;
}

/**
 * The stream sink: one member of consumer group `groupId` on `engagement.events`, writing
 * ClickHouse `events_raw` (rollups follow by materialized views) in batches by size and time.
 *
 * Exactly-once in query results, with at-least-once delivery underneath: offsets are committed
 * only after the batch is durable, and duplicates (redelivery after a crash, or a client re-send)
 * are removed before insert — see the design note in core's migrations. Poison records go to
 * `engagement.events.dlq` with a reason and the consumer keeps going.
 */
export class EventSink {
  private consumer: BusConsumer | undefined;
  private dlqProducer: BusProducer | undefined;
  private readonly lanes: Lane[];
  /**
   * Keys (tenant, event_id) of rows a lane decided to insert and has not yet seen land. Lanes flush
   * concurrently: without this, an id re-used on a partition of another lane could pass both
   * lanes' existence lookups before either insert lands, and both copies would be stored (the
   * rollups counting the id twice). Checked and claimed synchronously after the lookup: the first
   * lane to claim a key inserts it, the others drop their copy.
   */
  private readonly inflight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly metrics: ReturnType<typeof createSinkMetrics>;
  readonly totals: FlushReport = { received: 0, duplicates: 0, inserted: 0, deadLettered: 0 };
  private readonly events: EventsRawRepository;

  private readonly clock: () => number;

  constructor(private readonly options: SinkOptions) {
    this.clock = options.clock ?? Date.now;
    this.events = new EventsRawRepository(options.store);
    this.lanes = Array.from({ length: Math.max(1, options.lanes ?? 2) }, () => ({ pending: emptyPending(), flushing: Promise.resolve() }));
    this.metrics = createSinkMetrics(
      options.registry,
      () => this.lanes.reduce((n, l) => n + l.pending.rows.length, 0),
      () => this.inflight.size,
    );
  }

  async start(): Promise<void> {
    const { bus, groupId } = this.options;
    this.dlqProducer = await bus.producer();
    this.consumer = bus.consumer({ groupId, topics: [TOPICS.events], fromBeginning: true });
    this.timer = setInterval(() => void this.flushAged().catch(() => undefined), Math.max(20, Math.min(250, this.options.batchMaxMs / 4)));
    this.timer.unref();
    await this.consumer.run((batch) => this.onBatch(batch));
  }

  /**
   * Flush every lane whose buffer holds something (rows or dead letters) and whose first record
   * arrived batchMaxMs ago or more; resolves when every flush in progress is done (one the timer
   * started included). A timer calls it a few times per batchMaxMs.
   */
  async flushAged(): Promise<void> {
    const now = this.clock();
    const aged = this.lanes.filter((lane) => {
      const p = lane.pending;
      return p.rows.length + p.dlq.length > 0 && now - p.firstAt >= this.options.batchMaxMs;
    });
    await Promise.all(aged.map((lane) => this.flushLane(lane)));
    await Promise.all(this.lanes.map((lane) => lane.flushing));
  }

  /**
   * Drain: stop taking new records, make what is buffered durable and commit it while this member
   * still owns its partitions, then leave the group. Records delivered after this point are not
   * buffered, so they stay uncommitted and go to the next owner.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.flush().catch((err) => this.options.log.warn({ err }, 'final flush failed; its records will be redelivered'));
    await this.consumer?.stop();
    await this.dlqProducer?.close();
  }

  /**
   * Stop without flushing or committing, as a crash would: buffered records are simply
   * forgotten and will be redelivered to whoever owns their partitions next.
   */
  async abandon(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    for (const lane of this.lanes) lane.pending = emptyPending();
    // An insert already on the wire lands or not as a unit, as it would for a killed process.
    await Promise.all(this.lanes.map((l) => l.flushing));
    await this.consumer?.stop();
    await this.dlqProducer?.close();
  }

  private async onBatch(batch: DeliveredBatch): Promise<void> {
    if (batch.records.length === 0 || this.stopping) return;
    const lane = this.lanes[batch.partition % this.lanes.length]!;
    const pending = lane.pending;
    if (pending.rows.length === 0 && pending.dlq.length === 0) pending.firstAt = this.clock();
    for (const record of batch.records) {
      const d = this.decode(record);
      if (d.ok) pending.rows.push(d.row);
      else pending.dlq.push(toDlqRecord(record, d.reason, d.message, this.options.groupId));
    }
    const last = batch.records[batch.records.length - 1]!;
    pending.offsets.set(`${batch.topic}:${batch.partition}`, {
      topic: batch.topic,
      partition: batch.partition,
      offset: (BigInt(last.offset) + 1n).toString(),
    });
    this.totals.received += batch.records.length;
    if (pending.rows.length + pending.dlq.length >= this.options.batchMaxRows) {
      // Waiting here is the backpressure (and the memory bound, about two batches per lane): this
      // partition is not read again until the flush is done.
      await this.flushLane(lane);
    }
  }

  private decode(record: DeliveredRecord): Decoded {
    const r = readBusEvent(record.value, this.options.limits);
    return r.ok ? { ok: true, row: toRawRow(r.event, this.options.limits.liveLateMs) } : r;
  }

  /** Make everything buffered so far durable, then commit its offsets. */
  async flush(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => this.flushLane(lane)));
  }

  private flushLane(lane: Lane): Promise<void> {
    const next = lane.flushing.then(() => this.flushPending(lane));
    lane.flushing = next.catch(() => undefined);
    return next;
  }

  private async flushPending(lane: Lane): Promise<void> {
    const batch = lane.pending;
    if (batch.rows.length === 0 && batch.dlq.length === 0 && batch.offsets.size === 0) return;
    lane.pending = emptyPending();
    const stopTimer = this.metrics.flushSeconds.startTimer();
    try {
      const report = await this.retry('flush', () => this.write(batch), Infinity).finally(() => {
        // Landed (later lookups find the rows), or given up (the records are redelivered).
        for (const k of batch.claimed ?? []) this.inflight.delete(k);
      });
      // A commit can fail for good when a rebalance moved the partition away; the rows are already
      // durable, and the new owner's redelivery is absorbed by dedup, so giving up is safe.
      await this.retry('commit', () => this.consumer!.commit([...batch.offsets.values()]), 5).catch((err) =>
        this.options.log.warn({ err }, 'offsets not committed; the next owner will redeliver (deduplicated)'),
      );
      this.totals.duplicates += report.duplicates;
      this.totals.inserted += report.inserted;
      this.totals.deadLettered += report.deadLettered;
      this.metrics.rows.inc(report.inserted);
      this.metrics.duplicates.inc(report.duplicates);
      this.metrics.deadLettered.inc(report.deadLettered);
      this.metrics.batchRows.observe(report.received);
    } catch (err) {
      // Not committed: the records come back after a restart or rebalance; dedup absorbs repeats.
      this.options.log.error({ err }, 'flush abandoned; offsets left uncommitted');
      throw err;
    } finally {
      stopTimer();
    }
  }

  private async write(batch: Pending): Promise<FlushReport> {
    if (!batch.fresh) {
      const unique = dedupeWithinBatch(batch.rows);
      const existing = await this.events.existingKeys(unique);
      batch.fresh = unique.filter((r) => !existing.has(rawRowKey(r)) && !this.inflight.has(rawRowKey(r)));
      batch.claimed = batch.fresh.map(rawRowKey);
      for (const k of batch.claimed) this.inflight.add(k);
    }
    const fresh = batch.fresh;
    if (fresh.length > 0) {
      const stopTimer = this.metrics.insertSeconds.startTimer();
      await this.events.insert(fresh, this.options.insertSettings ?? SINGLE_NODE_SINK_INSERT_SETTINGS);
      stopTimer();
    }
    if (batch.dlq.length > 0) await this.dlqProducer!.send(TOPICS.eventsDlq, batch.dlq);
    return {
      received: batch.rows.length + batch.dlq.length,
      duplicates: batch.rows.length - fresh.length,
      inserted: fresh.length,
      deadLettered: batch.dlq.length,
    };
  }

  /**
   * Retry transient store/bus failures with capped backoff. While the store is down the buffer
   * stays put and, being full, stops consumption: memory stays bounded and nothing is committed.
   */
  private async retry<T>(what: string, fn: () => Promise<T>, maxAttempts: number): Promise<T> {
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= maxAttempts || (this.stopping && attempt >= 3)) throw err;
        this.metrics.retries.inc({ step: what });
        this.options.log.warn({ err, attempt, what }, `${what} failed; retrying in ${delay} ms`);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }
}

function emptyPending(): Pending {
  return { rows: [], dlq: [], offsets: new Map(), firstAt: 0 };
}

function toDlqRecord(record: DeliveredRecord, reason: string, message: string, groupId: string): BusRecord {
  return {
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      [DLQ_HEADERS.reason]: reason,
      [DLQ_HEADERS.message]: message.slice(0, 500),
      [DLQ_HEADERS.sourceTopic]: record.topic,
      [DLQ_HEADERS.sourcePartition]: String(record.partition),
      [DLQ_HEADERS.sourceOffset]: record.offset,
      [DLQ_HEADERS.consumer]: groupId,
    },
  };
}

function createSinkMetrics(registry: Registry | undefined, buffered: () => number, claimed: () => number) {
  const registers = registry ? [registry] : [];
  new Gauge({
    name: 'afterglow_sink_buffered_rows',
    help: 'Rows read from the bus and not yet durable in the store',
    registers,
    collect() {
      this.set(buffered());
    },
  });
  new Gauge({
    name: 'afterglow_sink_claimed_ids',
    help: 'Event ids claimed by inserts in flight (0 between flushes; growth means claims are not released)',
    registers,
    collect() {
      this.set(claimed());
    },
  });
  return {
    rows: new Counter({ name: 'afterglow_sink_rows_inserted_total', help: 'Rows inserted into events_raw', registers }),
    duplicates: new Counter({ name: 'afterglow_sink_duplicates_total', help: 'Redelivered or re-sent events dropped before insert', registers }),
    deadLettered: new Counter({ name: 'afterglow_sink_dead_lettered_total', help: 'Poison records sent to the DLQ', registers }),
    retries: new Counter({ name: 'afterglow_sink_retries_total', help: 'Retried store/bus steps', labelNames: ['step'], registers }),
    batchRows: new Histogram({
      name: 'afterglow_sink_batch_rows',
      help: 'Records per flushed batch',
      buckets: [10, 100, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000],
      registers,
    }),
    flushSeconds: new Histogram({
      name: 'afterglow_sink_flush_seconds',
      help: 'Dedup + insert + commit time per batch',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    insertSeconds: new Histogram({
      name: 'afterglow_sink_clickhouse_insert_seconds',
      help: 'ClickHouse insert latency per batch',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}

import {
  BackpressureError,
  BusUnavailableError,
  Counter,
  Gauge,
  Histogram,
  TOPICS,
  encodeEvent,
  sealViewer,
  validateEvent,
  type BusProducer,
  type BusRecord,
  type EventLimits,
  type RejectReason,
  type Registry,
} from '@afterglow/core';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Slicer, type DecodedItem } from './decode.js';

/** Records per bus send (see EventIntake.send). */
const PRODUCE_SLICE = 5_000;

export interface Rejection {
  /** Position of the event in the request or message. */
  index: number;
  event_id?: string;
  reason: RejectReason;
  field?: string;
  message: string;
}

export interface IntakeResult {
  accepted: number;
  rejected: number;
  rejections: Rejection[];
}

/** What the sender's API key allows (issue 8): events of another tenant or placement are refused one by one. */
export interface IntakeGuard {
  tenantId: string;
  /** Edge keys: the placements allowed (absent = any). */
  placements?: readonly string[] | undefined;
}

export interface IntakeOptions {
  producer: BusProducer;
  limits: EventLimits;
  /** Bytes handed to the bus and not yet acknowledged, across all clients; over it, clients wait. */
  maxInflightBytes: number;
  produceTimeoutMs: number;
  registry?: Registry;
  clock?: () => number;
  /** Key of the hash that replaces viewer_id (viewerHashKey); absent: viewer ids are dropped. */
  viewerKey?: Buffer | undefined;
}

/**
 * The ingest pipeline both HTTP and WebSocket use: validate each event, refuse what is invalid with
 * a reason, and produce the rest keyed by asset_id, resolving only once the bus holds them.
 * Memory is bounded by `maxInflightBytes`: past it `submit` throws BackpressureError at once, so
 * callers slow their clients (HTTP 429, WebSocket pause) rather than queue.
 */
export class EventIntake {
  private inflight = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly clock: () => number;
  private readonly accepted: Counter<string>;
  private readonly rejected: Counter<'reason'>;
  private readonly produceSeconds: Histogram<string>;

  constructor(private readonly options: IntakeOptions) {
    this.clock = options.clock ?? Date.now;
    const registers = options.registry ? [options.registry] : [];
    this.accepted = new Counter({ name: 'afterglow_ingest_events_accepted_total', help: 'Events accepted and produced to the bus', registers });
    this.rejected = new Counter({
      name: 'afterglow_ingest_events_rejected_total',
      help: 'Events rejected at ingest, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.produceSeconds = new Histogram({
      name: 'afterglow_ingest_produce_seconds',
      help: 'Time for the bus to acknowledge one request or message',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const intake = this;
    new Gauge({
      name: 'afterglow_ingest_inflight_bytes',
      help: 'Bytes produced to the bus and not yet acknowledged',
      registers,
      collect() {
        this.set(intake.inflight);
      },
    });
  }

  get inflightBytes(): number {
    return this.inflight;
  }

  get saturated(): boolean {
    return this.inflight >= this.options.maxInflightBytes;
  }

  /** Resolves when in-flight bytes fall under the bound (WebSocket readers wait on this). */
  whenCapacity(): Promise<void> {
    if (!this.saturated) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async submit(items: DecodedItem[], guard?: IntakeGuard): Promise<IntakeResult> {
    if (this.saturated) throw new BackpressureError('ingest is waiting for the bus; retry shortly', 250);
    const now = this.clock();
    const records: BusRecord[] = [];
    const rejections: Rejection[] = [];
    let bytes = 0;
    const slicer = new Slicer();
    for (let index = 0; index < items.length; index++) {
      // A large batch is validated in slices so other requests are served in between.
      if ((index & 511) === 511) await slicer.maybeYield();
      const item = items[index]!;
      if (!item.ok) {
        rejections.push({ index, reason: 'undecodable', message: item.message });
        continue;
      }
      const v = validateEvent(item.value, this.options.limits, now);
      if (v.ok && guard && v.event.tenant_id !== guard.tenantId) {
        rejections.push({ index, event_id: v.event.event_id, reason: 'tenant_forbidden', field: 'tenant_id', message: 'the API key belongs to another tenant' });
      } else if (v.ok && guard?.placements && !guard.placements.includes(v.event.placement ?? '')) {
        rejections.push({ index, event_id: v.event.event_id, reason: 'placement_forbidden', field: 'placement', message: 'the API key may not send events for this placement' });
      } else if (v.ok) {
        sealViewer(v.event, this.options.viewerKey);
        const value = encodeEvent(v.event);
        bytes += value.length;
        records.push({ key: v.event.asset_id, value });
      } else {
        const eventId = (item.value as { event_id?: unknown } | null)?.event_id;
        const r: Rejection = { index, reason: v.reason, message: v.message };
        if (typeof eventId === 'string') r.event_id = eventId.slice(0, 64);
        if (v.field) r.field = v.field;
        rejections.push(r);
      }
    }
    // Counted per reason first: one metric update per event would itself hold the loop on large batches.
    const byReason = new Map<RejectReason, number>();
    for (const r of rejections) byReason.set(r.reason, (byReason.get(r.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) this.rejected.inc({ reason }, n);
    if (records.length > 0) await this.produce(records, bytes);
    this.accepted.inc(records.length);
    return { accepted: records.length, rejected: rejections.length, rejections };
  }

  /**
   * Large batches go to the bus in slices, the next started after other work had a turn: one
   * send of 100k records encodes (and, in memory, appends) them all in one synchronous stretch.
   * The slices are acknowledged together; as with any multi-partition send, a failure may leave
   * some of them written, and the client's retry is de-duplicated by event_id downstream.
   */
  private async send(records: BusRecord[]): Promise<void> {
    if (records.length <= PRODUCE_SLICE) return this.options.producer.send(TOPICS.events, records);
    const sends: Promise<void>[] = [];
    for (let i = 0; i < records.length; i += PRODUCE_SLICE) {
      if (i > 0) await nextTurn();
      const sent = this.options.producer.send(TOPICS.events, records.slice(i, i + PRODUCE_SLICE));
      // Observed at once so a slice that fails while later ones start is not an unhandled rejection.
      sent.catch(() => {});
      sends.push(sent);
    }
    await Promise.all(sends);
  }

  private async produce(records: BusRecord[], bytes: number): Promise<void> {
    this.inflight += bytes;
    const stop = this.produceSeconds.startTimer();
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new BusUnavailableError(`the bus did not acknowledge within ${this.options.produceTimeoutMs} ms`)),
          this.options.produceTimeoutMs,
        );
      });
      await Promise.race([this.send(records), timeout]);
    } finally {
      clearTimeout(timer);
      stop();
      this.inflight -= bytes;
      while (!this.saturated && this.waiters.length > 0) this.waiters.shift()!();
    }
  }
}

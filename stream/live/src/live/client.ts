import type { WebSocket } from 'ws';
import { PingLiveness, type Counter, type LiveSettings, type Subscription } from '@afterglow/core';
import { ID_RE } from '@afterglow/core/live-protocol';
import type { View } from './replica.js';

/** A /v1/live connection and the topics it holds (the gateway, gateway.ts, keeps the topics and ticks). */

export type TopicKind = 'campaign' | 'asset' | 'master';

/** One topic's frame of a tick, serialized once for every client in sync. */
export interface Frame {
  topic: Topic;
  seq: number;
  entities: [string, string][];
  buffer: Buffer;
}

/** A topic (one campaign, asset or master of one tenant) as the gateway holds it. */
export class Topic {
  readonly views = new Map<string, View>();
  readonly clients = new Set<LiveClient>();
  readonly changed = new Set<View>();
  seq = 0;
  sub: Subscription | undefined;
  ready: Promise<void> = Promise.resolve();
  loaded = false;
  idleTimer: NodeJS.Timeout | undefined;
  snapshot: { seq: number; at: number; buffer: Buffer } | undefined;
  /** When its last frame was built: the next may follow one interval later. */
  lastFrameAt = 0;

  constructor(
    readonly key: string,
    readonly kind: TopicKind,
    readonly tenant: string,
    readonly id: string,
  ) {}

  get name(): string {
    return `${this.kind}:${this.id}`;
  }
}

/** A topic as one client follows it. */
export interface ClientTopic {
  topic: Topic;
  /** The last seq this client got (snapshot or frame); -1 before its snapshot. */
  lastSeq: number;
  /** Coalesced updates not sent yet (latest per entity), and the seq they bring it to. */
  pending: Map<string, string> | undefined;
  pendingSeq: number;
}

/** What a client needs of its gateway. */
export interface ClientHost {
  readonly settings: Pick<LiveSettings['ws'], 'maxBufferBytes' | 'stallMs' | 'coalesceBytes'>;
  readonly metrics: Record<'coalesced' | 'messages' | 'bytes' | 'disconnects', Pick<Counter<string>, 'inc'>>;
  subscribe(client: LiveClient, kind: TopicKind, id: string): Promise<void>;
  unsubscribe(client: LiveClient, kind: TopicKind, id: string): void;
  resync(client: LiveClient, kind: TopicKind, id: string): void;
  disconnected(client: LiveClient): void;
}

const CLOSE_SLOW = 4008;
/** Timers fire a little early or late: a millisecond either way still counts as on time. */
export const SLACK_MS = 1;

/** One dashboard connection. */
export class LiveClient {
  readonly topics = new Map<string, ClientTopic>();
  private out: Buffer[] = [];
  private stalledSince = 0;
  /** The earliest time this client may get its next delta message. */
  private nextAt = 0;
  private readonly liveness: PingLiveness;
  private open = true;

  constructor(
    private readonly socket: WebSocket,
    readonly tenant: string,
    private readonly gateway: ClientHost,
  ) {
    socket.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.liveness = new PingLiveness(socket);
    socket.on('close', () => this.closed());
    socket.on('error', () => this.closed());
  }

  private get settings() {
    return this.gateway.settings;
  }

  private onMessage(data: unknown, isBinary: boolean): void {
    if (isBinary) return this.sendControl({ type: 'error', code: 'bad_message', message: 'send JSON text messages' });
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new Error('not an object');
    } catch {
      return this.sendControl({ type: 'error', code: 'bad_message', message: 'messages are JSON objects with an "op"' });
    }
    const op = msg.op;
    if (op === 'ping') return this.sendControl({ type: 'pong', ...(msg.id !== undefined ? { id: msg.id } : {}) });
    if (op !== 'subscribe' && op !== 'unsubscribe' && op !== 'resync') {
      return this.sendControl({ type: 'error', code: 'bad_message', message: 'op must be subscribe, unsubscribe, resync or ping' });
    }
    const targets = topicsOf(msg);
    if (typeof targets === 'string') return this.sendControl({ type: 'error', code: 'bad_message', message: targets });
    for (const [kind, id] of targets) {
      if (op === 'subscribe') void this.gateway.subscribe(this, kind, id);
      else if (op === 'unsubscribe') this.gateway.unsubscribe(this, kind, id);
      else this.gateway.resync(this, kind, id);
    }
  }

  /**
   * Take a topic's frame: queued as it is (the shared buffer) when this client is in sync, ready
   * and due; otherwise merged into its coalesced updates (latest per entity).
   */
  offer(frame: Frame, prev: number, now: number): void {
    const ct = this.topics.get(frame.topic.key);
    if (!ct || ct.lastSeq < 0) return; // its snapshot (sent later) covers this frame
    if (ct.pending === undefined && ct.lastSeq === prev && now >= this.nextAt - SLACK_MS && this.ready()) {
      this.out.push(frame.buffer);
      ct.lastSeq = frame.seq;
      return;
    }
    ct.pending ??= new Map();
    for (const [k, json] of frame.entities) ct.pending.set(k, json);
    ct.pendingSeq = frame.seq;
    this.gateway.metrics.coalesced.inc();
  }

  /** When this waiting client should be looked at again. */
  nextDue(now: number, interval: number): number {
    return this.ready() ? Math.max(this.nextAt, now) : now + interval;
  }

  /**
   * Send this tick's message (shared frames, then one coalesced frame per topic with pending
   * updates); returns true while something is left waiting (its interval, or a backed-up socket).
   */
  flush(now: number, interval: number): boolean {
    if (!this.open) return false;
    const buffered = this.socket.bufferedAmount;
    if (buffered > this.settings.maxBufferBytes) {
      this.disconnect('send buffer over its bound');
      return false;
    }
    const parts = this.out;
    this.out = [];
    if (!this.ready()) {
      if (this.stalledSince === 0) this.stalledSince = now;
      else if (now - this.stalledSince > this.settings.stallMs) {
        this.disconnect('stalled');
        return false;
      }
      return true;
    }
    this.stalledSince = 0;
    let pending = false;
    for (const ct of this.topics.values()) if (ct.pending) pending = true;
    if (parts.length === 0 && (!pending || now < this.nextAt - SLACK_MS)) return pending;
    for (const ct of this.topics.values()) {
      if (!ct.pending) continue;
      parts.push(
        Buffer.from(
          `{"type":"delta","topic":${JSON.stringify(ct.topic.name)},"prev":${ct.lastSeq},"seq":${ct.pendingSeq},"at":${now},"coalesced":true,"entities":[${[...ct.pending.values()].join(',')}]}`,
        ),
      );
      ct.lastSeq = ct.pendingSeq;
      ct.pending = undefined;
    }
    if (parts.length === 1) this.sendRaw(parts[0]!);
    else this.sendRaw(Buffer.concat([OPEN_ARRAY, ...parts.flatMap((p, i) => (i === 0 ? [p] : [COMMA, p])), CLOSE_ARRAY]));
    this.nextAt = now + interval;
    return false;
  }

  private ready(): boolean {
    return this.socket.bufferedAmount <= this.settings.coalesceBytes;
  }

  /** @internal */
  sendRaw(buffer: Buffer): void {
    if (!this.open || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(buffer, { binary: false });
    this.gateway.metrics.messages.inc();
    this.gateway.metrics.bytes.inc(buffer.length);
    if (this.socket.bufferedAmount > this.settings.maxBufferBytes) this.disconnect('send buffer over its bound');
  }

  /** @internal */
  sendControl(message: Record<string, unknown>): void {
    this.sendRaw(Buffer.from(JSON.stringify(message)));
  }

  heartbeat(): void {
    if (!this.open) return;
    if (!this.liveness.tick()) this.gateway.metrics.disconnects.inc({ reason: 'no_pong' });
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.socket.close(code, reason);
    this.closed();
  }

  private disconnect(reason: string): void {
    if (!this.open) return;
    this.gateway.metrics.disconnects.inc({ reason: reason === 'stalled' ? 'stalled' : 'buffer' });
    // The close frame would queue behind the unsent bytes: say it, then cut the connection.
    try {
      this.socket.close(CLOSE_SLOW, `slow consumer: ${reason}`);
    } catch {
      // Already closing.
    }
    const socket = this.socket;
    setTimeout(() => socket.terminate(), 1_000).unref();
    this.closed();
  }

  private closed(): void {
    if (!this.open) return;
    this.open = false;
    this.out = [];
    this.gateway.disconnected(this);
  }
}

const OPEN_ARRAY = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE_ARRAY = Buffer.from(']');

/** The topics a subscribe/unsubscribe/resync message names, or an error message. */
function topicsOf(msg: Record<string, unknown>): [TopicKind, string][] | string {
  const out: [TopicKind, string][] = [];
  const add = (kind: TopicKind, v: unknown): string | undefined => {
    const ids = Array.isArray(v) ? v : [v];
    for (const id of ids) {
      if (typeof id !== 'string' || !ID_RE.test(id)) return `${kind} ids are 1-128 characters of [A-Za-z0-9._:-]`;
      out.push([kind, id]);
    }
    return undefined;
  };
  for (const [field, kind] of [
    ['campaign', 'campaign'],
    ['campaigns', 'campaign'],
    ['asset', 'asset'],
    ['assets', 'asset'],
    ['master', 'master'],
    ['masters', 'master'],
  ] as const) {
    if (msg[field] === undefined) continue;
    const err = add(kind, msg[field]);
    if (err) return err;
  }
  if (typeof msg.topic === 'string') {
    const i = msg.topic.indexOf(':');
    const kind = msg.topic.slice(0, i);
    if (i < 0 || (kind !== 'campaign' && kind !== 'asset' && kind !== 'master')) return 'topic must be campaign:<id>, asset:<id> or master:<id>';
    const err = add(kind, msg.topic.slice(i + 1));
    if (err) return err;
  }
  if (out.length === 0) return 'name a campaign, asset or master (or a topic)';
  if (out.length > 1000) return 'at most 1000 topics per message';
  return out;
}

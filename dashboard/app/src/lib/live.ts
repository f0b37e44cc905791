import { ID_RE, ViewDecoder, parseTopic, type DeltaFrame, type Entity, type Frame, type SnapshotFrame } from '@afterglow/core/live-protocol';

/**
 * One /v1/live WebSocket per tenant, framework-free:
 * - subscriptions are reference-counted by topic and re-sent after every (re)connect;
 * - every topic's frames are checked against their sequence numbers: a delta whose `prev` is not
 *   the last `seq` seen reveals a gap, and the topic is resynced ({"op":"resync"}) - deltas are
 *   ignored until its fresh snapshot arrives;
 * - a closed socket (server restart, network) is reopened with jittered exponential backoff,
 *   and each topic's snapshot then replaces what the page held;
 * - an application-level ping catches half-open connections that never report a close.
 *
 * The connection's state is what the page shows: connecting -> live; reconnecting -> resyncing
 * (socket open, snapshots pending) -> resynced (held a few seconds) -> live.
 */

export type ConnState = 'connecting' | 'live' | 'reconnecting' | 'resyncing' | 'resynced';
export type SyncReason = 'initial' | 'reconnect' | 'gap';

export interface ConnInfo {
  state: ConnState;
  /** Failed connection attempts since the last open socket. */
  attempt: number;
  /** When the next connection attempt starts (epoch ms), while reconnecting. */
  retryAt: number | null;
  /** Last message from the server (epoch ms), 0 before any. */
  lastMessageAt: number;
  /** Snapshots that replaced a topic after a reconnect or a gap. */
  resyncs: number;
  /** Sequence gaps detected. */
  gaps: number;
  /** Successful opens (1 = never reconnected). */
  opens: number;
  /** Close code of the last closed socket. */
  lastClose: number | null;
  topics: number;
}

export interface TopicHandler {
  snapshot(entities: Entity[], at: number, reason: SyncReason): void;
  delta(entities: Entity[], at: number, coalesced: boolean): void;
  error?(code: string, message: string): void;
}

/** The part of the browser's WebSocket this uses (tests pass a fake). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface LiveConnectionOptions {
  url: string;
  onInfo?: (info: ConnInfo) => void;
  createSocket?: (url: string) => SocketLike;
  /** Backoff: first retry after about `minDelayMs`, doubling up to `maxDelayMs` (jittered). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** How long 'resynced' stays up before 'live'. */
  resyncedHoldMs?: number;
  pingEveryMs?: number;
  pongTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
}

interface TopicSub {
  name: string;
  handlers: Set<TopicHandler>;
  /** Last seq applied; -1 while waiting for a snapshot. */
  lastSeq: number;
  synced: boolean;
  reason: SyncReason;
  retry: ReturnType<typeof setTimeout> | undefined;
}

const OPEN = 1;
const RESUBSCRIBE_MS = 1_000;
const BATCH = 500;

export class LiveConnection {
  private socket: SocketLike | undefined;
  private readonly topics = new Map<string, TopicSub>();
  private decoder = new ViewDecoder();
  private stopped = true;
  private open = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private holdTimer: ReturnType<typeof setTimeout> | undefined;
  private resyncedUntil = 0;
  private pingId = 0;
  private lastKey = '';
  private readonly opts: Required<Omit<LiveConnectionOptions, 'onInfo'>> & Pick<LiveConnectionOptions, 'onInfo'>;
  readonly info: ConnInfo = { state: 'connecting', attempt: 0, retryAt: null, lastMessageAt: 0, resyncs: 0, gaps: 0, opens: 0, lastClose: null, topics: 0 };

  constructor(options: LiveConnectionOptions) {
    this.opts = {
      createSocket: (url) => new WebSocket(url) as unknown as SocketLike,
      minDelayMs: 250,
      maxDelayMs: 5_000,
      resyncedHoldMs: 3_000,
      pingEveryMs: 10_000,
      pongTimeoutMs: 5_000,
      random: Math.random,
      now: Date.now,
      ...options,
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.holdTimer);
    this.stopHeartbeat();
    for (const t of this.topics.values()) clearTimeout(t.retry);
    const s = this.socket;
    this.socket = undefined;
    this.open = false;
    if (s) {
      s.onopen = s.onmessage = s.onclose = s.onerror = null;
      try {
        s.close(1000, 'page closed');
      } catch {
        // Already closed.
      }
    }
  }

  /** Reconnect now (the browser came back online, or the user asked). */
  reconnectNow(): void {
    if (this.stopped || this.open) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Watch a topic (`campaign:<id>`, `asset:<id>`, `master:<id>`); returns the unsubscribe. */
  subscribe(topic: string, handler: TopicHandler): () => void {
    const parsed = parseTopic(topic);
    if (!parsed || !ID_RE.test(parsed[1])) {
      handler.error?.('bad_topic', `not a topic the gateway accepts: ${topic}`);
      return () => {};
    }
    let t = this.topics.get(topic);
    if (!t) {
      t = { name: topic, handlers: new Set(), lastSeq: -1, synced: false, reason: 'initial', retry: undefined };
      this.topics.set(topic, t);
      this.sendOps('subscribe', [topic]);
    }
    t.handlers.add(handler);
    this.info.topics = this.topics.size;
    this.update();
    return () => {
      const cur = this.topics.get(topic);
      if (!cur) return;
      cur.handlers.delete(handler);
      if (cur.handlers.size > 0) return;
      clearTimeout(cur.retry);
      this.topics.delete(topic);
      this.info.topics = this.topics.size;
      this.sendOps('unsubscribe', [topic]);
      this.update();
    };
  }

  // ---- socket -----------------------------------------------------------------------------------

  private connect(): void {
    this.info.retryAt = null;
    let socket: SocketLike;
    try {
      socket = this.opts.createSocket(this.opts.url);
    } catch {
      this.closed(1006);
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.opened();
    socket.onmessage = (ev) => this.message(ev.data);
    socket.onclose = (ev) => {
      if (this.socket === socket) this.closed(ev.code);
    };
    socket.onerror = () => {
      // A close event follows.
    };
    this.update();
  }

  private opened(): void {
    this.open = true;
    this.info.attempt = 0;
    this.info.opens++;
    for (const t of this.topics.values()) {
      t.lastSeq = -1;
      t.reason = t.synced ? 'reconnect' : 'initial';
    }
    this.sendOps('subscribe', [...this.topics.keys()]);
    this.startHeartbeat();
    this.update();
  }

  private closed(code: number): void {
    const s = this.socket;
    this.socket = undefined;
    if (s) s.onopen = s.onmessage = s.onclose = s.onerror = null;
    this.open = false;
    this.stopHeartbeat();
    this.info.lastClose = code;
    if (this.stopped) return;
    const attempt = this.info.attempt++;
    const base = Math.min(this.opts.maxDelayMs, this.opts.minDelayMs * 2 ** attempt);
    const delay = Math.round(base * (0.5 + this.opts.random() * 0.5));
    this.info.retryAt = this.opts.now() + delay;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.update();
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.open) return;
      const sentAt = this.opts.now();
      this.send({ op: 'ping', id: ++this.pingId });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        // Nothing at all since the ping: the connection is dead without having said so.
        if (this.open && this.info.lastMessageAt < sentAt) this.drop();
      }, this.opts.pongTimeoutMs);
    }, this.opts.pingEveryMs);
  }

  private stopHeartbeat(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = undefined;
  }

  private drop(): void {
    const s = this.socket;
    try {
      s?.close(4000, 'no pong');
    } catch {
      // Closing anyway.
    }
    this.closed(4000);
  }

  private send(msg: Record<string, unknown>): void {
    const s = this.socket;
    if (!this.open || !s || s.readyState !== OPEN) return;
    s.send(JSON.stringify(msg));
  }

  private sendOps(op: 'subscribe' | 'unsubscribe' | 'resync', topics: string[]): void {
    const byKind: Record<'campaigns' | 'assets' | 'masters', string[]> = { campaigns: [], assets: [], masters: [] };
    for (const topic of topics) {
      const p = parseTopic(topic);
      if (p) byKind[`${p[0]}s`].push(p[1]);
    }
    for (const [field, ids] of Object.entries(byKind)) {
      for (let i = 0; i < ids.length; i += BATCH) this.send({ op, [field]: ids.slice(i, i + BATCH) });
    }
  }

  // ---- frames -----------------------------------------------------------------------------------

  private message(data: unknown): void {
    this.info.lastMessageAt = this.opts.now();
    if (typeof data !== 'string') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    const frames = (Array.isArray(parsed) ? parsed : [parsed]) as Frame[];
    for (const f of frames) {
      if (!f || typeof f !== 'object') continue;
      if (f.type === 'snapshot') this.snapshot(f);
      else if (f.type === 'delta') this.delta(f);
      else if (f.type === 'error') this.controlError(f.code ?? 'error', f.message ?? '', f.topic);
    }
    this.update();
  }

  private snapshot(f: SnapshotFrame): void {
    const t = this.topics.get(f.topic);
    if (!t) return;
    if (f.legend) this.decoder = new ViewDecoder(f.legend);
    const reason = t.reason;
    t.lastSeq = f.seq;
    t.synced = true;
    t.reason = 'initial';
    if (reason !== 'initial') {
      this.info.resyncs++;
      this.resyncedUntil = this.opts.now() + this.opts.resyncedHoldMs;
      clearTimeout(this.holdTimer);
      this.holdTimer = setTimeout(() => this.update(), this.opts.resyncedHoldMs + 10);
    }
    const entities = f.entities.map((v) => this.decoder.decode(v, f.at));
    for (const h of t.handlers) h.snapshot(entities, f.at, reason);
  }

  private delta(f: DeltaFrame): void {
    const t = this.topics.get(f.topic);
    if (!t || t.lastSeq < 0) return; // waiting for a snapshot that covers it
    if (f.prev !== t.lastSeq) {
      this.info.gaps++;
      t.lastSeq = -1;
      t.reason = 'gap';
      this.sendOps('resync', [t.name]);
      return;
    }
    t.lastSeq = f.seq;
    const entities = f.entities.map((v) => this.decoder.decode(v, f.at));
    for (const h of t.handlers) h.delta(entities, f.at, f.coalesced === true);
  }

  private controlError(code: string, message: string, topic: string | undefined): void {
    const t = topic ? this.topics.get(topic) : undefined;
    if (!t) return;
    if (code === 'unavailable') {
      // The gateway could not load the topic (hot state down); it forgot the subscription.
      clearTimeout(t.retry);
      t.retry = setTimeout(() => {
        if (this.topics.get(t.name) === t && t.lastSeq < 0) this.sendOps('subscribe', [t.name]);
      }, RESUBSCRIBE_MS);
    }
    for (const h of t.handlers) h.error?.(code, message);
  }

  // ---- state ------------------------------------------------------------------------------------

  private update(): void {
    const info = this.info;
    let state: ConnState;
    if (!this.open) state = info.opens === 0 ? 'connecting' : 'reconnecting';
    else if ([...this.topics.values()].some((t) => t.lastSeq < 0 && t.reason !== 'initial')) state = 'resyncing';
    else if (this.opts.now() < this.resyncedUntil) state = 'resynced';
    else state = 'live';
    info.state = state;
    // lastMessageAt moves with every frame; readers poll it. Others changes are pushed.
    const key = `${state}|${info.attempt}|${info.retryAt}|${info.resyncs}|${info.gaps}|${info.opens}|${info.lastClose}|${info.topics}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.opts.onInfo?.({ ...info });
  }
}

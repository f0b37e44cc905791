import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type {} from '@fastify/websocket';
import {
  AfterglowError,
  BackpressureError,
  BadRequestError,
  Counter,
  Gauge,
  actingTenant,
  principalOf,
  quotaOf,
  type AfterglowConfig,
  type Bus,
  type BusConsumer,
  type EdgeSettings,
  type HotState,
  type Logger,
  type Quota,
  type Registry,
  PingLiveness,
} from '@afterglow/core';
import type { DecodedItem } from '../decode.js';
import type { EventIntake, IntakeGuard, IntakeResult } from '../intake.js';
import { PlacementPosteriors, type PlacementState } from './posterior.js';
import { EDGE_CLOSE, EDGE_ERROR, ID_RE, decode, encode, type Decision } from './protocol.js';

/**
 * GET /v1/edge: the edge client protocol (ingest/EDGE-PROTOCOL.md). One EdgeHub per ingest
 * process holds the sessions, the placement posteriors (posterior.ts) and who subscribes to what;
 * a placement's decision is recomputed at most every `pushMinMs` after its counts change and pushed
 * to its subscribers only when it changed (the best asset, or a share by more than `pushThreshold`).
 *
 * Events arrive on the socket in `events` messages with a per-client sequence number; each is
 * produced to the bus and then acked with its seq, strictly in order. The last produced seq of a
 * client is kept in hot state, so a client that reconnects (here or to another process) and
 * resends what was not acked gets duplicates acked without producing them again: nothing is lost
 * (unacked messages are resent) and nothing is counted twice (live counts included; ClickHouse
 * also drops repeated event_ids).
 *
 * A client_id belongs to the API key that first said hello with it (bound in hot state beside the
 * seq, with the same TTL, refreshed on every ack): another key's hello with it is refused, so one
 * device cannot replace another's connection or move its seq. A seq more than `maxSeqJump` above
 * the last acked one is refused and changes nothing, so no message can make a client's later
 * messages pass for duplicates.
 */

export interface EdgeHubOptions {
  intake: EventIntake;
  hot: HotState;
  posteriors: PlacementPosteriors;
  settings: EdgeSettings;
  /** Prefix of the per-client seq keys in hot state. */
  keyPrefix: string;
  produceTimeoutMs: number;
  maxEventsPerMessage: number;
  log: Logger;
  registry?: Registry;
  clock?: () => number;
}

/** Tenants given their own placement-count series. */
const TOP_TENANTS = 20;

interface Pushed {
  asset: string | null;
  shares: Record<string, number>;
}

export class EdgeHub {
  readonly sessions = new Set<EdgeSession>();
  private readonly byClient = new Map<string, EdgeSession>();
  private readonly subscribers = new Map<string, Set<EdgeSession>>();
  private readonly pushed = new Map<string, Pushed>();
  private readonly due = new Map<string, PlacementState>();
  private pushTimer: NodeJS.Timeout | undefined;
  private lastPush = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unlisten: () => void;
  readonly clock: () => number;
  readonly metrics: { messages: Counter<'type'>; pushes: Counter<string>; disconnects: Counter<'reason'>; refusals: Counter<'code'> };

  constructor(readonly options: EdgeHubOptions) {
    this.clock = options.clock ?? Date.now;
    this.unlisten = options.posteriors.onChange((s) => this.onChange(s));
    this.heartbeat = setInterval(() => this.beat(), Math.max(50, Math.min(options.settings.heartbeatMs, options.settings.idleTimeoutMs / 2)));
    this.heartbeat.unref();
    const registers = options.registry ? [options.registry] : [];
    const hub = this;
    new Gauge({
      name: 'afterglow_edge_connections',
      help: 'Edge WebSocket connections',
      registers,
      collect() {
        this.set(hub.sessions.size);
      },
    });
    // Per-tenant placement counts for the largest tenants only: a label per tenant would be unbounded.
    const posteriors = options.posteriors;
    new Gauge({
      name: 'afterglow_edge_placements',
      help: 'Placements with decision state: in all (no label), and for the tenants holding the most (tenant_id)',
      labelNames: ['tenant_id'],
      registers,
      collect() {
        this.reset();
        this.set(posteriors.size);
        for (const [tenant, n] of posteriors.largestTenants(TOP_TENANTS)) this.set({ tenant_id: tenant }, n);
      },
    });
    new Gauge({
      name: 'afterglow_edge_tenants',
      help: 'Tenants with edge decision state',
      registers,
      collect() {
        this.set(posteriors.tenants);
      },
    });
    const counted: Record<string, number> = { tenant: 0, total: 0 };
    new Counter({
      name: 'afterglow_edge_placements_evicted_total',
      help: "Placements dropped to keep a bound: reason tenant (the tenant's own quota) or total (the process-wide bound, taken from the largest tenant)",
      labelNames: ['reason'],
      registers,
      collect() {
        for (const reason of ['tenant', 'total'] as const) {
          const d = posteriors.evicted[reason] - counted[reason]!;
          if (d > 0) this.inc({ reason }, d);
          counted[reason] = posteriors.evicted[reason];
        }
      },
    });
    this.metrics = {
      messages: new Counter({ name: 'afterglow_edge_messages_total', help: 'Edge client messages by type', labelNames: ['type'], registers }),
      pushes: new Counter({ name: 'afterglow_edge_decisions_pushed_total', help: 'Decisions pushed to edge clients (on change)', registers }),
      disconnects: new Counter({ name: 'afterglow_edge_disconnects_total', help: 'Edge connections closed by the server, by reason', labelNames: ['reason'], registers }),
      refusals: new Counter({ name: 'afterglow_edge_refusals_total', help: 'Edge hellos and events messages refused for the client identity or seq, by code', labelNames: ['code'], registers }),
    };
  }

  /** `keyId`: the API key of the connection (undefined with auth off: client_ids are then not bound). */
  accept(socket: WebSocket, tenant: string, allowed: readonly string[] | undefined, guard: IntakeGuard, quota: Quota | undefined, keyId?: string): EdgeSession {
    const s = new EdgeSession(socket, this, tenant, allowed, guard, quota, keyId);
    this.sessions.add(s);
    return s;
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearTimeout(this.pushTimer);
    this.unlisten();
    for (const s of this.sessions) s.close(1001, 'server shutting down');
  }

  /** Registers `s` as the client's one session; the one it replaces is closed and drained first. */
  async claim(key: string, s: EdgeSession): Promise<void> {
    const old = this.byClient.get(key);
    this.byClient.set(key, s);
    if (old && old !== s) {
      old.close(EDGE_CLOSE.replaced, 'replaced by a newer connection of this client');
      await old.drained();
    }
  }

  release(s: EdgeSession): void {
    this.sessions.delete(s);
    if (s.clientKey && this.byClient.get(s.clientKey) === s) this.byClient.delete(s.clientKey);
    for (const p of s.subscriptions) this.unsubscribe(s, p);
  }

  subscribe(s: EdgeSession, tenant: string, placement: string, assets: readonly string[]): void {
    const state = assets.length > 0 ? this.options.posteriors.declare(tenant, placement, assets) : this.options.posteriors.touch(tenant, placement);
    const key = PlacementPosteriors.key(tenant, placement);
    let set = this.subscribers.get(key);
    if (!set) this.subscribers.set(key, (set = new Set()));
    set.add(s);
    // The current decision at once; later ones on change.
    const d = this.decisionOf(state, false);
    s.sendDecision(d);
  }

  unsubscribe(s: EdgeSession, placementKey: string): void {
    const set = this.subscribers.get(placementKey);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) {
      this.subscribers.delete(placementKey);
      this.pushed.delete(placementKey);
    }
  }

  /** One Thompson draw now (the answer to `decide`). */
  decide(tenant: string, placement: string): string | null {
    const { posteriors } = this.options;
    const state = posteriors.get(tenant, placement);
    if (!state) return null;
    return posteriors.sample(posteriors.posteriors(state, this.clock())) ?? null;
  }

  private onChange(state: PlacementState): void {
    const key = PlacementPosteriors.key(state.tenant, state.placement);
    if (!this.subscribers.has(key)) return;
    this.due.set(key, state);
    if (this.pushTimer) return;
    const wait = Math.max(0, this.lastPush + this.options.settings.pushMinMs - this.clock());
    this.pushTimer = setTimeout(() => this.flushDue(), wait);
    this.pushTimer.unref();
  }

  private flushDue(): void {
    this.pushTimer = undefined;
    this.lastPush = this.clock();
    const due = [...this.due.values()];
    this.due.clear();
    for (const state of due) {
      const d = this.decisionOf(state, true);
      if (!d) continue;
      const subs = this.subscribers.get(PlacementPosteriors.key(state.tenant, state.placement));
      for (const s of subs ?? []) s.sendDecision(d);
    }
  }

  /** The placement's decision; with `onlyIfChanged`, undefined when it moved less than the threshold since the last push. */
  decisionOf(state: PlacementState, onlyIfChanged: true): Decision | undefined;
  decisionOf(state: PlacementState, onlyIfChanged: false): Decision;
  decisionOf(state: PlacementState, onlyIfChanged: boolean): Decision | undefined {
    const { posteriors, settings } = this.options;
    const key = PlacementPosteriors.key(state.tenant, state.placement);
    const post = posteriors.posteriors(state, this.clock());
    const shares = posteriors.shares(post);
    let best: string | null = null;
    for (const [a, v] of Object.entries(shares)) if (best === null || v > shares[best]!) best = a;
    const last = this.pushed.get(key);
    if (onlyIfChanged && last && last.asset === best) {
      const moved = Object.keys({ ...shares, ...last.shares }).some((a) => Math.abs((shares[a] ?? 0) - (last.shares[a] ?? 0)) > settings.pushThreshold);
      if (!moved) return undefined;
    }
    this.pushed.set(key, { asset: best, shares });
    this.metrics.pushes.inc();
    const means: Record<string, number> = {};
    for (const p of post) means[p.asset_id] = Number(p.mean.toPrecision(4));
    return { type: 'decision', placement: state.placement, asset_id: best, shares, means, at: this.clock() };
  }

  private beat(): void {
    const now = this.clock();
    for (const s of this.sessions) s.beat(now);
  }
}

export class EdgeSession {
  readonly subscriptions = new Set<string>();
  clientKey: string | undefined;
  private clientId: string | undefined;
  private binary = false;
  private ready = false;
  private readonly queue: { data: Buffer; binary: boolean }[] = [];
  private draining: Promise<void> | undefined;
  private paused = false;
  private lastSeq = 0;
  private lastMessage: number;
  private readonly liveness: PingLiveness;
  private closed = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly hub: EdgeHub,
    private readonly tenant: string,
    private readonly allowed: readonly string[] | undefined,
    private readonly guard: IntakeGuard,
    private readonly quota: Quota | undefined,
    private readonly keyId: string | undefined,
  ) {
    this.lastMessage = hub.clock();
    socket.on('message', (data, isBinary) => this.onFrame(toBuffer(data), isBinary));
    this.liveness = new PingLiveness(socket);
    socket.on('close', () => {
      this.closed = true;
      this.hub.release(this);
    });
    socket.on('error', (err) => this.hub.options.log.debug({ err }, 'edge socket error'));
  }

  private get settings(): EdgeSettings {
    return this.hub.options.settings;
  }

  /** Resolves when the messages already received have been handled. */
  drained(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }

  private onFrame(data: Buffer, binary: boolean): void {
    this.lastMessage = this.hub.clock();
    // Quick messages skip the queue once the session is set up: a decision must not wait behind a produce.
    if (this.ready) {
      let msg: Record<string, unknown> | undefined;
      try {
        msg = decode(data, binary);
      } catch {
        msg = undefined;
      }
      if (msg && msg.type !== 'events' && msg.type !== 'hello') {
        this.control(msg);
        return;
      }
    }
    this.queue.push({ data, binary });
    if (!this.paused && this.queue.length >= this.settings.maxInflightMessages) {
      this.paused = true;
      this.socket.pause();
    }
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const { data, binary } = this.queue.shift()!;
      await this.handle(data, binary);
      if (this.paused && this.queue.length <= this.settings.maxInflightMessages / 2) {
        this.paused = false;
        this.socket.resume();
      }
    }
  }

  private async handle(data: Buffer, binary: boolean): Promise<void> {
    let msg: Record<string, unknown>;
    try {
      msg = decode(data, binary);
    } catch (err) {
      this.send({ type: 'error', code: 'undecodable', message: `not valid ${binary ? 'MessagePack' : 'JSON'}: ${(err as Error).message}`, retryable: false });
      return;
    }
    if (!this.ready) {
      if (msg.type !== 'hello') {
        this.send({ type: 'error', code: 'hello_required', message: 'the first message must be hello', retryable: false });
        this.close(EDGE_CLOSE.protocol, 'hello required');
        return;
      }
      await this.hello(msg, binary);
      return;
    }
    if (msg.type === 'events') await this.events(msg);
    else this.control(msg);
  }

  private async hello(msg: Record<string, unknown>, binary: boolean): Promise<void> {
    this.binary = binary;
    const id = msg.client_id;
    if (typeof id !== 'string' || !ID_RE.test(id)) {
      this.send({ type: 'error', code: 'invalid_client_id', message: 'client_id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}', retryable: false });
      this.close(EDGE_CLOSE.protocol, 'invalid client_id');
      return;
    }
    this.hub.metrics.messages.inc({ type: 'hello' });
    this.clientId = id;
    // Checked before claiming: a hello that may not use this client_id must not close its session.
    let owner: 'ours' | 'taken';
    try {
      owner = await this.bindClientId();
    } catch (err) {
      this.hub.options.log.warn({ err }, 'edge client_id binding not checked');
      this.send({ type: 'error', code: EDGE_ERROR.hotUnavailable, message: 'the client_id cannot be checked now; reconnect later', retryable: true });
      this.close(EDGE_CLOSE.retry, 'hot state unavailable');
      return;
    }
    if (owner === 'taken') {
      this.hub.metrics.refusals.inc({ code: EDGE_ERROR.clientIdTaken });
      this.send({ type: 'error', code: EDGE_ERROR.clientIdTaken, message: 'this client_id belongs to another API key of the tenant; use another client_id', retryable: false });
      this.close(EDGE_CLOSE.forbidden, EDGE_ERROR.clientIdTaken);
      return;
    }
    this.clientKey = `${this.tenant}\u0000${id}`;
    await this.hub.claim(this.clientKey, this);
    const stored = await this.hub.options.hot.get(this.seqKey()).catch(() => null);
    this.lastSeq = stored !== null && /^[0-9]+$/.test(stored) ? Number(stored) : 0;
    this.ready = true;
    const s = this.settings;
    this.send({ type: 'welcome', client_id: id, tenant_id: this.tenant, last_seq: this.lastSeq, max_seq_jump: s.maxSeqJump, heartbeat_ms: s.heartbeatMs, idle_timeout_ms: s.idleTimeoutMs, max_inflight: s.maxInflightMessages });
    if (Array.isArray(msg.placements)) for (const p of msg.placements) this.control({ type: 'subscribe', placement: p });
  }

  private seqKey(): string {
    return `${this.hub.options.keyPrefix}:seq:${encodeURIComponent(this.tenant)}:${encodeURIComponent(this.clientId!)}`;
  }

  private ownerKey(): string {
    return `${this.hub.options.keyPrefix}:owner:${encodeURIComponent(this.tenant)}:${encodeURIComponent(this.clientId!)}`;
  }

  /** After an ack: the binding's TTL renewed with the seq's; bound again if hot state lost it meanwhile. */
  private async refreshBinding(keyId: string): Promise<void> {
    const { hot } = this.hub.options;
    if (!(await hot.expire(this.ownerKey(), this.settings.seqTtlMs))) await hot.setIfAbsent(this.ownerKey(), keyId, this.settings.seqTtlMs);
  }

  /**
   * Binds the client_id to this connection's API key when it is free (atomic: of two keys saying
   * hello at once, one wins), or finds it bound to this key (its TTL renewed) or to another.
   * With auth off there is no key to bind to. Throws when hot state is unavailable.
   */
  private async bindClientId(): Promise<'ours' | 'taken'> {
    if (this.keyId === undefined) return 'ours';
    const { hot } = this.hub.options;
    const key = this.ownerKey();
    const ttl = this.settings.seqTtlMs;
    // Two tries: the binding may expire between the failed set and the read.
    for (let i = 0; i < 2; i++) {
      if (await hot.setIfAbsent(key, this.keyId, ttl)) return 'ours';
      const owner = await hot.get(key);
      if (owner === this.keyId) {
        await hot.expire(key, ttl);
        return 'ours';
      }
      if (owner !== null) return 'taken';
    }
    return 'taken';
  }

  private control(msg: Record<string, unknown>): void {
    const type = String(msg.type);
    this.hub.metrics.messages.inc({ type: ['subscribe', 'unsubscribe', 'decide', 'ping'].includes(type) ? type : 'other' });
    switch (type) {
      case 'ping':
        this.send({ type: 'pong', ...(typeof msg.t === 'number' ? { t: msg.t } : {}) });
        return;
      case 'decide': {
        const placement = this.placementOf(msg);
        if (placement === undefined) return;
        this.send({ type: 'decision', placement, asset_id: this.hub.decide(this.tenant, placement), ...(msg.id !== undefined ? { id: msg.id as number | string } : {}), at: this.hub.clock() });
        return;
      }
      case 'subscribe': {
        const placement = this.placementOf(msg);
        if (placement === undefined) return;
        const assets = Array.isArray(msg.assets) ? msg.assets.filter((a): a is string => typeof a === 'string' && ID_RE.test(a)).slice(0, this.settings.maxAssetsPerPlacement) : [];
        const key = `${this.tenant}\u0000${placement}`;
        if (!this.subscriptions.has(key) && this.subscriptions.size >= this.settings.maxSubscriptions) {
          this.send({ type: 'error', code: 'too_many_subscriptions', message: `at most ${this.settings.maxSubscriptions} placements per connection`, retryable: false });
          return;
        }
        this.subscriptions.add(key);
        this.hub.subscribe(this, this.tenant, placement, assets);
        return;
      }
      case 'unsubscribe': {
        const placement = this.placementOf(msg);
        if (placement === undefined) return;
        const key = `${this.tenant}\u0000${placement}`;
        this.subscriptions.delete(key);
        this.hub.unsubscribe(this, key);
        return;
      }
      default:
        this.send({ type: 'error', code: 'unknown_type', message: 'type must be hello, subscribe, unsubscribe, decide, events or ping', retryable: false });
    }
  }

  private placementOf(msg: Record<string, unknown>): string | undefined {
    const p = msg.placement;
    if (typeof p !== 'string' || !ID_RE.test(p)) {
      this.send({ type: 'error', code: 'invalid_placement', message: 'placement must be an id', retryable: false });
      return undefined;
    }
    if (this.allowed && !this.allowed.includes(p)) {
      this.send({ type: 'error', code: 'placement_forbidden', message: `this key may not use placement ${p}`, retryable: false });
      return undefined;
    }
    return p;
  }

  private async events(msg: Record<string, unknown>): Promise<void> {
    const seq = msg.seq;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
      this.send({ type: 'error', seq: null, code: 'invalid_seq', message: 'seq must be a positive integer', retryable: false });
      return;
    }
    this.hub.metrics.messages.inc({ type: 'events' });
    if (seq <= this.lastSeq) {
      // Already produced (its ack was lost with the old connection): ack again, produce nothing.
      this.send({ type: 'ack', seq, accepted: 0, rejected: 0, duplicate: true });
      return;
    }
    if (seq - this.lastSeq > this.settings.maxSeqJump) {
      // Accepting it would make every later seq of this client below it pass for a duplicate.
      this.hub.metrics.refusals.inc({ code: EDGE_ERROR.seqOutOfWindow });
      this.send({ type: 'error', seq, code: EDGE_ERROR.seqOutOfWindow, message: `seq must be at most ${this.settings.maxSeqJump} above the last acked seq (${this.lastSeq})`, retryable: false });
      return;
    }
    try {
      if (!Array.isArray(msg.events)) throw new BadRequestError('invalid_events', 'events must be an array');
      if (msg.events.length > this.hub.options.maxEventsPerMessage) throw new BadRequestError('too_many_events', `at most ${this.hub.options.maxEventsPerMessage} events per message`);
      const items: DecodedItem[] = msg.events.map((e) => ({ ok: true, value: this.fill(e) }));
      const result = await this.submit(items);
      this.lastSeq = seq;
      await Promise.all([
        this.hub.options.hot.set(this.seqKey(), String(seq), this.settings.seqTtlMs).catch((err) => this.hub.options.log.warn({ err }, 'edge seq not stored; a resend after reconnect may repeat live counts')),
        // The binding lives as long as the seq it protects (and comes back if hot state lost it).
        this.keyId === undefined ? undefined : this.refreshBinding(this.keyId).catch(() => undefined),
      ]);
      this.send({ type: 'ack', seq, accepted: result.accepted, rejected: result.rejected, ...(result.rejected > 0 ? { rejections: result.rejections } : {}) });
    } catch (err) {
      const e = err instanceof AfterglowError ? err : undefined;
      if (!e) this.hub.options.log.error({ err }, 'edge events message failed');
      const retryable = !(err instanceof BadRequestError);
      this.send({ type: 'error', seq, code: e?.code ?? 'internal', message: e?.message ?? 'internal error', retryable });
      // Nothing after a message that may be resent may be produced first (its seq would pass for a duplicate).
      if (retryable) {
        this.queue.length = 0;
        this.close(EDGE_CLOSE.retry, 'retry from last_seq');
      }
    }
  }

  /** Events default to this connection's tenant and client (edge_node). */
  private fill(e: unknown): unknown {
    if (e === null || typeof e !== 'object' || Array.isArray(e)) return e;
    const o = e as Record<string, unknown>;
    if (o.tenant_id !== undefined && o.edge_node !== undefined) return o;
    return { ...o, tenant_id: o.tenant_id ?? this.tenant, edge_node: o.edge_node ?? this.clientId };
  }

  /** Waits for bus capacity (up to the produce timeout) rather than refusing at once. */
  private async submit(items: DecodedItem[]): Promise<IntakeResult> {
    const deadline = Date.now() + this.hub.options.produceTimeoutMs;
    for (;;) {
      try {
        await this.hub.options.intake.whenCapacity();
        await this.quota?.events(items.length);
        return await this.hub.options.intake.submit(items, this.guard);
      } catch (err) {
        if (!(err instanceof BackpressureError) || Date.now() + err.retryAfterMs > deadline) throw err;
        await new Promise((r) => setTimeout(r, err.retryAfterMs));
      }
    }
  }

  sendDecision(d: Decision): void {
    // A client that does not read gets no more pushes (the next change brings it up to date).
    if (this.socket.bufferedAmount > this.settings.maxBufferBytes / 2) return;
    this.send(d);
  }

  private send(message: object): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > this.settings.maxBufferBytes) {
      this.hub.metrics.disconnects.inc({ reason: 'slow' });
      this.close(EDGE_CLOSE.slow, 'send buffer over its bound');
      return;
    }
    this.socket.send(encode(message, this.binary));
  }

  beat(now: number): void {
    if (this.closed) return;
    if (now - this.lastMessage > this.settings.idleTimeoutMs) {
      this.hub.metrics.disconnects.inc({ reason: 'idle' });
      this.close(EDGE_CLOSE.idle, 'idle');
      return;
    }
    if (!this.liveness.tick()) this.hub.metrics.disconnects.inc({ reason: 'no_pong' });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.release(this);
    try {
      this.socket.close(code, reason);
    } catch {
      this.socket.terminate();
    }
    const socket = this.socket;
    setTimeout(() => socket.terminate(), 1_000).unref();
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export interface EdgeDeps {
  app: FastifyInstance;
  config: AfterglowConfig;
  bus: Bus;
  /** Per-client sequence numbers (the adapter the config names, created and closed by the caller). */
  hot: HotState;
  intake: EventIntake;
  log: Logger;
  registry?: Registry;
}

export interface RunningEdge {
  hub: EdgeHub;
  posteriors: PlacementPosteriors;
  stop(): Promise<void>;
}

/**
 * The ingest role's edge endpoint: the posteriors fed by a consumer of this process's own, the
 * per-client seqs in the hot state passed in, GET /v1/edge. Call before listen.
 */
export async function startEdge(deps: EdgeDeps): Promise<RunningEdge> {
  const { config } = deps;
  const settings = config.edge;
  const log = deps.log.child({ component: 'edge' });
  const { hot } = deps;
  const posteriors = new PlacementPosteriors(settings);
  const skipped = new Counter({
    name: 'afterglow_edge_events_skipped_total',
    help: 'Events the edge posteriors left out as copies of an event id already counted: duplicate (a retry), conflicting_duplicate (a re-used id with other content; the first counts)',
    labelNames: ['reason'],
    registers: deps.registry ? [deps.registry] : [],
  });
  const consumer: BusConsumer = posteriors.consume(deps.bus, `${settings.groupId}-${randomUUID()}`, config.events, log, (reason) => skipped.inc({ reason }));
  const hub = new EdgeHub({
    intake: deps.intake,
    hot,
    posteriors,
    settings,
    keyPrefix: `${config.live.keyPrefix}:edge`,
    produceTimeoutMs: config.ingest.produceTimeoutMs,
    maxEventsPerMessage: config.ingest.maxEventsPerRequest,
    log,
    ...(deps.registry ? { registry: deps.registry } : {}),
  });
  deps.app.get('/v1/edge', { websocket: true, config: { scope: 'ingest' } }, (socket, req) => {
    const principal = principalOf(req);
    let tenant: string;
    try {
      tenant = actingTenant(principal, (req.query as { tenant_id?: string }).tenant_id);
    } catch (err) {
      const e = err as BadRequestError;
      socket.send(JSON.stringify({ type: 'error', code: e.code ?? 'unauthorized', message: e.message, retryable: false }));
      socket.close(e.status === 403 ? EDGE_CLOSE.forbidden : EDGE_CLOSE.unauthorized, e.code ?? 'unauthorized');
      return;
    }
    hub.accept(socket, tenant, principal?.placements, { tenantId: tenant, placements: principal?.placements }, quotaOf(req), principal?.keyId);
  });
  return {
    hub,
    posteriors,
    async stop() {
      await hub.close();
      await consumer.stop();
    },
  };
}

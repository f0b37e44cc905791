import type { WebSocket } from 'ws';
import {
  Counter,
  Gauge,
  Histogram,
  SUBJECTS,
  type FanOut,
  type HotState,
  type Logger,
  type Registry,
  type Subscription,
  type LiveSettings,
  PingLiveness,
} from '@afterglow/core';
import type { EntityKind, LiveKeys } from './keys.js';
import type { CiPolicy } from './rates.js';
import { LEGEND, Replica, View, type ViewOptions } from './replica.js';
import { ID_RE } from '@afterglow/core/live-protocol';
import { decodeDelta, parseEntityHash } from './state.js';
import { windowLayout, type Layout } from './windows.js';

/**
 * The /v1/live gateway: dashboards subscribe to campaigns, assets or masters over a WebSocket and
 * get a snapshot, then deltas.
 *
 * - Topics. A topic (one campaign, asset or master of one tenant) holds views (view = an entity as
 *   a client sees it; see replica.ts) fed by one fan-out subscription per topic per gateway,
 *   however many clients watch it. A campaign topic carries the campaign and its (most recently
 *   active) assets.
 * - Frames. A changed topic becomes ONE frame at most every 1/`maxUpdatesPerSec` s (leading edge:
 *   a topic quiet for that long goes out at once, so a quiet topic never waits for a busy one):
 *   a buffer serialized once ({"type":"delta","topic","prev","seq","entities":[...]}) that every
 *   in-sync client of the topic gets as it is. A client gets at most `maxUpdatesPerSec` messages a
 *   second: one frame as an object, several (or coalesced ones) as a JSON array of frames.
 * - Sequence numbers. Every topic numbers its frames; each frame says which `seq` it follows
 *   (`prev`). A client that sees a `prev` other than the last `seq` it has lost something and
 *   sends {"op":"resync"} for a fresh snapshot.
 * - Slow clients. A client whose unsent bytes are above `coalesceBytes` gets no frames; its
 *   updates are merged per entity (latest wins) and sent as one coalesced frame (prev = the last
 *   seq it got) once it drains. Above `maxBufferBytes`, or stuck above `coalesceBytes` for
 *   `stallMs`, it is disconnected (close code 4008). Nothing a slow client does delays a tick for
 *   the others: sends never wait on a socket.
 */

export type TopicKind = 'campaign' | 'asset' | 'master';

/** The gateway's settings are config.live's (ws.*; flushMs: how long hot state may lag the deltas, for resync pacing). */
type WsSettings = LiveSettings['ws'];
export interface LiveGatewayOptions extends WsSettings, Pick<LiveSettings, 'fatigueFraction' | 'decayRefitMs' | 'flushMs'> {
  hot: HotState;
  fanout: FanOut;
  keys: LiveKeys;
  log: Logger;
  lateMs: number;
  ci: CiPolicy;
  registry?: Registry;
  clock?: () => number;
}

interface Frame {
  topic: Topic;
  seq: number;
  entities: [string, string][];
  buffer: Buffer;
}

class Topic {
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

interface ClientTopic {
  topic: Topic;
  /** The last seq this client got (snapshot or frame); -1 before its snapshot. */
  lastSeq: number;
  /** Coalesced updates not sent yet (latest per entity), and the seq they bring it to. */
  pending: Map<string, string> | undefined;
  pendingSeq: number;
}

const TOPIC_IDLE_MS = 30_000;
const PING_EVERY_MS = 30_000;
const CLOSE_SLOW = 4008;
/** Timers fire a little early or late: a millisecond either way still counts as on time. */
const SLACK_MS = 1;

export class LiveGateway {
  private readonly topics = new Map<string, Topic>();
  private readonly views = new Map<string, View>();
  private readonly clients = new Set<LiveClient>();
  private readonly changedTopics = new Set<Topic>();
  /** Clients with coalesced updates waiting for their interval or for their socket to drain. */
  private readonly waiting = new Set<LiveClient>();
  private readonly layout: Layout;
  private readonly clock: () => number;
  private readonly interval: number;
  private readonly viewOptions: ViewOptions;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickDue = 0;
  private readonly refreshTimer: NodeJS.Timeout;
  private readonly pingTimer: NodeJS.Timeout;
  private closed = false;
  private readonly stopReconnect: () => void;
  readonly metrics: ReturnType<typeof createMetrics>;

  constructor(private readonly options: LiveGatewayOptions) {
    this.layout = windowLayout(options.lateMs);
    this.clock = options.clock ?? Date.now;
    this.interval = 1000 / options.maxUpdatesPerSec;
    this.viewOptions = { ci: options.ci, fatigueFraction: options.fatigueFraction, decayRefitMs: options.decayRefitMs };
    this.metrics = createMetrics(options.registry, () => this.clients.size, () => this.topics.size);
    this.refreshTimer = setInterval(() => this.refresh(), options.refreshMs);
    this.refreshTimer.unref();
    this.pingTimer = setInterval(() => {
      for (const c of this.clients) c.heartbeat();
    }, PING_EVERY_MS);
    this.pingTimer.unref();
    // Deltas published while the fan-out was disconnected are lost: re-read every watched topic
    // from hot state once the aggregators' next flush has landed there (twice, as on subscribe).
    this.stopReconnect = options.fanout.onReconnect(() => {
      this.metrics.resyncs.inc({ by: 'reconnect' });
      for (const delay of [this.options.flushMs + 50, 2 * this.options.flushMs + 100]) {
        setTimeout(() => {
          for (const topic of this.topics.values()) {
            if (this.closed || !topic.loaded) continue;
            this.readHotState(topic).then(
              (changed) => changed.forEach((view) => this.changed(view)),
              (err) => this.options.log.warn({ err, topic: topic.name }, 'live topic resync after reconnect failed'),
            );
          }
        }, delay).unref();
      }
    });
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Take over an accepted WebSocket for `tenant`. */
  accept(socket: WebSocket, tenant: string): LiveClient {
    const client = new LiveClient(socket, tenant, this);
    this.clients.add(client);
    this.metrics.connections.inc();
    return client;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopReconnect();
    clearInterval(this.refreshTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.tickTimer);
    for (const c of this.clients) c.close(1001, 'server shutting down');
    for (const t of this.topics.values()) this.dropTopic(t);
  }

  // ---- topics -----------------------------------------------------------------------------------

  /** @internal Called by clients. */
  async subscribe(client: LiveClient, kind: TopicKind, id: string): Promise<void> {
    const key = `${client.tenant}\u0000${kind}\u0000${id}`;
    if (client.topics.has(key)) return;
    if (client.topics.size >= this.options.maxSubscriptions) {
      client.sendControl({ type: 'error', code: 'too_many_subscriptions', message: `at most ${this.options.maxSubscriptions} subscriptions per connection`, topic: `${kind}:${id}` });
      return;
    }
    let topic = this.topics.get(key);
    if (!topic) {
      topic = new Topic(key, kind, client.tenant, id);
      this.topics.set(key, topic);
      topic.ready = this.load(topic);
      topic.ready.catch((err) => {
        this.options.log.warn({ err, topic: topic!.name }, 'live topic failed to load');
        if (this.topics.get(key) === topic) this.dropTopic(topic!);
      });
    }
    clearTimeout(topic.idleTimer);
    topic.idleTimer = undefined;
    const ct: ClientTopic = { topic, lastSeq: -1, pending: undefined, pendingSeq: 0 };
    client.topics.set(key, ct);
    topic.clients.add(client);
    try {
      await topic.ready;
    } catch {
      if (client.topics.get(key) === ct) {
        client.topics.delete(key);
        client.sendControl({ type: 'error', code: 'unavailable', message: 'live state is unavailable; retry', topic: topic.name });
      }
      return;
    }
    if (client.topics.get(key) === ct) this.sendSnapshot(client, ct);
  }

  /** @internal */
  unsubscribe(client: LiveClient, kind: TopicKind, id: string): void {
    const key = `${client.tenant}\u0000${kind}\u0000${id}`;
    const ct = client.topics.get(key);
    if (!ct) return;
    client.topics.delete(key);
    this.release(client, ct.topic);
    client.sendControl({ type: 'unsubscribed', topic: ct.topic.name });
  }

  /** @internal */
  resync(client: LiveClient, kind: TopicKind, id: string): void {
    const ct = client.topics.get(`${client.tenant}\u0000${kind}\u0000${id}`);
    if (!ct || ct.lastSeq < 0) return;
    this.metrics.resyncs.inc({ by: 'client' });
    this.sendSnapshot(client, ct);
  }

  /** @internal */
  disconnected(client: LiveClient): void {
    this.clients.delete(client);
    this.waiting.delete(client);
    for (const ct of client.topics.values()) this.release(client, ct.topic);
    client.topics.clear();
  }

  private release(client: LiveClient, topic: Topic): void {
    topic.clients.delete(client);
    if (topic.clients.size > 0 || topic.idleTimer) return;
    // Kept warm a little: dashboards reconnect and re-subscribe.
    topic.idleTimer = setTimeout(() => {
      if (topic.clients.size === 0 && this.topics.get(topic.key) === topic) this.dropTopic(topic);
    }, TOPIC_IDLE_MS);
    topic.idleTimer.unref();
  }

  private dropTopic(topic: Topic): void {
    clearTimeout(topic.idleTimer);
    this.topics.delete(topic.key);
    this.changedTopics.delete(topic);
    try {
      topic.sub?.unsubscribe();
    } catch {
      // The fan-out is closing.
    }
    for (const view of topic.views.values()) {
      view.topics.delete(topic.key);
      if (topic.kind === 'asset') view.decayWanted--;
      if (view.topics.size === 0) {
        this.views.delete(view.key);
        for (const r of view.replicas.values()) clearTimeout(r.resyncTimer);
      }
    }
  }

  private viewFor(topic: Topic, kind: EntityKind, id: string): View | undefined {
    const key = `${topic.tenant}\u0000${kind}\u0000${id}`;
    let view = topic.views.get(key);
    if (view) return view;
    if (topic.kind === 'campaign' && kind === 'asset' && topic.views.size > this.options.topicMaxAssets) return undefined;
    view = this.views.get(key);
    if (!view) {
      view = new View(key, kind, topic.tenant, id);
      this.views.set(key, view);
    }
    view.topics.add(topic.key);
    if (topic.kind === 'asset') view.decayWanted++;
    topic.views.set(key, view);
    return view;
  }

  private replicaFor(view: View, partition: number): Replica {
    const p = view.kind === 'asset' ? 0 : partition;
    let r = view.replicas.get(p);
    if (!r) {
      r = new Replica(this.options.keys.entity(view.kind, view.tenant, view.id, partition), partition, this.layout);
      view.replicas.set(p, r);
    }
    return r;
  }

  /** Subscribe to the fan-out first (so nothing published meanwhile is missed), then read hot state. */
  private async load(topic: Topic): Promise<void> {
    const { fanout } = this.options;
    const subject =
      topic.kind === 'campaign'
        ? SUBJECTS.campaignAll(topic.tenant, topic.id)
        : topic.kind === 'asset'
          ? SUBJECTS.assetAny(topic.tenant, topic.id)
          : SUBJECTS.masterDelta(topic.tenant, topic.id);
    topic.sub = fanout.subscribe(subject, (data) => this.onDelta(topic, data));
    await fanout.flush();
    for (const view of await this.readHotState(topic)) view.invalidate();
    topic.loaded = true;
    // Deltas that arrived while loading go out with the next tick (the snapshot has them too).
    if (topic.changed.size > 0) {
      this.changedTopics.add(topic);
      this.scheduleTick();
    }
    // Aggregators publish deltas before they flush hot state, so what was published just before
    // the subscription is neither in this snapshot nor seen as a delta; an entity that then goes
    // quiet would stay stale. One more read once hot state has caught up closes that window
    // (merging is idempotent).
    const catchUp = setTimeout(() => {
      if (this.closed || this.topics.get(topic.key) !== topic) return;
      this.readHotState(topic).then(
        (changed) => changed.forEach((view) => this.changed(view)),
        (err) => this.options.log.warn({ err, topic: topic.name }, 'live topic catch-up read failed'),
      );
    }, this.options.flushMs + 50);
    catchUp.unref();
  }

  /** Merge the topic's entities from hot state; returns the views whose rows changed. */
  private async readHotState(topic: Topic): Promise<View[]> {
    const { hot, keys } = this.options;
    const main = this.viewFor(topic, topic.kind, topic.id)!;
    const reads: { view: View; key: string }[] = [];
    if (topic.kind === 'asset') {
      reads.push({ view: main, key: keys.asset(topic.tenant, topic.id) });
    } else {
      const parts = await hot.zrange(keys.parts(topic.kind, topic.tenant, topic.id), 0, -1);
      for (const { member } of parts) reads.push({ view: main, key: keys.entity(topic.kind, topic.tenant, topic.id, Number(member)) });
      if (topic.kind === 'campaign') {
        const assets = await hot.zrange(keys.campaignAssets(topic.tenant, topic.id), 0, this.options.topicMaxAssets - 1, { reverse: true });
        for (const { member } of assets) {
          const view = this.viewFor(topic, 'asset', member);
          if (view) reads.push({ view, key: keys.asset(topic.tenant, member) });
        }
      }
    }
    const changed = new Set<View>();
    for (let i = 0; i < reads.length; i += 500) {
      const chunk = reads.slice(i, i + 500);
      const hashes = await Promise.all(chunk.map((r) => hot.hgetall(r.key)));
      chunk.forEach(({ view }, j) => {
        const snap = parseEntityHash(hashes[j]!, this.layout);
        if (snap && this.replicaFor(view, snap.meta.partition).mergeSnapshot(snap)) changed.add(view);
      });
    }
    return [...changed];
  }

  private onDelta(topic: Topic, data: Uint8Array): void {
    if (this.topics.get(topic.key) !== topic) return; // dropped; its subscription is going away
    const d = decodeDelta(data);
    if (!d || d.meta.tenant !== topic.tenant) return;
    this.metrics.deltas.inc();
    const view = this.viewFor(topic, d.meta.kind, d.meta.id);
    if (!view) return;
    const replica = this.replicaFor(view, d.meta.partition);
    const changed = replica.mergeDelta(d);
    if (replica.needN > 0) this.scheduleResync(view, replica);
    if (changed) this.changed(view);
  }

  private changed(view: View): void {
    view.invalidate();
    for (const key of view.topics) {
      const topic = this.topics.get(key);
      if (!topic) continue;
      topic.changed.add(view);
      this.changedTopics.add(topic);
    }
    this.scheduleTick();
  }

  /** Re-read a replica from hot state until hot state has caught up past the gap. */
  private scheduleResync(view: View, replica: Replica, delay = this.options.flushMs + 50): void {
    if (replica.resyncTimer || this.closed) return;
    this.metrics.resyncs.inc({ by: 'gap' });
    replica.resyncTimer = setTimeout(() => {
      replica.resyncTimer = undefined;
      if (!this.views.has(view.key)) return;
      this.options.hot.hgetall(replica.key).then(
        (hash) => {
          const snap = parseEntityHash(hash, this.layout);
          if (snap && replica.mergeSnapshot(snap)) this.changed(view);
          if (replica.needN > 0 && replica.resyncAttempts++ < 20) this.scheduleResync(view, replica, this.options.flushMs);
          else {
            if (replica.needN > 0) this.options.log.warn({ key: replica.key, need: replica.needN, have: replica.n }, 'live replica gap not closed by hot state; giving up');
            replica.needN = 0;
            replica.resyncAttempts = 0;
          }
        },
        (err) => {
          this.options.log.warn({ err }, 'live resync read failed');
          if (replica.resyncAttempts++ < 20) this.scheduleResync(view, replica, this.options.flushMs * 2);
        },
      );
    }, delay);
    replica.resyncTimer.unref();
  }

  /** Windows slide without events: recompute every watched view now and then, send what moved. */
  private refresh(): void {
    const now = this.clock();
    for (const topic of this.topics.values()) {
      if (topic.clients.size === 0 || !topic.loaded) continue;
      for (const view of topic.views.values()) {
        const before = view.json(now, this.viewOptions, Infinity);
        view.invalidate();
        if (view.json(now, this.viewOptions, 0) !== before) {
          topic.changed.add(view);
          this.changedTopics.add(topic);
        }
      }
    }
    if (this.changedTopics.size > 0) this.scheduleTick();
  }

  // ---- ticks ------------------------------------------------------------------------------------

  /**
   * One timer for everything due: the earliest changed topic allowed another frame, the earliest
   * waiting client allowed another message (a backed-up one is polled every interval).
   */
  private scheduleTick(): void {
    if (this.closed) return;
    const now = this.clock();
    let due = Infinity;
    for (const topic of this.changedTopics) if (topic.loaded) due = Math.min(due, topic.lastFrameAt + this.interval);
    for (const client of this.waiting) due = Math.min(due, client.nextDue(now, this.interval));
    if (due === Infinity) return;
    if (this.tickTimer && this.tickDue <= due) return;
    clearTimeout(this.tickTimer);
    this.tickDue = due;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = undefined;
      this.tick();
    }, Math.max(0, due - now));
  }

  /**
   * Each changed topic that is due (leading edge: a topic quiet for an interval goes at once)
   * becomes one frame, serialized once and offered to all its clients; then each client touched
   * sends at most one message, if its own interval allows.
   */
  private tick(): void {
    const now = this.clock();
    const touched = new Set<LiveClient>(this.waiting);
    this.waiting.clear();
    const stop = this.metrics.tickSeconds.startTimer();
    for (const topic of this.changedTopics) {
      if (!topic.loaded) continue;
      if (topic.changed.size === 0) {
        this.changedTopics.delete(topic);
        continue;
      }
      if (now < topic.lastFrameAt + this.interval - SLACK_MS) continue;
      this.changedTopics.delete(topic);
      const entities: [string, string][] = [];
      for (const view of topic.changed) entities.push([view.key, view.json(now, this.viewOptions, 0)]);
      topic.changed.clear();
      topic.lastFrameAt = now;
      const prev = topic.seq;
      const seq = ++topic.seq;
      topic.snapshot = undefined;
      if (topic.clients.size === 0) continue;
      const buffer = Buffer.from(
        `{"type":"delta","topic":${JSON.stringify(topic.name)},"prev":${prev},"seq":${seq},"at":${now},"entities":[${entities.map((e) => e[1]).join(',')}]}`,
      );
      this.metrics.frames.inc();
      const frame: Frame = { topic, seq, entities, buffer };
      for (const client of topic.clients) {
        client.offer(frame, prev, now);
        touched.add(client);
      }
    }
    for (const client of touched) if (client.flush(now, this.interval)) this.waiting.add(client);
    stop();
    this.scheduleTick();
  }

  private sendSnapshot(client: LiveClient, ct: ClientTopic): void {
    const topic = ct.topic;
    const now = this.clock();
    let snap = topic.snapshot;
    if (!snap || snap.seq !== topic.seq || now - snap.at > this.options.refreshMs) {
      const entities = [...topic.views.values()].map((v) => v.json(now, this.viewOptions, this.options.refreshMs));
      const buffer = Buffer.from(
        `{"type":"snapshot","topic":${JSON.stringify(topic.name)},"seq":${topic.seq},"at":${now},"legend":${JSON.stringify(LEGEND)},"entities":[${entities.join(',')}]}`,
      );
      snap = topic.snapshot = { seq: topic.seq, at: now, buffer };
    }
    ct.lastSeq = snap.seq;
    ct.pending = undefined;
    client.sendRaw(snap.buffer);
    this.metrics.snapshots.inc();
  }

  /** @internal */
  get settings(): LiveGatewayOptions {
    return this.options;
  }
}

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
    private readonly gateway: LiveGateway,
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

function createMetrics(registry: Registry | undefined, clients: () => number, topics: () => number) {
  const registers = registry ? [registry] : [];
  new Gauge({
    name: 'afterglow_live_ws_clients',
    help: 'Open /v1/live connections',
    registers,
    collect() {
      this.set(clients());
    },
  });
  new Gauge({
    name: 'afterglow_live_ws_topics',
    help: 'Topics with a fan-out subscription on this gateway',
    registers,
    collect() {
      this.set(topics());
    },
  });
  return {
    connections: new Counter({ name: 'afterglow_live_ws_connections_total', help: 'Accepted /v1/live connections', registers }),
    disconnects: new Counter({ name: 'afterglow_live_ws_disconnects_total', help: 'Clients the gateway disconnected', labelNames: ['reason'], registers }),
    messages: new Counter({ name: 'afterglow_live_ws_messages_total', help: 'WebSocket messages sent', registers }),
    bytes: new Counter({ name: 'afterglow_live_ws_bytes_total', help: 'WebSocket bytes sent', registers }),
    frames: new Counter({ name: 'afterglow_live_ws_frames_total', help: 'Topic frames serialized (each once, whatever the number of clients)', registers }),
    snapshots: new Counter({ name: 'afterglow_live_ws_snapshots_total', help: 'Snapshots sent', registers }),
    coalesced: new Counter({ name: 'afterglow_live_ws_coalesced_total', help: 'Frames merged into a slow client\'s pending updates', registers }),
    deltas: new Counter({ name: 'afterglow_live_gateway_deltas_total', help: 'Deltas received from the fan-out', registers }),
    resyncs: new Counter({ name: 'afterglow_live_resyncs_total', help: 'Snapshots re-read: a gap in a replica, asked by a client, or after a fan-out reconnect', labelNames: ['by'], registers }),
    tickSeconds: new Histogram({
      name: 'afterglow_live_ws_tick_seconds',
      help: 'Time to build and send one tick',
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    }),
  };
}


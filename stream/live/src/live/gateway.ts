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
  type LiveSettings,
} from '@afterglow/core';
import type { EntityKind, LiveKeys } from './keys.js';
import type { CiPolicy } from './rates.js';
import { LEGEND, Replica, View, type ViewOptions } from './replica.js';
import { decodeDelta, parseEntityHash } from './state.js';
import { LiveClient, SLACK_MS, Topic, type ClientTopic, type Frame, type TopicKind } from './client.js';
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

const TOPIC_IDLE_MS = 30_000;
const PING_EVERY_MS = 30_000;

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

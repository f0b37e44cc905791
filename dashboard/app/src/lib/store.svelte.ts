import { LiveConnection, type ConnInfo, type SyncReason } from './live.ts';
import { auth } from './auth.svelte.ts';
import { topicName, type Entity, type TopicKind } from '@afterglow/core/live-protocol';

/**
 * Svelte state over the framework-free LiveConnection. Frames are applied to plain Maps as they
 * arrive; the reactive `version` moves once per animation frame at most, so 10 frames a second over
 * 1,000 assets cost one render per frame, and a hidden tab renders nothing until it is shown.
 */

export class LiveClient {
  info = $state<ConnInfo>({ state: 'connecting', attempt: 0, retryAt: null, lastMessageAt: 0, resyncs: 0, gaps: 0, opens: 0, lastClose: null, topics: 0 });
  readonly conn: LiveConnection;
  private readonly online = () => this.conn.reconnectNow();

  constructor(readonly tenant: string) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.conn = new LiveConnection({
      // Browsers cannot set a WebSocket's headers: the key goes in the query (the server redacts it).
      url: auth.wsUrl(`${proto}//${location.host}/v1/live?tenant_id=${encodeURIComponent(tenant)}`),
      onInfo: (info) => (this.info = info),
    });
    this.conn.start();
    addEventListener('online', this.online);
  }

  /** Last server message (epoch ms): read on a timer, it changes with every frame. */
  lastMessageAt(): number {
    return this.conn.info.lastMessageAt;
  }

  topic(kind: TopicKind, id: string): TopicModel {
    return new TopicModel(this, kind, id);
  }

  close(): void {
    removeEventListener('online', this.online);
    this.conn.stop();
  }
}

export class TopicModel {
  /** Entities of the topic by id (plain: read them after reading `version`). */
  readonly entities = new Map<string, Entity>();
  /** Ids changed in the last flush, and whether it replaced everything (snapshot). */
  flushed: { ids: Set<string>; reset: boolean } = { ids: new Set(), reset: true };
  version = $state(0);
  /** A snapshot has arrived. */
  ready = $state(false);
  error = $state<string | null>(null);
  /** Server time of the newest frame. */
  lastAt = $state(0);
  /** Why the last snapshot came (initial / reconnect / gap) and how many there were. */
  lastSync = $state<SyncReason | null>(null);
  snapshots = $state(0);
  readonly name: string;
  private pending = new Set<string>();
  private pendingReset = false;
  private raf = 0;
  private readonly unsubscribe: () => void;

  constructor(
    client: LiveClient,
    readonly kind: TopicKind,
    readonly id: string,
  ) {
    this.name = topicName(kind, id);
    this.unsubscribe = client.conn.subscribe(this.name, {
      snapshot: (entities, at, reason) => {
        this.entities.clear();
        for (const e of entities) this.entities.set(`${e.id}\u0000${e.kind}`, e);
        this.pending.clear();
        this.pendingReset = true;
        this.lastAt = at;
        this.lastSync = reason;
        this.snapshots++;
        this.ready = true;
        this.error = null;
        this.schedule();
      },
      delta: (entities, at) => {
        for (const e of entities) {
          const key = `${e.id}\u0000${e.kind}`;
          const prev = this.entities.get(key);
          // Versions only grow; an older copy (reordered frames) never replaces a newer one.
          if (prev && prev.n > e.n && prev.at > e.at) continue;
          this.entities.set(key, e);
          this.pending.add(key);
        }
        this.lastAt = at;
        this.schedule();
      },
      error: (code, message) => {
        this.error = `${code}: ${message}`;
      },
    });
  }

  /** The topic's own entity (the campaign, asset or master itself). */
  main(): Entity | undefined {
    return this.entities.get(`${this.id}\u0000${this.kind}`);
  }

  get(kind: TopicKind, id: string): Entity | undefined {
    return this.entities.get(`${id}\u0000${kind}`);
  }

  private schedule(): void {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      this.flushed = { ids: this.pending, reset: this.pendingReset };
      this.pending = new Set();
      this.pendingReset = false;
      this.version++;
    });
  }

  dispose(): void {
    cancelAnimationFrame(this.raf);
    this.unsubscribe();
  }
}

import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { decode, encode, type Decision } from './protocol.js';

/**
 * The reference edge client (ingest/EDGE-PROTOCOL.md), used by the tests and bench/edge. It says
 * hello, re-subscribes and resumes after every reconnect: messages not acked are kept (bounded by
 * `maxPending`) and resent in order after the server's `welcome` (whose last_seq acks what the
 * server already produced), so a dropped connection loses nothing and repeats nothing.
 * A real device would also persist `nextSeq` and the pending messages across restarts.
 *
 * A hello the server refuses for good (`client_id_taken`: the client_id belongs to another API
 * key; a bad client_id; no valid key) is not retried: `connect()` rejects with an EdgeError of
 * that code, and the client stays down (`refused` is emitted after a reconnect).
 */

export interface EdgeClientOptions {
  /** http(s):// or ws(s):// base URL of an ingest process. */
  url: string;
  clientId: string;
  /** Without API keys: the tenant (query parameter). */
  tenantId?: string;
  /** Auth headers (Authorization: Bearer <placement key>). */
  headers?: Record<string, string>;
  /** MessagePack frames instead of JSON. */
  binary?: boolean;
  /** Reconnect after an unexpected close. Default true. */
  reconnect?: boolean;
  reconnectDelayMs?: number;
  /** Unacked messages kept at most; `send` waits for room beyond it. Default 1000. */
  maxPending?: number;
  /** Application-level ping interval (keeps the idle timeout away). Default 10 s. */
  pingMs?: number;
}

export interface Ack {
  seq: number;
  accepted: number;
  rejected: number;
  duplicate?: boolean;
  rejections?: unknown[];
}

interface Pending {
  seq: number;
  events: unknown[];
  resolve: (a: Ack) => void;
  reject: (e: Error) => void;
}

export class EdgeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The server refused the hello for good: reconnecting as is cannot succeed. */
    readonly fatal = false,
  ) {
    super(message);
  }
}

export class EdgeClient extends EventEmitter {
  private ws: WebSocket | undefined;
  private nextSeq = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly placements = new Map<string, string[]>();
  private readonly decisions = new Map<string, Decision>();
  private readonly waiting = new Map<string, ((d: Decision) => void)[]>();
  private readonly roomWaiters: (() => void)[] = [];
  private decideId = 0;
  private closing = false;
  private ready = false;
  private connecting: Promise<void> | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** Reconnects so far (tests). */
  reconnects = 0;
  lastSeqFromServer = 0;
  /** Why the server refused this client's hello for good, if it did. */
  refusal: EdgeError | undefined;

  constructor(private readonly options: EdgeClientOptions) {
    super();
  }

  get connected(): boolean {
    return this.ready;
  }

  /** Connect (and resume); resolves on the server's welcome. */
  connect(): Promise<void> {
    this.closing = false;
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private open(): Promise<void> {
    const base = this.options.url.replace(/^http/, 'ws');
    const q = this.options.tenantId ? `?tenant_id=${encodeURIComponent(this.options.tenantId)}` : '';
    const ws = new WebSocket(`${base}/v1/edge${q}`, { headers: this.options.headers ?? {} });
    this.ws = ws;
    this.ready = false;
    return new Promise<void>((resolve, reject) => {
      let welcomed = false;
      let refused: EdgeError | undefined;
      ws.on('message', (data, isBinary) => {
        let msg: Record<string, unknown>;
        try {
          msg = decode(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary);
        } catch {
          return;
        }
        if (msg.type === 'welcome') {
          welcomed = true;
          this.onWelcome(msg);
          resolve();
          return;
        }
        // An error before the welcome answers the hello; not retryable means refused for good.
        if (!welcomed && msg.type === 'error' && msg.retryable === false) refused = new EdgeError(String(msg.code), String(msg.message), true);
        this.onMessage(msg);
      });
      ws.on('open', () => this.raw({ type: 'hello', client_id: this.options.clientId, placements: [] }));
      ws.on('error', (err) => {
        if (!welcomed) reject(err);
      });
      ws.on('close', (code, reason) => {
        this.ready = false;
        clearInterval(this.pingTimer);
        this.emit('disconnect', code, reason.toString());
        if (!welcomed) reject(refused ?? new EdgeError('closed', `closed before welcome: ${code} ${reason.toString()}`));
        if (refused) {
          this.refusal = refused;
          return;
        }
        if (!this.closing && this.options.reconnect !== false && this.ws === ws) this.scheduleReconnect();
      });
    });
  }

  private scheduleReconnect(): void {
    setTimeout(() => {
      if (this.closing) return;
      this.reconnects++;
      this.connect().catch((err: unknown) => {
        if (err instanceof EdgeError && err.fatal) this.emit('refused', err);
        else this.scheduleReconnect();
      });
    }, this.options.reconnectDelayMs ?? 200).unref();
  }

  private onWelcome(msg: Record<string, unknown>): void {
    const last = Number(msg.last_seq ?? 0);
    this.lastSeqFromServer = last;
    this.refusal = undefined;
    if (this.nextSeq <= last) this.nextSeq = last + 1;
    // The server has forgotten this client (its seq TTL passed) and our numbers are now beyond
    // the window it accepts: nothing pending was produced, so number it again from last_seq.
    const window = Number(msg.max_seq_jump);
    if (Number.isSafeInteger(window) && window > 0 && this.nextSeq - 1 - last > window) {
      const again = [...this.pending.values()].sort((a, b) => a.seq - b.seq);
      this.pending.clear();
      this.nextSeq = last + 1;
      for (const p of again) {
        p.seq = this.nextSeq++;
        this.pending.set(p.seq, p);
      }
    }
    // What the server already produced is done; the rest goes again, in order.
    for (const [seq, p] of [...this.pending]) {
      if (seq > last) continue;
      this.pending.delete(seq);
      p.resolve({ seq, accepted: 0, rejected: 0, duplicate: true });
    }
    this.ready = true;
    for (const [placement, assets] of this.placements) this.raw({ type: 'subscribe', placement, assets });
    for (const p of [...this.pending.values()].sort((a, b) => a.seq - b.seq)) this.raw({ type: 'events', seq: p.seq, events: p.events });
    this.wake();
    const every = this.options.pingMs ?? 10_000;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.raw({ type: 'ping', t: Date.now() }), every);
    this.pingTimer.unref();
  }

  private onMessage(msg: Record<string, unknown>): void {
    switch (msg.type) {
      case 'ack': {
        const p = this.pending.get(Number(msg.seq));
        if (!p) return;
        this.pending.delete(p.seq);
        p.resolve(msg as unknown as Ack);
        this.wake();
        return;
      }
      case 'decision': {
        const d = msg as unknown as Decision;
        if (d.id !== undefined) {
          const key = `#${d.id}`;
          const w = this.waiting.get(key);
          this.waiting.delete(key);
          for (const f of w ?? []) f(d);
          return;
        }
        this.decisions.set(d.placement, d);
        this.emit('decision', d);
        return;
      }
      case 'error': {
        const seq = typeof msg.seq === 'number' ? msg.seq : undefined;
        const p = seq !== undefined ? this.pending.get(seq) : undefined;
        if (p && msg.retryable === false) {
          this.pending.delete(p.seq);
          p.reject(new EdgeError(String(msg.code), String(msg.message)));
          this.wake();
        } else if (p) {
          // The bus could not take it: reconnect and resend from the server's last_seq.
          this.ws?.terminate();
        }
        this.emit('server-error', msg);
        return;
      }
      case 'pong':
        this.emit('pong', msg);
        return;
    }
  }

  private raw(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encode(message, this.options.binary ?? false));
  }

  private wake(): void {
    while (this.roomWaiters.length > 0 && this.pending.size < (this.options.maxPending ?? 1000)) this.roomWaiters.shift()!();
  }

  /** Send events; resolves with the ack (possibly after reconnects). */
  async send(events: unknown[]): Promise<Ack> {
    while (this.pending.size >= (this.options.maxPending ?? 1000)) await new Promise<void>((r) => this.roomWaiters.push(r));
    const seq = this.nextSeq++;
    return new Promise<Ack>((resolve, reject) => {
      this.pending.set(seq, { seq, events, resolve, reject });
      if (this.ready) this.raw({ type: 'events', seq, events });
    });
  }

  /** Subscribe to a placement's decisions (kept across reconnects). */
  subscribe(placement: string, assets: string[] = []): void {
    this.placements.set(placement, assets);
    if (this.ready) this.raw({ type: 'subscribe', placement, assets });
  }

  /** The latest pushed decision of a placement. */
  decision(placement: string): Decision | undefined {
    return this.decisions.get(placement);
  }

  /** Ask for a decision now (one Thompson draw); resolves with the server's answer. */
  decide(placement: string): Promise<Decision> {
    const id = ++this.decideId;
    return new Promise<Decision>((resolve) => {
      const key = `#${id}`;
      this.waiting.set(key, [resolve]);
      this.raw({ type: 'decide', placement, id });
    });
  }

  /** Messages sent and not acked yet. */
  get unacked(): number {
    return this.pending.size;
  }

  /** Drop the connection as a network failure would (the client reconnects and resumes). */
  drop(): void {
    this.ws?.terminate();
  }

  close(): void {
    this.closing = true;
    clearInterval(this.pingTimer);
    this.ws?.close(1000, 'bye');
  }
}

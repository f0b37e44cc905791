import { WebSocket } from 'ws';
import { EVENT_KINDS, type EventKind } from '@afterglow/core';
import { headersFor } from './support.js';

/**
 * A dashboard as the live API's tests see it: a real WebSocket client of /v1/live that applies
 * snapshots and deltas, checks the sequence chain of every topic, and can wait for a condition
 * (resolved on the message that makes it true, so it measures latency too).
 */

export type Counts = Record<EventKind, number>;

interface Entity {
  kind: 'asset' | 'campaign' | 'master';
  id: string;
  campaign_id?: string | null;
  master_id?: string | null;
  n: number;
  w: Record<string, unknown[]>;
  vel: unknown[];
  decay?: unknown;
}

interface Waiter {
  check: () => boolean;
  resolve: (at: number) => void;
}

export class LiveTestClient {
  readonly entities = new Map<string, Entity>();
  readonly lastSeq = new Map<string, number>();
  gaps = 0;
  messages = 0;
  coalesced = 0;
  snapshots = 0;
  errors: Record<string, unknown>[] = [];
  closeCode: number | undefined;
  private waiters = new Set<Waiter>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.onMessage(data.toString()));
    ws.on('close', (code) => {
      this.closeCode = code;
      this.poke();
    });
    ws.on('error', () => undefined);
  }

  static async connect(baseUrl: string, tenant: string): Promise<LiveTestClient> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/live?tenant_id=${encodeURIComponent(tenant)}`, { headers: await headersFor(baseUrl, tenant, ['read']) });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new LiveTestClient(ws);
  }

  send(message: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Stop reading from the socket (the kernel buffers fill, then the server's). */
  stopReading(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  close(): void {
    this.ws.terminate();
  }

  entity(kind: Entity['kind'], id: string): Entity | undefined {
    return this.entities.get(`${kind}:${id}`);
  }

  /** Counts per kind of an entity in a window (zeros when the entity is unknown). */
  counts(kind: Entity['kind'], id: string, window: '1m' | '15m' | '1h' | '24h'): Counts {
    const w = this.entity(kind, id)?.w[window];
    return Object.fromEntries(EVENT_KINDS.map((k, i) => [k, w ? Number(w[i]) : 0])) as Counts;
  }

  /** [value, low, high, enough] of a rate in a window. */
  rate(kind: Entity['kind'], id: string, window: string, rate: 'ctr' | 'engagement_rate' | 'shares_per_1k'): number[] | undefined {
    const w = this.entity(kind, id)?.w[window];
    return w?.[10 + ['ctr', 'engagement_rate', 'shares_per_1k'].indexOf(rate)] as number[] | undefined;
  }

  /** Resolves with the time of the message that made `check` true (or now, if it already is). */
  waitFor(check: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<number> {
    if (check()) return Promise.resolve(Date.now());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        check,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`live client: ${what} not met within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private onMessage(text: string): void {
    const at = Date.now();
    this.messages++;
    const parsed = JSON.parse(text) as Record<string, unknown> | Record<string, unknown>[];
    for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
      const topic = String(m.topic);
      if (m.type === 'snapshot') {
        this.snapshots++;
        this.lastSeq.set(topic, Number(m.seq));
      } else if (m.type === 'delta') {
        if (this.lastSeq.get(topic) !== Number(m.prev)) this.gaps++;
        this.lastSeq.set(topic, Number(m.seq));
        if (m.coalesced) this.coalesced++;
      } else if (m.type === 'error') {
        this.errors.push(m);
        continue;
      } else continue;
      for (const e of m.entities as Entity[]) this.entities.set(`${e.kind}:${e.id}`, e);
    }
    this.poke(at);
  }

  private poke(at = Date.now()): void {
    for (const w of this.waiters) {
      if (w.check()) {
        this.waiters.delete(w);
        w.resolve(at);
      }
    }
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

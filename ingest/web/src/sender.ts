import type { VideoKind } from './video.js';

/**
 * Batches events and posts them to ingest's POST /v1/events. Bodies go as text/plain (a CORS
 * "simple" request: no preflight, and the only type sendBeacon can send cross-origin without one)
 * and the public web key travels in the URL, because sendBeacon cannot set headers; the server
 * accepts a key there only for origin-restricted ingest-only keys.
 *
 * A batch that fails (network error, 429, 5xx) is queued again with the same event ids, so a retry
 * of a batch the server did store is dropped by its deduplication. Other refusals (4xx) are final.
 */

export interface WebEvent {
  event_id: string;
  tenant_id: string;
  campaign_id: string;
  asset_id: string;
  kind: 'impression' | 'click' | 'dwell' | VideoKind;
  value: number;
  occurred_at: number;
  channel: string;
  placement?: string;
}

export interface SenderOptions {
  url: string;
  batchSize: number;
  flushIntervalMs: number;
  maxRetries: number;
  retryBaseMs: number;
  onError?: ((error: { status?: number; message: string; events: number }) => void) | undefined;
}

/** Over this many waiting events (a long outage) the oldest are dropped, so memory stays bounded. */
const MAX_QUEUED = 1000;

export class Sender {
  private queue: WebEvent[] = [];
  private readonly attempts = new WeakMap<WebEvent, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly o: SenderOptions) {}

  get pending(): number {
    return this.queue.length;
  }

  push(event: WebEvent): void {
    this.queue.push(event);
    if (this.queue.length > MAX_QUEUED) this.queue.splice(0, this.queue.length - MAX_QUEUED);
    if (this.queue.length >= this.o.batchSize) this.flush();
    else this.schedule(this.o.flushIntervalMs);
  }

  /** Send everything queued; `unloading`: the page is going away, so hand it to sendBeacon. */
  flush(unloading = false): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.o.batchSize);
      const body = JSON.stringify(batch);
      if (unloading && typeof navigator.sendBeacon === 'function' && navigator.sendBeacon(this.o.url, body)) continue;
      this.post(batch, body);
    }
  }

  private post(batch: WebEvent[], body: string): void {
    fetch(this.o.url, { method: 'POST', body, keepalive: true, credentials: 'omit', mode: 'cors' }).then(
      (res) => {
        if (res.status === 429 || res.status >= 500) this.retry(batch, res.status, `HTTP ${res.status}`);
        else if (!res.ok) this.o.onError?.({ status: res.status, message: `refused: HTTP ${res.status}`, events: batch.length });
      },
      (err: Error) => this.retry(batch, undefined, err.message),
    );
  }

  private retry(batch: WebEvent[], status: number | undefined, message: string): void {
    const again = batch.filter((e) => {
      const n = (this.attempts.get(e) ?? 0) + 1;
      this.attempts.set(e, n);
      return n <= this.o.maxRetries;
    });
    if (again.length < batch.length) this.o.onError?.({ ...(status !== undefined && { status }), message: `dropped after retries: ${message}`, events: batch.length - again.length });
    if (again.length === 0) return;
    this.queue.unshift(...again);
    const n = this.attempts.get(again[0]!) ?? 1;
    this.schedule(this.o.retryBaseMs * 2 ** (n - 1) * (0.5 + Math.random()));
  }

  private schedule(ms: number): void {
    if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), ms);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

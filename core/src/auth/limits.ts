import { randomUUID } from 'node:crypto';
import { BackpressureError } from '../errors.js';
import type { HotState } from '../hot/types.js';
import type { Principal } from './principal.js';

/**
 * Per-key rate limits: events/s and bytes/s (token buckets) and concurrent connections (leased
 * slots), kept in the HotState port, so with Redis every process shares one budget per key and in
 * memory each process has its own. Over a limit the caller gets RateLimitedError: HTTP 429 with
 * Retry-After; a WebSocket stream waits (like bus backpressure) or answers an error frame.
 */

export interface RateLimits {
  /** 0 = unlimited. */
  eventsPerSec: number;
  eventsBurst: number;
  bytesPerSec: number;
  bytesBurst: number;
  maxConnections: number;
}

/** A key is over one of its limits; 429 with Retry-After (a BackpressureError, so streams wait and retry). */
export class RateLimitedError extends BackpressureError {
  constructor(message: string, retryAfterMs: number) {
    super(message, retryAfterMs);
    (this as { code: string }).code = 'rate_limited';
  }
}

/** What a request may still spend; handlers charge the events they accept (ingest). */
export interface Quota {
  /** Throws RateLimitedError when the key is over its events/s. */
  events(n: number): Promise<void>;
  /** Throws RateLimitedError when the key is over its bytes/s (WebSocket messages; HTTP bodies are charged by the auth hook). */
  bytes(n: number): Promise<void>;
}

const QUOTA = Symbol.for('afterglow.quota');

export function setQuota(req: object, quota: Quota): void {
  (req as Record<symbol, unknown>)[QUOTA] = quota;
}

/** The request's quota, or undefined when nothing limits it (auth off, public route). */
export function quotaOf(req: object): Quota | undefined {
  return (req as Record<symbol, Quota | undefined>)[QUOTA];
}

/** A connection's hold on a slot: renewed while open, released on close. */
export interface ConnectionLease {
  release(): void;
}

export class RateLimiter {
  private readonly instance = randomUUID();
  private readonly leases = new Map<string, { key: string; member: string }>();
  private readonly renewTimer: NodeJS.Timeout;

  constructor(
    private readonly hot: HotState,
    private readonly limits: RateLimits,
    private readonly prefix = 'afterglow:rl',
    /** A dead process's connections free their slots after this long. */
    private readonly leaseMs = 60_000,
  ) {
    this.renewTimer = setInterval(() => void this.renew(), leaseMs / 3);
    this.renewTimer.unref();
  }

  private async take(principal: Principal, what: 'events' | 'bytes', n: number): Promise<void> {
    const perSec = what === 'events' ? this.limits.eventsPerSec : this.limits.bytesPerSec;
    if (perSec <= 0 || n <= 0) return;
    const capacity = what === 'events' ? this.limits.eventsBurst : this.limits.bytesBurst;
    let r: { ok: boolean; retryAfterMs: number };
    try {
      r = await this.hot.takeTokens(`${this.prefix}:${principal.keyId}:${what}`, { capacity, perSec }, n);
    } catch (err) {
      // Limits protect capacity; they are not the access check. Hot state down: let traffic through.
      if ((err as { code?: string }).code === 'hot_unavailable') return;
      throw err;
    }
    if (!r.ok) {
      throw new RateLimitedError(`this key is over its ${what} rate (${perSec}/s, bursts of ${capacity}); retry in ${Math.ceil(r.retryAfterMs / 1000)} s`, r.retryAfterMs);
    }
  }

  events(principal: Principal, n: number): Promise<void> {
    return this.take(principal, 'events', n);
  }

  bytes(principal: Principal, n: number): Promise<void> {
    return this.take(principal, 'bytes', n);
  }

  quota(principal: Principal): Quota {
    return { events: (n) => this.events(principal, n), bytes: (n) => this.bytes(principal, n) };
  }

  /** Hold one of the key's connection slots; throws RateLimitedError when all are in use. */
  async connect(principal: Principal): Promise<ConnectionLease> {
    if (this.limits.maxConnections <= 0) return { release: () => {} };
    const key = `${this.prefix}:${principal.keyId}:conns`;
    const member = `${this.instance}:${randomUUID()}`;
    const held = await this.hot.acquireSlot(key, member, this.limits.maxConnections, this.leaseMs).catch((err: { code?: string }) => {
      if (err.code === 'hot_unavailable') return true;
      throw err;
    });
    if (!held) {
      throw new RateLimitedError(`this key already holds its ${this.limits.maxConnections} concurrent connections`, 5_000);
    }
    this.leases.set(member, { key, member });
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.leases.delete(member);
        this.hot.releaseSlot(key, member).catch(() => {});
      },
    };
  }

  private async renew(): Promise<void> {
    for (const { key, member } of this.leases.values()) {
      await this.hot.acquireSlot(key, member, Number.MAX_SAFE_INTEGER, this.leaseMs).catch(() => {});
    }
  }

  close(): void {
    clearInterval(this.renewTimer);
  }
}

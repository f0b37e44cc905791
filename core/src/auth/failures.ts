import { isIPv6 } from 'node:net';
import { BackpressureError } from '../errors.js';

/** An address over its failed-authentication budget: 429 with Retry-After, before its key is looked at. */
export class AuthFailuresError extends BackpressureError {
  constructor(retryAfterMs: number) {
    super(`too many failed authentications from this address; retry in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`, retryAfterMs);
    (this as { code: string }).code = 'too_many_auth_failures';
  }
}

export interface AuthFailureLimits {
  /** Refill: failures allowed per minute per address, after the burst; 0 = no budget. */
  perMin: number;
  burst: number;
  /** Addresses tracked at most; the least recently seen is forgotten first. */
  maxAddresses: number;
}

/**
 * Failed authentications per client address, as token buckets in this process's memory. Keys are
 * 256-bit random, so this is not about guessing them: it makes a stream of bad keys from one
 * address cheap to refuse (no key parsing or hashing once it is over) and keeps it from crowding
 * out other clients. IPv6 clients are bucketed by /64, the block one host usually holds. The map is
 * bounded (insertion order = recency, oldest evicted), so a spray of addresses cannot grow memory;
 * an evicted address merely starts again with a full bucket.
 */
export class AuthFailureBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limits: AuthFailureLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.limits.perMin > 0;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Milliseconds until `address` may try again, or 0 when it still has budget. */
  blocked(address: string): number {
    if (!this.enabled) return 0;
    const b = this.refill(clientKey(address), false);
    if (!b || b.tokens >= 1) return 0;
    return Math.ceil(((1 - b.tokens) * 60_000) / this.limits.perMin);
  }

  /** Charge one failure to `address`. */
  fail(address: string): void {
    if (!this.enabled) return;
    const b = this.refill(clientKey(address), true)!;
    b.tokens = Math.max(0, b.tokens - 1);
  }

  private refill(key: string, create: boolean): { tokens: number; at: number } | undefined {
    const now = this.clock();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.limits.burst, b.tokens + ((now - b.at) * this.limits.perMin) / 60_000);
      b.at = now;
      // Most recently seen last.
      this.buckets.delete(key);
      this.buckets.set(key, b);
      return b;
    }
    if (!create) return undefined;
    b = { tokens: this.limits.burst, at: now };
    this.buckets.set(key, b);
    while (this.buckets.size > this.limits.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    return b;
  }
}

/** IPv4 as is (also when IPv4-mapped); IPv6 by its /64. */
export function clientKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head = '', tail] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

import { dailyCosts, reachByAsset, type DayCosts, type ReachFigures, type Store } from '@afterglow/core';

/**
 * Where the frequency and cost-per-result rules read a campaign's daily spend and reach. Both are
 * daily figures in the store: re-read at most every `refreshMs` per (campaign, days), not on every
 * evaluation pass.
 */
export interface CostReachSource {
  reach(tenant: string, campaign: string, from: string, to: string): Promise<Map<string, ReachFigures>>;
  dailyCosts(tenant: string, campaign: string, from: string, to: string): Promise<DayCosts[]>;
}

/** Entries cached at most (campaign x day ranges in use); the oldest goes first. */
const MAX_ENTRIES = 2_000;

export class StoreCostReach implements CostReachSource {
  private readonly cache = new Map<string, { at: number; value: Promise<unknown> }>();

  constructor(
    private readonly store: Store,
    private readonly refreshMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  reach(tenant: string, campaign: string, from: string, to: string): Promise<Map<string, ReachFigures>> {
    return this.cached(`r\u0000${tenant}\u0000${campaign}\u0000${from}\u0000${to}`, () => reachByAsset(this.store, tenant, { campaign }, from, to));
  }

  dailyCosts(tenant: string, campaign: string, from: string, to: string): Promise<DayCosts[]> {
    return this.cached(`c\u0000${tenant}\u0000${campaign}\u0000${from}\u0000${to}`, () => dailyCosts(this.store, tenant, { campaign }, from, to));
  }

  private cached<T>(key: string, read: () => Promise<T>): Promise<T> {
    const now = this.clock();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < this.refreshMs) return hit.value as Promise<T>;
    const value = read();
    // A failed read is not kept: the next pass asks again.
    value.catch(() => {
      if (this.cache.get(key)?.value === value) this.cache.delete(key);
    });
    this.cache.delete(key);
    this.cache.set(key, { at: now, value });
    if (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    return value;
  }
}

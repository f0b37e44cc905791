/**
 * Entries keyed by client-chosen ids, grouped by tenant, each tenant's kept in least recently
 * touched order, under two bounds:
 *   - at most `perTenant` entries per tenant: past it, that tenant's least recently touched goes;
 *   - at most `total` entries in all: past it, the least recently touched entry of the tenant that
 *     holds the most goes (never a smaller tenant's first).
 * So a tenant that invents ids only ever pushes out its own state, and memory stays bounded by
 * `total` however many tenants there are. Finding the largest tenant is O(1): tenants are kept in
 * buckets by size, and sizes move by one at a time.
 */
export type EvictReason = 'tenant' | 'total';

export class TenantLru<V> {
  private readonly tenants = new Map<string, Map<string, V>>();
  private readonly bySize = new Map<number, Set<string>>();
  private largest = 0;
  private count = 0;

  constructor(
    private readonly perTenant: number,
    private readonly total: number,
    private readonly onEvict?: (tenant: string, key: string, value: V, reason: EvictReason) => void,
  ) {
    if (!(perTenant >= 1 && total >= 1)) throw new RangeError('TenantLru bounds must be at least 1');
  }

  get size(): number {
    return this.count;
  }

  /** How many entries `tenant` holds. */
  countOf(tenant: string): number {
    return this.tenants.get(tenant)?.size ?? 0;
  }

  /** The `n` tenants holding the most entries, largest first (for metrics: bounded label sets). */
  top(n: number): [string, number][] {
    const out: [string, number][] = [];
    for (let size = this.largest; size > 0 && out.length < n; size--) {
      for (const t of this.bySize.get(size) ?? []) {
        out.push([t, size]);
        if (out.length >= n) break;
      }
    }
    return out;
  }

  get tenantCount(): number {
    return this.tenants.size;
  }

  /** The entry, without changing its recency. */
  get(tenant: string, key: string): V | undefined {
    return this.tenants.get(tenant)?.get(key);
  }

  /** The entry, made the tenant's most recently touched; undefined when absent. */
  touch(tenant: string, key: string): V | undefined {
    const m = this.tenants.get(tenant);
    if (!m) return undefined;
    const v = m.get(key);
    if (v === undefined) return undefined;
    m.delete(key);
    m.set(key, v);
    return v;
  }

  /** Insert or replace, as the tenant's most recently touched; then enforce both bounds. */
  set(tenant: string, key: string, value: V): void {
    let m = this.tenants.get(tenant);
    if (!m) this.tenants.set(tenant, (m = new Map()));
    if (m.has(key)) {
      m.delete(key);
      m.set(key, value);
      return;
    }
    m.set(key, value);
    this.count++;
    this.resized(tenant, m.size - 1, m.size);
    if (m.size > this.perTenant) this.evictOldest(tenant, 'tenant');
    while (this.count > this.total) {
      const [victim] = this.bySize.get(this.largest)!;
      this.evictOldest(victim!, 'total');
    }
  }

  delete(tenant: string, key: string): boolean {
    const m = this.tenants.get(tenant);
    if (!m?.delete(key)) return false;
    this.removed(tenant, m);
    return true;
  }

  private evictOldest(tenant: string, reason: EvictReason): void {
    const m = this.tenants.get(tenant)!;
    const [key, value] = m.entries().next().value!;
    m.delete(key);
    this.removed(tenant, m);
    this.onEvict?.(tenant, key, value, reason);
  }

  private removed(tenant: string, m: Map<string, V>): void {
    this.count--;
    this.resized(tenant, m.size + 1, m.size);
    if (m.size === 0) this.tenants.delete(tenant);
  }

  private resized(tenant: string, from: number, to: number): void {
    if (from > 0) {
      const b = this.bySize.get(from)!;
      b.delete(tenant);
      if (b.size === 0) {
        this.bySize.delete(from);
        if (this.largest === from && to < from) this.largest = to;
      }
    }
    if (to > 0) {
      let b = this.bySize.get(to);
      if (!b) this.bySize.set(to, (b = new Set()));
      b.add(tenant);
    }
    if (to > this.largest) this.largest = to;
  }
}

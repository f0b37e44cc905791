import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TenantLru } from './tenant-lru.js';

/** A plain model: one list per tenant in recency order, the bounds applied by scanning. */
class Model {
  readonly lists = new Map<string, string[]>();
  constructor(
    readonly perTenant: number,
    readonly total: number,
  ) {}
  size(): number {
    let n = 0;
    for (const l of this.lists.values()) n += l.length;
    return n;
  }
  touch(t: string, k: string): boolean {
    const l = this.lists.get(t);
    const i = l?.indexOf(k) ?? -1;
    if (i < 0) return false;
    l!.splice(i, 1);
    l!.push(k);
    return true;
  }
  set(t: string, k: string): void {
    if (this.touch(t, k)) return;
    const l = this.lists.get(t) ?? [];
    this.lists.set(t, l);
    l.push(k);
    if (l.length > this.perTenant) l.shift();
    while (this.size() > this.total) {
      const most = Math.max(...[...this.lists.values()].map((x) => x.length));
      // Any tenant of the largest size may lose one: the implementation's choice is checked by size only.
      const victims = [...this.lists.entries()].filter(([, x]) => x.length === most);
      victims[0]![1].shift();
      this.prune();
    }
    this.prune();
  }
  prune(): void {
    for (const [t, l] of this.lists) if (l.length === 0) this.lists.delete(t);
  }
}

test('TenantLru keeps both bounds and evicts only from the largest tenant (model check)', () => {
  const op = fc.record({ kind: fc.constantFrom('set', 'set', 'touch', 'delete'), tenant: fc.integer({ min: 0, max: 5 }), key: fc.integer({ min: 0, max: 12 }) });
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 15 }), fc.array(op, { maxLength: 200 }), (perTenant, total, ops) => {
      const lru = new TenantLru<number>(perTenant, total, (tenant, _k, _v, reason) => {
        // Whoever loses an entry to the total bound held the most (after the insert).
        if (reason === 'total') sizesAtEvict.push(tenant);
      });
      const sizesAtEvict: string[] = [];
      for (const o of ops) {
        const t = `t${o.tenant}`;
        const k = `k${o.key}`;
        if (o.kind === 'set') {
          sizesAtEvict.length = 0;
          lru.set(t, k, o.key);
          if (sizesAtEvict.length > 0) {
            // Every total eviction came from a tenant that held at least as many as any other then.
            for (const v of sizesAtEvict) for (let i = 0; i < 6; i++) assert.ok(lru.countOf(v) + 1 >= lru.countOf(`t${i}`), `evicted from ${v} while t${i} held more`);
          }
        } else if (o.kind === 'touch') lru.touch(t, k);
        else lru.delete(t, k);
        let sum = 0;
        for (let i = 0; i < 6; i++) {
          const n = lru.countOf(`t${i}`);
          assert.ok(n <= perTenant);
          sum += n;
        }
        assert.equal(lru.size, sum);
        assert.ok(lru.size <= total);
        const top = lru.top(1)[0];
        assert.equal(top?.[1] ?? 0, Math.max(0, ...[0, 1, 2, 3, 4, 5].map((i) => lru.countOf(`t${i}`))));
      }
    }),
    { seed: 7, numRuns: 300 },
  );
});

test('TenantLru matches a plain model for a single tenant under the per-tenant bound', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 10 })), { maxLength: 100 }), (cap, ops) => {
      const lru = new TenantLru<number>(cap, 1000);
      const model = new Model(cap, 1000);
      for (const [set, key] of ops) {
        if (set) {
          lru.set('t', `k${key}`, key);
          model.set('t', `k${key}`);
        } else {
          assert.equal(lru.touch('t', `k${key}`) !== undefined, model.touch('t', `k${key}`));
        }
        const l = model.lists.get('t') ?? [];
        assert.equal(lru.countOf('t'), l.length);
        for (const k of l) assert.ok(lru.get('t', k) !== undefined);
      }
    }),
    { seed: 11, numRuns: 200 },
  );
});

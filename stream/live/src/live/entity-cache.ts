import type { EngagementEvent, HotState } from '@afterglow/core';
import { DecayTracker } from './decay.js';
import type { EntityKind, LiveKeys } from './keys.js';
import { LOAD_CHUNK, type AggregatorMetrics } from './aggregator-shared.js';
import { parseEntityHash, type EntityMeta } from './state.js';
import { parseTie } from './ties.js';
import { Buckets, type Layout } from './windows.js';

/** What locates an event's entities: its tenant, asset and campaign. */
export type AssetRef = Pick<EngagementEvent, 'tenant_id' | 'asset_id' | 'campaign_id'>;

export interface Spec {
  kind: EntityKind;
  tenant: string;
  id: string;
  partition: number;
}

/** An asset, or a partition's share of a campaign or master, as the aggregator holds it in memory. */
export class Entity {
  n = 0;
  epoch = 0;
  campaign = '';
  master = '';
  /** Assets: the master hot state says it is tied to (checked on load and on tie notices). */
  tieMaster: string | undefined;
  tracker: DecayTracker | undefined;
  /** Version carried by the last published delta. */
  pubN = 0;
  /** Publish every row next time (after an epoch change). */
  full = false;
  /** Decay tracker changed since the last flush / publish. */
  decayDirty = 0;
  metaDirty = false;
  pins = 0;
  lastEventAt = 0;
  /** When its entry in the tenant's quota set was last written (refreshed hourly, not every flush). */
  quotaAt = 0;

  constructor(
    readonly key: string,
    readonly kind: EntityKind,
    readonly tenant: string,
    readonly id: string,
    readonly partition: number,
    readonly buckets: Buckets,
  ) {}

  meta(): EntityMeta {
    return { kind: this.kind, tenant: this.tenant, id: this.id, partition: this.partition, n: this.n, epoch: this.epoch, campaign: this.campaign, master: this.master };
  }
}

export interface EntityCacheOptions {
  hot: HotState;
  keys: LiveKeys;
  layout: Layout;
  maxEntities: number;
  entitiesPerTenant: number;
  /** The partitions this member holds: an entity read for one revoked meanwhile is not kept. */
  partitions: ReadonlyMap<number, unknown>;
  /** Entities waiting for a flush or a publish: never evicted. */
  flushQueue: ReadonlySet<Entity>;
  pubQueue: ReadonlySet<Entity>;
  metrics: Pick<AggregatorMetrics, 'evicted'>;
  /** Moves an asset whose tie changed to its new master (both shares loaded by ensureFor). */
  reattribute: (asset: Entity, target: string) => void;
}

/**
 * The aggregator's entities in memory: an LRU map of at most `maxEntities`, bounded per tenant too,
 * loaded from hot state on demand and pinned while a batch uses them; clean ones are evicted.
 */
export class EntityCache {
  readonly entities = new Map<string, Entity>();
  /** The same entities by tenant, each tenant's in least recently used order. */
  readonly byTenant = new Map<string, Map<string, Entity>>();
  private readonly loading = new Map<string, Promise<Entity>>();
  private readonly options: { hot: HotState; maxEntities: number };
  private readonly keys: LiveKeys;
  private readonly layout: Layout;
  private readonly quotas: { entitiesPerTenant: number };
  private readonly partitions: ReadonlyMap<number, unknown>;
  private readonly flushQueue: ReadonlySet<Entity>;
  private readonly pubQueue: ReadonlySet<Entity>;
  private readonly metrics: Pick<AggregatorMetrics, 'evicted'>;
  private readonly reattribute: (asset: Entity, target: string) => void;

  constructor(options: EntityCacheOptions) {
    this.options = { hot: options.hot, maxEntities: options.maxEntities };
    this.keys = options.keys;
    this.layout = options.layout;
    this.quotas = { entitiesPerTenant: options.entitiesPerTenant };
    this.partitions = options.partitions;
    this.flushQueue = options.flushQueue;
    this.pubQueue = options.pubQueue;
    this.metrics = options.metrics;
    this.reattribute = options.reattribute;
  }

  /** Entities held in memory for `tenant`. */
  entitiesOf(tenant: string): number {
    return this.byTenant.get(tenant)?.size ?? 0;
  }

  /** Loads (and pins) every entity the events touch, re-attributing assets whose tie changed. */
  async ensureFor(events: readonly AssetRef[], partition: number): Promise<Entity[]> {
    const specs = new Map<string, Spec>();
    for (const e of events) {
      specs.set(this.keys.asset(e.tenant_id, e.asset_id), { kind: 'asset', tenant: e.tenant_id, id: e.asset_id, partition });
      specs.set(this.keys.entity('campaign', e.tenant_id, e.campaign_id, partition), { kind: 'campaign', tenant: e.tenant_id, id: e.campaign_id, partition });
    }
    const first = await this.load([...specs.values()]);
    const masters = new Map<string, Spec>();
    for (const e of first) {
      if (e.kind !== 'asset') continue;
      for (const m of [e.master, e.tieMaster ?? e.master]) {
        if (m) masters.set(this.keys.entity('master', e.tenant, m, partition), { kind: 'master', tenant: e.tenant, id: m, partition });
      }
    }
    const second = masters.size > 0 ? await this.load([...masters.values()]) : [];
    for (const e of first) if (e.kind === 'asset' && e.tieMaster !== undefined && e.tieMaster !== e.master) this.reattribute(e, e.tieMaster);
    return [...first, ...second];
  }

  /** The entities for `specs`, from memory or hot state, each pinned once (callers unpin). */
  async load(specs: Spec[]): Promise<Entity[]> {
    const keys = specs.map((s) => this.keys.entity(s.kind, s.tenant, s.id, s.partition));
    const missing: number[] = [];
    const asked = new Set<string>();
    keys.forEach((key, i) => {
      if (this.entities.has(key) || this.loading.has(key) || asked.has(key)) return;
      asked.add(key);
      missing.push(i);
    });
    for (let c = 0; c < missing.length; c += LOAD_CHUNK) {
      const chunk = missing.slice(c, c + LOAD_CHUNK);
      const fetched = this.fetch(chunk.map((i) => specs[i]!), chunk.map((i) => keys[i]!));
      chunk.forEach((i, j) => this.loading.set(keys[i]!, fetched.then((all) => all[j]!)));
      fetched
        .finally(() => {
          for (const i of chunk) this.loading.delete(keys[i]!);
        })
        .catch(() => undefined);
    }
    const found = await Promise.all(keys.map((key) => this.entities.get(key) ?? this.loading.get(key)!));
    // Synchronous from here: settle each entity in the map (an eviction may have run while we
    // waited; a clean copy is simply put back) and pin it.
    return found.map((e, i) => {
      const key = keys[i]!;
      const current = this.entities.get(key);
      if (current && current !== e) e = current;
      else if (!current) {
        if (this.partitions.has(e.partition)) this.hold(e);
      } else this.touch(e);
      e.pins++;
      return e;
    });
  }

  private async fetch(specs: Spec[], keys: string[]): Promise<Entity[]> {
    const { hot } = this.options;
    const assetIdx = specs.flatMap((s, i) => (s.kind === 'asset' ? [i] : []));
    const [hashes, ties] = await Promise.all([
      Promise.all(keys.map((k) => hot.hgetall(k))),
      assetIdx.length > 0 ? hot.mget(assetIdx.map((i) => this.keys.tie(specs[i]!.tenant, specs[i]!.id))) : Promise.resolve([]),
    ]);
    const tieOf = new Map<number, string | null>(assetIdx.map((i, j) => [i, ties[j] ?? null]));
    return specs.map((spec, i) => {
      const key = keys[i]!;
      // Loaded meanwhile by someone else (a tie notice): keep the one in memory.
      const existing = this.entities.get(key);
      if (existing) return existing;
      const snap = parseEntityHash(hashes[i]!, this.layout);
      const e = new Entity(key, spec.kind, spec.tenant, spec.id, spec.partition, snap?.buckets ?? new Buckets(this.layout));
      if (snap) {
        e.n = snap.meta.n;
        e.pubN = snap.meta.n;
        e.epoch = snap.meta.epoch;
        e.campaign = snap.meta.campaign;
        e.master = snap.meta.master;
        if (spec.kind === 'asset') e.tracker = DecayTracker.fromJSON(snap.decay);
      }
      if (spec.kind === 'asset') e.tieMaster = parseTie(tieOf.get(i) ?? null).master;
      // A partition revoked while we read: its entities must not linger (stale if it comes back).
      if (this.partitions.has(spec.partition)) this.hold(e);
      return e;
    });
  }

  private hold(e: Entity): void {
    this.entities.set(e.key, e);
    let held = this.byTenant.get(e.tenant);
    if (!held) this.byTenant.set(e.tenant, (held = new Map()));
    held.set(e.key, e);
  }

  drop(e: Entity): void {
    this.entities.delete(e.key);
    const held = this.byTenant.get(e.tenant);
    held?.delete(e.key);
    if (held?.size === 0) this.byTenant.delete(e.tenant);
  }

  private touch(e: Entity): void {
    this.entities.delete(e.key);
    this.entities.set(e.key, e);
    const held = this.byTenant.get(e.tenant);
    if (held?.delete(e.key)) held.set(e.key, e);
  }

  /**
   * Drop clean, unpinned entities, least recently used first: a tenant's own past its quota, then,
   * past maxEntities, the largest tenant's (a tenant keeps its entities until every larger one has
   * been cut to its size).
   */
  evict(): void {
    const evictable = (e: Entity) => e.pins === 0 && !this.flushQueue.has(e) && !this.pubQueue.has(e);
    const perTenant = this.quotas.entitiesPerTenant;
    for (const held of [...this.byTenant.values()]) {
      if (held.size <= perTenant) continue;
      let excess = held.size - perTenant;
      for (const e of [...held.values()]) {
        if (excess <= 0) break;
        if (!evictable(e)) continue;
        this.drop(e);
        this.metrics.evicted.inc({ reason: 'tenant' });
        excess--;
      }
    }
    let excess = this.entities.size - this.options.maxEntities;
    if (excess <= 0) return;
    const sizes = new Map([...this.byTenant].map(([t, held]) => [t, held.size]));
    const cursors = new Map<string, Iterator<Entity>>();
    // A larger tenant whose entities are all in use (pinned by a batch, or dirty) is not a reason
    // to take a smaller one's: memory waits for the next flush instead.
    let stuckAt = -1;
    while (excess > 0 && sizes.size > 0) {
      let victim = '';
      let most = -1;
      for (const [t, n] of sizes) if (n > most) [victim, most] = [t, n];
      if (most < stuckAt) break;
      let cursor = cursors.get(victim);
      if (!cursor) cursors.set(victim, (cursor = this.byTenant.get(victim)!.values()));
      let next = cursor.next();
      while (!next.done && !evictable(next.value)) next = cursor.next();
      if (next.done) {
        sizes.delete(victim);
        stuckAt = Math.max(stuckAt, most);
        continue;
      }
      this.drop(next.value);
      this.metrics.evicted.inc({ reason: 'total' });
      sizes.set(victim, most - 1);
      excess--;
    }
  }
}

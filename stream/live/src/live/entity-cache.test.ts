import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Registry, createHotState } from '@afterglow/core';
import { createMetrics } from './aggregator-shared.js';
import { EntityCache, type Entity, type Spec } from './entity-cache.js';
import { LiveKeys } from './keys.js';
import { metaFields } from './state.js';
import { DIRTY_FLUSH, DIRTY_PUBLISH, KIND_INDEX, windowLayout } from './windows.js';

const layout = windowLayout(10 * 60_000);
const hot = await createHotState({ kind: 'memory' });
after(() => hot.close());

/** A cache on its own: one partition held, queues and reattribution watched from outside. */
function cacheOf(maxEntities: number, entitiesPerTenant = maxEntities) {
  const flushQueue = new Set<Entity>();
  const pubQueue = new Set<Entity>();
  const moved: [string, string][] = [];
  const keys = new LiveKeys(`cache-${Math.random().toString(36).slice(2)}`);
  const metrics = createMetrics(new Registry(), () => 0, () => 0);
  const cache = new EntityCache({
    hot,
    keys,
    layout,
    maxEntities,
    entitiesPerTenant,
    partitions: new Map([[0, {}]]),
    flushQueue,
    pubQueue,
    metrics,
    reattribute: (asset, target) => moved.push([asset.id, target]),
  });
  return { cache, keys, flushQueue, moved };
}

const asset = (tenant: string, id: string): Spec => ({ kind: 'asset', tenant, id, partition: 0 });
const unpin = (es: Entity[]) => {
  for (const e of es) e.pins--;
};

test('entity cache: loads from hot state once, pins per load, and hands back the instance it holds', async () => {
  const { cache, keys } = cacheOf(100);
  // What a flush wrote for t/a1: its meta (n = 7) and a row.
  const stored = cacheOf(1).cache;
  const [seed] = await stored.load([asset('t', 'a1')]);
  seed!.n = 7;
  seed!.buckets.add(KIND_INDEX.view, 1, Date.now(), DIRTY_FLUSH | DIRTY_PUBLISH);
  await hot.batch([{ op: 'hset', key: keys.asset('t', 'a1'), fields: { ...seed!.buckets.takeRows(DIRTY_FLUSH), ...metaFields(seed!.meta(), Date.now()) } }]);

  const [a, b] = await cache.load([asset('t', 'a1'), asset('t', 'a1')]);
  assert.equal(a, b, 'one entity per key');
  assert.equal(a!.n, 7, 'loaded from its hash');
  assert.equal(a!.pins, 2);
  const [again] = await cache.load([asset('t', 'a1')]);
  assert.equal(again, a);
  assert.equal(cache.entities.size, 1);
  assert.equal(cache.entitiesOf('t'), 1);
  const [fresh] = await cache.load([asset('t', 'new')]);
  assert.equal(fresh!.n, 0, 'an id hot state does not know starts empty');
});

test('entity cache: eviction drops clean, unpinned entities, least recently used first, a tenant past its quota first', async () => {
  const { cache, flushQueue } = cacheOf(3, 2);
  const loaded = await cache.load(['a', 'b', 'c'].map((id) => asset('big', id)));
  unpin(loaded);
  // Past its per-tenant quota (2): its least recently used goes.
  cache.evict();
  assert.deepEqual([...cache.entities.values()].map((e) => e.id), ['b', 'c']);
  const [d] = await cache.load([asset('small', 'd')]);
  const [e] = await cache.load([asset('small', 'e')]);
  // Four held, three allowed: the largest tenant gives one up; a pinned or dirty entity is kept.
  flushQueue.add(cache.entities.get([...cache.entities.keys()][0]!)!);
  cache.evict();
  assert.deepEqual([...cache.entities.values()].map((x) => x.id).sort(), ['b', 'd', 'e'], 'c (clean, unpinned) went; b is dirty, d and e pinned');
  unpin([d!, e!]);
});

test('entity cache: an asset whose tie moved is re-attributed as it is loaded', async () => {
  const { cache, keys, moved } = cacheOf(100);
  await hot.set(keys.tie('t', 'ad'), JSON.stringify({ m: 'm2', at: Date.now() }));
  const pinned = await cache.ensureFor([{ tenant_id: 't', asset_id: 'ad', campaign_id: 'c' }], 0);
  assert.deepEqual(moved, [['ad', 'm2']]);
  // The asset, its campaign share, and the master share it moves to, all pinned.
  assert.deepEqual(pinned.map((e) => `${e.kind}:${e.id}`).sort(), ['asset:ad', 'campaign:c', 'master:m2']);
  unpin(pinned);
});

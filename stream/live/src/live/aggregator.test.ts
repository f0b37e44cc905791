import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EVENT_KINDS,
  TOPICS,
  createBus,
  createFanOut,
  createHotState,
  createLogger,
  encodeEvent,
  partitionForKey,
  ulid,
  type Bus,
  type EngagementEvent,
  type EventKind,
  type FanOut,
  type HotState,
} from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { LiveAggregator, type LiveAggregatorOptions } from './aggregator.js';
import { LiveKeys } from './keys.js';
import { LiveReader } from './reader.js';
import { decodeDelta } from './state.js';

const LATE = 10 * 60_000;
const LIMITS = { maxAgeMs: 7 * 86_400_000, maxFutureMs: 300_000, liveLateMs: LATE, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };
const CI = { maxRelWidth: 0.5, maxAbsWidth: 0.01 };
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

interface Rig {
  bus: Bus;
  hot: HotState;
  fanout: FanOut;
  keys: LiveKeys;
  reader: LiveReader;
  options: Omit<LiveAggregatorOptions, 'bus'> & { bus: Bus };
}

const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function rig(bus?: Bus): Promise<Rig> {
  const b = bus ?? (await createBus({ kind: 'memory', partitions: 4, maxBacklogBytes: 64 * 1024 * 1024 }));
  const hot = await createHotState({ kind: 'memory' });
  const fanout = await createFanOut({ kind: 'memory' });
  await b.ensureTopics([TOPICS.events, TOPICS.assetsTies].map((topic) => ({ topic, partitions: 4 })));
  closers.push(() => b.close(), () => hot.close(), () => fanout.close());
  const keys = new LiveKeys(uniqueName('live'));
  return {
    bus: b,
    hot,
    fanout,
    keys,
    reader: new LiveReader(hot, keys, LATE, CI, 0.25),
    options: { bus: b, hot, fanout, log, limits: LIMITS, groupId: uniqueName('live'), keys, offsetScope: 'process-test', flushMs: 600_000, publishMs: 5, maxEntities: 10_000, tiesSweepMs: 600_000 },
  };
}

type Counts = Record<EventKind, number>;
const zero = (): Counts => Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Counts;

function events(n: number, tenant: string, campaign: string, assets: number, expected: Map<string, Counts>): EngagementEvent[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const kind = EVENT_KINDS[(i * 5 + (i >> 2)) % EVENT_KINDS.length]!;
    const asset = `${campaign}-a${i % assets}`;
    for (const key of [asset, campaign]) {
      if (!expected.has(key)) expected.set(key, zero());
      expected.get(key)![kind]++;
    }
    return { event_id: ulid(), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: 1, occurred_at: now - (i % 50) * 1000, received_at: now };
  });
}

async function produce(bus: Bus, list: EngagementEvent[]): Promise<void> {
  const producer = await bus.producer();
  await producer.send(TOPICS.events, list.map((e) => ({ key: e.asset_id, value: encodeEvent(e) })));
  await producer.close();
}

/** A bus whose consumers never commit: every restart redelivers from the beginning. */
function forgetfulBus(inner: Bus): Bus {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'consumer') {
        return (options: Parameters<Bus['consumer']>[0]) => {
          const c = target.consumer(options);
          return { run: c.run.bind(c), stop: c.stop.bind(c), commit: async () => undefined };
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

test('aggregator: a crash after a flush and before the Kafka commit replays nothing twice; unflushed work is redone once', async () => {
  const base = await rig();
  const bus = forgetfulBus(base.bus);
  const tenant = uniqueName('t');
  const expected = new Map<string, Counts>();
  await produce(bus, events(1200, tenant, 'c1', 12, expected));

  const a = new LiveAggregator({ ...base.options, bus });
  await a.start();
  await eventually(() => (a.totals.applied === 1200 ? true : undefined), 10_000, 10);
  await a.flush(); // hot state: rows + offsets of these 1200; Kafka: nothing committed (forgetful)
  await produce(bus, events(600, tenant, 'c1', 12, expected));
  await eventually(() => (a.totals.applied === 1800 ? true : undefined), 10_000, 10);
  await a.abandon(); // the last 600 were applied in memory only

  const b = new LiveAggregator({ ...base.options, bus });
  await b.start();
  // Everything is redelivered (nothing was committed): 1200 are skipped by offset, 600 applied again.
  await eventually(() => (b.totals.received >= 1800 ? true : undefined), 10_000, 10);
  await eventually(() => (b.totals.applied === 600 ? true : undefined), 10_000, 10);
  assert.equal(b.totals.replayed, 1200);
  await b.flush();
  for (const [key, counts] of expected) {
    const m = key.includes('-a') ? await base.reader.assetMetrics(tenant, key, Date.now()) : await base.reader.campaignMetrics(tenant, key, Date.now());
    assert.deepEqual(m!.windows['24h'].counts, counts, key);
    assert.deepEqual(m!.windows['1h'].counts, counts, key);
  }
  await b.stop();
});

test('aggregator: client re-sends are dropped across a crash and restart; the dedup window is persisted with the offset', async () => {
  const base = await rig();
  const bus = forgetfulBus(base.bus);
  const tenant = uniqueName('t');
  const expected = new Map<string, Counts>();
  const flushed = events(300, tenant, 'c9', 6, expected);
  const unflushed = events(300, tenant, 'c9', 6, expected);
  await produce(bus, flushed);
  const a = new LiveAggregator({ ...base.options, bus });
  await a.start();
  await eventually(() => (a.totals.applied === 300 ? true : undefined), 10_000, 10);
  await a.flush();
  await produce(bus, unflushed);
  await eventually(() => (a.totals.applied === 600 ? true : undefined), 10_000, 10);
  await a.abandon(); // the second 300 (and what they taught the window) were in memory only

  // Clients whose responses were lost re-send some of each, as new records (new offsets).
  const resent = [...flushed.slice(0, 100), ...unflushed.slice(0, 100)];
  await produce(bus, resent);
  const b = new LiveAggregator({ ...base.options, bus });
  await b.start();
  await eventually(() => (b.totals.received >= 800 ? true : undefined), 10_000, 10);
  await eventually(() => (b.totals.applied === 300 && b.totals.duplicates === 200 ? true : undefined), 10_000, 10).catch(() => {
    assert.fail(`applied ${b.totals.applied} (want the 300 unflushed), duplicates ${b.totals.duplicates} (want 200): ${JSON.stringify(b.totals)}`);
  });
  assert.equal(b.totals.replayed, 300);
  await b.flush();
  for (const [key, counts] of expected) {
    const m = key.includes('-a') ? await base.reader.assetMetrics(tenant, key, Date.now()) : await base.reader.campaignMetrics(tenant, key, Date.now());
    assert.deepEqual(m!.windows['24h'].counts, counts, key);
  }
  await b.stop();
});

test('aggregator: deltas carry absolute rows and a version chain; late events are left to ClickHouse', async () => {
  const r = await rig();
  const tenant = uniqueName('t');
  const deltas: ReturnType<typeof decodeDelta>[] = [];
  r.fanout.subscribe(`live.${tenant}.>`, (data) => deltas.push(decodeDelta(data)));
  const expected = new Map<string, Counts>();
  const list = events(100, tenant, 'c2', 1, expected);
  const now = Date.now();
  const late = { ...list[0]!, event_id: ulid(), occurred_at: now - LATE - 60_000, received_at: now };
  const outOfOrder = { ...list[0]!, event_id: ulid(), kind: 'share' as const, occurred_at: now - 5 * 60_000, received_at: now };
  await produce(r.bus, [...list, late, outOfOrder]);
  const a = new LiveAggregator(r.options);
  await a.start();
  await eventually(() => (a.totals.applied === 101 ? true : undefined), 10_000, 10);
  assert.equal(a.totals.late, 1);
  await a.stop();
  await r.fanout.flush();
  const assetDeltas = deltas.filter((d) => d?.meta.kind === 'asset');
  assert.ok(assetDeltas.length > 0, `asset deltas: ${assetDeltas.length} of ${deltas.length}`);
  for (let i = 1; i < assetDeltas.length; i++) assert.equal(assetDeltas[i]!.n0, assetDeltas[i - 1]!.meta.n, 'each delta follows the previous version');
  assert.equal(assetDeltas.at(-1)!.meta.n, 101);
  const m = (await r.reader.assetMetrics(tenant, 'c2-a0', Date.now()))!;
  const exp = expected.get('c2-a0')!;
  assert.deepEqual(m.windows['1h'].counts, { ...exp, share: exp.share + 1 }, 'the out-of-order event is in the 1 h window');
  assert.equal(m.windows['1m'].counts.share, exp.share, '...and not in the 1 min one');
});

test('aggregator: masters roll up their tied ads, history included, and let go of untied ones', async () => {
  const r = await rig();
  const tenant = uniqueName('t');
  const expected = new Map<string, Counts>();
  await produce(r.bus, events(400, tenant, 'c3', 4, expected));
  const a = new LiveAggregator({ ...r.options, tiesSweepMs: 200 });
  await a.start();
  await eventually(() => (a.totals.applied === 400 ? true : undefined), 10_000, 10);
  const producer = await r.bus.producer();
  const tie = (action: string, ad: string, at: number) => ({
    key: ad,
    value: Buffer.from(JSON.stringify({ action, tenant_id: tenant, ad_asset_id: ad, target_asset_id: 'master-1', auto: false, decided_by: 'test', decided_at: at })),
  });
  await producer.send(TOPICS.assetsTies, [tie('tie', 'c3-a0', 1), tie('tie', 'c3-a1', 2), { key: 'x', value: Buffer.from('{"broken":') }]);
  const sum = (...ids: string[]) => Object.fromEntries(EVENT_KINDS.map((k) => [k, ids.reduce((s, id) => s + expected.get(id)![k], 0)]));
  const masterCounts = async () => {
    await a.flush();
    return (await r.reader.assetMetrics(tenant, 'master-1', Date.now()))?.master?.windows['24h'].counts;
  };
  await eventually(async () => (JSON.stringify(await masterCounts()) === JSON.stringify(sum('c3-a0', 'c3-a1')) ? true : undefined), 10_000, 50);
  // New events for a tied ad count for the master at once.
  const more = new Map<string, Counts>();
  await produce(r.bus, events(40, tenant, 'c3', 4, more));
  for (const [k, c] of more) for (const kind of EVENT_KINDS) expected.get(k)![kind] += c[kind];
  await eventually(async () => (JSON.stringify(await masterCounts()) === JSON.stringify(sum('c3-a0', 'c3-a1')) ? true : undefined), 10_000, 50);
  // Untie one (an older decision is ignored; the newer one applies).
  await producer.send(TOPICS.assetsTies, [tie('untie', 'c3-a1', 0), tie('untie', 'c3-a1', 3)]);
  await producer.close();
  await eventually(async () => (JSON.stringify(await masterCounts()) === JSON.stringify(sum('c3-a0')) ? true : undefined), 10_000, 50);
  assert.equal((await r.reader.assetMetrics(tenant, 'c3-a0', Date.now()))!.master_id, 'master-1');
  assert.equal((await r.reader.assetMetrics(tenant, 'c3-a1', Date.now()))!.master_id, null);
  await a.stop();
});

test('aggregator: memory stays bounded: clean entities are evicted and reloaded on demand', async () => {
  const r = await rig();
  const tenant = uniqueName('t');
  const expected = new Map<string, Counts>();
  const a = new LiveAggregator({ ...r.options, maxEntities: 100, flushMs: 50 });
  await a.start();
  await produce(r.bus, events(3000, tenant, 'c4', 1000, expected));
  await eventually(() => (a.totals.applied === 3000 ? true : undefined), 20_000, 10);
  await produce(r.bus, events(3000, tenant, 'c4', 1000, expected));
  await eventually(() => (a.totals.applied === 6000 ? true : undefined), 20_000, 10);
  await a.flush();
  await a.flush();
  const held = (a as unknown as { entities: Map<string, unknown> }).entities.size;
  assert.ok(held <= 100 * 1.5, `entities held: ${held}`);
  for (const id of ['c4-a0', 'c4-a500', 'c4-a999']) {
    assert.deepEqual((await r.reader.assetMetrics(tenant, id, Date.now()))!.windows['24h'].counts, expected.get(id), id);
  }
  assert.deepEqual((await r.reader.campaignMetrics(tenant, 'c4', Date.now()))!.windows['24h'].counts, expected.get('c4'));
  await a.stop();
});

test('aggregator: a tenant inventing asset ids is held to its quotas; another tenant keeps its entities and counts', async () => {
  const r = await rig();
  const victim = uniqueName('victim');
  const hostile = uniqueName('hostile');
  const a = new LiveAggregator({ ...r.options, maxEntities: 200, flushMs: 50, quotas: { entitiesPerTenant: 100, assetsPerTenant: 400, campaignsPerTenant: 3 } });
  await a.start();
  const expected = new Map<string, Counts>();
  await produce(r.bus, events(80, victim, 'v1', 20, expected));
  await eventually(() => (a.totals.applied === 80 ? true : undefined), 10_000, 10);
  await a.flush();
  const victimHeld = a.entitiesOf(victim);
  assert.ok(victimHeld >= 20, `victim entities held: ${victimHeld}`);
  // 3000 events, each a new asset (and 5 campaigns, over a quota of 3 a partition).
  const now = Date.now();
  const flood = Array.from({ length: 3000 }, (_, i) => ({
    event_id: ulid(),
    tenant_id: hostile,
    campaign_id: `h${i % 5}`,
    asset_id: `x${i}`,
    kind: 'impression' as const,
    value: 1,
    occurred_at: now,
    received_at: now,
  }));
  await produce(r.bus, flood);
  await eventually(() => (a.totals.applied + a.totals.quotaRefused === 3080 ? true : undefined), 20_000, 10);
  // Entities in use by the last batch or not yet published are evicted by a later flush.
  await eventually(async () => {
    await a.flush();
    return a.entitiesOf(hostile) <= 100 ? true : undefined;
  }, 10_000, 20).catch(() => assert.fail(`hostile entities held: ${a.entitiesOf(hostile)}`));
  assert.equal(a.entitiesOf(victim), victimHeld, 'the victim lost no entity to the flood');
  assert.ok(a.entityCount <= 200, `entities held: ${a.entityCount}`);
  // 4 partitions, 100 assets each; campaigns 3 a partition.
  const live = a.totals.applied - 80;
  assert.ok(live <= 400 && live >= 4, `hostile events counted live: ${live}`);
  assert.equal(a.totals.quotaRefused, 3000 - live);
  for (let p = 0; p < 4; p++) {
    assert.ok((await r.hot.zcard(r.keys.quota('asset', hostile, p))) <= 100, `partition ${p} assets`);
    assert.ok((await r.hot.zcard(r.keys.quota('campaign', hostile, p))) <= 3, `partition ${p} campaigns`);
  }
  for (const [key, counts] of expected) {
    const m = key.includes('-a') ? await r.reader.assetMetrics(victim, key, Date.now()) : await r.reader.campaignMetrics(victim, key, Date.now());
    assert.deepEqual(m!.windows['24h'].counts, counts, key);
  }
  // A refused asset has no live state; an admitted one counts its events.
  const refusedIds = [];
  for (const e of flood.slice(0, 600)) if ((await r.reader.assetMetrics(hostile, e.asset_id, Date.now())) === undefined) refusedIds.push(e.asset_id);
  assert.ok(refusedIds.length > 0, 'some flood assets were refused');
  await a.stop();
});

test('aggregator: an event id re-used for an asset on another partition counts once, for the first', async () => {
  const r = await rig();
  const tenant = uniqueName('t');
  const first = 'r-a0';
  const other = ['r-a1', 'r-a2', 'r-a3', 'r-a4', 'r-a5', 'r-a6', 'r-a7'].find((id) => partitionForKey(id, 4) !== partitionForKey(first, 4))!;
  const now = Date.now();
  const original = { event_id: ulid(), tenant_id: tenant, campaign_id: 'rc', asset_id: first, kind: 'click' as const, value: 1, occurred_at: now, received_at: now };
  const a = new LiveAggregator(r.options);
  await a.start();
  await produce(r.bus, [original]);
  await eventually(() => (a.totals.applied === 1 ? true : undefined), 10_000, 10);
  await produce(r.bus, [{ ...original, asset_id: other }, { ...original, asset_id: other, kind: 'view' as const }, { ...original, received_at: now + 1 }]);
  await eventually(() => (a.totals.received === 4 ? true : undefined), 10_000, 10);
  await eventually(() => (a.totals.duplicates === 3 ? true : undefined), 10_000, 10);
  await a.flush();
  assert.equal(a.totals.applied, 1);
  assert.equal((await r.reader.assetMetrics(tenant, first, Date.now()))!.windows['24h'].counts.click, 1);
  assert.equal(await r.reader.assetMetrics(tenant, other, Date.now()), undefined, 'the re-used id counts nothing for the other asset');
  const campaign = (await r.reader.campaignMetrics(tenant, 'rc', Date.now()))!;
  assert.equal(EVENT_KINDS.reduce((n, k) => n + campaign.windows['24h'].counts[k], 0), 1);
  await a.stop();
});

test('aggregator: the rows rebuilt from the store are let go once every rebuilt partition has flushed', async () => {
  const r = await rig();
  const tenant = uniqueName('t');
  // Two assets on two partitions, each with an hour-old minute of views in the store.
  const assets: string[] = [];
  for (let i = 0; assets.length < 2; i++) {
    const id = `rb-a${i}`;
    if (assets.every((a) => partitionForKey(a, 4) !== partitionForKey(id, 4))) assets.push(id);
  }
  const minute = Math.floor((Date.now() - 60 * 60_000) / 60_000) * 60_000;
  const history = {
    windowRows: async () => assets.map((asset) => ({ tenant, campaign: 'rb-c', asset, kind: 'view' as const, minute, events: 3, value: 3 })),
    tieDecisions: async function* () {},
    now: async () => Date.now(),
    storedEventIds: async () => [],
  };
  const a = new LiveAggregator({ ...r.options, history });
  await a.start();
  assert.equal(a.rebuilding, true);
  const send = async (asset: string) => {
    const e: EngagementEvent = { event_id: ulid(), tenant_id: tenant, campaign_id: 'rb-c', asset_id: asset, kind: 'view', value: 1, occurred_at: Date.now(), received_at: Date.now() };
    const before = a.totals.applied;
    await produce(r.bus, [e]);
    await eventually(() => (a.totals.applied > before ? true : undefined), 10_000, 10);
    await a.flush();
  };
  await send(assets[0]!);
  // One rebuilt partition is still unflushed: its rows may still be needed.
  assert.equal(a.rebuilding, true);
  await send(assets[1]!);
  await eventually(() => (a.rebuilding ? undefined : true), 10_000, 10);
  for (const asset of assets) assert.equal((await r.reader.assetMetrics(tenant, asset, Date.now()))!.windows['24h'].counts.view, 4, asset);
  await a.stop();
});

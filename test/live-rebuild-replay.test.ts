/**
 * A live process whose hot state is lost (the memory adapter, restarted) on a log that outlives it
 * (Kafka): the windows come back from the store, and the log is replayed from where the store's
 * writer (the sink) stopped, or a few minutes back, skipping what the store already counted. The
 * in-process log stands in for Kafka here, told it is replayable: it outlives the aggregators
 * because the test holds it, as the broker would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  EVENT_KINDS,
  SINGLE_NODE_SINK_INSERT_SETTINGS,
  TABLES,
  TOPICS,
  createBus,
  createFanOut,
  createHotState,
  createLogger,
  createStore,
  encodeEvent,
  migrate,
  ulid,
  type Bus,
  type EngagementEvent,
  type EventKind,
  type Store,
} from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { EventSink } from '@afterglow/sink';
import { LiveAggregator, LiveKeys, LiveReader, RollupRepository, StoreHistorySource, StoreLogRepository, type LiveAggregatorOptions } from '@afterglow/live';

const LATE = 10 * 60_000;
/** A short dedup window, so that "a few minutes back" is a few seconds here. */
const WINDOW = 6_000;
const LIMITS = { maxAgeMs: 7 * 86_400_000, maxFutureMs: 300_000, liveLateMs: LATE, maxAttrsBytes: 2048, dedupWindowMs: WINDOW };
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let dir: string;
let store: Store;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'afterglow-rebuild-replay-'));
  store = await createStore({ kind: 'chdb', path: dir, database: 'rebuild_replay' });
  await migrate(store);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

type Counts = Record<EventKind, number>;

test('a lost hot state on a replayable log: windows rebuilt from the store, the unstored tail replayed, stored ids not counted twice', { timeout: 120_000 }, async (t) => {
  const memory = await createBus({ kind: 'memory', partitions: 4, maxBacklogBytes: 64 * 1024 * 1024 });
  const bus: Bus = new Proxy(memory, { get: (target, prop, receiver) => (prop === 'replayable' ? true : Reflect.get(target, prop, receiver)) });
  await bus.ensureTopics([TOPICS.events, TOPICS.assetsTies, TOPICS.eventsDlq].map((topic) => ({ topic, partitions: 4 })));
  const fanout = await createFanOut({ kind: 'memory' });
  t.after(async () => {
    await fanout.close();
    await memory.close();
  });
  const keys = new LiveKeys(uniqueName('live'));
  const sinkGroup = uniqueName('sink');
  const liveGroup = uniqueName('live');
  const tenant = uniqueName('t');
  const assets = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5'];
  const expected = new Map<string, Counts>(assets.map((a) => [a, Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Counts]));
  let seq = 0;
  const make = (n: number): EngagementEvent[] =>
    Array.from({ length: n }, () => {
      const i = seq++;
      const kind = (['impression', 'impression', 'click', 'like'] as const)[i % 4]!;
      const asset = assets[i % assets.length]!;
      expected.get(asset)![kind]++;
      const now = Date.now();
      return { event_id: ulid(), tenant_id: tenant, campaign_id: 'c', asset_id: asset, kind, value: 1, occurred_at: now - 1000, received_at: now };
    });
  const producer = await bus.producer();
  t.after(() => producer.close());
  const send = (list: EngagementEvent[]) => producer.send(TOPICS.events, list.map((e) => ({ key: e.asset_id, value: encodeEvent(e) })));
  const sink = () =>
    new EventSink({ bus, store, limits: LIMITS, log, groupId: sinkGroup, batchMaxRows: 1_000, batchMaxMs: 100, insertSettings: SINGLE_NODE_SINK_INSERT_SETTINGS });
  const stored = async () => {
    const rs = await store.client.query({ query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String}`, query_params: { t: tenant }, format: 'JSONEachRow' });
    return Number((await rs.json<{ n: string }>())[0]!.n);
  };
  const aggregator = async () => {
    const hot = await createHotState({ kind: 'memory' });
    t.after(() => hot.close());
    const options: LiveAggregatorOptions = {
      bus,
      hot,
      fanout,
      log,
      limits: LIMITS,
      groupId: liveGroup,
      keys,
      offsetScope: 'kafka-test',
      flushMs: 100,
      publishMs: 50,
      maxEntities: 10_000,
      tiesSweepMs: 600_000,
      history: new StoreHistorySource(new RollupRepository(store), new StoreLogRepository(store)),
      storeGroupId: sinkGroup,
    };
    const a = new LiveAggregator(options);
    await a.start();
    return { a, reader: new LiveReader(hot, keys, LATE, { maxRelWidth: 0.5, maxAbsWidth: 0.01 }, 0.25) };
  };

  // 1. Both run; 400 events are stored and counted live.
  const writer = sink();
  await writer.start();
  const first = await aggregator();
  const early = make(400);
  await send(early);
  await eventually(async () => ((await stored()) === 400 && first.a.totals.applied === 400 ? true : undefined), 30_000, 50);
  // Older than half the window: the replay's "few minutes back" does not reach them.
  await new Promise((r) => setTimeout(r, WINDOW / 2 + 500));

  // 2. The sink stops (it committed the 400); 100 more arrive, with retried copies of 5 stored events
  // and of 1 new one. Live counts the 100 once and drops the 6 copies.
  await writer.stop();
  const late = make(100);
  await send([...late, ...early.slice(0, 5), late[7]!]);
  await eventually(() => (first.a.totals.applied === 500 && first.a.totals.duplicates === 6 ? true : undefined), 30_000, 50);
  await first.a.stop();

  // 3. A new process, its memory hot state empty: 400 from the store, the unstored tail from the log.
  const second = await aggregator();
  t.after(() => second.a.stop());
  await eventually(() => (second.a.totals.received >= 106 ? true : undefined), 30_000, 50);
  await eventually(() => (second.a.totals.applied === 100 ? true : undefined), 10_000, 50);
  assert.equal(second.a.totals.duplicates, 6, 'the copies of stored events are known from the store; the new one from the replay');
  assert.equal(second.a.totals.received, 106, 'the replay starts where the sink stopped, not at the beginning');
  await second.a.flush();
  for (const asset of assets) {
    const m = await second.reader.assetMetrics(tenant, asset, Date.now());
    assert.deepEqual(m?.windows['24h'].counts, expected.get(asset), asset);
  }

  // 4. The sink comes back and stores the tail: store and live agree.
  const again = sink();
  await again.start();
  t.after(() => again.stop());
  await eventually(async () => ((await stored()) === 500 ? true : undefined), 30_000, 50);
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DLQ_HEADERS, Registry, TABLES, TOPICS, createBus, createLogger, createStore, migrate, ulid, type Bus, type DeliveredRecord, type Store } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { EventSink } from './sink.js';

/**
 * The sink on the real engine (chDB) and the in-process bus: what lands in events_raw row by row
 * (late flag at its exact bound, channel fallback, attrs), duplicates within a batch and on
 * redelivery stored once, poison records dead-lettered with their reason, offsets committed.
 */
const dir = mkdtempSync(path.join(tmpdir(), 'afterglow-sink-'));
let store: Store | undefined;
let bus: Bus | undefined;
after(async () => {
  await bus?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const LATE_MS = 600_000;
const limits = { maxAgeMs: 86_400_000, maxFutureMs: 300_000, liveLateMs: LATE_MS, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };

test('sink: rows as sent, late at > liveLateMs only, duplicates and redeliveries stored once, poison to the DLQ, offsets committed', async () => {
  store = await createStore({ kind: 'chdb', path: dir, database: 'sink_unit' });
  await migrate(store);
  bus = await createBus({ kind: 'memory', partitions: 1, maxBacklogBytes: 64 * 1024 * 1024 });
  const now = Date.now();
  const tenant = 'sink-unit';
  // Ids out of order within the batch, so the existence lookup's id range must cover them all.
  const ids = Array.from({ length: 6 }, (_, i) => ulid(now - i * 1000));
  const ev = (id: string, extra: Record<string, unknown> = {}) => ({ event_id: id, tenant_id: tenant, campaign_id: 'c', asset_id: 'a', kind: 'click', value: 1, occurred_at: now - 1000, received_at: now, ...extra });
  const records = [
    ev(ids[2]!, { occurred_at: now - LATE_MS, placement: 'lobby' }), // exactly at the bound: not late; channel falls back to placement
    ev(ids[0]!, { occurred_at: now - LATE_MS - 1, channel: 'social', attrs: { n: 2 } }), // 1 ms past: late
    ev(ids[5]!),
    ev(ids[2]!, { occurred_at: now - LATE_MS, placement: 'lobby' }), // a re-send in the same batch
    ev(ids[4]!, { kind: 'nope' }), // poison: unknown kind
    ev(ids[3]!, { value: 2.5, kind: 'conversion' }),
  ].map((e) => ({ key: 'a', value: Buffer.from(JSON.stringify(e)) }));
  records.push({ key: 'a', value: Buffer.from('{not json') });
  const producer = await bus.producer();

  const runSink = async (groupId: string, batch = records) => {
    // Size and time bounds out of reach: everything is flushed by stop(), in one batch.
    const registry = new Registry();
    const sink = new EventSink({ bus: bus!, store: store!, limits, log: createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent'), groupId, batchMaxRows: 1_000, batchMaxMs: 600_000, registry });
    await sink.start();
    await producer.send(TOPICS.events, batch);
    await eventually(() => (sink.totals.received === batch.length ? true : undefined), 20_000, 20).catch((err) => { throw new Error(`${String(err)}: totals ${JSON.stringify(sink.totals)}`); });
    await sink.stop();
    // The flushed batch's size as its histogram saw it, and no id left claimed once its insert landed.
    const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values;
    assert.equal((await metric('afterglow_sink_batch_rows')).find((v) => (v as { metricName?: string }).metricName === 'afterglow_sink_batch_rows_sum')?.value, batch.length);
    assert.equal((await metric('afterglow_sink_claimed_ids'))[0]?.value, 0);
    return sink.totals;
  };
  assert.deepEqual(await runSink('sink-unit-1'), { received: 7, duplicates: 1, inserted: 4, deadLettered: 2 });

  const rows = (await (await store.client.query({
    query: `SELECT event_id, kind, value, late, channel, placement, attrs FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = '${tenant}' ORDER BY event_id`,
    format: 'JSONEachRow',
  })).json<{ event_id: string; kind: string; value: number; late: number | boolean; channel: string; placement: string; attrs: string }>()).map((r) => ({ ...r, late: Number(r.late) }));
  assert.deepEqual(rows, [
    { event_id: ids[5]!, kind: 'click', value: 1, late: 0, channel: '', placement: '', attrs: '' },
    { event_id: ids[3]!, kind: 'conversion', value: 2.5, late: 0, channel: '', placement: '', attrs: '' },
    { event_id: ids[2]!, kind: 'click', value: 1, late: 0, channel: 'lobby', placement: 'lobby', attrs: '' },
    { event_id: ids[0]!, kind: 'click', value: 1, late: 1, channel: 'social', placement: '', attrs: '{"n":2}' },
  ]);

  const committed = await bus.committedOffsets('sink-unit-1', TOPICS.events);
  assert.deepEqual(committed.map((c) => [c.partition, String(c.offset)]), [[0, '7']], 'everything read is committed');

  // The same records again (a producer's retry, or a client re-sending), read by a new group: nothing new is stored.
  assert.deepEqual(await runSink('sink-unit-2'), { received: 7, duplicates: 5, inserted: 0, deadLettered: 2 });
  const count = (await (await store.client.query({ query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = '${tenant}'`, format: 'JSONEachRow' })).json<{ n: string | number }>())[0]!.n;
  assert.equal(Number(count), 4);

  // The DLQ holds the two poison records of each run, with their reason and where they came from.
  const dlq: DeliveredRecord[] = [];
  const reader = bus.consumer({ groupId: 'dlq-reader', topics: [TOPICS.eventsDlq], fromBeginning: true });
  await reader.run(async (b) => void dlq.push(...b.records));
  await eventually(() => (dlq.length === 4 ? true : undefined), 10_000, 20);
  await reader.stop();
  const header = (r: DeliveredRecord, h: string) => String(r.headers?.[h] ?? '');
  assert.deepEqual(
    dlq.map((r) => [header(r, DLQ_HEADERS.reason), header(r, DLQ_HEADERS.sourceOffset), header(r, DLQ_HEADERS.consumer)]),
    [['unknown_kind', '4', 'sink-unit-1'], ['undecodable', '6', 'sink-unit-1'], ['unknown_kind', '11', 'sink-unit-2'], ['undecodable', '13', 'sink-unit-2']],
  );

  // A batch of nothing but poison records (read by the second group, which committed 14) is still flushed: dead-lettered and committed.
  const poison = [records[4]!, records[6]!];
  assert.deepEqual(await runSink('sink-unit-2', poison), { received: 2, duplicates: 0, inserted: 0, deadLettered: 2 });
  assert.deepEqual((await bus.committedOffsets('sink-unit-2', TOPICS.events)).map((c) => String(c.offset)), ['16']);
  await producer.close();
});

test('sink: a lane flushes as soon as rows plus dead letters reach batchMaxRows, and reports what it buffers until then', async () => {
  assert.ok(store, 'the store of the test above');
  const sizeBus = await createBus({ kind: 'memory', partitions: 1, maxBacklogBytes: 1024 * 1024 });
  const registry = new Registry();
  // Only the size bound can flush here: the time bound is 10 min away and stop() comes last.
  const sink = new EventSink({ bus: sizeBus, store: store!, limits, log: createLogger('silent'), groupId: 'sink-size', batchMaxRows: 5, batchMaxMs: 600_000, lanes: 1, registry });
  await sink.start();
  const producer = await sizeBus.producer();
  const now = Date.now();
  const tenant = 'sink-size';
  const record = (kind: string) => ({ key: 'a', value: Buffer.from(JSON.stringify({ event_id: ulid(), tenant_id: tenant, campaign_id: 'c', asset_id: 'a', kind, value: 1, occurred_at: now - 1000, received_at: now })) });
  const stored = async () => Number((await (await store!.client.query({ query: `SELECT count() AS n FROM ${store!.table(TABLES.eventsRaw)} WHERE tenant_id = '${tenant}'`, format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n);
  const buffered = async () => (await registry.getSingleMetric('afterglow_sink_buffered_rows')!.get()).values[0]?.value;
  try {
    // 3 rows and 1 dead letter: 4 of 5, buffered.
    await producer.send(TOPICS.events, [record('click'), record('view'), record('nope'), record('click')]);
    await eventually(() => (sink.totals.received === 4 ? true : undefined), 10_000, 20);
    assert.equal(await buffered(), 3, 'rows waiting for a flush (dead letters are not rows)');
    assert.deepEqual([sink.totals.inserted, sink.totals.deadLettered], [0, 0]);
    // The fifth record reaches the bound (4 rows + 1 dead letter): flushed without waiting for time or stop().
    await producer.send(TOPICS.events, [record('like')]);
    await eventually(() => (sink.totals.inserted === 4 ? true : undefined), 10_000, 20);
    assert.deepEqual([sink.totals.deadLettered, await stored(), await buffered()], [1, 4, 0]);
    assert.deepEqual((await sizeBus.committedOffsets('sink-size', TOPICS.events)).map((c) => String(c.offset)), ['5']);
  } finally {
    await sink.stop();
    await producer.close();
    await sizeBus.close();
  }
});

test('sink: a buffer is flushed once its first record is batchMaxMs old on the sink clock, dead letters counted, and not a moment before', async () => {
  assert.ok(store, 'the store of the tests above');
  const timeBus = await createBus({ kind: 'memory', partitions: 1, maxBacklogBytes: 1024 * 1024 });
  let clock = 1_000_000;
  // The size bound is out of reach; the time bound is 1 s on the injected clock, which only the test moves.
  const sink = new EventSink({ bus: timeBus, store: store!, limits, log: createLogger('silent'), groupId: 'sink-time', batchMaxRows: 1_000, batchMaxMs: 1_000, lanes: 1, clock: () => clock });
  await sink.start();
  const producer = await timeBus.producer();
  const now = Date.now();
  const tenant = 'sink-time';
  const record = (kind: string) => ({ key: 'a', value: Buffer.from(JSON.stringify({ event_id: ulid(), tenant_id: tenant, campaign_id: 'c', asset_id: 'a', kind, value: 1, occurred_at: now - 1000, received_at: now })) });
  const flushed = () => [sink.totals.inserted, sink.totals.deadLettered];
  try {
    // First buffer at t0: one row and two dead letters (more dead letters than rows still count as content).
    await producer.send(TOPICS.events, [record('click'), record('nope'), record('nope')]);
    await eventually(() => (sink.totals.received === 3 ? true : undefined), 10_000, 20);
    // A second delivery 600 ms later joins the buffer without making it younger.
    clock += 600;
    await producer.send(TOPICS.events, [record('view')]);
    await eventually(() => (sink.totals.received === 4 ? true : undefined), 10_000, 20);
    clock += 399;
    await sink.flushAged();
    assert.deepEqual(flushed(), [0, 0], '999 ms after its first record: not yet');
    clock += 1;
    await sink.flushAged();
    assert.deepEqual(flushed(), [2, 2], 'at 1,000 ms: rows and dead letters flushed');

    // The next buffer's age starts at its own first record, not at the previous flush, and a
    // second delivery of rows alone (no dead letters) does not restart it either.
    clock += 5_000;
    await producer.send(TOPICS.events, [record('like')]);
    await eventually(() => (sink.totals.received === 5 ? true : undefined), 10_000, 20);
    clock += 500;
    await producer.send(TOPICS.events, [record('click')]);
    await eventually(() => (sink.totals.received === 6 ? true : undefined), 10_000, 20);
    clock += 499;
    await sink.flushAged();
    assert.deepEqual(flushed(), [2, 2], 'a fresh buffer 999 ms old waits');
    clock += 1;
    await sink.flushAged();
    assert.deepEqual(flushed(), [4, 2]);
    assert.deepEqual((await timeBus.committedOffsets('sink-time', TOPICS.events)).map((c) => String(c.offset)), ['6']);
  } finally {
    await sink.stop();
    await producer.close();
    await timeBus.close();
  }
});

/** The in-process bus, with its consumers' commits failing while `failing` says so (a broker that refuses them). */
function refusingCommits(inner: Bus, failing: () => boolean): Bus {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop !== 'consumer') return Reflect.get(target, prop, receiver);
      return (options: Parameters<Bus['consumer']>[0]) => {
        const c = target.consumer(options);
        return {
          run: c.run.bind(c),
          stop: c.stop.bind(c),
          commit: async (offsets: Parameters<typeof c.commit>[0]) => {
            if (failing()) throw new Error('commit refused (test)');
            return c.commit(offsets);
          },
        };
      };
    },
  });
}

test('sink: a commit that keeps failing is tried 5 times, then given up (the rows are stored; the next owner redelivers); 3 times while stopping', async () => {
  assert.ok(store, 'the store of the tests above');
  const inner = await createBus({ kind: 'memory', partitions: 1, maxBacklogBytes: 1024 * 1024 });
  let failing = true;
  const registry = new Registry();
  const sink = new EventSink({ bus: refusingCommits(inner, () => failing), store: store!, limits, log: createLogger('silent'), groupId: 'sink-commit', batchMaxRows: 1_000, batchMaxMs: 600_000, lanes: 1, registry });
  await sink.start();
  const producer = await inner.producer();
  const now = Date.now();
  const record = () => ({ key: 'a', value: Buffer.from(JSON.stringify({ event_id: ulid(), tenant_id: 'sink-commit', campaign_id: 'c', asset_id: 'a', kind: 'click', value: 1, occurred_at: now - 1000, received_at: now })) });
  const retries = async () => (await registry.getSingleMetric('afterglow_sink_retries_total')!.get()).values.find((v) => v.labels.step === 'commit')?.value ?? 0;
  try {
    await producer.send(TOPICS.events, [record(), record()]);
    await eventually(() => (sink.totals.received === 2 ? true : undefined), 10_000, 20);
    await sink.flush();
    assert.equal(await retries(), 4, 'five attempts: four retries, then the commit is given up');
    assert.equal(sink.totals.inserted, 2, 'the rows were stored before the commit failed');
    assert.deepEqual((await inner.committedOffsets('sink-commit', TOPICS.events)).map((c) => String(c.offset)), ['-1']);

    // While stopping, a failing commit gets three attempts.
    await producer.send(TOPICS.events, [record()]);
    await eventually(() => (sink.totals.received === 3 ? true : undefined), 10_000, 20);
    await sink.stop();
    assert.equal(await retries(), 4 + 2, 'three attempts while stopping: two more retries');
    assert.equal(sink.totals.inserted, 3);
  } finally {
    failing = false;
    await sink.stop();
    await producer.close();
    await inner.close();
  }
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_KINDS, MIGRATIONS, TABLES, TOPICS, ulid } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { sinkRig, type SinkRig } from '@afterglow/testkit/sink';
import { EventSink } from './sink.js';

/**
 * An insert that fails AFTER events_raw took the rows but before the materialized views wrote the
 * rollups (a store crash or a dropped connection mid-insert; found by test/faults' ClickHouse
 * outage run) must not lose the rollup rows: the sink's retry re-sends the same rows with the same
 * token instead of looking them up again. The failure is injected in the real engine (chDB): a
 * materialized view on events_raw that throws while a flag row exists, ordered before the rollups.
 */
let rig: SinkRig | undefined;
let sink: EventSink | undefined;
after(() => rig?.close(() => sink?.stop() ?? Promise.resolve()));

test('an insert that failed after events_raw took the rows is retried as is: rollups end up exact', async () => {
  // Views fire in the order they were created: the failing one goes right after events_raw, before
  // the rollup views of migration 1.
  const failing = (db: string) => [
    `CREATE TABLE ${db}.fail_flag (on UInt8) ENGINE = Memory`,
    `CREATE TABLE ${db}.fail_sink (x UInt8) ENGINE = Null`,
    `CREATE MATERIALIZED VIEW ${db}.fail_mv TO ${db}.fail_sink AS SELECT throwIf((SELECT count() FROM ${db}.fail_flag) > 0, 'injected failure after events_raw') AS x FROM ${db}.${TABLES.eventsRaw}`,
  ];
  rig = await sinkRig('sink_retry', {
    partitions: 2,
    migrations: MIGRATIONS.map((m) => (m.version === 1 ? { ...m, statements: (d: string) => { const [raw, ...rest] = m.statements(d); return [raw!, ...failing(d), ...rest]; } } : m)),
  });
  const { store, bus } = rig;
  const db = store.database;
  const run = (query: string) => store.client.command({ query });
  await run(`INSERT INTO ${db}.fail_flag VALUES (1)`);

  sink = new EventSink({ ...rig.base, groupId: 'sink-retry', batchMaxRows: 10_000, batchMaxMs: 50 });
  await sink.start();
  const now = Date.now();
  const n = 500;
  const producer = await bus.producer();
  await producer.send(
    TOPICS.events,
    Array.from({ length: n }, (_, i) => {
      const e = { event_id: ulid(now), tenant_id: 'retry', campaign_id: 'c', asset_id: `a${i % 7}`, kind: EVENT_KINDS[i % 8], value: 1, occurred_at: now - i, received_at: now };
      return { key: e.asset_id, value: Buffer.from(JSON.stringify(e)) };
    }),
  );
  await producer.close();

  const count = async (sql: string) => Number((await (await store.client.query({ query: sql, format: 'JSONEachRow' })).json<{ n: string | number }>())[0]!.n);
  const raw = () => count(`SELECT count() AS n FROM ${db}.${TABLES.eventsRaw} WHERE tenant_id = 'retry'`);
  const rollup = () => count(`SELECT sum(events) AS n FROM ${db}.${TABLES.assetMinute} WHERE tenant_id = 'retry'`);
  // The failing attempts left the rows in events_raw and nothing in the rollup.
  await eventually(async () => ((await raw()) === n ? true : undefined), 30_000, 50);
  assert.equal(await rollup(), 0, 'the injected failure hit between events_raw and its views');
  assert.equal(sink.totals.inserted, 0, 'no flush has succeeded yet');

  await run(`TRUNCATE TABLE ${db}.fail_flag`); // the store is healthy again
  await eventually(() => (sink!.totals.inserted === n ? true : undefined), 30_000, 50);
  assert.equal(await raw(), n, 'events_raw dropped the repeated insert (same token)');
  assert.equal(await rollup(), n, 'the rollup got the rows the failed attempt never wrote');
  assert.equal(sink.totals.duplicates, 0, 'the retry did not treat its own half-landed rows as duplicates');
});

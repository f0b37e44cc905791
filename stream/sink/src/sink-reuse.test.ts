import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { TABLES, TOPICS, encodeEvent, partitionForKey, ulid, type EngagementEvent } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { sinkRig, type SinkRig } from '@afterglow/testkit/sink';
import { EventSink } from './sink.js';

/**
 * An event id re-used for another asset goes to another partition, which may be another lane of
 * the sink; lanes flush concurrently, so both copies can pass their existence lookups before either
 * insert lands. The first lane to claim the id inserts it; the other copy is a duplicate.
 */
let rig: SinkRig | undefined;
let sink: EventSink | undefined;
after(() => rig?.close(() => sink?.stop() ?? Promise.resolve()));

test('a re-used id on two lanes flushed at once is stored once', async () => {
  rig = await sinkRig('sink_reuse', { partitions: 2 });
  const { store, bus } = rig;
  await bus.ensureTopics([{ topic: TOPICS.events, partitions: 2 }]);
  // Flushed by hand only: both lanes hold their copy when flush() runs them side by side.
  sink = new EventSink({ ...rig.base, groupId: 'sink-reuse', batchMaxRows: 10_000, batchMaxMs: 3_600_000, lanes: 2 });
  await sink.start();
  const first = 'a0';
  const other = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7'].find((id) => partitionForKey(id, 2) !== partitionForKey(first, 2))!;
  const now = Date.now();
  const x: EngagementEvent = { event_id: ulid(), tenant_id: 'reuse', campaign_id: 'c', asset_id: first, kind: 'click', value: 1, occurred_at: now, received_at: now };
  const producer = await bus.producer();
  await producer.send(TOPICS.events, [x, { ...x, asset_id: other }].map((e) => ({ key: e.asset_id, value: encodeEvent(e) })));
  await producer.close();
  await eventually(() => (sink!.totals.received === 2 ? true : undefined), 10_000, 10);
  await sink.flush();
  assert.equal(sink.totals.inserted, 1);
  assert.equal(sink.totals.duplicates, 1);
  const rs = await store.client.query({ query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = 'reuse'`, format: 'JSONEachRow' });
  assert.deepEqual(await rs.json(), [{ n: 1 }]);
});

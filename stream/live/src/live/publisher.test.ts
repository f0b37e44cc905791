import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Registry, SUBJECTS, createFanOut, createLogger } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { createMetrics } from './aggregator-shared.js';
import { Entity } from './entity-cache.js';
import { DeltaPublisher } from './publisher.js';
import { decodeDelta, type Delta } from './state.js';
import { Buckets, DIRTY_FLUSH, DIRTY_PUBLISH, KIND_INDEX, windowLayout } from './windows.js';

const layout = windowLayout(10 * 60_000);
const fanout = await createFanOut({ kind: 'memory' });
after(() => fanout.close());

test('delta publisher: one delta per changed entity, on its subject, carrying the version chain; then the queue is empty', async () => {
  const pubQueue = new Set<Entity>();
  const totals = { published: 0 };
  let now = 1_000_000;
  const publisher = new DeltaPublisher({
    fanout,
    log: createLogger('silent'),
    publishMs: 50,
    clock: () => now,
    pubQueue,
    totals,
    metrics: createMetrics(new Registry(), () => 0, () => 0),
    isStopping: () => false,
  });
  const got: Delta[] = [];
  const sub = fanout.subscribe(SUBJECTS.assetDelta('t', 'c', 'a1'), (data) => got.push(decodeDelta(data)!));
  const e = new Entity('k', 'asset', 't', 'a1', 0, new Buckets(layout));
  e.campaign = 'c';
  e.buckets.add(KIND_INDEX.click, 1, Date.now(), DIRTY_FLUSH | DIRTY_PUBLISH);
  e.n = 1;
  pubQueue.add(e);
  publisher.publish();
  assert.equal(pubQueue.size, 0);
  assert.equal(totals.published, 1);
  e.buckets.add(KIND_INDEX.click, 1, Date.now(), DIRTY_FLUSH | DIRTY_PUBLISH);
  e.n = 2;
  pubQueue.add(e);
  now += 10;
  // Within publishMs of the last publish: it waits for the timer, then goes.
  publisher.schedulePublish();
  assert.equal(totals.published, 1);
  await eventually(() => (got.length === 2 ? true : undefined), 5_000, 5);
  assert.deepEqual(got.map((d) => [d.meta.id, d.n0, d.meta.n]), [['a1', 0, 1], ['a1', 1, 2]], 'each delta names the version before it');
  assert.ok(Object.keys(got[1]!.rows).length > 0, 'the changed rows');
  sub.unsubscribe();
  publisher.cancel();
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TOPICS, createBus, createLogger, encodeEvent, partitionForKey, ulid, type EngagementEvent } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { PlacementPosteriors } from './posterior.js';

const LIMITS = { maxAgeMs: 7 * 86_400_000, maxFutureMs: 300_000, liveLateMs: 600_000, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };

test('edge posteriors from the bus: a re-sent event counts once, and the reader commits as it goes', async (t) => {
  const bus = await createBus({ kind: 'memory', partitions: 2, maxBacklogBytes: 1024 * 1024 });
  t.after(() => bus.close());
  await bus.ensureTopics([TOPICS.events, TOPICS.assetsScores].map((topic) => ({ topic, partitions: 2 })));
  const p = new PlacementPosteriors({ halfLifeMs: 3_600_000, priorStrength: 20, maxPlacements: 10, maxAssetsPerPlacement: 10 });
  const consumer = p.consume(bus, 'edge-test', LIMITS, createLogger('silent'));
  t.after(() => consumer.stop());
  const now = Date.now();
  const event = (kind: EngagementEvent['kind'], i: number): EngagementEvent => ({ event_id: ulid(), tenant_id: 't', campaign_id: 'c', asset_id: 'a', kind, value: 1, occurred_at: now - i, received_at: now, placement: 'screen-1' });
  const originals = [...Array.from({ length: 10 }, (_, i) => event('impression', i)), event('click', 11)];
  const producer = await bus.producer();
  const send = (list: EngagementEvent[]) => producer.send(TOPICS.events, list.map((e) => ({ key: e.asset_id, value: encodeEvent(e) })));
  await send(originals);
  // Three impressions and the click again, one of them claiming other content.
  await send([originals[0]!, originals[1]!, { ...originals[2]!, kind: 'like' }, originals[10]!]);
  const sentinel = event('impression', 20);
  await send([sentinel]);
  const counts = await eventually(() => {
    const c = p.get('t', 'screen-1')?.assets.get('a');
    return c && c.impressions > 10.5 ? c : undefined;
  }, 5_000, 10);
  assert.ok(Math.abs(counts.impressions - 11) < 0.01, `impressions ${counts.impressions}`);
  assert.ok(Math.abs(counts.engagements - 1) < 0.01, `engagements ${counts.engagements}`);
  // Everything read is committed: the in-process log keeps nothing for this reader.
  await eventually(() => (bus.backlog!().every((b) => (b.laggiest?.records ?? 0) === 0) ? true : undefined), 5_000, 10);
});

test('edge posteriors from the bus: an id re-used for an asset on another partition counts once, for the first, and is reported', async (t) => {
  const bus = await createBus({ kind: 'memory', partitions: 4, maxBacklogBytes: 1024 * 1024 });
  t.after(() => bus.close());
  await bus.ensureTopics([TOPICS.events, TOPICS.assetsScores].map((topic) => ({ topic, partitions: 4 })));
  const p = new PlacementPosteriors({ halfLifeMs: 3_600_000, priorStrength: 20, maxPlacements: 10, maxAssetsPerPlacement: 10 });
  const skipped: string[] = [];
  const consumer = p.consume(bus, 'edge-test-reuse', LIMITS, createLogger('silent'), (reason) => skipped.push(reason));
  t.after(() => consumer.stop());
  const other = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6'].find((id) => partitionForKey(id, 4) !== partitionForKey('a', 4))!;
  const now = Date.now();
  const first: EngagementEvent = { event_id: ulid(), tenant_id: 't', campaign_id: 'c', asset_id: 'a', kind: 'click', value: 1, occurred_at: now, received_at: now, placement: 'screen-1' };
  const producer = await bus.producer();
  const send = (list: EngagementEvent[]) => producer.send(TOPICS.events, list.map((e) => ({ key: e.asset_id, value: encodeEvent(e) })));
  await send([first]);
  await eventually(() => p.get('t', 'screen-1')?.assets.get('a'), 5_000, 10);
  await send([{ ...first, asset_id: other }]);
  await send([{ ...first, event_id: ulid(), asset_id: other, kind: 'impression' }]);
  const sentinel = await eventually(() => p.get('t', 'screen-1')?.assets.get(other), 5_000, 10);
  assert.ok(Math.abs(sentinel.impressions - 1) < 0.01 && sentinel.engagements < 0.01, `the other asset: ${JSON.stringify(sentinel)}`);
  assert.deepEqual(skipped, ['conflicting_duplicate']);
});

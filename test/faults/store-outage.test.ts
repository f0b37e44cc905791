import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceUrl } from '@afterglow/testkit/services';
import { storeOutage } from './scenarios.js';

// ClickHouse (its own stand-in process) killed for 60 s while events flow into Kafka.
test('ClickHouse unavailable for 60 s: no offsets committed, memory bounded, the sink catches up exactly', async (t) => {
  if (!serviceUrl(t, 'KAFKA_BROKERS')) return;
  const r = await storeOutage({ outageMs: Number(process.env.FAULTS_OUTAGE_MS ?? 60_000) });
  t.diagnostic(JSON.stringify(r));
  const n = r.notes as { committedMoved: boolean; maxLagDuringOutage: number; rssBeforeMB: number; maxRssDuringOutageMB: number };
  assert.equal(n.committedMoved, false, 'the sink committed offsets while the store was down');
  assert.ok(n.maxLagDuringOutage > 0, 'events kept arriving during the outage (lag grew)');
  // Bounded: the backlog stays in Kafka. The sink holds at most a few batches (5,000 rows each), so
  // its RSS may not grow by more than a fixed allowance however long the outage or large the lag.
  assert.ok(n.maxRssDuringOutageMB < n.rssBeforeMB + 150, `RSS grew from ${n.rssBeforeMB} to ${n.maxRssDuringOutageMB} MB`);
  assert.equal(r.stored, r.accepted, 'caught up: rows = accepted events');
  assert.equal(r.distinct, r.accepted);
  assert.equal(r.rollup, r.accepted);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceUrl } from '@afterglow/testkit/services';
import { sinkKills } from './scenarios.js';

// kill -9 the stream sink (its own process) at least 5 times while events flow through the intake:
// ClickHouse ends up with every accepted event exactly once, raw and rolled up. Long run: bench/faults.ts.
test('sink killed with SIGKILL mid-batch, repeatedly: ClickHouse counts equal the accepted events exactly', async (t) => {
  if (!serviceUrl(t, 'KAFKA_BROKERS')) return;
  const r = await sinkKills({ kills: Number(process.env.FAULTS_KILLS ?? 5) });
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.faults >= 5, 'at least five kills');
  assert.ok(r.accepted > 0);
  assert.equal(r.stored, r.accepted, 'rows in events_raw = accepted events');
  assert.equal(r.distinct, r.accepted, 'no event stored twice');
  assert.equal(r.rollup, r.accepted, 'the per-minute rollup counted each event once');
});

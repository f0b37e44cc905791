import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceUrl } from '@afterglow/testkit/services';
import { liveRestarts } from './scenarios.js';

// Own Redis and NATS instances (free ports), restarted under the live role; the shared ones are untouched.
test('Redis and NATS restarts: live state keeps exact counts and the WebSocket fan-out recovers', async (t) => {
  if (!serviceUrl(t, 'KAFKA_BROKERS')) return; // CI installs redis-server / nats-server with the local services
  const r = await liveRestarts();
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.stored, r.accepted, 'live REST totals (Redis) = accepted events');
  assert.equal(r.rollup, r.accepted, 'the WebSocket client saw the final totals after the NATS restart');
  assert.equal(r.live.afterNatsRestart, r.accepted);
});

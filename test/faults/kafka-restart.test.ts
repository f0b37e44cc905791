import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceUrl } from '@afterglow/testkit/services';
import { kafkaRestart } from './scenarios.js';

// Its own Kafka broker (free ports, own data dir), restarted under load; the shared one is untouched.
test('Kafka broker restarted under load: nothing accepted is lost or doubled', async (t) => {
  if (!serviceUrl(t, 'KAFKA_BROKERS')) return; // CI has Java and the Kafka jars exactly when this is set
  const r = await kafkaRestart({ restarts: Number(process.env.FAULTS_KAFKA_RESTARTS ?? 1) });
  t.diagnostic(JSON.stringify(r));
  assert.ok(r.accepted > 0);
  assert.equal(r.stored, r.accepted, 'rows in events_raw = accepted events');
  assert.equal(r.distinct, r.accepted);
  assert.equal(r.rollup, r.accepted);
});

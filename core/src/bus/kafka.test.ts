import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { eventually, serviceUrl, uniqueName } from '@afterglow/testkit/services';
import { runBusContract } from '@afterglow/testkit/contracts';
import { KafkaBus } from './kafka.js';
import type { BusRecord } from './types.js';

function kafkaBus(t: TestContext): KafkaBus | undefined {
  const brokers = serviceUrl(t, 'KAFKA_BROKERS');
  if (!brokers) return undefined;
  return new KafkaBus({ brokers: brokers.split(','), clientId: uniqueName('bus-test'), replicationFactor: 1 });
}

runBusContract('kafka', kafkaBus);

test('kafka bus: one send of 100,000 records (~20 MB) goes through despite the 1 MiB batch limit', async (t) => {
  const bus = kafkaBus(t);
  if (!bus) return;
  t.after(() => bus.close());
  const topic = uniqueName('bus-bulk');
  await bus.ensureTopics([{ topic, partitions: 4 }]);
  const producer = await bus.producer();
  const records: BusRecord[] = Array.from({ length: 100_000 }, (_, i) => ({
    key: `device-${i % 1_000}`,
    value: Buffer.alloc(200, i % 256),
    headers: { 'content-type': 'application/x-msgpack' },
  }));
  await producer.send(topic, records.slice(0, 10)); // warm up metadata and connections
  const started = performance.now();
  await producer.send(topic, records);
  const seconds = (performance.now() - started) / 1_000;
  t.diagnostic(`produced 100,000 x 200 B in ${(seconds * 1_000).toFixed(0)} ms: ${Math.round(100_000 / seconds)} records/s`);
  const ends = await bus.endOffsets(topic);
  assert.equal(ends.reduce((sum, e) => sum + Number(e.offset), 0), 100_010);
});

test('kafka bus: a handler slower than the session timeout keeps its member in the group', async (t) => {
  const bus = kafkaBus(t);
  if (!bus) return;
  t.after(() => bus.close());
  const topic = uniqueName('bus-slow');
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  const producer = await bus.producer();
  await producer.send(topic, [{ key: 'k', value: Buffer.from('first') }]);
  let assignments = 0;
  const delivered: string[] = [];
  const groupId = uniqueName('group');
  const consumer = bus.consumer({ groupId, topics: [topic], onAssign: () => assignments++ });
  await consumer.run(async (batch) => {
    delivered.push(...batch.records.map((r) => r.value.toString()));
    // Longer than the 10 s session timeout: only the heartbeats sent meanwhile keep the member in.
    if (delivered.length === 1) await new Promise((r) => setTimeout(r, 11_000));
    await consumer.commit([{ topic, partition: 0, offset: String(Number(batch.records.at(-1)!.offset) + 1) }]);
  });
  await eventually(() => (delivered.length === 1 ? true : undefined));
  await producer.send(topic, [{ key: 'k', value: Buffer.from('second') }]);
  await eventually(() => (delivered.length >= 2 ? true : undefined), 30_000);
  assert.deepEqual(delivered, ['first', 'second'], 'no redelivery');
  assert.equal(assignments, 1, 'no rebalance');
  await eventually(async () => ((await bus.committedOffsets(groupId, topic))[0]?.offset === '2' ? true : undefined));
});

test('kafka bus: ensureTopics is idempotent and producing to a missing topic fails with BusUnavailableError', async (t) => {
  const bus = kafkaBus(t);
  if (!bus) return;
  t.after(() => bus.close());
  const topic = uniqueName('bus-topics');
  await bus.ensureTopics([{ topic, partitions: 3 }]);
  await bus.ensureTopics([{ topic, partitions: 3 }]);
  assert.equal((await bus.endOffsets(topic)).length, 3);
  const producer = await bus.producer();
  await assert.rejects(
    producer.send(uniqueName('bus-missing'), [{ key: 'k', value: Buffer.from('v') }]),
    (err: Error) => err.name === 'BusUnavailableError',
  );
});

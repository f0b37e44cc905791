import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Partitioners } from 'kafkajs';
import { BackpressureError, BusUnavailableError } from '../errors.js';
import { eventually } from '@afterglow/testkit/services';
import { Member, runBusContract } from '@afterglow/testkit/contracts';
import { MemoryBus } from './memory.js';
import { partitionForKey } from './partitioner.js';
import type { BusRecord, DeliveredBatch } from './types.js';

runBusContract('memory', () => new MemoryBus({ partitions: 4, maxBacklogBytes: 64 * 1024 * 1024 }));

test('partitionForKey agrees with kafkajs DefaultPartitioner (Java client murmur2)', () => {
  const kafkajs = Partitioners.DefaultPartitioner();
  for (let i = 0; i < 5_000; i++) {
    // ASCII, multi-byte UTF-8 and every length mod 4.
    const key = i % 2 ? randomBytes(i % 41).toString('base64') : `clé-${i}-😀`.slice(0, 1 + (i % 17));
    for (const partitions of [1, 3, 6, 12, 100]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        partitionErrorCode: 0,
      }));
      const expected = kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } });
      assert.equal(partitionForKey(key, partitions), expected, `key ${JSON.stringify(key)} over ${partitions}`);
    }
  }
});

test('memory bus: send is refused with BackpressureError over the backlog bound, and accepted again once consumed', async (t) => {
  const bus = new MemoryBus({ partitions: 2, maxBacklogBytes: 100_000 });
  t.after(() => bus.close());
  const producer = await bus.producer();
  const batch = (n: number): BusRecord[] => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(1_000) }));

  let accepted = 0;
  let refusal: unknown;
  for (let i = 0; i < 200 && !refusal; i++) {
    try {
      await producer.send('events', batch(10));
      accepted += 10;
    } catch (err) {
      refusal = err;
    }
  }
  assert.ok(refusal instanceof BackpressureError, 'the bus pushes back instead of growing');
  assert.equal(refusal.code, 'backpressure');
  assert.ok(refusal.retryAfterMs >= 100 && refusal.retryAfterMs <= 500);
  assert.ok(accepted >= 80 && accepted <= 100, `about 100 KB accepted (${accepted} records)`);
  await assert.rejects(producer.send('events', batch(10)), BackpressureError, 'still refused while nothing is consumed');
  await producer.send('other-topic', batch(10)); // the bound is per topic

  const member = new Member(bus, 'sink', ['events']);
  await member.start();
  await eventually(() => (member.records.length === accepted ? true : undefined));
  await producer.send('events', batch(10));
  await eventually(() => (member.records.length === accepted + 10 ? true : undefined));
});

test('memory bus: a refusal names the group holding the backlog; an ephemeral group stops holding it once it stops', async (t) => {
  const bus = new MemoryBus({ partitions: 2, maxBacklogBytes: 50_000 });
  t.after(() => bus.close());
  const producer = await bus.producer();
  const batch = (n: number): BusRecord[] => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: Buffer.alloc(1_000) }));

  // One group keeps up and commits; a per-process group reads but never commits.
  const keeper = new Member(bus, 'keeper', ['events']);
  await keeper.start();
  const reader = bus.consumer({ groupId: 'reader-of-one-process', topics: ['events'], ephemeral: true });
  let read = 0;
  await reader.run(async (b) => {
    read += b.records.length;
  });
  let refusal: unknown;
  let sent = 0;
  for (let i = 0; i < 100 && !refusal; i++) {
    try {
      await producer.send('events', batch(5));
      sent += 5;
    } catch (err) {
      refusal = err;
    }
  }
  assert.ok(refusal instanceof BackpressureError, 'the reader that never commits pins the backlog');
  assert.match(refusal.message, /furthest behind: group reader-of-one-process, \d+ records/);
  await eventually(() => (read === sent && keeper.records.length === sent ? true : undefined));
  const [pinned] = bus.backlog().filter((b) => b.topic === 'events');
  assert.equal(pinned?.laggiest?.group, 'reader-of-one-process');
  assert.equal(pinned?.laggiest?.records, sent, 'everything sent is uncommitted by the reader');

  await reader.stop();
  const [after] = bus.backlog().filter((b) => b.topic === 'events');
  assert.equal(after?.retainedBytes, 0, 'the committing group has consumed everything, and the ephemeral one is gone');
  await producer.send('events', batch(5)); // accepted again
});

test('memory bus: retention drops committed records but keeps absolute offsets', async (t) => {
  const bus = new MemoryBus({ partitions: 1, maxBacklogBytes: 1_000_000 });
  t.after(() => bus.close());
  const producer = await bus.producer();
  const send = (from: number, n: number) =>
    producer.send('log', Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`v${from + i}`) })));

  const first = new Member(bus, 'first', ['log'], { commit: false });
  await first.start();
  await send(0, 3_000);
  await eventually(() => (first.records.length === 3_000 ? true : undefined));
  // The only group commits up to 2,000: what lies below may go, and a group created now starts there.
  await first.consumer.commit([{ topic: 'log', partition: 0, offset: '2000' }]);
  const late = new Member(bus, 'late', ['log'], { commit: false });
  await late.start();
  await eventually(() => (late.records.length === 1_000 ? true : undefined));
  assert.equal(late.records[0]?.offset, '2000', 'dropped records are gone, offsets are not renumbered');

  await send(3_000, 2);
  await eventually(() => (late.records.length === 1_002 ? true : undefined));
  assert.deepEqual(late.records.slice(-2).map((r) => [r.offset, r.value.toString()]), [['3000', 'v3000'], ['3001', 'v3001']]);
  assert.deepEqual(await bus.endOffsets('log'), [{ topic: 'log', partition: 0, offset: '3002' }]);
});

test('memory bus: a slow partition does not hold up the others', async (t) => {
  const bus = new MemoryBus({ partitions: 2, maxBacklogBytes: 1_000_000 });
  t.after(() => bus.close());
  await bus.ensureTopics([{ topic: 't', partitions: 2 }]);
  let release!: () => void;
  const blocked = new Promise<void>((r) => (release = r));
  const delivered: number[] = [];
  const consumer = bus.consumer({ groupId: 'g', topics: ['t'] });
  await consumer.run(async (batch: DeliveredBatch) => {
    delivered.push(...batch.records.map(() => batch.partition));
    if (batch.partition === partitionForKey('slow', 2)) await blocked;
  });
  const producer = await bus.producer();
  const fastKey = ['a', 'b', 'c', 'd'].find((k) => partitionForKey(k, 2) !== partitionForKey('slow', 2))!;
  await producer.send('t', [{ key: 'slow', value: Buffer.from('1') }]);
  await producer.send('t', [{ key: fastKey, value: Buffer.from('2') }]);
  await producer.send('t', [{ key: fastKey, value: Buffer.from('3') }]);
  await eventually(() => (delivered.filter((p) => p === partitionForKey(fastKey, 2)).length === 2 ? true : undefined), 2_000);
  release();
});

test("memory bus: a partition changes owner only once the old owner's in-flight batch is done", async (t) => {
  const bus = new MemoryBus({ partitions: 2, maxBacklogBytes: 1_000_000 });
  t.after(() => bus.close());
  await bus.ensureTopics([{ topic: 't', partitions: 2 }]);
  const producer = await bus.producer();
  await producer.send('t', [
    { key: null, value: Buffer.from('p0') },
    { key: null, value: Buffer.from('p1') },
  ]);
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const a = bus.consumer({ groupId: 'g', topics: ['t'] });
  await a.run(async (batch) => {
    events.push(`a${batch.partition}`);
    if (batch.partition === 1) await gate; // never committed: the next owner gets it again
    events.push(`a${batch.partition}-done`);
  });
  await eventually(() => (events.includes('a1') ? true : undefined));

  // B joins: round-robin gives it partition 1, which A is still handling.
  const b = bus.consumer({ groupId: 'g', topics: ['t'] });
  let joined = false;
  const joining = b
    .run(async (batch) => {
      events.push(`b${batch.partition}`);
    })
    .then(() => (joined = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(joined, false, 'the rebalance waits for the in-flight batch');
  assert.ok(!events.includes('b1'));
  release();
  await joining;
  await eventually(() => (events.includes('b1') ? true : undefined));
  assert.ok(events.indexOf('a1-done') < events.indexOf('b1'), events.join(' '));
});

test('memory bus: batches are bounded and delivered in order', async (t) => {
  const bus = new MemoryBus({ partitions: 1, maxBacklogBytes: 512 * 1024 * 1024 });
  t.after(() => bus.close());
  const producer = await bus.producer();
  await producer.send('big', Array.from({ length: 25_000 }, (_, i) => ({ key: null, value: Buffer.from(String(i)) })));
  await producer.send('big', Array.from({ length: 3 }, () => ({ key: null, value: Buffer.alloc(4 * 1024 * 1024 - 1_000) })));
  const sizes: number[] = [];
  let next = 0;
  const consumer = bus.consumer({ groupId: 'g', topics: ['big'] });
  await consumer.run(async (batch) => {
    sizes.push(batch.records.length);
    for (const r of batch.records) assert.equal(r.offset, String(next++));
  });
  await eventually(() => (next === 25_003 ? true : undefined));
  // 10,000-record cap, then the 4 MiB cap lets one ~4 MiB record per batch.
  assert.deepEqual(sizes, [10_000, 10_000, 5_000, 1, 1, 1]);
});

test('memory bus: close() stops consumers and refuses sends', async () => {
  const bus = new MemoryBus({ partitions: 2, maxBacklogBytes: 1_000_000 });
  const producer = await bus.producer();
  let calls = 0;
  const consumer = bus.consumer({ groupId: 'g', topics: ['t'] });
  await consumer.run(async () => {
    calls++;
  });
  await producer.send('t', [{ key: 'a', value: Buffer.from('x') }]);
  await eventually(() => (calls === 1 ? true : undefined));
  await bus.close();
  await assert.rejects(producer.send('t', [{ key: 'a', value: Buffer.from('y') }]), BusUnavailableError);
  await assert.rejects(bus.consumer({ groupId: 'h', topics: ['t'] }).run(async () => {}), BusUnavailableError);
  await consumer.stop(); // idempotent after close
  assert.equal(calls, 1);
});

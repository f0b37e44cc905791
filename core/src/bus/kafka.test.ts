import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { eventually, serviceUrl, uniqueName } from '@afterglow/testkit/services';
import { runBusContract } from '@afterglow/testkit/contracts';
import type { TracingChannel } from 'node:diagnostics_channel';
import { Consumer, consumerFetchesChannel, consumerGroupChannel } from '@platformatic/kafka';
import { KafkaBus } from './kafka.js';
import type { BusConsumer, BusProducer, BusRecord, DeliveredBatch } from './types.js';

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

/** What the client's diagnostics channels carry: the client that runs the operation and its name. */
interface OperationContext {
  client?: { clientId?: string };
  operation?: string;
}

/** Calls `fn` once, when the client named `clientId` starts `operation` (through the client's diagnostics channel). */
function onOperation(channel: TracingChannel<unknown, OperationContext>, clientId: string, operation: string, fn: () => void): void {
  const ignore = () => undefined;
  const subscribers = {
    end: ignore,
    asyncStart: ignore,
    asyncEnd: ignore,
    error: ignore,
    start(context: OperationContext) {
      if (context.client?.clientId !== clientId || context.operation !== operation) return;
      // Unsubscribed after this publish returns, and the test acts outside the client's call stack.
      queueMicrotask(() => channel.unsubscribe(subscribers));
      setImmediate(fn);
    },
  };
  channel.subscribe(subscribers);
}

/** Resolves with `promise`, or fails when it hangs: a loose bound against a hang, not a timing assert. */
async function withinHangGuard<T>(promise: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms / 1_000} s`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** Timers and sockets keeping the process alive, by kind (what a stopped consumer must leave none of). */
function liveHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind === 'Timeout' || kind.startsWith('TCP')) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

async function assertNoHandlesLeftSince(before: Map<string, number>): Promise<void> {
  await eventually(() => {
    const leaked = [...liveHandles()].filter(([kind, n]) => n > (before.get(kind) ?? 0));
    if (leaked.length > 0) throw new Error(`still alive: ${leaked.map(([kind, n]) => `${kind} x${n - (before.get(kind) ?? 0)}`).join(', ')}`);
    return true;
  });
}

interface Member {
  bus: KafkaBus;
  clientId: string;
  consumer: BusConsumer;
  /** Partitions of the last assignment, and how many assignments there were. */
  assigned: number;
  assignments: number;
}

/**
 * Two members of one group, each with its own bus (client id), both started and holding partitions.
 * Everything they opened is closed again when the test ends; then nothing may be left alive.
 */
async function twoMembers(
  t: TestContext,
  options: { partitions?: number; handler?: (name: string) => (batch: DeliveredBatch) => Promise<void> } = {},
): Promise<{ a: Member; b: Member; topic: string; groupId: string; producer: BusProducer; member: (name: string) => Member } | undefined> {
  const brokers = serviceUrl(t, 'KAFKA_BROKERS');
  if (!brokers) return undefined;
  const handlesBefore = liveHandles();
  const partitions = options.partitions ?? 4;
  const topic = uniqueName('bus-stop');
  const groupId = uniqueName('group-stop');
  const members = new Map<string, Member>();
  const member = (name: string): Member => {
    const known = members.get(name);
    if (known) return known;
    const clientId = uniqueName(`bus-stop-${name}`);
    const bus = new KafkaBus({ brokers: brokers.split(','), clientId, replicationFactor: 1 });
    const onAssign = (assigned: unknown[]) => {
      m.assigned = assigned.length;
      m.assignments++;
    };
    const m: Member = { bus, clientId, consumer: bus.consumer({ groupId, topics: [topic], onAssign }), assigned: 0, assignments: 0 };
    members.set(name, m);
    return m;
  };
  t.after(async () => {
    await Promise.all([...members.values()].map((m) => m.bus.close()));
    await assertNoHandlesLeftSince(handlesBefore);
  });
  const handler = options.handler ?? (() => async () => undefined);
  const a = member('a');
  await a.bus.ensureTopics([{ topic, partitions }]);
  const producer = await a.bus.producer();
  await a.consumer.run(handler('a'));
  const b = member('b');
  await b.consumer.run(handler('b'));
  await eventually(() => (a.assigned > 0 && b.assigned > 0 && a.assigned + b.assigned === partitions ? true : undefined), 30_000);
  return { a, b, topic, groupId, producer, member };
}

test('kafka bus: a member stopped while its group rebalances after another member left (stop during the rejoin) stops', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  let bStopped: Promise<void> | undefined;
  let assignmentsAtStop = 0;
  onOperation(consumerGroupChannel, s.b.clientId, 'joinGroup', () => {
    assignmentsAtStop = s.b.assignments;
    bStopped = s.b.consumer.stop();
  });
  await withinHangGuard(s.a.consumer.stop(), "A's stop()");
  await eventually(() => (bStopped ? true : undefined));
  await withinHangGuard(bStopped!, "B's stop() during its rejoin");
  assert.equal(s.b.assignments, assignmentsAtStop, 'a stopping member takes no new assignment from the rejoin it cut short');
});

test('kafka bus: a member stopped while its rejoin is held up by a member slow to rejoin stops without waiting for it', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  // A third member that heartbeats (and so learns of a rebalance) only once a minute: a rebalance
  // waits for it, and B's rejoin is held at the coordinator, with B's LeaveGroup queued behind it.
  const slow = new Consumer({
    clientId: uniqueName('bus-stop-slow'),
    bootstrapBrokers: process.env.KAFKA_BROKERS!.split(','),
    groupId: s.groupId,
    sessionTimeout: 60_000,
    rebalanceTimeout: 60_000,
    heartbeatInterval: 55_000,
    autocommit: false,
  });
  try {
    slow.topics.trackAll(s.topic);
    const [aBefore, bBefore] = [s.a.assignments, s.b.assignments];
    await withinHangGuard(slow.joinGroup({}), "the slow member's join");
    // A and B done with that rebalance too (the next join B starts is the one A's leave causes).
    await eventually(() => (s.a.assignments > aBefore && s.b.assignments > bBefore ? true : undefined), 30_000);
    let bStopped: Promise<void> | undefined;
    onOperation(consumerGroupChannel, s.b.clientId, 'joinGroup', () => (bStopped = s.b.consumer.stop()));
    await withinHangGuard(s.a.consumer.stop(), "A's stop()");
    await eventually(() => (bStopped ? true : undefined));
    await withinHangGuard(bStopped!, "B's stop() while the rebalance waits for the slow member");
  } finally {
    await slow.close();
  }
});

test('kafka bus: a member stopped while it waits for its group sync (a third member joined) stops', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  let bStopped: Promise<void> | undefined;
  let assignmentsAtStop = 0;
  onOperation(consumerGroupChannel, s.b.clientId, 'syncGroup', () => {
    assignmentsAtStop = s.b.assignments;
    bStopped = s.b.consumer.stop();
  });
  const c = s.member('c');
  const cStarted = c.consumer.run(async () => undefined);
  await eventually(() => (bStopped ? true : undefined), 30_000);
  await withinHangGuard(bStopped!, "B's stop() during its sync");
  assert.equal(s.b.assignments, assignmentsAtStop, 'a stopping member takes no new assignment from the sync it cut short');
  await withinHangGuard(cStarted, "C's start");
  await withinHangGuard(Promise.all([s.a.consumer.stop(), c.consumer.stop()]), "A's and C's stop()");
});

test('kafka bus: a member stopped during its first join (run() not yet resolved) stops, and run() settles', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  const c = s.member('c');
  let cStopped: Promise<void> | undefined;
  onOperation(consumerGroupChannel, c.clientId, 'joinGroup', () => (cStopped = c.consumer.stop()));
  const cStarted = c.consumer.run(async () => undefined).then(
    () => 'resolved',
    (err: Error) => err.name,
  );
  await eventually(() => (cStopped ? true : undefined));
  await withinHangGuard(cStopped!, "C's stop() during its first join");
  assert.equal(await withinHangGuard(cStarted, "C's run()"), 'resolved', 'a stop is not a failure to start');
  await withinHangGuard(Promise.all([s.a.consumer.stop(), s.b.consumer.stop()]), "A's and B's stop()");
});

test('kafka bus: both members stopped one right after the other (the second while the first one leaves) stop', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  const aStopped = s.a.consumer.stop();
  await withinHangGuard(s.b.consumer.stop(), "B's stop()");
  await withinHangGuard(aStopped, "A's stop()");
});

test('kafka bus: a member stopped while a fetch is in flight stops', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  let bStopped: Promise<void> | undefined;
  onOperation(consumerFetchesChannel, s.b.clientId, 'fetch', () => (bStopped = s.b.consumer.stop()));
  await eventually(() => (bStopped ? true : undefined));
  await withinHangGuard(bStopped!, "B's stop() during a fetch");
  await withinHangGuard(s.a.consumer.stop(), "A's stop()");
});

test('kafka bus: stop() waits for the running handler, and the commit it makes after its write lands', async (t) => {
  const held = new Map<string, { batch: DeliveredBatch; release: () => void }>();
  const s = await twoMembers(t, {
    handler: (name) => async (batch) => {
      if (name === 'b' && !held.has(name)) await new Promise<void>((release) => held.set(name, { batch, release }));
      const next = String(Number(batch.records.at(-1)!.offset) + 1);
      await s!.member(name).consumer.commit([{ topic: batch.topic, partition: batch.partition, offset: next }]);
    },
  });
  if (!s) return;
  await s.producer.send(s.topic, Array.from({ length: 16 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })));
  const { batch, release } = await eventually(() => held.get('b'));
  const events: string[] = [];
  const bStopped = s.b.consumer.stop().then(() => events.push('stopped'));
  // The stop has begun (the fetch loop is told at once); the handler's durable write finishes now.
  await new Promise((r) => setImmediate(r));
  events.push('handler released');
  release();
  await withinHangGuard(bStopped, "B's stop() with a handler running");
  assert.deepEqual(events, ['handler released', 'stopped'], 'stop() resolved only after the handler');
  const committed = await s.a.bus.committedOffsets(s.groupId, s.topic);
  assert.equal(committed[batch.partition]!.offset, String(Number(batch.records.at(-1)!.offset) + 1), "the stopping member's last commit is kept");
});

test('kafka bus: a member stopped with a handler running while the group rebalances stops once the handler is done', async (t) => {
  const held = new Map<string, () => void>();
  const s = await twoMembers(t, {
    handler: (name) => async (batch) => {
      if (name === 'b' && !held.has(name)) await new Promise<void>((release) => held.set(name, release));
      const next = String(Number(batch.records.at(-1)!.offset) + 1);
      await s!.member(name).consumer.commit([{ topic: batch.topic, partition: batch.partition, offset: next }]);
    },
  });
  if (!s) return;
  await s.producer.send(s.topic, Array.from({ length: 16 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })));
  const release = await eventually(() => held.get('b'));
  let handlerDone = false;
  onOperation(consumerGroupChannel, s.b.clientId, 'joinGroup', () => {
    handlerDone = true;
    release();
  });
  const assignmentsAtStop = s.b.assignments;
  const bStopped = s.b.consumer.stop().then(() => handlerDone);
  // A leaves: B's heartbeat learns of the rebalance and B rejoins, which releases its handler; its
  // commit is then refused for the rebalance, and the stopping member must not join again to retry it.
  await withinHangGuard(s.a.consumer.stop(), "A's stop()");
  setTimeout(release, 15_000).unref();
  assert.equal(await withinHangGuard(bStopped, "B's stop() with a handler running during a rebalance"), true, 'the handler finished first');
  assert.equal(s.b.assignments, assignmentsAtStop, 'a stopping member takes no new assignment');
});

test('kafka bus: stop() called twice at once resolves both, neither before the member left', async (t) => {
  const s = await twoMembers(t);
  if (!s) return;
  const order: string[] = [];
  const first = s.b.consumer.stop().then(() => order.push('first'));
  const second = s.b.consumer.stop().then(() => order.push('second'));
  await withinHangGuard(Promise.all([first, second]), "B's two stop() calls");
  assert.deepEqual(order, ['first', 'second']);
  // B left the group: A is given every partition.
  await eventually(() => (s.a.assigned === 4 ? true : undefined), 30_000);
  await withinHangGuard(s.a.consumer.stop(), "A's stop()");
});

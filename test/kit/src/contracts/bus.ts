import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { partitionForKey, type Bus, type BusConsumer, type BusRecord, type DeliveredBatch, type DeliveredRecord, type PartitionOffset } from '@afterglow/core';
import { eventually, uniqueName } from '../services.js';

/**
 * The behaviour every Bus adapter must show, run by memory.test.ts and kafka.test.ts alike.
 * `makeBus` returns undefined when the adapter cannot run here (the test is then skipped).
 */
export function runBusContract(adapter: string, makeBus: (t: TestContext) => Bus | undefined): void {
  /** A fresh bus closed after the test, plus a topic and group no earlier run used. */
  async function setup(t: TestContext, partitions: number) {
    const bus = makeBus(t);
    if (!bus) return undefined;
    t.after(() => bus.close());
    const topic = uniqueName('bus-contract');
    await bus.ensureTopics([{ topic, partitions }]);
    const producer = await bus.producer();
    return { bus, topic, producer, groupId: uniqueName('group') };
  }

  test(`${adapter} bus: keyed records keep their order on the partition Kafka's partitioner picks`, async (t) => {
    const s = await setup(t, 4);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    const keys = Array.from({ length: 50 }, (_, i) => `user-${i}`);
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      const records: BusRecord[] = [];
      for (let seq = 0; seq < 4; seq++) for (const key of keys) records.push(record(key, `${key}|${round * 4 + seq}`));
      for (let i = 0; i < 20; i++) records.push(record(null, `none|${round}-${i}`));
      await s.producer.send(s.topic, records);
      sent += records.length;
    }
    const member = new Member(s.bus, s.groupId, [s.topic]);
    await member.start();
    await eventually(() => (member.records.length >= sent ? true : undefined), 30_000);

    assert.equal(member.records.length, sent, 'each record delivered once');
    const lastSeq = new Map<string, number>();
    const lastOffset = new Map<number, number>();
    const nullKeyPartitions = new Set<number>();
    for (const r of member.records) {
      assert.ok(Number(r.offset) > (lastOffset.get(r.partition) ?? -1), 'offsets increase within a partition');
      lastOffset.set(r.partition, Number(r.offset));
      const [key, seq] = r.value.toString().split('|') as [string, string];
      if (r.key === null) {
        nullKeyPartitions.add(r.partition);
        continue;
      }
      assert.equal(r.key, key);
      assert.equal(r.partition, partitionForKey(key, 4), `key ${key} on its murmur2 partition`);
      assert.ok(Number(seq) > (lastSeq.get(key) ?? -1), `key ${key} delivered in order`);
      lastSeq.set(key, Number(seq));
    }
    assert.equal(lastSeq.size, keys.length);
    assert.ok(nullKeyPartitions.size > 1, 'records without a key are spread over partitions');
  });

  test(`${adapter} bus: a two-member group consumes 5,000 records exactly once`, async (t) => {
    const s = await setup(t, 4);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    const a = new Member(s.bus, s.groupId, [s.topic]);
    const b = new Member(s.bus, s.groupId, [s.topic]);
    await a.start();
    await b.start();
    await waitForSplit([a, b], 4);

    const values = Array.from({ length: 5_000 }, (_, i) => `v${i}`);
    await s.producer.send(s.topic, values.map((v, i) => record(`k${i % 97}`, v)));
    await eventually(() => (a.records.length + b.records.length >= values.length ? true : undefined), 30_000);
    await settle(s.bus);

    const seen = [...a.records, ...b.records].map((r) => r.value.toString());
    assert.equal(seen.length, values.length, 'no record delivered twice');
    assert.deepEqual(new Set(seen), new Set(values), 'every record delivered');
    assert.ok(a.records.length > 0 && b.records.length > 0, 'both members consumed');
    await eventually(async () => {
      const committed = sumOffsets(await s.bus.committedOffsets(s.groupId, s.topic));
      return committed === values.length ? true : undefined;
    });
    assert.equal(sumOffsets(await s.bus.endOffsets(s.topic)), values.length);
  });

  test(`${adapter} bus: a new member resumes at the group's commit and gets the uncommitted records again`, async (t) => {
    const s = await setup(t, 2);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    await s.producer.send(
      s.topic,
      Array.from({ length: 100 }, (_, i) => record(`k${i}`, `v${i}`)),
    );
    const first = new Member(s.bus, s.groupId, [s.topic], { commit: false });
    await first.start();
    await eventually(() => (first.records.length >= 100 ? true : undefined), 30_000);

    // Commit about half of each partition, then "crash" (stop without committing the rest).
    const ends = await s.bus.endOffsets(s.topic);
    const commits: PartitionOffset[] = ends.map((e) => ({ ...e, offset: String(Math.floor(Number(e.offset) / 2)) }));
    await first.consumer.commit(commits);
    await first.consumer.stop();
    assert.deepEqual(sortOffsets(await s.bus.committedOffsets(s.groupId, s.topic)), sortOffsets(commits));

    const expected = first.records.filter((r) => Number(r.offset) >= Number(commits[r.partition]!.offset));
    const second = new Member(s.bus, s.groupId, [s.topic]);
    await second.start();
    await eventually(() => (second.records.length >= expected.length ? true : undefined), 30_000);
    await settle(s.bus);
    assert.deepEqual(
      second.records.map(identity).sort(),
      expected.map(identity).sort(),
      'exactly the uncommitted records are delivered again',
    );
  });

  test(`${adapter} bus: a stopped member's partitions move to the other member with no loss`, async (t) => {
    const s = await setup(t, 4);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    const a = new Member(s.bus, s.groupId, [s.topic]);
    const b = new Member(s.bus, s.groupId, [s.topic]);
    await a.start();
    await b.start();
    await waitForSplit([a, b], 4);

    const round = (name: string, n: number) => Array.from({ length: n }, (_, i) => record(`k${i % 31}`, `${name}${i}`));
    const all = new Set<string>();
    const send = async (records: BusRecord[]) => {
      for (const r of records) all.add(r.value.toString());
      await s.producer.send(s.topic, records);
    };
    const union = () => new Set([...a.records, ...b.records].map((r) => r.value.toString()));

    await send(round('one-', 1_000));
    await eventually(() => (union().size === all.size ? true : undefined), 30_000);

    // A keeps consuming but stops committing, then leaves: its last records must be redelivered to B.
    a.commit = false;
    const aBefore = a.records.length;
    await send(round('two-', 1_000));
    await eventually(() => (union().size === all.size ? true : undefined), 30_000);
    const uncommitted = a.records.slice(aBefore).map((r) => r.value.toString());
    assert.ok(uncommitted.length > 0, 'A received records it did not commit');
    await a.consumer.stop();
    const aStopped = a.records.length;
    await eventually(() => (b.assignment.length === 4 ? true : undefined), 30_000);

    await send(round('three-', 1_000));
    const bValues = () => new Set(b.records.map((r) => r.value.toString()));
    await eventually(() => (uncommitted.every((v) => bValues().has(v)) && union().size === all.size ? true : undefined), 30_000);
    assert.deepEqual(union(), all, 'nothing lost');
    assert.equal(a.records.length, aStopped, 'a stopped member is given nothing more');
  });

  test(`${adapter} bus: a batch in flight at stop() finishes and its commit is kept; a second stop() waits for the first`, async (t) => {
    const s = await setup(t, 1);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    await s.producer.send(s.topic, Array.from({ length: 5 }, (_, i) => record('k', `v${i}`)));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const inFlight = new Promise<void>((r) => (started = r));
    const consumer = s.bus.consumer({ groupId: s.groupId, topics: [s.topic] });
    await consumer.run(async (batch) => {
      started();
      await gate;
      await consumer.commit([{ topic: batch.topic, partition: 0, offset: String(Number(batch.records.at(-1)!.offset) + 1) }]);
    });
    await inFlight;
    const order: string[] = [];
    const first = consumer.stop().then(() => order.push('first'));
    const second = consumer.stop().then(() => order.push('second'));
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first', 'second']);
    assert.deepEqual(await s.bus.committedOffsets(s.groupId, s.topic), offsets(s.topic, ['5']), 'the in-flight batch committed');
  });

  test(`${adapter} bus: a failing handler gets the records again from the committed offset`, async (t) => {
    const s = await setup(t, 1);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    await s.producer.send(s.topic, Array.from({ length: 10 }, (_, i) => record('same-key', `v${i}`)));
    const calls: string[][] = [];
    let failed = false;
    const consumer: BusConsumer = s.bus.consumer({ groupId: s.groupId, topics: [s.topic] });
    await consumer.run(async (batch) => {
      calls.push(batch.records.map((r) => r.offset));
      const first = Number(batch.records[0]!.offset);
      if (!failed) {
        failed = true;
        // Commit the first half of the batch, then fail: the second half must come back.
        await consumer.commit([{ topic: s.topic, partition: 0, offset: String(first + Math.floor(batch.records.length / 2)) }]);
        throw new Error('simulated sink failure');
      }
      await consumer.commit([{ topic: s.topic, partition: 0, offset: String(Number(batch.records.at(-1)!.offset) + 1) }]);
    });
    await eventually(() => (calls.flat().includes('9') && calls.length >= 2 ? true : undefined), 30_000);

    const firstCall = calls[0]!;
    const committed = Number(firstCall[0]) + Math.floor(firstCall.length / 2);
    assert.equal(calls[1]![0], String(committed), 'redelivery starts at the committed offset');
    const delivered = calls.flat().map(Number);
    for (let offset = 0; offset < 10; offset++) {
      const times = delivered.filter((o) => o === offset).length;
      assert.equal(times, offset < committed || !firstCall.includes(String(offset)) ? 1 : 2, `offset ${offset}`);
    }
  });

  test(`${adapter} bus: keys, values, headers and timestamps round-trip`, async (t) => {
    const s = await setup(t, 2);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const before = Date.now();
    await s.producer.send(s.topic, [
      { key: 'with-headers', value: binary, headers: { 'x-trace': 'abc-123', 'ünïcødé': 'vålüe ✓', empty: '' } },
      { key: null, value: Buffer.from('no key') },
      { key: 'plain', value: Buffer.from('{"json":true}') },
    ]);
    const after = Date.now();
    const member = new Member(s.bus, s.groupId, [s.topic]);
    await member.start();
    await eventually(() => (member.records.length >= 3 ? true : undefined), 30_000);

    const byValue = new Map(member.records.map((r) => [r.value.toString('hex'), r]));
    const withHeaders = byValue.get(binary.toString('hex'));
    assert.ok(withHeaders);
    assert.ok(Buffer.isBuffer(withHeaders.value));
    assert.equal(withHeaders.key, 'with-headers');
    assert.deepEqual(withHeaders.headers, { 'x-trace': 'abc-123', 'ünïcødé': 'vålüe ✓', empty: '' });
    assert.equal(withHeaders.topic, s.topic);
    assert.ok(withHeaders.timestamp >= before - 1_000 && withHeaders.timestamp <= after + 1_000, 'timestamp is the send time');
    const noKey = byValue.get(Buffer.from('no key').toString('hex'));
    assert.equal(noKey?.key, null);
    assert.equal(noKey?.headers, undefined, 'no headers sent, none delivered');
    assert.equal(byValue.get(Buffer.from('{"json":true}').toString('hex'))?.key, 'plain');
  });

  test(`${adapter} bus: a new group with fromBeginning false starts at the end of the log`, async (t) => {
    const s = await setup(t, 2);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    await s.producer.send(s.topic, Array.from({ length: 20 }, (_, i) => record(`k${i}`, `before${i}`)));
    const late: DeliveredRecord[] = [];
    let assigned = 0;
    const consumer = s.bus.consumer({ groupId: s.groupId, topics: [s.topic], fromBeginning: false, onAssign: (a) => (assigned = a.length) });
    await consumer.run(async (batch) => {
      late.push(...batch.records);
    });
    await eventually(() => (assigned === 2 ? true : undefined), 30_000);
    // The start position is taken once the member owns its partitions; give it that moment.
    await settle(s.bus);
    await s.producer.send(s.topic, Array.from({ length: 20 }, (_, i) => record(`k${i}`, `after${i}`)));
    await eventually(() => (late.length >= 20 ? true : undefined), 30_000);
    await settle(s.bus);
    assert.deepEqual(late.map((r) => r.value.toString()).sort(), Array.from({ length: 20 }, (_, i) => `after${i}`).sort(), 'only records sent after the start');
    await consumer.stop();
  });

  test(`${adapter} bus: an ephemeral group's commits are gone once its consumer stops`, async (t) => {
    const s = await setup(t, 2);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    await s.producer.send(s.topic, Array.from({ length: 10 }, (_, i) => record(`k${i}`, `v${i}`)));
    const records: DeliveredRecord[] = [];
    const consumer = s.bus.consumer({ groupId: s.groupId, topics: [s.topic], ephemeral: true });
    await consumer.run(async (batch) => {
      records.push(...batch.records);
      await consumer.commit([{ topic: batch.topic, partition: batch.partition, offset: String(Number(batch.records.at(-1)!.offset) + 1) }]);
    });
    await eventually(() => (records.length >= 10 ? true : undefined), 30_000);
    await eventually(async () => (sumOffsets(await s.bus.committedOffsets(s.groupId, s.topic)) === 10 ? true : undefined));
    await consumer.stop();
    await eventually(async () => {
      const committed = await s.bus.committedOffsets(s.groupId, s.topic);
      return committed.every((o) => o.offset === '-1') ? true : undefined;
    });
  });

  test(`${adapter} bus: offsetsForTime finds the first record appended since a time; startAt overrides the group's commit`, async (t) => {
    const s = await setup(t, 1);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    const pause = () => new Promise((r) => setTimeout(r, s.bus.kind === 'kafka' ? 300 : 20));
    await s.producer.send(s.topic, Array.from({ length: 10 }, (_, i) => record('k', `old${i}`)));
    await pause();
    const between = Date.now();
    await pause();
    await s.producer.send(s.topic, Array.from({ length: 10 }, (_, i) => record('k', `new${i}`)));
    assert.deepEqual(await s.bus.offsetsForTime(s.topic, between), offsets(s.topic, ['10']), 'the first record after the pause');
    assert.deepEqual(await s.bus.offsetsForTime(s.topic, 0), offsets(s.topic, ['0']), 'since the epoch: the beginning');
    assert.deepEqual(await s.bus.offsetsForTime(s.topic, Date.now() + 3_600_000), offsets(s.topic, ['20']), 'nothing since: the end');

    // The group has committed 15; a member told to start at 10 gets 10.. all the same. (Another
    // group that commits nothing keeps the in-process log from dropping what the first committed.)
    const holder = new Member(s.bus, uniqueName('holder'), [s.topic], { commit: false });
    await holder.start();
    t.after(() => holder.consumer.stop());
    const first = new Member(s.bus, s.groupId, [s.topic], { commit: false });
    await first.start();
    await eventually(() => (first.records.length >= 20 ? true : undefined), 30_000);
    await first.consumer.commit([{ topic: s.topic, partition: 0, offset: '15' }]);
    await first.consumer.stop();
    const seen: DeliveredRecord[] = [];
    const rebuilt = s.bus.consumer({ groupId: s.groupId, topics: [s.topic], startAt: [{ topic: s.topic, partition: 0, offset: '10' }] });
    await rebuilt.run(async (batch) => {
      seen.push(...batch.records);
    });
    await eventually(() => (seen.length >= 10 ? true : undefined), 30_000);
    await settle(s.bus);
    assert.deepEqual(
      seen.map((r) => r.value.toString()),
      Array.from({ length: 10 }, (_, i) => `new${i}`),
    );
    await rebuilt.stop();
  });

  test(`${adapter} bus: endOffsets and committedOffsets report per partition`, async (t) => {
    const s = await setup(t, 3);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!s) return;
    assert.deepEqual(sortOffsets(await s.bus.endOffsets(s.topic)), offsets(s.topic, ['0', '0', '0']));
    assert.deepEqual(sortOffsets(await s.bus.committedOffsets(s.groupId, s.topic)), offsets(s.topic, ['-1', '-1', '-1']));

    const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
    await s.producer.send(s.topic, keys.map((k) => record(k, k)));
    const perPartition = [0, 0, 0];
    for (const k of keys) perPartition[partitionForKey(k, 3)]! += 1;
    assert.deepEqual(sortOffsets(await s.bus.endOffsets(s.topic)), offsets(s.topic, perPartition.map(String)));

    const member = new Member(s.bus, s.groupId, [s.topic], { commit: false });
    await member.start();
    await eventually(() => (member.records.length >= keys.length ? true : undefined), 30_000);
    await member.consumer.commit([{ topic: s.topic, partition: 1, offset: '2' }]);
    await member.consumer.commit([{ topic: s.topic, partition: 1, offset: '1' }]); // lower: ignored
    assert.deepEqual(sortOffsets(await s.bus.committedOffsets(s.groupId, s.topic)), offsets(s.topic, ['-1', '2', '-1']));
  });
}

/** A group member that records what it is given and (by default) commits after each batch. */
export class Member {
  readonly records: DeliveredRecord[] = [];
  /** The partitions from the latest onAssign. */
  assignment: { topic: string; partition: number }[] = [];
  commit: boolean;
  readonly consumer: BusConsumer;

  constructor(bus: Bus, groupId: string, topics: string[], options: { commit?: boolean } = {}) {
    this.commit = options.commit ?? true;
    this.consumer = bus.consumer({
      groupId,
      topics,
      onAssign: (assigned) => {
        this.assignment = assigned;
      },
    });
  }

  start(): Promise<void> {
    return this.consumer.run(async (batch: DeliveredBatch) => {
      this.records.push(...batch.records);
      const last = batch.records.at(-1);
      if (this.commit && last) {
        await this.consumer.commit([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }]);
      }
    });
  }
}

/** Waits until the members' latest assignments split all partitions between them. */
export async function waitForSplit(members: Member[], partitions: number): Promise<void> {
  await eventually(
    () => {
      const owned = members.flatMap((m) => m.assignment.map((a) => a.partition));
      const split = members.every((m) => m.assignment.length > 0) && owned.length === partitions && new Set(owned).size === partitions;
      return split ? true : undefined;
    },
    30_000,
  );
}

/** Gives a late duplicate delivery the chance to show up before a test asserts there is none. */
function settle(bus: Bus): Promise<void> {
  return new Promise((r) => setTimeout(r, bus.kind === 'kafka' ? 1_000 : 50));
}

function record(key: string | null, value: string): BusRecord {
  return { key, value: Buffer.from(value) };
}

function identity(r: DeliveredRecord): string {
  return `${r.partition}@${r.offset}=${r.value.toString()}`;
}

function sumOffsets(list: PartitionOffset[]): number {
  return list.reduce((sum, o) => sum + Math.max(0, Number(o.offset)), 0);
}

function sortOffsets(list: PartitionOffset[]): PartitionOffset[] {
  return [...list].sort((x, y) => x.partition - y.partition).map(({ topic, partition, offset }) => ({ topic, partition, offset }));
}

function offsets(topic: string, values: string[]): PartitionOffset[] {
  return values.map((offset, partition) => ({ topic, partition, offset }));
}

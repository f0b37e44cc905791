/**
 * bench/kafka-clients: the Kafka clients side by side against the same broker (KAFKA_BROKERS), in
 * one run: kafkajs 2.2.4 (the previous client), @platformatic/kafka (the current one) and
 * Afterglow's bus adapter on top of it (what the roles actually run).
 *
 * For each: produce throughput (`--records` keyed 200 B records over 6 partitions, sends of 1,000,
 * acks=all, idempotent producer), consume throughput (a new group reads them from the beginning;
 * first record to last) and produce -> consume latency (one record every 10 ms to a consumer that
 * is caught up; p50/p99/max over `--latency-seconds`). Every client gets fresh topics and groups;
 * `--rounds` runs them all again (2 by default, 1 in short mode) and prints each one's best round
 * (throughputs: highest; latencies: the round with the lower p99), so broker warm-up and this
 * machine's neighbours weigh less. Prints figures; asserts nothing about speed. `--short` is the
 * CI size (a few seconds a client).
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 node bench/dist/kafka-clients.js [--short] [--records N] [--latency-seconds N] [--rounds N] [--clients kafkajs,platformatic,bus]
 */
import { randomUUID } from 'node:crypto';
import { Consumer as PltConsumer, Producer as PltProducer, type Message as PltMessage } from '@platformatic/kafka';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { createBus, type Bus } from '@afterglow/core';
import { flag, opt, optStr } from './args.js';

const SHORT = flag('short');
const RECORDS = opt('records', SHORT ? 20_000 : 200_000);
const LATENCY_SECONDS = opt('latency-seconds', SHORT ? 3 : 15);
const CLIENTS = optStr('clients', 'kafkajs,platformatic,bus').split(',');
/** Rounds over all clients (each client's best round is printed): the first round also warms the broker. */
const ROUNDS = opt('rounds', SHORT ? 1 : 2);
const PARTITIONS = 6;
const SEND_BATCH = 1_000;
const VALUE_BYTES = 200;
const LATENCY_EVERY_MS = 10;
const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').map((b) => b.trim()).filter(Boolean);
const namespace = process.env.KAFKA_NAMESPACE ? `${process.env.KAFKA_NAMESPACE}.` : '';

/** What the bench asks of each client: produce a batch, and consume a topic in a new group. */
interface Client {
  name: string;
  createTopic(topic: string): Promise<void>;
  produce(topic: string, records: { key: string; value: Buffer }[]): Promise<void>;
  /** Resolves once the group is joined (`onJoin` is called then, first); `onValue` sees every record's value. */
  consume(topic: string, fromBeginning: boolean, onValue: (value: Buffer) => void, onJoin?: () => void): Promise<{ stop(): Promise<void> }>;
  close(): Promise<void>;
}

function kafkajsClient(): Client {
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  // As the previous adapter ran it: idempotent (so one request in flight), murmur2 partitioner.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  const ready = Promise.all([admin.connect(), producer.connect()]);
  return {
    name: 'kafkajs 2.2.4',
    async createTopic(topic) {
      await ready;
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
    },
    async produce(topic, records) {
      await producer.send({ topic, acks: -1, messages: records });
    },
    async consume(topic, fromBeginning, onValue, onJoin) {
      const consumer = kafka.consumer({ groupId: `bench-${randomUUID()}`, maxWaitTimeInMs: 500, maxBytesPerPartition: 4 * 1024 * 1024 });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning });
      const joined = new Promise<void>((resolve) =>
        consumer.on(consumer.events.GROUP_JOIN, () => {
          onJoin?.();
          resolve();
        }),
      );
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) if (m.value) onValue(m.value);
        },
      });
      await joined;
      return { stop: () => consumer.disconnect() };
    },
    async close() {
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

function platformaticClient(): Client {
  const base = { clientId: 'bench-platformatic', bootstrapBrokers: brokers };
  const producer = new PltProducer({ ...base, idempotent: true });
  // Topics are created through the bus (the client's admin underneath).
  const bus = kafkaBus('bench-platformatic-admin');
  return {
    name: '@platformatic/kafka',
    createTopic: async (topic) => (await bus).ensureTopics([{ topic, partitions: PARTITIONS }]),
    async produce(topic, records) {
      await producer.send({ messages: records.map((r) => ({ topic, key: Buffer.from(r.key), value: r.value })) });
    },
    async consume(topic, fromBeginning, onValue, onJoin) {
      const consumer = new PltConsumer({ ...base, groupId: `bench-${randomUUID()}`, maxWaitTime: 500, maxBytesPerPartition: 4 * 1024 * 1024, autocommit: false });
      consumer.once('consumer:group:join', () => onJoin?.());
      const stream = await consumer.consume({ topics: [topic], mode: fromBeginning ? 'earliest' : 'latest' });
      stream.on('data', (m: PltMessage) => onValue(m.value));
      return {
        async stop() {
          await stream.close();
          await consumer.close(true);
        },
      };
    },
    async close() {
      await producer.close();
      await (await bus).close();
    },
  };
}

function kafkaBus(clientId: string): Promise<Bus> {
  return createBus({ kind: 'kafka', brokers, clientId, partitions: PARTITIONS, replicationFactor: 1, namespace: undefined });
}

function busClient(): Client {
  const pending = kafkaBus('bench-bus');
  const producer = pending.then((b) => b.producer());
  return {
    name: 'Afterglow bus (@platformatic/kafka)',
    createTopic: async (topic) => (await pending).ensureTopics([{ topic, partitions: PARTITIONS }]),
    async produce(topic, records) {
      await (await producer).send(topic, records);
    },
    async consume(topic, fromBeginning, onValue, onJoin) {
      const bus = await pending;
      let assigned!: () => void;
      const joined = new Promise<void>((resolve) => (assigned = resolve));
      const onAssign = () => {
        onJoin?.();
        assigned();
      };
      const consumer = bus.consumer({ groupId: `bench-${randomUUID()}`, topics: [topic], fromBeginning, onAssign });
      await consumer.run(async (batch) => {
        for (const r of batch.records) onValue(r.value);
      });
      await joined;
      return { stop: () => consumer.stop() };
    },
    close: async () => (await pending).close(),
  };
}

interface Figures {
  client: string;
  produce: number;
  consume: number;
  p50: number;
  p99: number;
  max: number;
  samples: number;
}

async function measure(client: Client): Promise<Figures> {
  const run = randomUUID().slice(0, 8);
  const bulkTopic = `${namespace}bench-kafka-bulk-${run}`;
  const latencyTopic = `${namespace}bench-kafka-latency-${run}`;
  await client.createTopic(bulkTopic);
  await client.createTopic(latencyTopic);
  const value = Buffer.alloc(VALUE_BYTES, 7);
  const records = Array.from({ length: RECORDS }, (_, i) => ({ key: `asset-${i % 5_000}`, value }));
  await client.produce(bulkTopic, records.slice(0, 10)); // connections, metadata, producer id

  const produceStart = performance.now();
  for (let i = 0; i < records.length; i += SEND_BATCH) await client.produce(bulkTopic, records.slice(i, i + SEND_BATCH));
  const produce = RECORDS / ((performance.now() - produceStart) / 1_000);

  // Consume: everything produced above (plus the 10 warm-up records), by a new group, timed from
  // the group join (each client's own signal) to the last record.
  const total = RECORDS + 10;
  let seen = 0;
  let joinedAt = 0;
  let last = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const reader = await client.consume(
    bulkTopic,
    true,
    () => {
      if (++seen === total) {
        last = performance.now();
        done();
      }
    },
    () => (joinedAt ||= performance.now()),
  );
  await Promise.race([all, new Promise((r) => setTimeout(r, 120_000))]);
  await reader.stop();
  const consume = seen === total ? total / Math.max((last - joinedAt) / 1_000, 1e-3) : Number.NaN;

  // Latency: a caught-up consumer; the value carries its send time.
  const latencies: number[] = [];
  const latencyReader = await client.consume(latencyTopic, false, (v) => {
    if (v.length === 8) latencies.push(performance.timeOrigin + performance.now() - v.readDoubleLE(0));
  });
  await new Promise((r) => setTimeout(r, 1_000)); // let it settle at the end of the log
  const until = Date.now() + LATENCY_SECONDS * 1_000;
  let sent = 0;
  while (Date.now() < until) {
    const v = Buffer.alloc(8);
    v.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
    await client.produce(latencyTopic, [{ key: `probe-${sent++ % 64}`, value: v }]);
    await new Promise((r) => setTimeout(r, LATENCY_EVERY_MS));
  }
  const deadline = Date.now() + 10_000;
  while (latencies.length < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await latencyReader.stop();
  const sorted = [...latencies].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return { client: client.name, produce, consume, p50: q(0.5), p99: q(0.99), max: sorted.at(-1) ?? Number.NaN, samples: latencies.length };
}

if (brokers.length === 0) {
  console.log('bench:kafka-clients: KAFKA_BROKERS is not set (source deploy/local/env.sh); skipped');
  process.exit(0);
}

const makers: Record<string, () => Client> = { kafkajs: kafkajsClient, platformatic: platformaticClient, bus: busClient };
console.log(
  `bench:kafka-clients: ${brokers.join(',')}, node ${process.version}; ${RECORDS.toLocaleString('en')} x ${VALUE_BYTES} B keyed records, ` +
    `${PARTITIONS} partitions, sends of ${SEND_BATCH.toLocaleString('en')}, acks=all idempotent; latency: one record / ${LATENCY_EVERY_MS} ms for ${LATENCY_SECONDS} s; ` +
    `best of ${ROUNDS} round(s)`,
);
const best = new Map<string, Figures>();
for (let round = 0; round < ROUNDS; round++) {
  for (const name of CLIENTS) {
    const make = makers[name];
    if (!make) throw new Error(`unknown client ${name} (kafkajs, platformatic, bus)`);
    const client = make();
    try {
      const f = await measure(client);
      const prev = best.get(name);
      best.set(name, prev ? bestOf(prev, f) : f);
    } catch (err) {
      console.log(`  ${name}: failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await client.close().catch(() => undefined);
    }
  }
}
const results = [...best.values()];

function bestOf(a: Figures, b: Figures): Figures {
  const low = a.p99 <= b.p99 ? a : b;
  return { ...low, produce: Math.max(a.produce, b.produce), consume: Math.max(a.consume, b.consume) };
}
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');
console.log('| client | produce rec/s | consume rec/s | latency p50 ms | p99 ms | max ms | samples |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  console.log(`| ${r.client} | ${fmt(r.produce)} | ${fmt(r.consume)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.max, 1)} | ${r.samples} |`);
}
process.exit(0);

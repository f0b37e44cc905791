import { createBus, loadConfig, type Bus, type Env } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { makeEvents, postEvents } from '../support.js';
import { groupProgress, metric, RoleProcess, storedCounts, waitDrained } from './scenarios.js';
import { OwnClickHouse } from './services.js';

/**
 * Horizontal scaling on one machine (issue 9): N ingest processes, N stream sinks and N live
 * aggregators, each its own process, in consumer groups on the local Kafka, sharing one ClickHouse
 * (the chdb-http stand-in) and the local Redis/NATS. Used by test/scale.test.ts (correct totals) and
 * bench/scale.ts (throughput per added worker).
 */
export interface Cluster {
  env: Env;
  ch: OwnClickHouse;
  bus: Bus;
  ingest: RoleProcess[];
  stream: RoleProcess[];
  live: RoleProcess[];
  close(): Promise<void>;
}

export async function startCluster(n: { ingest: number; stream: number; live: number }, extra: Env = {}): Promise<Cluster> {
  const ch = await OwnClickHouse.started();
  const env: Env = {
    KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
    KAFKA_NAMESPACE: uniqueName('scale'),
    CLICKHOUSE_URL: ch.url,
    CLICKHOUSE_DATABASE: 'scale',
    REDIS_URL: process.env.REDIS_URL!,
    NATS_URL: process.env.NATS_URL!,
    SINK_GROUP_ID: 'scale-sink',
    LIVE_GROUP_ID: 'scale-live',
    LIVE_KEY_PREFIX: uniqueName('scale').replace(/-/g, ':'),
    SINK_BATCH_MAX_MS: '300',
    ...extra,
  };
  const bus = await createBus(loadConfig(env).bus);
  const make = (role: string, k: number) => Array.from({ length: k }, () => new RoleProcess(role, env));
  const cluster: Cluster = {
    env,
    ch,
    bus,
    ingest: make('ingest', n.ingest),
    stream: make('stream', n.stream),
    live: make('live', n.live),
    async close() {
      for (const p of [...cluster.ingest, ...cluster.stream, ...cluster.live]) await p.kill('SIGTERM').catch(() => undefined);
      await bus.close();
      await ch.close();
    },
  };
  try {
    // One first (it creates the topics and applies the schema), then the rest together.
    const all = [...cluster.ingest, ...cluster.stream, ...cluster.live];
    await all[0]!.start();
    await Promise.all(all.slice(1).map((p) => p.start()));
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** Posts `total` events round-robin over the ingest processes with `concurrency` requests in flight; returns accepted. */
export async function postRoundRobin(cluster: Cluster, tenant: string, campaigns: string[], total: number, batch = 1000, concurrency = 4) {
  const { events, expected } = makeEvents(total, tenant, campaigns, 50);
  let next = 0;
  let accepted = 0;
  let k = 0;
  const worker = async () => {
    for (;;) {
      const i = next;
      next += batch;
      if (i >= events.length) return;
      const url = cluster.ingest[k++ % cluster.ingest.length]!.url;
      for (;;) {
        const r = await postEvents(url, events.slice(i, i + batch));
        if (r.status === 202) {
          accepted += r.body.accepted;
          break;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { accepted, expected };
}

export async function waitAllDrained(cluster: Cluster, timeoutMs = 180_000): Promise<void> {
  await waitDrained(cluster.bus, cluster.env.SINK_GROUP_ID!, timeoutMs);
  await waitDrained(cluster.bus, cluster.env.LIVE_GROUP_ID!, timeoutMs);
}

export { groupProgress, metric, storedCounts, eventually };

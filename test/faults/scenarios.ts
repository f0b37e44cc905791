import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TABLES, TOPICS, type Bus, type Env, type Store } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { makeEvents, postEvents, startApp, type TestApp } from '../support.js';
import { LiveTestClient } from '../live-client.js';
import { OwnClickHouse, OwnService, ROOT } from './services.js';

/**
 * Fault scenarios (issue 8, Reliability), each returning the figures it checked. The CI tests in
 * this folder run them small; bench/faults.ts runs them long. Every scenario restarts only services
 * it started itself (services.ts); the shared Kafka/Redis/NATS are never touched.
 */

export interface FaultReport {
  scenario: string;
  /** Events the intake answered 202 for, each counted once. */
  accepted: number;
  /** Rows of this run in events_raw / the asset rollup at the end. */
  stored: number;
  distinct: number;
  rollup: number;
  faults: number;
  notes: Record<string, unknown>;
}

const log = (msg: string) => {
  if (process.env.FAULTS_VERBOSE) process.stderr.write(`[faults] ${msg}\n`);
};

/** An Afterglow role in its own process (the `afterglow` entry from source), as it runs in production. */
export class RoleProcess {
  child: ChildProcess | undefined;
  url = '';
  /** Its Prometheus endpoint (the admin listener on a free port). */
  metricsUrl = '';

  constructor(
    readonly role: string,
    readonly env: Env,
  ) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(ROOT, 'cli/src/main.ts'), this.role], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', AFTERGLOW_DEMO: '0', AUTH_MODE: 'off', METRICS_PORT: '0', ...this.env } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    let out = '';
    this.url = await new Promise<string>((resolve, reject) => {
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /is running at (http:\/\/[^/\s]+)/.exec(out);
        const metrics = /Prometheus metrics at (\S+)/.exec(out);
        if (m && metrics) {
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          this.metricsUrl = metrics[1]!;
          resolve(m[1]!);
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => reject(new Error(`${this.role} exited during start (${code ?? signal}): ${out.slice(-500)}`)));
    });
  }

  /** Resident set size of the process in bytes (Linux /proc). */
  rss(): number {
    const pid = this.child?.pid;
    if (!pid) return 0;
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await once(child, 'exit');
    this.child = undefined;
  }
}

/** Keeps posting fresh events through the intake; counts every event answered 202, once. Retries refused chunks. */
export class Traffic {
  accepted = 0;
  refused = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly app: TestApp,
    readonly tenant: string,
    readonly campaigns: string[],
    /** Events per second to offer (CI keeps it modest: the machine has 2 cores for everything). */
    readonly perSec = Number(process.env.FAULTS_EVENTS_PER_SEC ?? 2000),
    readonly chunk = 400,
  ) {}

  start(): void {
    this.loop = (async () => {
      const started = Date.now();
      let offered = 0;
      while (!this.stopped) {
        const due = started + (offered / this.perSec) * 1000 - Date.now();
        if (due > 0) await new Promise((res) => setTimeout(res, due));
        offered += this.chunk;
        const { events } = makeEvents(this.chunk, this.tenant, this.campaigns);
        // The same chunk again until it is accepted: a client that retries a refused request (event
        // ids make the retry safe). Stop only between chunks, so nothing is left half-known.
        for (;;) {
          const r = await postEvents(this.app.running.url, events).catch((err: Error) => ({ status: 0, body: { accepted: 0, err: err.message } }));
          if (r.status === 202) {
            this.accepted += (r.body as { accepted: number }).accepted;
            break;
          }
          this.refused++;
          log(`post refused: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
          await new Promise((res) => setTimeout(res, 250));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** Committed offsets of `groupId` on engagement.events, summed, and the log end (lag = end - committed). */
export async function groupProgress(bus: Bus, groupId: string): Promise<{ committed: bigint; end: bigint }> {
  const [ends, committed] = await Promise.all([bus.endOffsets(TOPICS.events), bus.committedOffsets(groupId, TOPICS.events)]);
  const sum = (xs: { offset: string }[]) => xs.reduce((n, x) => n + (BigInt(x.offset) > 0n ? BigInt(x.offset) : 0n), 0n);
  return { committed: sum(committed), end: sum(ends) };
}

export async function waitDrained(bus: Bus, groupId: string, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      const [ends, committed] = await Promise.all([bus.endOffsets(TOPICS.events), bus.committedOffsets(groupId, TOPICS.events)]);
      const at = new Map(committed.map((c) => [c.partition, BigInt(c.offset)]));
      return ends.every((e) => BigInt(e.offset) === 0n || (at.get(e.partition) ?? -1n) >= BigInt(e.offset)) ? true : undefined;
    },
    timeoutMs,
    250,
  );
}

export async function storedCounts(store: Store, tenant: string): Promise<{ stored: number; distinct: number; rollup: number }> {
  const q = async (sql: string) => Number((await (await store.client.query({ query: sql, query_params: { t: tenant }, format: 'JSONEachRow' })).json<{ n: string | number }>())[0]!.n);
  return {
    stored: await q(`SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String}`),
    distinct: await q(`SELECT uniqExact(event_id) AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String}`),
    rollup: await q(`SELECT sum(events) AS n FROM ${store.table(TABLES.assetMinute)} WHERE tenant_id = {t:String}`),
  };
}

/** The shared Kafka under a fresh namespace, this run's own ClickHouse, one sink group. */
function sinkEnv(ch: OwnClickHouse): Env {
  return {
    KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
    KAFKA_NAMESPACE: uniqueName('faults'),
    CLICKHOUSE_URL: ch.url,
    CLICKHOUSE_DATABASE: 'faults',
    SINK_GROUP_ID: 'faults-sink',
  };
}

/** A Prometheus counter of one process (summed over label sets), from its metrics endpoint. */
export async function metric(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && /^[a-z_]+(\{[^}]*\})? /.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * kill -9 the stream sink repeatedly while events flow. Each round starts a sink process, lets it
 * insert (the store's row count rises), kills it at a random point shortly after, and starts the
 * next. At the end one sink drains the topic; events_raw must hold every accepted event exactly once.
 */
export async function sinkKills(options: { kills: number; sinks?: number; batchRows?: number }): Promise<FaultReport> {
  const ch = await OwnClickHouse.started();
  const tenant = uniqueName('faults-kill');
  const env: Env = {
    ...sinkEnv(ch),
    // Small batches: many inserts per second, so a kill lands mid-batch (buffered, inserting or
    // between insert and commit) far more often than between batches.
    SINK_BATCH_MAX_ROWS: String(options.batchRows ?? 1500),
    SINK_BATCH_MAX_MS: '150',
  };
  const app = await startApp(env, ['ingest']);
  const traffic = new Traffic(app, tenant, [uniqueName('c1'), uniqueName('c2')]);
  const sinks = Array.from({ length: options.sinks ?? 1 }, () => new RoleProcess('stream', env));
  let kills = 0;
  let duplicates = 0;
  try {
    traffic.start();
    for (const s of sinks) await s.start();
    const store = app.running.store!;
    while (kills < options.kills) {
      const victim = sinks[kills % sinks.length]!;
      const before = (await storedCounts(store, tenant)).stored;
      await eventually(async () => ((await storedCounts(store, tenant)).stored > before ? true : undefined), 90_000, 50);
      await sleep(Math.floor(Math.random() * 400));
      // Redelivered events this incarnation found already stored: each is a kill (or rebalance)
      // that fell between an insert and its offset commit.
      duplicates += await metric(victim.metricsUrl, 'afterglow_sink_duplicates_total').catch(() => 0);
      await victim.kill('SIGKILL');
      kills++;
      log(`kill ${kills}: accepted ${traffic.accepted}, stored ${(await storedCounts(store, tenant)).stored}`);
      await victim.start();
    }
    await traffic.stop();
    await waitDrained(app.running.bus, env.SINK_GROUP_ID!, 180_000);
    const counts = await storedCounts(store, tenant);
    return { scenario: 'sink kill -9', accepted: traffic.accepted, ...counts, faults: kills, notes: { refusedPosts: traffic.refused, sinks: sinks.length, redeliveredDuplicatesDropped: duplicates + (await Promise.all(sinks.map((s) => metric(s.metricsUrl, 'afterglow_sink_duplicates_total').catch(() => 0)))).reduce((a, b) => a + b, 0) } };
  } finally {
    await traffic.stop();
    for (const s of sinks) await s.kill('SIGKILL');
    await app.close();
    await ch.close();
  }
}

/**
 * ClickHouse unavailable for `outageMs` while events flow: the sink must stop committing offsets,
 * keep its memory bounded (RSS sampled), and catch up once the store is back.
 */
export async function storeOutage(options: { outageMs: number }): Promise<FaultReport> {
  const ch = await OwnClickHouse.started();
  const tenant = uniqueName('faults-outage');
  const env: Env = {
    ...sinkEnv(ch),
    SINK_BATCH_MAX_ROWS: '5000',
    SINK_BATCH_MAX_MS: '200',
  };
  // The intake runs in this process and needs no store while running (it was migrated at start);
  // its API-key refresh warns every 2 s while the store is down, hence the quieter log level.
  const app = await startApp({ ...env, LOG_LEVEL: 'error' }, ['ingest']);
  const traffic = new Traffic(app, tenant, [uniqueName('c1')]);
  const sink = new RoleProcess('stream', env);
  try {
    await sink.start();
    traffic.start();
    const store = app.running.store!;
    await eventually(async () => ((await storedCounts(store, tenant)).stored > 5000 ? true : undefined), 60_000, 100);
    const rssBefore = sink.rss();
    await ch.stop('SIGKILL'); // unavailable at once, as a crashed or partitioned server is
    const down = Date.now();
    const atStop = await groupProgress(app.running.bus, env.SINK_GROUP_ID!);
    // Commits already on the wire may land in the first moments; after that nothing may advance.
    await sleep(3_000);
    const settled = await groupProgress(app.running.bus, env.SINK_GROUP_ID!);
    let maxRss = 0;
    let maxLag = 0n;
    let committedMoved = false;
    while (Date.now() - down < options.outageMs) {
      await sleep(1_000);
      const p = await groupProgress(app.running.bus, env.SINK_GROUP_ID!);
      if (p.committed !== settled.committed) committedMoved = true;
      if (p.end - p.committed > maxLag) maxLag = p.end - p.committed;
      maxRss = Math.max(maxRss, sink.rss());
    }
    const acceptedDuringOutage = traffic.accepted;
    await ch.start();
    const back = Date.now();
    await traffic.stop();
    await waitDrained(app.running.bus, env.SINK_GROUP_ID!, 180_000);
    const catchUpMs = Date.now() - back;
    const counts = await storedCounts(store, tenant);
    return {
      scenario: `ClickHouse down ${Math.round(options.outageMs / 1000)} s`,
      accepted: traffic.accepted,
      ...counts,
      faults: 1,
      notes: {
        committedMoved,
        committedAtStop: String(atStop.committed),
        committedSettled: String(settled.committed),
        maxLagDuringOutage: Number(maxLag),
        acceptedBeforeRecovery: acceptedDuringOutage,
        rssBeforeMB: Math.round(rssBefore / 2 ** 20),
        maxRssDuringOutageMB: Math.round(maxRss / 2 ** 20),
        catchUpMs,
      },
    };
  } finally {
    await traffic.stop();
    await sink.kill('SIGKILL');
    await app.close();
    await ch.close();
  }
}

/**
 * Restart the Kafka broker (its own instance) under load: the intake's producer retries or answers
 * 503 (the client re-sends), and everything that was answered 202 reaches ClickHouse exactly once.
 */
export async function kafkaRestart(options: { restarts: number }): Promise<FaultReport> {
  const kafka = await OwnService.create('kafka');
  await kafka.run('start');
  const tenant = uniqueName('faults-kafka');
  const env: Env = {
    KAFKA_BROKERS: kafka.address,
    SINK_GROUP_ID: 'faults-sink',
    SINK_BATCH_MAX_ROWS: '5000',
    SINK_BATCH_MAX_MS: '200',
    INGEST_PRODUCE_TIMEOUT_MS: '5000',
    // The Kafka client logs every failed request while the broker is down; the figures say what happened.
    LOG_LEVEL: 'fatal',
  };
  let app: TestApp | undefined;
  let traffic: Traffic | undefined;
  try {
    // Intake and sink in this process on embedded chDB: only the broker is under test here.
    app = await startApp(env, ['ingest', 'stream']);
    traffic = new Traffic(app, tenant, [uniqueName('c1')]);
    traffic.start();
    const store = app.running.store!;
    const downMs: number[] = [];
    for (let i = 0; i < options.restarts; i++) {
      const before = traffic.accepted;
      await eventually(() => (traffic!.accepted > before + 2000 ? true : undefined), 60_000, 50);
      log(`kafka restart ${i + 1}: accepted ${traffic.accepted}`);
      const down = Date.now();
      await kafka.run('stop');
      await kafka.run('start');
      downMs.push(Date.now() - down);
    }
    const before = traffic.accepted;
    await eventually(() => (traffic!.accepted > before + 2000 ? true : undefined), 120_000, 50);
    await traffic.stop();
    await waitDrained(app.running.bus, env.SINK_GROUP_ID!, 180_000);
    const counts = await storedCounts(store, tenant);
    return { scenario: 'Kafka broker restart', accepted: traffic.accepted, ...counts, faults: options.restarts, notes: { refusedPosts: traffic.refused, brokerDownMs: downMs } };
  } finally {
    await traffic?.stop();
    await app?.close();
    await kafka.close();
  }
}

/**
 * Restart Redis and NATS (their own instances) under a live role: the aggregator keeps counting into
 * the restarted Redis (state persisted by Redis, applied offsets with it, so nothing is applied twice),
 * and a dashboard WebSocket subscribed before the NATS restart receives the later updates (the
 * gateway's NATS subscription reconnects and resyncs).
 */
export async function liveRestarts(): Promise<FaultReport & { live: Record<string, number> }> {
  const redis = await OwnService.create('redis');
  const nats = await OwnService.create('nats');
  await redis.run('start');
  await nats.run('start');
  const tenant = uniqueName('faults-live');
  const campaign = uniqueName('camp');
  const env: Env = {
    KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
    KAFKA_NAMESPACE: uniqueName('faults'),
    REDIS_URL: redis.address,
    NATS_URL: nats.address,
    LIVE_GROUP_ID: 'faults-live',
    LIVE_FLUSH_MS: '200',
    LOG_LEVEL: 'fatal',
  };
  let app: TestApp | undefined;
  let client: LiveTestClient | undefined;
  try {
    app = await startApp(env, ['ingest', 'live']);
    client = await LiveTestClient.connect(app.running.url, tenant);
    client.send({ op: 'subscribe', campaign });
    let sent = 0;
    const send = async (n: number) => {
      const { events } = makeEvents(n, tenant, [campaign]);
      const r = await postEvents(app!.running.url, events);
      if (r.status !== 202) throw new Error(`post ${r.status}`);
      sent += r.body.accepted;
    };
    const liveTotal = () => Object.values(client!.counts('campaign', campaign, '24h')).reduce((a, b) => a + b, 0);
    const restTotal = async () => {
      const res = await app!.request(tenant, `/v1/campaigns/${encodeURIComponent(campaign)}/metrics?tenant_id=${encodeURIComponent(tenant)}`);
      if (!res.ok) return 0;
      const body = (await res.json()) as { windows: Record<string, { counts: Record<string, number> }> };
      return Object.values(body.windows['24h']!.counts).reduce((a, b) => a + b, 0);
    };
    const seen: Record<string, number> = {};
    await send(3000);
    await client.waitFor(() => liveTotal() === sent, 60_000, 'live total before restarts');
    seen.beforeRestarts = liveTotal();

    await redis.run('stop');
    await send(2000); // applied once Redis is back: the aggregator's flush retries
    await redis.run('start');
    await eventually(async () => ((await restTotal()) === sent ? true : undefined), 60_000, 250);
    await client.waitFor(() => liveTotal() === sent, 60_000, 'live total after the Redis restart');
    seen.afterRedisRestart = liveTotal();

    await nats.run('stop');
    await nats.run('start');
    const messagesBefore = client.messages;
    await send(2000);
    await eventually(async () => ((await restTotal()) === sent ? true : undefined), 60_000, 250);
    await client.waitFor(() => liveTotal() === sent, 60_000, 'WebSocket update after the NATS restart').catch((err: Error) => {
      throw new Error(`${err.message}: ws total ${liveTotal()} of ${sent}, ws messages ${messagesBefore} -> ${client!.messages}, gaps ${client!.gaps}, errors ${JSON.stringify(client!.errors)}`);
    });
    seen.afterNatsRestart = liveTotal();
    const rest = await restTotal();
    return { scenario: 'Redis + NATS restart (live)', accepted: sent, stored: rest, distinct: rest, rollup: liveTotal(), faults: 2, notes: seen, live: seen };
  } finally {
    client?.close();
    await app?.close();
    await nats.close();
    await redis.close();
  }
}

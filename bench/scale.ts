/**
 * bench/scale: throughput per added worker (issue 9), each role in its own process against the local
 * Kafka, one shared ClickHouse (deploy/local/chdb-http.ts, the chDB stand-in, started here on a free
 * port) and the local Redis/NATS.
 *
 * - ingest: 1 vs 2 `afterglow ingest` processes, N events posted round-robin (4 requests in flight).
 * - stream: N events already in Kafka; 1 vs 2 `afterglow stream` sinks (a fresh group and database
 *   each run) drain them into ClickHouse.
 * - live: the same backlog; 1 vs 2 aggregators (`afterglow live`, LIVE_GATEWAY=0) drain it into Redis.
 *
 * Rates are wall-clock; "per CPU-s" divides the events by the CPU seconds the role's processes used
 * (/proc utime+stime), i.e. events per second per fully used core. On a 2-core machine the
 * generator, Kafka, ClickHouse and the workers share those cores, so a second worker can only add
 * what idle CPU is left: read the per-CPU-s column for capacity planning, the wall-clock one for
 * "did the group spread the work". Prints figures; asserts nothing about speed.
 *
 *   node bench/dist/scale.js [--short] [--events N] [--batch N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { EVENT_KINDS, TOPICS, createBus, loadConfig, ulid, type Bus } from '@afterglow/core';
import { freePort } from '@afterglow/testkit/services';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const TOTAL = opt('events', SHORT ? 40_000 : 300_000);
const BATCH = opt('batch', 2_000);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const TICKS = 100; // USER_HZ

if (!process.env.KAFKA_BROKERS || !process.env.REDIS_URL || !process.env.NATS_URL) {
  console.log('bench:scale skipped: KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh; source deploy/local/env.sh)');
  process.exit(0);
}

function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS; // utime, stime
  } catch {
    return 0;
  }
}

class Proc {
  child: ChildProcess | undefined;
  url = '';
  constructor(
    readonly args: string[],
    readonly env: Record<string, string>,
    readonly ready: RegExp,
  ) {}
  async start(): Promise<void> {
    const child = spawn(process.execPath, this.args, { cwd: root, env: { ...process.env, ...this.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    this.child = child;
    let out = '';
    this.url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = this.ready.exec(out);
        if (m) resolve(m[1] ?? '');
      });
      child.once('exit', (code) => reject(new Error(`${this.args.join(' ')} exited (${code}): ${out.slice(-300)}`)));
    });
  }
  cpu(): number {
    return cpuSeconds(this.child?.pid);
  }
  rssMB(): number {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${this.child?.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
    } catch {
      return 0;
    }
  }
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGKILL');
    await once(c, 'exit');
  }
}

const role = (name: string, env: Record<string, string>) =>
  new Proc([path.join(root, 'cli/dist/main.js'), name], { PORT: '0', LOG_LEVEL: 'error', AFTERGLOW_DEMO: '0', AUTH_MODE: 'off', ...env }, /is running at (http:\/\/[^/\s]+)/);

function bodies(tenant: string): Buffer[] {
  const out: Buffer[] = [];
  const now = Date.now();
  for (let start = 0; start < TOTAL; start += BATCH) {
    const parts: string[] = [];
    for (let i = start; i < Math.min(TOTAL, start + BATCH); i++)
      parts.push(
        `{"event_id":"${ulid(now)}","tenant_id":"${tenant}","campaign_id":"c${i % 7}","asset_id":"asset-${i % 500}","kind":"${EVENT_KINDS[i % 8]}","value":1,"occurred_at":${now - (i % 60_000)},"region":"eu-west"}`,
      );
    out.push(Buffer.from(`[${parts.join(',')}]`));
  }
  return out;
}

async function post(urls: string[], payloads: Buffer[], concurrency = 4): Promise<number> {
  let next = 0;
  let accepted = 0;
  const worker = async (w: number) => {
    for (let k = w; ; k++) {
      const i = next++;
      if (i >= payloads.length) return;
      for (;;) {
        const res = await fetch(`${urls[k % urls.length]}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payloads[i] });
        const body = (await res.json()) as { accepted?: number };
        if (res.status === 202) {
          accepted += body.accepted ?? 0;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return accepted;
}

async function drained(bus: Bus, group: string): Promise<void> {
  for (;;) {
    const [ends, committed] = await Promise.all([bus.endOffsets(TOPICS.events), bus.committedOffsets(group, TOPICS.events)]);
    const at = new Map(committed.map((c) => [c.partition, BigInt(c.offset)]));
    if (ends.every((e) => BigInt(e.offset) === 0n || (at.get(e.partition) ?? -1n) >= BigInt(e.offset))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Row {
  role: string;
  workers: number;
  events: number;
  seconds: number;
  perSec: number;
  cpuSeconds: number;
  perCpuSecond: number;
  /** Largest RSS among the workers at the end of the run. */
  rssMB: number;
  /** CPU seconds the ClickHouse stand-in (chDB) used during the run. */
  storeCpuSeconds: number;
}

/** Bytes the namespace's engagement.events partitions take in the local broker's log (shared broker only). */
function topicBytes(namespace: string): number {
  const dir = path.join(process.env.AFTERGLOW_LOCAL_DIR ?? path.join(homedir(), '.cache/afterglow-local'), 'kafka/data');
  let n = 0;
  try {
    for (const d of readdirSync(dir)) {
      if (!d.startsWith(namespace) || !d.includes('engagement.events-')) continue;
      for (const f of readdirSync(path.join(dir, d))) if (f.endsWith('.log')) n += statSync(path.join(dir, d, f)).size;
    }
  } catch {
    return 0;
  }
  return n;
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-scale-'));
const chPort = await freePort();
const ch = new Proc(['--import', 'tsx', path.join(root, 'deploy/local/chdb-http.ts'), '--path', path.join(dataDir, 'ch'), '--port', String(chPort)], {}, /on (http:\/\/\S+),/);
const ns = `bench-scale-${Date.now().toString(36)}`;
const base: Record<string, string> = {
  KAFKA_BROKERS: process.env.KAFKA_BROKERS,
  KAFKA_NAMESPACE: ns,
  REDIS_URL: process.env.REDIS_URL,
  NATS_URL: process.env.NATS_URL,
  AFTERGLOW_DATA_DIR: dataDir,
};
const rows: Row[] = [];
const procs: Proc[] = [ch];
try {
  await ch.start();
  base.CLICKHOUSE_URL = ch.url;
  const bus = await createBus(loadConfig(base).bus);

  // ingest: 1 then 2 processes; the second run's events are the backlog the consumers drain.
  for (const k of [1, 2]) {
    const ingest = Array.from({ length: k }, () => role('ingest', { ...base, CLICKHOUSE_DATABASE: 'bench_ingest' }));
    procs.push(...ingest);
    await ingest[0]!.start();
    await Promise.all(ingest.slice(1).map((p) => p.start()));
    const payloads = bodies(`bench-${k}`);
    const cpu0 = ingest.reduce((n, p) => n + p.cpu(), 0);
    const store0 = ch.cpu();
    const t0 = performance.now();
    const accepted = await post(
      ingest.map((p) => p.url),
      payloads,
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = ingest.reduce((n, p) => n + p.cpu(), 0) - cpu0;
    const rssMB = Math.max(...ingest.map((p) => p.rssMB()));
    rows.push({ role: 'ingest (HTTP JSON)', workers: k, events: accepted, seconds, perSec: accepted / seconds, cpuSeconds: cpu, perCpuSecond: accepted / cpu, rssMB, storeCpuSeconds: ch.cpu() - store0 });
    for (const p of ingest) await p.stop();
  }
  const backlog = TOTAL * 2;
  const logBytes = topicBytes(ns);
  if (logBytes > 0) console.log(`Kafka log: ${(logBytes / backlog).toFixed(0)} bytes per event on disk (${(logBytes / 2 ** 20).toFixed(1)} MiB for ${backlog} events, uncompressed)`);

  for (const [name, env] of [
    ['stream', (k: number) => ({ SINK_GROUP_ID: `sink-${k}`, CLICKHOUSE_DATABASE: `bench_sink_${k}` })],
    ['live', (k: number) => ({ LIVE_GROUP_ID: `live-${k}`, LIVE_KEY_PREFIX: `${ns}:${k}`, LIVE_GATEWAY: '0', CLICKHOUSE_DATABASE: 'bench_ingest' })],
  ] as const) {
    for (const k of [1, 2]) {
      const group = name === 'stream' ? `sink-${k}` : `live-${k}`;
      // Timed from the moment every worker is up (process start and schema are not timed); a new
      // group reads the backlog from the beginning.
      const workers = Array.from({ length: k }, () => role(name, { ...base, ...env(k) }));
      procs.push(...workers);
      // Each worker consumes as soon as it is up, so the clock (and its CPU count) starts with the first.
      const cpuBefore = workers.map(() => 0);
      const startedAt = await Promise.all(
        workers.map((p, i) =>
          p.start().then(() => {
            cpuBefore[i] = p.cpu();
            return performance.now();
          }),
        ),
      );
      const started = Math.min(...startedAt);
      const cpuStart = cpuBefore.reduce((n, c) => n + c, 0);
      const storeStart = ch.cpu();
      await drained(bus, group);
      const seconds = (performance.now() - started) / 1000;
      const cpu = workers.reduce((n, p) => n + p.cpu(), 0) - cpuStart;
      if (seconds < 0.1 || cpu < 0.05) {
        // The backlog was gone before a worker reported ready: no honest figure from this run.
        console.log(`${name} x${k}: backlog drained while the workers started; not measured (use the full run)`);
        for (const p of workers) await p.stop();
        continue;
      }
      rows.push({
        role: name === 'stream' ? 'stream (sink -> ClickHouse)' : 'live (aggregator -> Redis)',
        workers: k,
        events: backlog,
        seconds,
        perSec: backlog / seconds,
        cpuSeconds: cpu,
        perCpuSecond: backlog / cpu,
        rssMB: Math.max(...workers.map((p) => p.rssMB())),
        storeCpuSeconds: ch.cpu() - storeStart,
      });
      for (const p of workers) await p.stop();
    }
  }
  await bus.close();
} finally {
  for (const p of procs.reverse()) await p.stop().catch(() => undefined);
  rmSync(dataDir, { recursive: true, force: true });
}

console.log(`\nbench:scale (${SHORT ? 'short' : 'full'}: ${TOTAL} events per ingest run, backlog ${TOTAL * 2}; ${process.env.KAFKA_BROKERS}, chdb-http stand-in)`);
console.log('role                          workers    events   seconds    ev/s wall   CPU-s   ev per CPU-s   speed-up   RSS MB   store CPU-s');
for (const r of rows) {
  const one = rows.find((x) => x.role === r.role && x.workers === 1) ?? r;
  console.log(
    `${r.role.padEnd(29)} ${String(r.workers).padStart(7)} ${String(r.events).padStart(9)} ${r.seconds.toFixed(1).padStart(9)} ${Math.round(r.perSec).toString().padStart(12)} ${r.cpuSeconds.toFixed(1).padStart(7)} ${Math.round(r.perCpuSecond).toString().padStart(14)} ${(r.perSec / one.perSec).toFixed(2).padStart(10)}x ${Math.round(r.rssMB).toString().padStart(8)} ${r.storeCpuSeconds.toFixed(1).padStart(13)}`,
  );
}
console.log('(2 cores shared by the generator, Kafka, ClickHouse, Redis and the workers: see deploy/README.md, Capacity model)');

/**
 * bench/ingest: events/s and ingest -> ClickHouse-visible latency, black-box.
 *
 * Starts `afterglow all` (ingest + stream sink) as a child process — embedded adapters, or real
 * Kafka when KAFKA_BROKERS is set — posts pre-built batches over HTTP from this process, and polls
 * the totals endpoint to see when the events become visible in ClickHouse. The same bodies also go
 * to the raw path (raw-ingest-server.ts: parse and insert into the same chDB table, nothing else),
 * in the same run, and Afterglow's end to end is reported as a share of it. Prints figures and a
 * last `summary:` line; asserts nothing about speed. `--short` is the CI mode.
 *
 *   node bench/dist/ingest.js [--short] [--events N] [--batch N] [--concurrency N] [--mode raw|embedded|kafka|all] [--roles all|ingest,stream,...]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EVENT_KINDS } from '@afterglow/core';
import { flag, opt, optStr } from './args.js';

const SHORT = flag('short');
const TOTAL = opt('events', SHORT ? 100_000 : 1_000_000);
const BATCH = opt('batch', 5_000);
const CONCURRENCY = opt('concurrency', 4);
const MODE = optStr('mode', 'all');
/** The roles the measured server runs: `all` (what `npm start` runs) or a list, to see what each costs. */
const ROLES = optStr('roles', 'all');
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

interface Result {
  mode: string;
  events: number;
  ingestEventsPerSec: number;
  endToEndEventsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  rejected: number;
  /** The server's CPU time from the first post until all were visible, per 1,000 events (Linux /proc; undefined elsewhere). */
  cpu: { processMsPer1k: number; mainThreadMsPer1k: number } | undefined;
}

/** /proc counts CPU time in USER_HZ ticks, 100 a second on Linux. */
const TICK_MS = 10;

/**
 * CPU time a process has used, all threads and its main thread, in ms (Linux /proc, 10 ms ticks).
 * Wall-clock rates swing with whatever else the machine runs; CPU per event does much less, and
 * the main thread's share is what bounds one event loop.
 */
function cpuTimes(pid: number | undefined): { processMs: number; mainThreadMs: number } | undefined {
  if (pid === undefined) return undefined;
  const ticks = (file: string) => {
    const stat = readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  };
  try {
    return { processMs: ticks(`/proc/${pid}/stat`), mainThreadMs: ticks(`/proc/${pid}/task/${pid}/stat`) };
  } catch {
    return undefined;
  }
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
function crockford(n: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    s = CROCKFORD[n % 32]! + s;
    n = Math.floor(n / 32);
  }
  return s;
}
/** Cheap unique ULID-shaped ids: real time prefix, a run tag, then a counter. */
function idFactory(run: number) {
  const prefix = crockford(Date.now(), 10) + crockford(run, 6);
  return (n: number) => prefix + crockford(n, 10);
}

function buildBodies(campaign: string): Buffer[] {
  const id = idFactory(Math.floor(Math.random() * 1e9));
  const bodies: Buffer[] = [];
  const now = Date.now();
  for (let start = 0; start < TOTAL; start += BATCH) {
    const parts: string[] = [];
    for (let i = start; i < Math.min(TOTAL, start + BATCH); i++) {
      parts.push(
        `{"event_id":"${id(i)}","tenant_id":"bench","campaign_id":"${campaign}","asset_id":"asset-${i % 1000}","kind":"${EVENT_KINDS[i % 8]}","value":1,"occurred_at":${now - (i % 60_000)},"region":"eu-west","device":"mobile"}`,
      );
    }
    bodies.push(Buffer.from(`[${parts.join(',')}]`));
  }
  return bodies;
}

interface Server {
  url: string;
  child: ChildProcess;
  dataDir: string;
  /** Events of the campaign the store shows now. */
  visible(campaign: string): Promise<number>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, [path.join(root, 'cli/dist/main.js'), ROLES], {
    // AUTH_MODE=off: the pipeline's own throughput, without per-key rate limits (a key check is one
    // cached map lookup and one HMAC-SHA256 per request).
    env: { ...process.env, PORT: String(port), AFTERGLOW_DATA_DIR: dataDir, AFTERGLOW_DEMO: '0', LOG_LEVEL: 'warn', AUTH_MODE: 'off', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await ready(url, child);
  return { url, child, dataDir, visible: (campaign) => visible(url, campaign) };
}

async function startRawServer(): Promise<Server> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-raw-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const child = spawn(process.execPath, [path.join(root, 'bench/dist/raw-ingest-server.js'), String(port), dataDir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await ready(url, child);
  return {
    url,
    child,
    dataDir,
    visible: async (campaign) => {
      const res = await fetch(`${url}/count?campaign=${encodeURIComponent(campaign)}`);
      return res.ok ? ((await res.json()) as { total: number }).total : 0;
    },
  };
}

async function ready(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error('server did not become ready');
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function visible(url: string, campaign: string): Promise<number> {
  const res = await fetch(`${url}/v1/campaigns/${campaign}/totals?tenant_id=bench`);
  return res.ok ? ((await res.json()) as { total: number }).total : 0;
}

/** ms per 1,000 events, to a tenth. */
function perThousand(ms: number): number {
  return Math.round((ms * 10_000) / TOTAL) / 10;
}

async function runMode(mode: string, server: () => Promise<Server>): Promise<Result> {
  const campaign = `bench-${mode}-${Date.now().toString(36)}`;
  const bodies = buildBodies(campaign);
  const { url, child, dataDir, visible } = await server();
  try {
    const acked: { t: number; n: number }[] = [];
    const seen: { t: number; n: number }[] = [];
    let next = 0;
    let ackedCount = 0;
    let rejected = 0;
    const cpu0 = cpuTimes(child.pid);
    const t0 = performance.now();
    let monitoring = true;
    const monitor = (async () => {
      while (monitoring) {
        const n = await visible(campaign);
        seen.push({ t: performance.now(), n });
        if (n >= TOTAL) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const poster = async () => {
      for (;;) {
        const i = next++;
        if (i >= bodies.length) return;
        for (;;) {
          const res = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i] });
          if (res.status === 429) {
            await res.arrayBuffer();
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const body = (await res.json()) as { accepted: number; rejected: number };
          ackedCount += body.accepted;
          rejected += body.rejected;
          acked.push({ t: performance.now(), n: ackedCount });
          break;
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, poster));
    const tIngested = performance.now();
    const deadline = Date.now() + 300_000;
    while ((seen.at(-1)?.n ?? 0) < TOTAL && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    monitoring = false;
    await monitor;
    const cpu1 = cpuTimes(child.pid);
    const tVisible = seen.at(-1)!.t;
    if (seen.at(-1)!.n !== TOTAL) throw new Error(`only ${seen.at(-1)!.n} of ${TOTAL} events became visible`);

    // Latency of the i-th event: when ClickHouse first showed >= i events, minus when ingest acked it.
    const latencies: number[] = [];
    for (let k = 1; k <= 100; k++) {
      const target = Math.ceil((TOTAL * k) / 100);
      const a = acked.find((x) => x.n >= target);
      const s = seen.find((x) => x.n >= target);
      if (a && s) latencies.push(Math.max(0, s.t - a.t));
    }
    latencies.sort((x, y) => x - y);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
    return {
      mode,
      events: TOTAL,
      ingestEventsPerSec: Math.round(TOTAL / ((tIngested - t0) / 1000)),
      endToEndEventsPerSec: Math.round(TOTAL / ((tVisible - t0) / 1000)),
      p50Ms: Math.round(pct(50)),
      p99Ms: Math.round(pct(99)),
      rejected,
      cpu:
        cpu0 && cpu1
          ? { processMsPer1k: perThousand(cpu1.processMs - cpu0.processMs), mainThreadMsPer1k: perThousand(cpu1.mainThreadMs - cpu0.mainThreadMs) }
          : undefined,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const results: Result[] = [];
// The server inherits this environment: blank the service addresses that deploy/local/env.sh exports
// so that each mode measures the adapters it names (in-process chDB in both).
if (MODE === 'all' || MODE === 'raw' || MODE === 'embedded') results.push(await runMode('raw', startRawServer));
if (MODE === 'all' || MODE === 'embedded') results.push(await runMode('embedded', () => startServer({ KAFKA_BROKERS: '', CLICKHOUSE_URL: '' })));
if (MODE === 'all' || MODE === 'kafka') {
  const brokers = process.env.KAFKA_BROKERS;
  if (brokers) results.push(await runMode('kafka', () => startServer({ KAFKA_BROKERS: brokers, KAFKA_NAMESPACE: `bench-${Date.now().toString(36)}`, CLICKHOUSE_URL: '' })));
  else console.log('kafka mode skipped: KAFKA_BROKERS not set (deploy/local/up.sh; source deploy/local/env.sh)');
}

console.log(`\nbench:ingest  events=${TOTAL} batch=${BATCH} concurrency=${CONCURRENCY}${SHORT ? ' (short)' : ''}`);
console.log('mode       ingest ev/s   end-to-end ev/s   visible p50 ms   visible p99 ms   rejected   cpu ms/1k ev (process, main thread)');
for (const r of results) {
  console.log(
    `${r.mode.padEnd(10)} ${String(r.ingestEventsPerSec).padStart(11)}   ${String(r.endToEndEventsPerSec).padStart(15)}   ${String(r.p50Ms).padStart(14)}   ${String(r.p99Ms).padStart(14)}   ${String(r.rejected).padStart(8)}   ${r.cpu ? `${r.cpu.processMsPer1k}, ${r.cpu.mainThreadMsPer1k}` : 'n/a'}`,
  );
}
const rawPath = results.find((r) => r.mode === 'raw');
if (rawPath) {
  for (const r of results.filter((x) => x !== rawPath)) {
    console.log(`${r.mode}: end to end ${(r.endToEndEventsPerSec / rawPath.endToEndEventsPerSec).toFixed(2)} x the raw path`);
    if (r.cpu && rawPath.cpu) {
      const share = (a: number, b: number) => (a / b).toFixed(2);
      console.log(`${r.mode}: raw path's CPU per event / ${r.mode}'s: ${share(rawPath.cpu.processMsPer1k, r.cpu.processMsPer1k)} (process), ${share(rawPath.cpu.mainThreadMsPer1k, r.cpu.mainThreadMsPer1k)} (main thread)`);
    }
  }
}
const figure = (mode: string) => results.find((r) => r.mode === mode)?.endToEndEventsPerSec;
const summary: [string, number | undefined][] = [
  ['ingest_embedded_e2e_evps', figure('embedded')],
  ['ingest_raw_path_evps', figure('raw')],
  ['ingest_kafka_e2e_evps', figure('kafka')],
  ['ingest_embedded_share_of_raw', figure('embedded') && figure('raw') ? Number((figure('embedded')! / figure('raw')!).toFixed(3)) : undefined],
  ['ingest_embedded_visible_p99_ms', results.find((r) => r.mode === 'embedded')?.p99Ms],
  ['ingest_embedded_main_thread_cpu_ms_per_1k', results.find((r) => r.mode === 'embedded')?.cpu?.mainThreadMsPer1k],
  ['ingest_raw_path_main_thread_cpu_ms_per_1k', rawPath?.cpu?.mainThreadMsPer1k],
];
console.log(`summary: ${summary.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ')}`);

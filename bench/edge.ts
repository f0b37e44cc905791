/**
 * bench/edge: decision round trip on /v1/edge, black-box, on loopback.
 *
 * A server process (the ingest role alone, embedded adapters; bench/live-server with BENCH_ROLES=ingest) takes `--clients`
 * edge clients (the reference client, ingest/src/edge/client.ts, spread over two worker threads),
 * each subscribed to one of 20 placements of 5 creatives that carry real engagement counts. Every
 * client asks `decide` (one Thompson draw) about every `--interval` ms (jittered) and times the
 * answer: request written -> decision read. Then the same clients, at the same pace, against a
 * bare `ws` echo server (ws-echo-server.ts) in the same run: the raw round trip the edge's is
 * compared with. Prints p50/p90/p99/max and decisions/s, and a last `summary:` line; asserts
 * nothing. Target: p99 <= 2 ms with 1,000 clients, within 2x of the raw round trip. `--short` is
 * the CI size.
 *
 *   node bench/dist/edge.js [--short] [--clients N] [--seconds N] [--interval MS]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ulid } from '@afterglow/core';
import { EdgeClient } from '@afterglow/ingest';
import { WebSocket } from 'ws';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const CLIENTS = opt('clients', 1_000);
const SECONDS = opt('seconds', SHORT ? 6 : 20);
const INTERVAL = opt('interval', 500);
const PLACEMENTS = 20;
const ASSETS = 5;
const WORKERS = 2;
const TENANT = 'bench-edge';
const here = path.dirname(new URL(import.meta.url).pathname);
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

const placement = (i: number) => `screen-${i % PLACEMENTS}`;
const asset = (p: number, a: number) => `creative-${p}-${a}`;

interface Result {
  connected: number;
  rtts: number[];
}

/** A client of the raw baseline: a frame out, the echo back, timed like a decision. */
class EchoClient {
  private socket: WebSocket | undefined;
  private waiting: (() => void) | undefined;
  /** About the size of a binary decide request. */
  private readonly frame = Buffer.alloc(32, 7);

  constructor(private readonly url: string) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      socket.binaryType = 'nodebuffer';
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.on('message', () => {
        const w = this.waiting;
        this.waiting = undefined;
        w?.();
      });
      this.socket = socket;
    });
  }

  decide(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.socket!.send(this.frame);
    });
  }

  close(): void {
    this.socket?.close();
  }
}

if (!isMainThread) {
  // Options come from the main thread (a worker's argv does not carry them).
  const { url, from, count, measureMs, interval, raw } = workerData as { url: string; from: number; count: number; measureMs: number; interval: number; raw: boolean };
  if (raw) {
    const clients: EchoClient[] = [];
    for (let i = 0; i < count; i += 50) {
      clients.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(50, count - i) }, async () => {
            const c = new EchoClient(url);
            await c.connect();
            return c;
          }),
        )),
      );
    }
    parentPort!.postMessage({ type: 'connected' });
    const rtts: number[] = [];
    let measuring = true;
    const loops = clients.map(async (c) => {
      await new Promise((r) => setTimeout(r, Math.random() * interval));
      while (measuring) {
        const t0 = performance.now();
        await c.decide();
        rtts.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, interval * (0.5 + Math.random())));
      }
    });
    await new Promise((r) => setTimeout(r, measureMs));
    measuring = false;
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 3 * interval))]);
    for (const c of clients) c.close();
    parentPort!.postMessage({ type: 'done', result: { connected: clients.length, rtts } satisfies Result });
    process.exit(0);
  }
  const clients: EdgeClient[] = [];
  for (let i = from; i < from + count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, from + count - i) }, async (_, j) => {
        const c = new EdgeClient({ url, clientId: `bench-${i + j}`, tenantId: TENANT, binary: true, reconnect: false, pingMs: 60_000 });
        await c.connect();
        const p = (i + j) % PLACEMENTS;
        c.subscribe(placement(p), Array.from({ length: ASSETS }, (_, a) => asset(p, a)));
        return c;
      }),
    );
    clients.push(...batch);
  }
  parentPort!.postMessage({ type: 'connected' });
  const rtts: number[] = [];
  let measuring = true;
  const loops = clients.map(async (c, i) => {
    await new Promise((r) => setTimeout(r, Math.random() * interval));
    while (measuring) {
      const t0 = performance.now();
      await c.decide(placement(from + i));
      rtts.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, interval * (0.5 + Math.random())));
    }
  });
  await new Promise((r) => setTimeout(r, measureMs));
  measuring = false;
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 3 * interval))]);
  for (const c of clients) c.close();
  parentPort!.postMessage({ type: 'done', result: { connected: clients.length, rtts } satisfies Result });
} else {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-edge-'));
  const child = spawn(process.execPath, [...process.execArgv, path.join(here, `live-server${ext}`)], {
    env: {
      ...process.env,
      KAFKA_BROKERS: '',
      REDIS_URL: '',
      NATS_URL: '',
      PORT: '0',
      AFTERGLOW_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      AUTH_MODE: 'off',
      BENCH_ROLES: 'ingest',
      EDGE_IDLE_TIMEOUT_MS: '120000',
      RATE_MAX_CONNECTIONS: String(CLIENTS + 100),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const url = await readyLine(child);
    // Engagement behind the decisions: each creative gets impressions and clicks at its own rate.
    const seeder = new EdgeClient({ url, clientId: 'bench-seeder', tenantId: TENANT, binary: true, reconnect: false });
    await seeder.connect();
    const now = Date.now();
    for (let p = 0; p < PLACEMENTS; p++) {
      const events = [];
      for (let a = 0; a < ASSETS; a++) {
        for (let i = 0; i < 200; i++) {
          const at = now - i * 50;
          events.push({ event_id: ulid(at), campaign_id: 'bench', asset_id: asset(p, a), placement: placement(p), kind: i < 5 + a * 5 ? 'click' : 'impression', value: 1, occurred_at: at });
        }
      }
      await seeder.send(events);
    }
    seeder.close();

    const edge = await measureClients(url, false);
    report('edge', edge);
    const echo = spawn(process.execPath, [...process.execArgv, path.join(here, `ws-echo-server${ext}`)], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const rawUrl = await readyLine(echo);
      const raw = await measureClients(rawUrl, true);
      report('raw ws echo', raw);
      console.log(`edge: p99 ${(quantile(edge, 0.99) / quantile(raw, 0.99)).toFixed(2)} x the raw ws round trip (target <= 2x)`);
      console.log(`summary: edge_clients=${CLIENTS} edge_p50_ms=${quantile(edge, 0.5).toFixed(3)} edge_p99_ms=${quantile(edge, 0.99).toFixed(3)} edge_raw_ws_rtt_p99_ms=${quantile(raw, 0.99).toFixed(3)} edge_decisions_per_s=${(edge.length / SECONDS).toFixed(0)}`);
    } finally {
      echo.kill('SIGTERM');
      await new Promise((r) => (echo.exitCode !== null ? r(undefined) : echo.once('exit', r)));
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** `--clients` clients over WORKERS threads for `--seconds`: their round trips, sorted. */
async function measureClients(url: string, raw: boolean): Promise<number[]> {
  const per = Math.ceil(CLIENTS / WORKERS);
  const started = performance.now();
  const workers = Array.from({ length: WORKERS }, (_, w) => new Worker(new URL(import.meta.url), { workerData: { url, from: w * per, count: Math.min(per, CLIENTS - w * per), measureMs: SECONDS * 1000, interval: INTERVAL, raw }, execArgv: process.execArgv }));
  let connected = 0;
  const results = await Promise.all(
    workers.map(
      (w) =>
        new Promise<Result>((resolve, reject) => {
          w.on('message', (m: { type: string; result?: Result }) => {
            if (m.type === 'connected' && ++connected === WORKERS) console.log(`${raw ? 'raw ws echo' : 'edge'}: ${CLIENTS} clients connected in ${((performance.now() - started) / 1000).toFixed(1)} s`);
            if (m.type === 'done') resolve(m.result!);
          });
          w.once('error', reject);
        }),
    ),
  );
  return results.flatMap((r) => r.rtts).sort((a, b) => a - b);
}

function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

function report(name: string, rtts: number[]): void {
  console.log(
    `${name}: round trip over ${CLIENTS} clients, ${rtts.length} in ~${SECONDS} s (${(rtts.length / SECONDS).toFixed(0)}/s): ` +
      `p50 ${quantile(rtts, 0.5).toFixed(3)} ms, p90 ${quantile(rtts, 0.9).toFixed(3)} ms, p99 ${quantile(rtts, 0.99).toFixed(3)} ms, max ${rtts.at(-1)?.toFixed(3)} ms`,
  );
}

function readyLine(child: ReturnType<typeof spawn>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      const m = /READY (\S+)/.exec((out += d.toString()));
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

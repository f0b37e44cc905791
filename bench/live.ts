/**
 * bench/live: the live path, black-box, in two parts.
 *
 * 1. Latency. A server process (ingest + live roles; embedded adapters, or Kafka + Redis + NATS
 *    when their variables are set) takes `--rate` events/s over HTTP across 500 assets, while a
 *    probe asset gets one click every 100 ms in a POST of its own. Two dashboard clients, one
 *    watching the probe asset and one the whole (busy) campaign, note when each click shows up:
 *    event -> dashboard latency, from the POST to the WebSocket message that carries it.
 * 2. Fan-out. `--clients` WebSocket clients (spread over worker threads) each watch one of 20
 *    assets that take 2,000 events/s between them. Update lag is the time from the gateway building
 *    a frame (its `at`) to a client receiving it; outbound messages/s from the clients' count and
 *    the server's metrics.
 * Prints figures; asserts nothing about speed. `--short` is the CI size (about a minute).
 *
 *   node bench/dist/live.js [--short] [--mode embedded|kafka|all] [--rate N] [--seconds N] [--clients N] [--updates N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { WebSocket } from 'ws';
import { EVENT_KINDS } from '@afterglow/core';
import { watchClicks } from './live-probe.js';
import { flag, opt, optStr } from './args.js';

const SHORT = flag('short');
const RATE = opt('rate', 10_000);
const SECONDS = opt('seconds', SHORT ? 8 : 30);
const CLIENTS = opt('clients', 5_000);
const UPDATES = opt('updates', 10);
const MODE = optStr('mode', 'all');
const FANOUT_RATE = 2_000;
const FANOUT_ASSETS = 20;
const WORKERS = 2;
const here = path.dirname(new URL(import.meta.url).pathname);
const TENANT = 'bench-live';

interface WorkerResult {
  connected: number;
  failed: number;
  messages: number;
  lags: number[];
  silent: number;
}

if (!isMainThread && (workerData as { role: string }).role === 'probe') {
  // A worker holding the latency bench's dashboards, so their clocks are not held up by the load
  // generator on the main thread: it notes when each client first saw each click count.
  const { url, probe, campaign } = workerData as { url: string; probe: string; campaign: string };
  const seen: Record<string, [number, number][]> = {};
  await Promise.all(
    (['asset', 'campaign'] as const).map(async (name) => {
      seen[name] = (await watchClicks(url, TENANT, probe, name === 'asset' ? { asset: probe } : { campaign })).seen;
    }),
  );
  parentPort!.postMessage({ type: 'connected' });
  parentPort!.once('message', () => parentPort!.postMessage({ type: 'done', seen }));
} else if (!isMainThread) {
  // A worker: a share of the fan-out clients.
  const { url, count, offset, warmupMs, measureMs } = workerData as { url: string; count: number; offset: number; warmupMs: number; measureMs: number };
  const lags: number[] = [];
  let messages = 0;
  let measuring = false;
  const perClient = new Array<number>(count).fill(0);
  const sockets: WebSocket[] = [];
  let failed = 0;
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, (_, j) => {
        const index = i + j;
        const asset = `fan-a${(offset + index) % FANOUT_ASSETS}`;
        return new Promise<void>((resolve) => {
          const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/live?tenant_id=${TENANT}`, { perMessageDeflate: false });
          ws.on('open', () => {
            ws.send(JSON.stringify({ op: 'subscribe', asset }));
            sockets.push(ws);
            resolve();
          });
          ws.on('error', () => {
            failed++;
            resolve();
          });
          ws.on('message', (data: Buffer) => {
            if (!measuring) return;
            const now = Date.now();
            // The frame's `at` without parsing the whole message (a real dashboard would).
            const s = data.toString('latin1', 0, 160);
            if (!s.startsWith('{"type":"delta"')) return;
            const k = s.indexOf('"at":');
            messages++;
            perClient[index]!++;
            if (k >= 0) lags.push(now - Number.parseInt(s.slice(k + 5, k + 20), 10));
          });
        });
      }),
    );
  }
  parentPort!.postMessage({ type: 'connected' });
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  await new Promise((r) => setTimeout(r, measureMs));
  measuring = false;
  for (const ws of sockets) ws.terminate();
  const result: WorkerResult = { connected: sockets.length, failed, messages, lags, silent: perClient.filter((n) => n === 0).length };
  parentPort!.postMessage({ type: 'done', result });
}

async function startServer(env: Record<string, string>, script = 'live-server.js'): Promise<{ url: string; child: ChildProcess; dataDir: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-bench-live-'));
  // BENCH_NODE_ARGS: extra node flags for the server (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(here, script)], {
    env: {
      ...process.env,
      KAFKA_BROKERS: '',
      REDIS_URL: '',
      NATS_URL: '',
      PORT: '0',
      AFTERGLOW_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      // No keys and no per-key connection limit: the bench opens thousands of sockets as one client.
      AUTH_MODE: 'off',
      // Prometheus is on its own listener (METRICS_PORT); live-server prints where.
      METRICS_PORT: '0',
      LIVE_WS_MAX_UPDATES_PER_SEC: String(UPDATES),
      LIVE_GROUP_ID: `bench-live-${Date.now().toString(36)}`,
      LIVE_KEY_PREFIX: `bench:${Date.now().toString(36)}`,
      ...env,
    },
    // stdin stays open: the server stops when this process goes away, however it goes.
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not start')), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)(?: METRICS (\S+))?\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        if (m[2]) METRICS_URLS.set(m[1]!, m[2]);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { url, child, dataDir };
}

async function stopServer(s: { child: ChildProcess; dataDir: string }): Promise<void> {
  s.child.kill('SIGTERM');
  await new Promise((r) => (s.child.exitCode !== null ? r(undefined) : s.child.once('exit', r)));
  rmSync(s.dataDir, { recursive: true, force: true });
}

/** One POST body of `n` events over `assets`, with a placeholder for the time. */
function bodyTemplate(campaign: string, prefix: string, n: number, assets: number, seed: number): string[] {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const kind = EVENT_KINDS[(i * 3 + seed) % EVENT_KINDS.length];
    parts.push(`{"event_id":"@ID${i}@","tenant_id":"${TENANT}","campaign_id":"${campaign}","asset_id":"${prefix}${(i + seed) % assets}","kind":"${kind}","occurred_at":`);
  }
  return parts;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let idCounter = 0;
function ulidLike(): string {
  let t = Date.now();
  let s = '';
  for (let i = 0; i < 10; i++) {
    s = CROCKFORD[t % 32]! + s;
    t = Math.floor(t / 32);
  }
  let n = idCounter++;
  let r = '';
  for (let i = 0; i < 16; i++) {
    r = CROCKFORD[n % 32]! + r;
    n = Math.floor(n / 32);
  }
  return s + r;
}

function render(parts: string[]): string {
  const now = Date.now();
  return `[${parts.map((p, i) => `${p.replace(`@ID${i}@`, ulidLike())}${now}}`).join(',')}]`;
}

/** Posts `rate` events/s in batches every 50 ms until stopped; returns how many were accepted. */
function load(url: string, campaign: string, prefix: string, assets: number, rate: number) {
  const perTick = Math.max(1, Math.round(rate / 20));
  const templates = Array.from({ length: 8 }, (_, s) => bodyTemplate(campaign, prefix, perTick, assets, s));
  let running = true;
  let accepted = 0;
  let failed = 0;
  let tick = 0;
  const started = Date.now();
  const inflight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    if (!running || inflight.size > 8) return;
    const body = render(templates[tick++ % templates.length]!);
    const p = fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then(async (res) => {
        if (res.status === 202) accepted += ((await res.json()) as { accepted: number }).accepted;
        else {
          failed++;
          await res.arrayBuffer();
        }
      })
      .catch(() => void failed++)
      .finally(() => inflight.delete(p));
    inflight.add(p);
  }, 50);
  return {
    async stop() {
      running = false;
      clearInterval(timer);
      await Promise.all(inflight);
      return { accepted, failed, seconds: (Date.now() - started) / 1000 };
    },
  };
}

function maxOf(values: number[]): number {
  let m = -Infinity;
  for (const v of values) if (v > m) m = v;
  return values.length ? m : NaN;
}

function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** A quantile of a Prometheus histogram, as the upper bound of the bucket that holds it. */
function histogramQuantile(text: string, name: string, q: number): number {
  const buckets = text
    .split('\n')
    .filter((l) => l.startsWith(`${name}_bucket{`))
    .map((l) => ({ le: Number((/le="([^"]+)"/.exec(l) ?? [])[1]?.replace('+Inf', 'Infinity')), n: Number(l.split(' ').at(-1)) }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.n ?? 0;
  return buckets.find((b) => b.n >= q * total)?.le ?? NaN;
}

/** Server URL -> its Prometheus endpoint (the admin listener). */
const METRICS_URLS = new Map<string, string>();

function metricsText(url: string): Promise<string> {
  const at = METRICS_URLS.get(url);
  if (!at) throw new Error(`no metrics endpoint known for ${url}`);
  return fetch(at).then((r) => r.text());
}

async function metric(url: string, name: string): Promise<number> {
  const text = await metricsText(url);
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

interface LatencyResult {
  mode: string;
  subscription: string;
  eventsPerSec: number;
  /** Server side, from its histograms (bucket upper bounds): produce ack p99, ingest -> applied p99. */
  produceP99: number;
  applyP99: number;
  probes: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
}

async function latency(mode: string, env: Record<string, string>): Promise<LatencyResult[]> {
  const server = await startServer(env);
  try {
    const { url } = server;
    const campaign = `lat-${Date.now().toString(36)}`;
    const probe = `${campaign}-probe`;
    // Two dashboards in a worker thread: one watches the probe asset (a quiet topic), one the
    // whole campaign (a busy one, whose updates follow the LIVE_WS_MAX_UPDATES_PER_SEC cadence).
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'probe', url, probe, campaign } });
    const connected = new Promise<void>((r) => worker.on('message', (m: { type: string }) => m.type === 'connected' && r()));
    const done = new Promise<Record<string, [number, number][]>>((r) =>
      worker.on('message', (m: { type: string; seen: Record<string, [number, number][]> }) => m.type === 'done' && r(m.seen)),
    );
    await connected;
    const background = load(url, campaign, `${campaign}-a`, 500, RATE);
    await new Promise((r) => setTimeout(r, 2_000)); // warm up: JIT, consumer assignment, topic loads
    const end = Date.now() + SECONDS * 1000;
    const sent: number[] = [];
    while (Date.now() < end) {
      const at = Date.now();
      sent.push(at);
      await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ event_id: ulidLike(), tenant_id: TENANT, campaign_id: campaign, asset_id: probe, kind: 'click', occurred_at: at }]),
      }).then((r) => r.arrayBuffer());
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 3_000)); // the last probes' way through
    const bg = await background.stop();
    worker.postMessage('stop');
    const seen = await done;
    await worker.terminate();
    const text = await metricsText(url);
    const produceP99 = histogramQuantile(text, 'afterglow_ingest_produce_seconds', 0.99) * 1000;
    const applyP99 = histogramQuantile(text, 'afterglow_live_apply_lag_seconds', 0.99) * 1000;
    return (['asset', 'campaign'] as const).map((name) => {
      const lat: number[] = [];
      let lost = 0;
      sent.forEach((at, i) => {
        const hit = seen[name]!.find(([count]) => count >= i + 1);
        if (hit) lat.push(hit[1] - at);
        else lost++;
      });
      return {
        mode,
        subscription: name,
        eventsPerSec: Math.round(bg.accepted / bg.seconds),
        produceP99,
        applyP99,
        probes: lat.length,
        p50: pct(lat, 50),
        p99: pct(lat, 99),
        max: maxOf(lat),
        lost,
      };
    });
  } finally {
    await stopServer(server);
  }
}

interface FanoutResult {
  mode: string;
  clients: number;
  failed: number;
  silent: number;
  messagesPerSec: number;
  serverMessagesPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * The fan-out clients against one server: the live gateway under FANOUT_RATE events/s, or (`raw`)
 * the bare ws broadcaster sending `frameBytes` frames at the gateway's update rate.
 */
async function fanout(mode: string, env: Record<string, string>, raw?: { frameBytes: number }): Promise<FanoutResult> {
  const server = raw ? await startServer({ UPDATES: String(UPDATES), FRAME_BYTES: String(raw.frameBytes) }, 'ws-broadcast-server.js') : await startServer(env);
  try {
    const { url } = server;
    const campaign = `fan-${Date.now().toString(36)}`;
    const background = raw ? { stop: async () => undefined } : load(url, campaign, 'fan-a', FANOUT_ASSETS, FANOUT_RATE);
    await new Promise((r) => setTimeout(r, 1_000));
    const measureMs = SECONDS * 1000;
    const per = Math.ceil(CLIENTS / WORKERS);
    // Workers connect, wait 3 s (snapshots, topic loads), then measure for the same window.
    const real = Array.from({ length: WORKERS }, (_, w) => {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { url, count: Math.min(per, CLIENTS - w * per), offset: w * per, warmupMs: 3_000, measureMs },
      });
      const connected = new Promise<void>((r) => worker.on('message', (m: { type: string }) => m.type === 'connected' && r()));
      const done = new Promise<WorkerResult>((r) => worker.on('message', (m: { type: string; result: WorkerResult }) => m.type === 'done' && r(m.result)));
      return { worker, connected, done };
    });
    await Promise.all(real.map((r) => r.connected));
    await new Promise((r) => setTimeout(r, 3_000));
    const m0 = await metric(url, 'afterglow_live_ws_messages_total');
    const b0 = await metric(url, 'afterglow_live_ws_bytes_total');
    const t0 = Date.now();
    const results = await Promise.all(real.map((r) => r.done));
    const seconds = (Date.now() - t0) / 1000;
    const m1 = await metric(url, 'afterglow_live_ws_messages_total');
    const b1 = await metric(url, 'afterglow_live_ws_bytes_total');
    await background.stop();
    for (const r of real) await r.worker.terminate();
    const lags = results.flatMap((r) => r.lags);
    const messages = results.reduce((a, r) => a + r.messages, 0);
    return {
      mode,
      clients: results.reduce((a, r) => a + r.connected, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      silent: results.reduce((a, r) => a + r.silent, 0),
      messagesPerSec: Math.round(messages / (measureMs / 1000)),
      serverMessagesPerSec: Math.round((m1 - m0) / seconds),
      mbPerSec: Math.round(((b1 - b0) / seconds / 1e6) * 10) / 10,
      p50: pct(lags, 50),
      p99: pct(lags, 99),
      max: maxOf(lags),
    };
  } finally {
    await stopServer(server);
  }
}

async function main(): Promise<void> {
  const modes: [string, Record<string, string>][] = [];
  if (MODE === 'all' || MODE === 'embedded') modes.push(['embedded', {}]);
  if (MODE === 'all' || MODE === 'kafka') {
    const { KAFKA_BROKERS, REDIS_URL, NATS_URL } = process.env;
    if (KAFKA_BROKERS && REDIS_URL && NATS_URL) modes.push(['kafka+redis+nats', { KAFKA_BROKERS, REDIS_URL, NATS_URL, KAFKA_NAMESPACE: `bench-${Date.now().toString(36)}` }]);
    else console.log('kafka mode skipped: KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh; source deploy/local/env.sh)');
  }
  const lat: LatencyResult[] = [];
  const fan: FanoutResult[] = [];
  for (const [mode, env] of modes) lat.push(...(await latency(mode, env)));
  // Fan-out on the last mode given (the production wiring when services are there).
  const [fanMode, fanEnv] = modes[modes.length - 1]!;
  const gateway = await fanout(fanMode, fanEnv);
  fan.push(gateway);
  // The same clients, the same frame size and update rate, from a bare ws server.
  const frameBytes = Math.max(64, Math.round((gateway.mbPerSec * 1e6) / Math.max(1, gateway.serverMessagesPerSec)));
  const raw = await fanout('raw ws broadcast', {}, { frameBytes });
  fan.push(raw);

  console.log(`\nbench:live  latency: ${RATE} events/s offered for ${SECONDS} s, probe every 100 ms; LIVE_WS_MAX_UPDATES_PER_SEC=${UPDATES}${SHORT ? ' (short)' : ''}`);
  console.log('mode               watching   accepted ev/s   probes   event->ws p50 ms   p99 ms   max ms   lost   server: produce p99 ms  ingest->applied p99 ms');
  for (const r of lat) {
    console.log(
      `${r.mode.padEnd(18)} ${r.subscription.padEnd(8)}   ${String(r.eventsPerSec).padStart(13)}   ${String(r.probes).padStart(6)}   ${String(r.p50).padStart(16)}   ${String(r.p99).padStart(6)}   ${String(r.max).padStart(6)}   ${String(r.lost).padStart(4)}   ${(`<=${r.produceP99}`).padStart(22)}  ${(`<=${r.applyP99}`).padStart(22)}`,
    );
  }
  console.log(`\nbench:live  fan-out: clients on ${FANOUT_ASSETS} asset topics, ${FANOUT_RATE} events/s, ${SECONDS} s measured`);
  console.log('mode               clients   failed   silent   client msg/s   server msg/s   MB/s   lag p50 ms   p99 ms   max ms');
  for (const r of fan) {
    console.log(
      `${r.mode.padEnd(18)} ${String(r.clients).padStart(7)}   ${String(r.failed).padStart(6)}   ${String(r.silent).padStart(6)}   ${String(r.messagesPerSec).padStart(12)}   ${String(r.serverMessagesPerSec).padStart(12)}   ${String(r.mbPerSec).padStart(4)}   ${String(r.p50).padStart(10)}   ${String(r.p99).padStart(6)}   ${String(r.max).padStart(6)}`,
    );
  }
  console.log(`gateway: ${(gateway.serverMessagesPerSec / Math.max(1, raw.serverMessagesPerSec)).toFixed(2)} x the raw broadcaster's server msg/s (${frameBytes} B frames, ${UPDATES} updates/s per topic)`);
  const kafka = lat.filter((r) => r.mode.startsWith('kafka'));
  const summary: [string, number | undefined][] = [
    ['live_embedded_p99_ms', maxOrUndefined(lat.filter((r) => r.mode === 'embedded').map((r) => r.p99))],
    ['live_kafka_p99_ms', maxOrUndefined(kafka.map((r) => r.p99))],
    ['fanout_clients', gateway.clients],
    ['fanout_p99_ms', gateway.p99],
    ['fanout_server_msgps', gateway.serverMessagesPerSec],
    ['fanout_raw_ws_msgps', raw.serverMessagesPerSec],
    ['fanout_raw_ws_p99_ms', raw.p99],
  ];
  console.log(`summary: ${summary.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ')}`);
}

function maxOrUndefined(values: number[]): number | undefined {
  return values.length > 0 ? Math.max(...values) : undefined;
}

if (isMainThread) await main();

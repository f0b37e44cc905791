/**
 * bench/ingest-hostile: how long one request holds the server's event loop, for hostile bodies and
 * stream messages beside normal ones, measured in the same run. The server runs in this process
 * (embedded adapters, ingest role only, the default ingest limits), so a 1 ms timer chain sees its
 * event loop: for each body, the longest gap between ticks while it is handled, in wall time and
 * in this process's CPU time over the same gap (which leaves out time the OS gave other processes
 * on a loaded machine), and its answer time, while another client polls /v1/whoami. Then the cost
 * of refusing random well-formed keys against malformed ones. Prints figures; asserts nothing.
 * Takes well under a minute. */
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { EVENT_KINDS, generateKey, loadConfig, ulid } from '@afterglow/core';
import { unpack } from 'msgpackr';
import { WebSocket } from 'ws';
import { start } from 'afterglow';
import { opt } from './args.js';

const REPEAT = opt('repeat', 5);
const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-hostile-'));
const config = loadConfig({
  PORT: '0',
  LOG_LEVEL: 'error',
  AFTERGLOW_DATA_DIR: dataDir,
  AFTERGLOW_DEMO: '0',
  RATE_EVENTS_PER_SEC: '0',
  RATE_BYTES_PER_SEC: '0',
  RATE_MAX_CONNECTIONS: '0',
  // The auth figures below measure refusals themselves, not the per-address budget that stops them.
  // Keys on outside the demo need a pepper; a bench makes its own.
  AUTH_KEY_PEPPER: randomBytes(32).toString('hex'),
  AUTH_FAIL_PER_IP_PER_MIN: '0',
});
const running = await start(config, { roles: ['ingest'], demo: false });
const keys = running.keys!;
const tenant = 'bench-hostile';
const ingestKey = (await keys.create({ tenantId: tenant, scopes: ['ingest'], name: 'bench' })).key;
const readKey = (await keys.create({ tenantId: tenant, scopes: ['read'], name: 'bench' })).key;

function events(n: number): string[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({ event_id: ulid(now), tenant_id: tenant, campaign_id: 'c', asset_id: `a-${i % 100}`, kind: EVENT_KINDS[i % EVENT_KINDS.length], value: 1, occurred_at: now - (i % 60_000), region: 'eu-west' }),
  );
}

interface Body {
  name: string;
  kind: 'normal' | 'hostile';
  bytes: Buffer;
  /** A content type (POST /v1/events), or 'ws' / 'ws-binary' for one text / MessagePack message on /v1/stream. */
  type: string;
  gzip: boolean;
}

const e5k = events(5_000);
const e50k = events(50_000);
const bodies: Body[] = [
  { name: 'normal: 5,000 events, JSON', kind: 'normal', bytes: Buffer.from(`[${e5k.join(',')}]`), type: 'application/json', gzip: false },
  { name: 'normal: 50,000 events, JSON', kind: 'normal', bytes: Buffer.from(`[${e50k.join(',')}]`), type: 'application/json', gzip: false },
  { name: 'normal: 50,000 events, NDJSON gzip', kind: 'normal', bytes: gzipSync(e50k.join('\n')), type: 'application/x-ndjson', gzip: true },
  { name: 'hostile: 1M undecodable lines, gzip', kind: 'hostile', bytes: gzipSync('x\n'.repeat(1_000_000)), type: 'application/x-ndjson', gzip: true },
  { name: 'hostile: 99,000 undecodable lines, gzip', kind: 'hostile', bytes: gzipSync('{nope\n'.repeat(99_000)), type: 'application/x-ndjson', gzip: true },
  { name: 'hostile: 99,000 `{}` lines (valid JSON, no event)', kind: 'hostile', bytes: gzipSync('{}\n'.repeat(99_000)), type: 'application/x-ndjson', gzip: true },
  { name: 'hostile: 16 MB array of 1-byte elements, gzip', kind: 'hostile', bytes: gzipSync(`[${'1,'.repeat(8_000_000)}1]`), type: 'application/json', gzip: true },
  { name: 'hostile: 8 MB line of nesting, gzip', kind: 'hostile', bytes: gzipSync(`${'['.repeat(4_000_000)}${']'.repeat(4_000_000)}`), type: 'application/x-ndjson', gzip: true },
  // (The WebSocket client shares this process: masking the 3.9 MB frame counts in its stall.)
  { name: 'hostile: WebSocket message of 1.3M `{}`', kind: 'hostile', bytes: Buffer.from(`{"seq":1,"events":[${'{},'.repeat(1_300_000)}{}]}`), type: 'ws', gzip: false },
  { name: 'hostile: MessagePack message of 4M empty maps', kind: 'hostile', bytes: msgpackBomb(4_000_000), type: 'ws-binary', gzip: false },
];

/** `{seq: 1, events: [{}, {}, ...]}` in MessagePack: n one-byte empty maps. */
function msgpackBomb(n: number): Buffer {
  const head = Buffer.from([0x82, 0xa3, 0x73, 0x65, 0x71, 0x01, 0xa6, ...Buffer.from('events'), 0xdd, 0, 0, 0, 0]);
  head.writeUInt32BE(n, head.length - 4);
  return Buffer.concat([head, Buffer.alloc(n, 0x80)]);
}

const stream = new WebSocket(`${running.url.replace(/^http/, 'ws')}/v1/stream`, { headers: { authorization: `Bearer ${ingestKey}` } });
await new Promise((resolve, reject) => stream.once('open', resolve).once('error', reject));

/** Sends one text message on the stream; its ack or error, as an HTTP-like answer. */
async function sendMessage(bytes: Buffer, binary: boolean): Promise<{ status: number; text: string }> {
  const reply = new Promise<Buffer>((resolve) => stream.once('message', (d) => resolve(d as Buffer)));
  stream.send(bytes, { binary });
  const raw = await reply;
  const m = (binary ? unpack(raw) : JSON.parse(String(raw))) as { type: string; code?: string; accepted?: number; rejected?: number };
  return { status: m.type === 'ack' ? 200 : 400, text: JSON.stringify(m.type === 'ack' ? { accepted: m.accepted, rejected: m.rejected } : { error: `ws ${m.code}` }) };
}

/**
 * The longest gap between 1 ms timer ticks, in wall time and in this process's CPU time over the
 * same gap (min of the two). On a loaded machine a wall gap also holds time the OS gave other
 * processes; the CPU figure leaves that out (it includes this process's other threads: zlib, GC).
 */
class StallMeter {
  private timer: NodeJS.Timeout | undefined;
  wallMs = 0;
  cpuMs = 0;
  start(): void {
    let at = performance.now();
    let cpu = process.cpuUsage();
    const tick = () => {
      const now = performance.now();
      const used = process.cpuUsage(cpu);
      const gap = now - at - 1;
      this.wallMs = Math.max(this.wallMs, gap);
      this.cpuMs = Math.max(this.cpuMs, Math.min(gap, (used.user + used.system) / 1000));
      at = now;
      cpu = process.cpuUsage();
      this.timer = setTimeout(tick, 1);
    };
    this.timer = setTimeout(tick, 1);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}

async function measure(body: Body): Promise<{ status: number; code: string; ms: number; loopMaxMs: number; cpuStallMs: number }> {
  // Another client's requests are going on meanwhile (it shares this process, so the stall
  // figures, not its latencies, are what says how long it waited).
  let done = false;
  const poller = (async () => {
    while (!done) {
      await fetch(`${running.url}/v1/whoami`, { headers: { authorization: `Bearer ${readKey}` } })
        .then((res) => res.arrayBuffer())
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await new Promise((r) => setTimeout(r, 20));
  const meter = new StallMeter();
  meter.start();
  const t0 = performance.now();
  const res =
    body.type.startsWith('ws')
      ? await sendMessage(body.bytes, body.type === 'ws-binary')
      : await fetch(`${running.url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ingestKey}`, 'content-type': body.type, ...(body.gzip && { 'content-encoding': 'gzip' }) },
          body: body.bytes,
        }).then(async (r) => ({ status: r.status, text: await r.text() }));
  const { text } = res;
  const ms = performance.now() - t0;
  meter.stop();
  done = true;
  await poller;
  const json = JSON.parse(text) as { error?: string; accepted?: number; rejected?: number };
  return { status: res.status, code: json.error ?? `accepted ${json.accepted}, rejected ${json.rejected}`, ms, loopMaxMs: meter.wallMs, cpuStallMs: meter.cpuMs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `ingest-hostile: default limits (INGEST_MAX_EVENTS_PER_REQUEST ${config.ingest.maxEventsPerRequest}, INGEST_MAX_BAD_LINES ${config.ingest.maxBadLines}, ` +
    `INGEST_MAX_BODY_BYTES ${config.ingest.maxBodyBytes}); ${REPEAT} runs per body; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.availableParallelism()} cores ` +
    '(a stall includes time the OS gave the CPU to other processes: on a loaded machine read the medians)',
);
console.log(
  `${'body'.padEnd(50)} ${'wire'.padStart(8)}  ${'answer'.padEnd(34)} ${'time ms'.padStart(7)} ${'stall, wall ms'.padStart(15)} ${'stall, CPU ms'.padStart(14)}`,
);
console.log(`${''.padEnd(50)} ${''.padStart(8)}  ${''.padEnd(34)} ${'median'.padStart(7)} ${'median / max'.padStart(15)} ${'median / max'.padStart(14)}`);
const stalls: Record<Body['kind'], { wall: number; cpu: number }> = { normal: { wall: 0, cpu: 0 }, hostile: { wall: 0, cpu: 0 } };
for (const body of bodies) {
  const runs = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await measure(body));
  const wall = runs.map((r) => r.loopMaxMs);
  const cpu = runs.map((r) => r.cpuStallMs);
  stalls[body.kind].wall = Math.max(stalls[body.kind].wall, median(wall));
  stalls[body.kind].cpu = Math.max(stalls[body.kind].cpu, median(cpu));
  console.log(
    `${body.name.padEnd(50)} ${`${(body.bytes.length / 1024).toFixed(0)} KB`.padStart(8)}  ${`${runs[0]!.status} ${runs[0]!.code}`.slice(0, 34).padEnd(34)} ` +
      `${median(runs.map((r) => r.ms)).toFixed(0).padStart(7)} ${`${median(wall).toFixed(0)} / ${Math.max(...wall).toFixed(0)}`.padStart(15)} ` +
      `${`${median(cpu).toFixed(0)} / ${Math.max(...cpu).toFixed(0)}`.padStart(14)}`,
  );
}
console.log(
  `longest median event-loop stall: normal bodies ${stalls.normal.wall.toFixed(0)} ms wall, ${stalls.normal.cpu.toFixed(0)} ms CPU; ` +
    `hostile bodies ${stalls.hostile.wall.toFixed(0)} ms wall, ${stalls.hostile.cpu.toFixed(0)} ms CPU`,
);

// Refusing keys: malformed ones never reach the key cache; well-formed random ids are looked up in it.
async function refusals(label: string, key: () => string, n = 300): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${running.url}/v1/whoami`, { headers: { authorization: `Bearer ${key()}` } });
    await res.arrayBuffer();
    if (res.status !== 401) throw new Error(`${label}: ${res.status}`);
  }
  console.log(`${label}: ${((performance.now() - t0) / n).toFixed(2)} ms per 401 (${n} sequential requests)`);
}
await refusals('malformed keys', () => 'not-a-key');
await refusals('well-formed random key ids', () => generateKey().key);

stream.close();
await running.stop();
rmSync(dataDir, { recursive: true, force: true });

/**
 * bench/ws-bufferutil: what `bufferutil` buys the WebSocket endpoints (ingest's intake, the live
 * gateway, the edge protocol). ws uses it to mask what a client sends and to unmask what a server
 * receives, so the figure is client -> server throughput over loopback: one process, a ws server
 * and a ws client, with bufferutil and with WS_NO_BUFFER_UTIL=1 (ws's own JS loop), same sizes.
 * UTF-8 validation needs no addon: ws uses Node's buffer.isUtf8.
 * Prints figures; asserts nothing about speed. `--short`: fewer messages.
 *
 *   node bench/dist/ws-bufferutil.js [--short] [--seconds N]
 */
import { spawnSync } from 'node:child_process';
import { WebSocket, WebSocketServer } from 'ws';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const SECONDS = opt('seconds', SHORT ? 1 : 4);
/** Sizes as the endpoints see them: a small live subscription message, an edge batch, an ingest batch. */
const SIZES = [256, 16 * 1024, 256 * 1024];

async function measure(size: number): Promise<{ mbPerSec: number; msgsPerSec: number }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 4 * 1024 * 1024 });
  await new Promise<void>((r) => server.once('listening', () => r()));
  const port = (server.address() as { port: number }).port;
  let received = 0;
  let bytes = 0;
  server.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      received++;
      bytes += data.length;
    });
  });
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise<void>((r, j) => {
    client.once('open', () => r());
    client.once('error', j);
  });
  const payload = Buffer.alloc(size, 0x5a);
  const until = performance.now() + SECONDS * 1_000;
  const start = performance.now();
  let sent = 0;
  while (performance.now() < until) {
    // Keep a bounded amount in flight, as the endpoints do.
    while (client.bufferedAmount < 4 * 1024 * 1024 && performance.now() < until) {
      client.send(payload, { binary: true });
      sent++;
    }
    await new Promise((r) => setImmediate(r));
  }
  while (received < sent) await new Promise((r) => setTimeout(r, 1));
  const seconds = (performance.now() - start) / 1_000;
  client.close();
  await new Promise<void>((r) => server.close(() => r()));
  return { mbPerSec: bytes / seconds / 1024 / 1024, msgsPerSec: received / seconds };
}

if (process.env.BENCH_WS_CHILD) {
  const out: Record<number, { mbPerSec: number; msgsPerSec: number }> = {};
  for (const size of SIZES) out[size] = await measure(size);
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

const modes = [
  { name: 'bufferutil', env: {} },
  { name: 'ws JS masking (WS_NO_BUFFER_UTIL=1)', env: { WS_NO_BUFFER_UTIL: '1' } },
];
console.log(`bench:ws-bufferutil: node ${process.version}, client -> server over loopback, ${SECONDS} s per size`);
const results = modes.map((m) => {
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], {
    env: { ...process.env, ...m.env, BENCH_WS_CHILD: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${m.name}: ${r.stderr}`);
  return { name: m.name, figures: JSON.parse(r.stdout) as Record<number, { mbPerSec: number; msgsPerSec: number }> };
});
console.log(`| masking | ${SIZES.map((s) => `${s >= 1024 ? `${s / 1024} KiB` : `${s} B`} MiB/s (msg/s)`).join(' | ')} |`);
console.log(`| --- | ${SIZES.map(() => '---:').join(' | ')} |`);
for (const r of results) {
  console.log(`| ${r.name} | ${SIZES.map((s) => `${r.figures[s]!.mbPerSec.toFixed(0)} (${Math.round(r.figures[s]!.msgsPerSec).toLocaleString('en')})`).join(' | ')} |`);
}

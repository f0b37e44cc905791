/**
 * The raw baseline of bench:live's fan-out: a bare `ws` server (same library, same bufferutil)
 * that takes the same clients and their `subscribe` message, and sends every topic's clients one
 * pre-built frame per tick, `UPDATES` ticks a second, `FRAME_BYTES` long, shaped like a live delta
 * (`{"type":"delta",...,"at":...}`) so the bench's clients time it alike. What the live gateway
 * sends is reported as a share of what this sends to the same clients in the same run.
 *
 *   UPDATES=10 FRAME_BYTES=400 node bench/dist/ws-broadcast-server.js
 *   (prints "READY http://127.0.0.1:PORT METRICS http://127.0.0.1:PORT/metrics")
 */
import http from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const UPDATES = Number(process.env.UPDATES ?? 10);
const FRAME_BYTES = Number(process.env.FRAME_BYTES ?? 400);
const topics = new Map<string, Set<WebSocket>>();
let messages = 0;
let bytes = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/metrics') res.writeHead(200, { 'content-type': 'text/plain' }).end(`afterglow_live_ws_messages_total ${messages}\nafterglow_live_ws_bytes_total ${bytes}\n`);
  else res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (socket) => {
  socket.once('message', (data: Buffer) => {
    const { asset } = JSON.parse(data.toString()) as { asset: string };
    let set = topics.get(asset);
    if (!set) topics.set(asset, (set = new Set()));
    set.add(socket);
    socket.once('close', () => set.delete(socket));
  });
});

setInterval(() => {
  const at = Date.now();
  for (const [asset, sockets] of topics) {
    const head = `{"type":"delta","topic":"asset:${asset}","at":${at},"pad":"`;
    const frame = Buffer.from(`${head}${'x'.repeat(Math.max(0, FRAME_BYTES - head.length - 2))}"}`);
    for (const s of sockets) {
      s.send(frame);
      messages++;
      bytes += frame.length;
    }
  }
}, 1000 / UPDATES);

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`READY http://127.0.0.1:${port} METRICS http://127.0.0.1:${port}/metrics\n`);
});
process.once('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

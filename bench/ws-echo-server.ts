/**
 * The raw baseline of bench:edge: a bare `ws` server (same library, same bufferutil) that echoes
 * every frame, in its own process like the edge server. Its round trip is what any WebSocket
 * decision could cost at best on this machine; bench:edge reports the edge's as a multiple of it.
 *
 *   node bench/dist/ws-echo-server.js   (prints "READY ws://127.0.0.1:PORT")
 */
import { WebSocketServer } from 'ws';

const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
server.on('connection', (socket) => socket.on('message', (data: Buffer, isBinary) => socket.send(data, { binary: isBinary })));
server.once('listening', () => console.log(`READY ws://127.0.0.1:${(server.address() as { port: number }).port}`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));

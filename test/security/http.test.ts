import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { eventually } from '@afterglow/testkit/services';
import { ANY_TENANT, startApp, type TestApp } from '../support.js';

/**
 * Slow clients against the real server: a body dripped a byte a second is cut at the request
 * timeout (408) while other clients are served; headers are cut sooner; past the connection cap
 * new sockets are closed at accept. WebSockets, which outlive every one of these, are not cut.
 */

const MAX_CONNECTIONS = 6;
let app: TestApp;
before(async () => {
  app = await startApp(
    {
      HTTP_REQUEST_TIMEOUT_MS: '2000',
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_KEEPALIVE_TIMEOUT_MS: '1000',
      HTTP_IDLE_TIMEOUT_MS: '1500',
      HTTP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    },
    ['ingest'],
  );
});
after(async () => {
  await app?.close();
});

function connect(): Promise<net.Socket> {
  const { hostname, port } = new URL(app.running.url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: hostname, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
}

/** What the server wrote before closing the socket, and when it closed (ms after `since`). */
function untilClosed(s: net.Socket, since: number): Promise<{ text: string; closedAfterMs: number }> {
  let text = '';
  s.on('data', (d) => (text += d.toString('latin1')));
  s.on('error', () => undefined);
  return new Promise((resolve) => s.once('close', () => resolve({ text, closedAfterMs: performance.now() - since })));
}

test('a body dripped one byte a second is cut at the request timeout; other clients are served meanwhile', async () => {
  const headers = await app.authHeaders(ANY_TENANT, ['ingest', 'read']);
  const s = await connect();
  const t0 = performance.now();
  const closed = untilClosed(s, t0);
  s.write(`POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${headers.authorization}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[`);
  const drip = setInterval(() => s.writable && s.write(' '), 1_000);
  try {
    // Served while the drip goes on.
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const res = await fetch(`${app.running.url}/v1/whoami`, { headers });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.ok(performance.now() - t < 1_000);
      await new Promise((r) => setTimeout(r, 200));
    }
    const { text, closedAfterMs } = await closed;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /"error":"request_timeout"/);
    assert.ok(closedAfterMs >= 1_900 && closedAfterMs < 6_000, `cut after ${closedAfterMs.toFixed(0)} ms`);
    console.log(`slow body (HTTP_REQUEST_TIMEOUT_MS=2000): cut after ${closedAfterMs.toFixed(0)} ms with a 408`);
  } finally {
    clearInterval(drip);
    s.destroy();
  }
});

test('headers dripped slowly are cut at the headers timeout', async () => {
  const s = await connect();
  const t0 = performance.now();
  const closed = untilClosed(s, t0);
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => s.writable && s.write('X-Slow: 1\r\n'), 300);
  try {
    const { text, closedAfterMs } = await closed;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.ok(closedAfterMs < 4_000, `cut after ${closedAfterMs.toFixed(0)} ms`);
    console.log(`slow headers (HTTP_HEADERS_TIMEOUT_MS=1000): cut after ${closedAfterMs.toFixed(0)} ms with a 408`);
  } finally {
    clearInterval(drip);
    s.destroy();
  }
});

test('an idle kept-alive connection is closed after the keep-alive timeout', async () => {
  const s = await connect();
  const t0 = performance.now();
  const closed = untilClosed(s, t0);
  s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  const { text, closedAfterMs } = await closed;
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.ok(closedAfterMs < 4_000, `closed after ${closedAfterMs.toFixed(0)} ms`);
});

async function openStream(headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return ws;
}

test('past HTTP_MAX_CONNECTIONS new connections are closed at accept; a freed slot serves again', async () => {
  const headers = await app.authHeaders(ANY_TENANT, ['ingest']);
  // Idle kept-alive sockets of earlier requests close after the keep-alive timeout.
  await new Promise((r) => setTimeout(r, 1_500));
  // WebSockets hold their slots (no HTTP timeout applies to them).
  const held: WebSocket[] = [];
  try {
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await openStream(headers));
    const extra = await connect();
    const { text, closedAfterMs } = await untilClosed(extra, performance.now());
    assert.equal(text, '', 'closed without an answer');
    assert.ok(closedAfterMs < 1_000, `closed after ${closedAfterMs.toFixed(0)} ms`);
    await assert.rejects(fetch(`${app.running.url}/healthz`));
    held.pop()!.close();
    await eventually(async () => ((await fetch(`${app.running.url}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 5_000, 50);
  } finally {
    await Promise.all(held.map((ws) => new Promise((resolve) => {
          ws.once('close', resolve);
          ws.close();
        })));
  }
});

test('WebSockets are not cut by the request, headers or idle timeouts', async () => {
  const headers = await app.authHeaders(ANY_TENANT, ['ingest']);
  // (The previous test's sockets may still be closing on the server side.)
  const ws = await eventually(() => openStream(headers).catch(() => undefined), 5_000, 100);
  let closed = false;
  ws.on('close', () => (closed = true));
  // Silent for longer than every HTTP timeout above.
  await new Promise((r) => setTimeout(r, 3_500));
  assert.equal(closed, false);
  const ack = new Promise<{ type: string; seq: number }>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
  ws.send(JSON.stringify({ seq: 1, events: [] }));
  assert.deepEqual(await ack, { type: 'ack', seq: 1, accepted: 0, rejected: 0, rejections: [] });
  ws.close();
});

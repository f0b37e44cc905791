import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { eventually, skipOption, uniqueName } from '@afterglow/testkit/services';
import { makeEvents, startApp, type TestApp } from './support.js';

/**
 * Per-key rate limits (issue 8): events/s and bytes/s as token buckets, concurrent WebSocket
 * connections as leased slots; over a limit, 429 + Retry-After. In memory per process by default;
 * through Redis (the HotState port) shared by every process.
 */

// Slow refills (20 events/s, 10 kB/s) next to large bursts: a "refused" check holds unless the
// machine stalls for several seconds between two requests, not just 0.5-1.5 s as with fast refills.
const LIMITS = {
  RATE_EVENTS_PER_SEC: '20',
  RATE_EVENTS_BURST: '200',
  RATE_BYTES_PER_SEC: '10000',
  RATE_BYTES_BURST: '300000',
  RATE_MAX_CONNECTIONS: '2',
};

let app: TestApp;
before(async () => {
  app = await startApp(LIMITS, ['ingest']);
});
after(async () => {
  await app?.close();
});

async function post(target: TestApp, tenant: string, body: string): Promise<Response> {
  return fetch(`${target.running.url}/v1/events`, { method: 'POST', headers: { ...(await target.authHeaders(tenant, ['ingest'])), 'content-type': 'application/json' }, body });
}

test('events/s: a key gets its burst, then 429 with Retry-After; another key is not affected', async () => {
  const tenant = uniqueName('rl');
  assert.equal((await post(app, tenant, JSON.stringify(makeEvents(200, tenant, ['c']).events))).status, 202);
  // 150 more need 7.5 s of refill: refused unless the machine stalled that long in between.
  const over = await post(app, tenant, JSON.stringify(makeEvents(150, tenant, ['c']).events));
  assert.equal(over.status, 429);
  assert.ok(Number(over.headers.get('retry-after')) >= 1);
  assert.equal(((await over.json()) as { error: string }).error, 'rate_limited');
  const other = uniqueName('rl-other');
  assert.equal((await post(app, other, JSON.stringify(makeEvents(50, other, ['c']).events))).status, 202);
  // It refills: 20/s, so 50 events pass again after about 2.5 s.
  await eventually(async () => ((await post(app, tenant, JSON.stringify(makeEvents(50, tenant, ['c']).events))).status === 202 ? true : undefined), 30_000, 250);
});

test('bytes/s: a body past the budget is let through from a full bucket, the next request waits', async () => {
  const tenant = uniqueName('rl-bytes');
  const big = `[${' '.repeat(350_000)}]`;
  assert.equal((await post(app, tenant, big)).status, 202);
  // The bucket is empty (a body over the burst costs one burst): 50 KB more needs 5 s of refill.
  const next = await post(app, tenant, `[${' '.repeat(50_000)}]`);
  assert.equal(next.status, 429);
  assert.ok(Number(next.headers.get('retry-after')) >= 1);
});

async function open(target: TestApp, tenant: string, headers?: Record<string, string>): Promise<{ ws: WebSocket | undefined; status: number; retryAfter: string | undefined }> {
  const ws = new WebSocket(`${target.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers: headers ?? (await target.authHeaders(tenant, ['ingest'])) });
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, status: 101, retryAfter: undefined }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ws: undefined, status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined });
      ws.terminate();
    });
    ws.once('error', () => resolve({ ws: undefined, status: -1, retryAfter: undefined }));
  });
}

test('connections: at most RATE_MAX_CONNECTIONS WebSockets per key; a closed one frees its slot', async () => {
  const tenant = uniqueName('rl-conn');
  const a = await open(app, tenant);
  const b = await open(app, tenant);
  assert.deepEqual([a.status, b.status], [101, 101]);
  const c = await open(app, tenant);
  assert.equal(c.status, 429);
  assert.ok(Number(c.retryAfter) >= 1);
  assert.equal((await open(app, uniqueName('rl-conn-other'))).status, 101, 'another key has its own slots');
  a.ws!.close();
  await eventually(async () => {
    const d = await open(app, tenant);
    d.ws?.close();
    return d.status === 101 ? true : undefined;
  }, 10_000, 100);
  b.ws!.close();
});

test('a stream over its events/s waits (like bus backpressure) instead of failing its messages', async () => {
  const tenant = uniqueName('rl-stream');
  const { ws } = await open(app, tenant);
  const acks: { type: string; seq: number; accepted?: number }[] = [];
  ws!.on('message', (d) => acks.push(JSON.parse(String(d))));
  // 20/s with bursts of 200: three messages of 100 need the bucket to refill (5 s) for the third.
  for (let seq = 1; seq <= 3; seq++) ws!.send(JSON.stringify({ seq, events: makeEvents(100, tenant, ['c']).events }));
  await eventually(() => (acks.length === 3 ? true : undefined), 60_000, 50);
  ws!.close();
  assert.deepEqual(acks.map((a) => [a.type, a.seq, a.accepted]), [['ack', 1, 100], ['ack', 2, 100], ['ack', 3, 100]]);
});

test('with Redis the budget is shared: two processes together give a key one burst', { skip: skipOption(!process.env.REDIS_URL && 'REDIS_URL is not set (deploy/local/up.sh, then source deploy/local/env.sh)') }, async () => {
  // Two servers on one Redis, sharing one store (chDB binds one data dir per process), so keys work on both.
  const one = await startApp({ ...LIMITS, REDIS_URL: process.env.REDIS_URL, AFTERGLOW_DATA_DIR: app.dataDir }, ['ingest']);
  const two = await startApp({ ...LIMITS, REDIS_URL: process.env.REDIS_URL, AFTERGLOW_DATA_DIR: app.dataDir }, ['ingest']);
  try {
    const tenant = uniqueName('rl-shared');
    const key = await one.authHeaders(tenant, ['ingest']);
    // A key made on one server reaches the other on its next key refresh (AUTH_REFRESH_MS); no need to wait for it.
    await two.running.keys!.refresh();
    const send = (target: TestApp, n: number) =>
      fetch(`${target.running.url}/v1/events`, { method: 'POST', headers: { ...key, 'content-type': 'application/json' }, body: JSON.stringify(makeEvents(n, tenant, ['c']).events) });
    assert.equal((await send(one, 200)).status, 202);
    // Alone, the second process would have a full bucket of 200; shared, it is empty (150 need 7.5 s).
    assert.equal((await send(two, 150)).status, 429);
    // Connections too: one slot taken on each server fills the key's two.
    const a = await open(one, tenant, key);
    const b = await open(two, tenant, key);
    assert.deepEqual([a.status, b.status], [101, 101]);
    assert.equal((await open(one, tenant, key)).status, 429);
    assert.equal((await open(two, tenant, key)).status, 429);
    a.ws!.close();
    b.ws!.close();
  } finally {
    await two.close();
    await one.close();
  }
});

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WEBHOOK_HEADERS, createLogger, verifyWebhook, type VariantRequest } from '@afterglow/core';
import { EgressPolicy } from './egress.js';
import { WebhookDispatcher } from './webhooks.js';
import type { DeliveryRow } from './store.js';

const request = (id: string): VariantRequest => ({
  type: 'variant_request',
  request_id: id,
  tenant_id: 't',
  rule_id: 'r',
  kind: 'fatigue',
  asset_id: 'a',
  master_asset_id: null,
  campaign_id: 'c',
  reason: 'faded',
  numbers: { of_peak: 0.2 },
  hints: [],
  fired_at: Date.now(),
});

test('webhooks: signed, retried with backoff until delivered or given up, every attempt logged, queue bounded', async () => {
  const secret = 'a-secret-of-at-least-16';
  let calls = 0;
  const bodies: { body: string; sig: string; ts: string; at: number }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls++;
      bodies.push({ body: Buffer.concat(chunks).toString(), sig: String(req.headers[WEBHOOK_HEADERS.signature]), ts: String(req.headers[WEBHOOK_HEADERS.timestamp]), at: Date.now() });
      // /ok fails once then succeeds; /down always fails.
      res.statusCode = req.url === '/ok' && bodies.filter((b) => JSON.parse(b.body).request_id === 'ok').length > 1 ? 200 : 500;
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rows: DeliveryRow[] = [];
  const d = new WebhookDispatcher({
    timeoutMs: 2000,
    maxAttempts: 3,
    backoffMs: 20,
    maxBackoffMs: 100,
    queue: 2,
    concurrency: 1,
    log: createLogger('silent', {}),
    // The receiver is on loopback: private addresses allowed for this test only.
    egress: new EgressPolicy({ allowHosts: [], allowPrivate: true, denyPorts: [] }),
    record: async (r) => void rows.push(...r),
  });
  const started = Date.now();
  try {
    assert.ok(d.enqueue(request('ok'), `${base}/ok`, secret));
    assert.ok(d.enqueue(request('down'), `${base}/down`, secret));
    assert.equal(d.enqueue(request('third'), `${base}/ok`, secret), false, 'the queue holds two');
    await d.idle();
    const of = (id: string) => rows.filter((r) => r.firing_id === id).map((r) => [r.attempt, r.status, r.http_status]);
    assert.deepEqual(of('ok'), [[1, 'failed', 500], [2, 'delivered', 200]]);
    assert.deepEqual(of('down'), [[1, 'failed', 500], [2, 'failed', 500], [3, 'gave_up', 500]]);
    assert.deepEqual(of('third'), [[0, 'dropped', 0]]);
    assert.equal(calls, 5);
    // Checked as a receiver would, from the documented format and node:crypto alone: t matches the
    // timestamp header, is the send time (not older than the receipt), and v1 is HMAC-SHA256 of "<t>.<body>".
    for (const b of bodies) {
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(b.sig);
      assert.ok(m, `signature header ${b.sig}`);
      assert.equal(m[1], b.ts, 'the signed t is the timestamp header');
      assert.ok(Number(m[1]) <= b.at && Number(m[1]) >= started, `t ${m[1]} between the start ${started} and its receipt ${b.at}`);
      assert.equal(m[2], createHmac('sha256', secret).update(`${m[1]}.${b.body}`).digest('hex'));
      assert.ok(verifyWebhook(secret, b.sig, b.body, b.at));
    }
    for (let n = 1; n < 10; n++) {
      const cap = Math.min(100, 20 * 2 ** (n - 1));
      const delay = d.backoff(n);
      assert.ok(delay >= cap / 2 && delay <= cap, `attempt ${n}: ${delay} in [${cap / 2}, ${cap}]`);
    }
  } finally {
    await d.stop();
    server.close();
  }
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ port: number; hits: string[]; close(): void }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    handler!(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, hits, close: () => server.close() };
}

test('webhooks: redirects are not followed, network errors and timeouts log one coarse outcome, refusals are final', async () => {
  const target = await listen((_req, res) => res.end('secret internal page'));
  const redirector = await listen((_req, res) => {
    res.statusCode = 302;
    res.setHeader('location', `http://127.0.0.1:${target.port}/internal`);
    res.end();
  });
  const silent = await listen(() => undefined); // accepts, never answers: a timeout
  const closed = await listen(() => undefined);
  closed.close(); // a closed port: connection refused
  await new Promise((r) => setTimeout(r, 50));
  const rows: DeliveryRow[] = [];
  let answer = '127.0.0.1';
  const d = new WebhookDispatcher({
    timeoutMs: 300,
    maxAttempts: 2,
    backoffMs: 10,
    maxBackoffMs: 20,
    queue: 10,
    concurrency: 4,
    log: createLogger('silent', {}),
    // Only the redirector, the silent and the closed receiver are allowed (by port); the redirect target is not.
    egress: new EgressPolicy(
      { allowHosts: [`127.0.0.1:${redirector.port}`, `127.0.0.1:${silent.port}`, `127.0.0.1:${closed.port}`, `hook.test:${target.port}`], allowPrivate: true, denyPorts: [] },
      async () => [{ address: answer, family: 4 }],
    ),
    record: async (r) => void rows.push(...r),
  });
  try {
    d.enqueue(request('redirect'), `http://127.0.0.1:${redirector.port}/hook`, 'a-secret-of-at-least-16');
    d.enqueue(request('timeout'), `http://127.0.0.1:${silent.port}/hook`, 'a-secret-of-at-least-16');
    d.enqueue(request('closed'), `http://127.0.0.1:${closed.port}/hook`, 'a-secret-of-at-least-16');
    d.enqueue(request('literal'), `http://127.0.0.1:${target.port}/hook`, 'a-secret-of-at-least-16');
    await d.idle();
    const of = (id: string) => rows.filter((r) => r.firing_id === id).map((r) => [r.attempt, r.status, r.http_status, r.error]);
    assert.deepEqual(of('redirect'), [[1, 'failed', 302, 'http_3xx'], [2, 'gave_up', 302, 'http_3xx']]);
    assert.equal(target.hits.length, 0, 'the redirect target was never requested');
    // A timeout and a refused connection read the same: no port scanner.
    assert.deepEqual(of('timeout'), [[1, 'failed', 0, 'failed'], [2, 'gave_up', 0, 'failed']]);
    assert.deepEqual(of('closed'), [[1, 'failed', 0, 'failed'], [2, 'gave_up', 0, 'failed']]);
    assert.deepEqual(of('literal'), [[1, 'refused', 0, 'refused_by_policy']], 'not in the allow-list: refused once, not retried');

    // A name that was public when the rule was saved and points at loopback now (DNS rebinding):
    // the socket's lookup refuses it, so nothing connects. Without allowPrivate for that host.
    rows.length = 0;
    const policy = new EgressPolicy({ allowHosts: [], allowPrivate: false, denyPorts: [] }, async () => [{ address: answer, family: 4 }]);
    const strict = new WebhookDispatcher({
      timeoutMs: 300,
      maxAttempts: 3,
      backoffMs: 10,
      maxBackoffMs: 20,
      queue: 10,
      concurrency: 1,
      log: createLogger('silent', {}),
      egress: policy,
      record: async (r) => void rows.push(...r),
    });
    // A name the policy's lookup resolves (the socket path a real host takes) is delivered to.
    const named = await listen((_req, res) => res.end());
    const viaName = new WebhookDispatcher({
      timeoutMs: 1000,
      maxAttempts: 1,
      backoffMs: 10,
      maxBackoffMs: 20,
      queue: 10,
      concurrency: 1,
      log: createLogger('silent', {}),
      egress: new EgressPolicy({ allowHosts: [`named.test:${named.port}`], allowPrivate: true, denyPorts: [] }, async () => [{ address: '127.0.0.1', family: 4 }]),
      record: async (r) => void rows.push(...r),
    });
    viaName.enqueue(request('named'), `http://named.test:${named.port}/hook?x=1`, 'a-secret-of-at-least-16');
    await viaName.idle();
    await viaName.stop();
    named.close();
    assert.deepEqual(of('named'), [[1, 'delivered', 200, '']]);
    assert.deepEqual(named.hits, ['/hook?x=1']);

    rows.length = 0;
    answer = '93.184.216.34';
    await policy.check(`http://hook.test:${target.port}/hook`); // allowed at save
    answer = '127.0.0.1';
    await assert.rejects(policy.check(`http://hook.test:${target.port}/hook`), { code: 'webhook_address_refused', status: 422 });
    answer = '127.0.0.1';
    strict.enqueue(request('rebound'), `http://hook.test:${target.port}/hook`, 'a-secret-of-at-least-16');
    await strict.idle();
    await strict.stop();
    assert.deepEqual(of('rebound'), [[1, 'refused', 0, 'refused_by_policy']]);
    assert.equal(target.hits.length, 0, 'nothing reached the loopback receiver');
  } finally {
    await d.stop();
    for (const s of [target, redirector, silent]) s.close();
  }
});

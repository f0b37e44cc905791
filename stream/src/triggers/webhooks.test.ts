import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WEBHOOK_HEADERS, createLogger, verifyWebhook, type VariantRequest } from '@afterglow/core';
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
  const bodies: { body: string; sig: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls++;
      bodies.push({ body: Buffer.concat(chunks).toString(), sig: String(req.headers[WEBHOOK_HEADERS.signature]) });
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
    record: async (r) => void rows.push(...r),
  });
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
    for (const b of bodies) assert.ok(verifyWebhook(secret, b.sig, b.body));
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

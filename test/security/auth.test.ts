import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { generateKey } from '@afterglow/core';
import { uniqueName } from '@afterglow/testkit/services';
import { startApp, type TestApp } from '../support.js';

/**
 * Failed authentication against the real server: unknown (well-formed, random) key ids are refused
 * from the key cache without a store query, and an address that keeps failing is cut off by its
 * failure budget (429 + Retry-After) before its keys are even looked at.
 */

const BURST = 20;
let app: TestApp;
let queries = 0;
let restore: (() => void) | undefined;

before(async () => {
  app = await startApp({ AUTH_FAIL_PER_IP_PER_MIN: '6', AUTH_FAIL_BURST: String(BURST), AUTH_REFRESH_MS: '60000' }, ['ingest']);
  // Every query the store is asked, whoever asks it.
  const client = app.running.store!.client;
  const query = client.query.bind(client);
  client.query = ((...args: Parameters<typeof query>) => {
    queries++;
    return query(...args);
  }) as typeof client.query;
  restore = () => (client.query = query);
});
after(async () => {
  restore?.();
  await app?.close();
});

/** GET from a chosen local address (any 127.x.y.z reaches the loopback listener). */
function get(path: string, headers: Record<string, string>, localAddress: string): Promise<{ status: number; retryAfter: string | undefined; body: { error?: string } }> {
  const url = new URL(path, app.running.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, headers, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: JSON.parse(text) as { error?: string } }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('random well-formed key ids are refused without a store query; past the per-address budget, 429 before any key check', async () => {
  const tenant = uniqueName('auth');
  const valid = await app.authHeaders(tenant, ['read']);
  assert.equal((await get('/v1/whoami', valid, '127.0.0.7')).status, 200);
  const before = queries;
  for (let i = 0; i < BURST; i++) {
    const r = await get('/v1/whoami', { authorization: `Bearer ${generateKey().key}` }, '127.0.0.7');
    assert.deepEqual([r.status, r.body.error], [401, 'unauthorized']);
  }
  assert.equal(queries - before, 0, 'no store query for unknown key ids');
  // Over the budget: refused before the key is looked at, a valid one included (same address).
  const over = await get('/v1/whoami', { authorization: `Bearer ${generateKey().key}` }, '127.0.0.7');
  assert.deepEqual([over.status, over.body.error], [429, 'too_many_auth_failures']);
  assert.ok(Number(over.retryAfter) >= 1, `Retry-After ${over.retryAfter}`);
  assert.equal((await get('/v1/whoami', valid, '127.0.0.7')).status, 429);
  // Another address is not affected, and its good key works.
  assert.equal((await get('/v1/whoami', valid, '127.0.0.8')).status, 200);
  assert.equal((await get('/v1/whoami', { authorization: `Bearer ${generateKey().key}` }, '127.0.0.8')).status, 401);
  // Requests without any key are not failures of authentication: they cost nothing to refuse.
  for (let i = 0; i < BURST * 2; i++) assert.equal((await get('/v1/whoami', {}, '127.0.0.9')).status, 401);
  assert.equal((await get('/v1/whoami', valid, '127.0.0.9')).status, 200);
  assert.equal(queries - before, 0);
});

test('a key made through this server is valid at once (no refresh to wait for)', async () => {
  const tenant = uniqueName('auth-new');
  const admin = await app.authHeaders(tenant, ['admin']);
  const res = await fetch(`${app.running.url}/v1/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ scopes: ['read'] }) });
  assert.equal(res.status, 201);
  const { key } = (await res.json()) as { key: string };
  assert.equal((await get('/v1/whoami', { authorization: `Bearer ${key}` }, '127.0.0.10')).status, 200);
});

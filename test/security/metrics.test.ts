/**
 * /metrics holds every tenant's numbers (process-wide counters): it is not served on the port
 * tenants reach, with or without a key, only on the admin listener (METRICS_PORT), which binds
 * loopback unless told otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadConfig } from '@afterglow/core';
import { startApp, type TestApp } from '../support.js';

let app: TestApp;
before(async () => {
  app = await startApp({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }, ['ingest']);
});
after(async () => app?.close());

test('the tenants\' port has no /metrics, whatever key is sent; the admin listener on loopback has it', async () => {
  assert.equal((await fetch(`${app.running.url}/metrics`)).status, 404);
  const admin = await app.request('any-tenant', '/metrics');
  assert.equal(admin.status, 404, 'not even for a tenant admin key');
  const url = app.running.metricsUrl!;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /afterglow_/);
  assert.equal((await fetch(url.replace('/metrics', '/v1/whoami'))).status, 404, 'the admin listener serves nothing else');
});

test('metrics listener: off unless METRICS_PORT is set, loopback by default', () => {
  assert.equal(loadConfig({}).metrics, undefined);
  assert.deepEqual(loadConfig({ METRICS_PORT: '9464' }).metrics, { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).metrics, { host: '0.0.0.0', port: 9464 });
});

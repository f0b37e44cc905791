import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, createMetricsRegistry } from '@afterglow/core';
import { createHttpServer, startMetricsServer } from './http.js';

test('/readyz is public and names failing checks without their error text, which goes to the log', async () => {
  const log = createLogger('warn');
  const logged: unknown[][] = [];
  // Request loggers are pino children, which inherit the parent's methods.
  log.warn = ((...args: unknown[]) => void logged.push(args)) as typeof log.warn;
  const secret = 'connect ECONNREFUSED 10.1.2.3:9000 (user=ingest password=hunter2)';
  let storeUp = false;
  const app = await createHttpServer({
    log,
    registry: createMetricsRegistry(),
    wsMaxPayloadBytes: 1024,
    readiness: {
      bus: async () => 1,
      store: async () => {
        if (!storeUp) throw new Error(secret);
      },
    },
    auth: {
      // Keys on (no key store needed here: the route is public).
      settings: { mode: 'keys', pepper: undefined, refreshMs: 60_000, allowedOrigins: [], rate: { eventsPerSec: 0, eventsBurst: 0, bytesPerSec: 0, bytesBurst: 0, maxConnections: 0 } },
      keys: undefined,
      limiter: undefined,
      log,
    },
  });
  try {
    const down = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(down.statusCode, 503);
    assert.deepEqual(down.json(), { status: 'not_ready', checks: { bus: 'ok', store: 'failing' } });
    assert.doesNotMatch(down.body, /ECONNREFUSED|10\.1\.2\.3|hunter2/);
    const line = logged.find(([obj]) => (obj as { check?: string }).check === 'store');
    assert.ok(line, 'the failing check is logged');
    assert.equal(((line[0] as { err: Error }).err as Error).message, secret, 'with its error, server-side');

    storeUp = true;
    const up = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(up.statusCode, 200);
    assert.deepEqual(up.json(), { status: 'ready', checks: { bus: 'ok', store: 'ok' } });
  } finally {
    await app.close();
  }
});

test('/metrics is not on the tenants\' port; the admin listener serves it (loopback by default) and nothing else', async () => {
  const log = createLogger('silent');
  const registry = createMetricsRegistry();
  const app = await createHttpServer({
    log,
    registry,
    wsMaxPayloadBytes: 1024,
    readiness: {},
    auth: {
      settings: { mode: 'keys', pepper: undefined, refreshMs: 60_000, allowedOrigins: [], rate: { eventsPerSec: 0, eventsBurst: 0, bytesPerSec: 0, bytesBurst: 0, maxConnections: 0 } },
      keys: undefined,
      limiter: undefined,
      log,
    },
  });
  const metrics = await startMetricsServer(registry, '127.0.0.1', 0, log);
  try {
    assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
    assert.match(metrics.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${metrics.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await res.text(), /process_cpu|nodejs_|# HELP/);
    assert.equal((await fetch(`${metrics.url}/v1/whoami`)).status, 404);
    assert.equal((await fetch(`${metrics.url}/metrics`, { method: 'POST' })).status, 404);
  } finally {
    await metrics.close();
    await app.close();
  }
});

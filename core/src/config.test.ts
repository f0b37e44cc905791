import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { DEFAULT_DENY_PORTS, loadConfig } from './config.js';
import { ConfigError } from './errors.js';

test('an empty environment means the embedded mode', () => {
  const c = loadConfig({});
  assert.equal(c.bus.kind, 'memory');
  assert.equal(c.store.kind, 'chdb');
  assert.equal(c.hot.kind, 'memory');
  assert.equal(c.fanout.kind, 'memory');
  assert.equal(c.http.port, 8080);
  assert.equal(c.http.host, '127.0.0.1');
  assert.equal(c.dataDir, path.resolve('.afterglow-data'));
  assert.equal(c.store.kind === 'chdb' && c.store.path, path.join(path.resolve('.afterglow-data'), 'chdb'));
});

test('service URLs switch each port to its real adapter', () => {
  const c = loadConfig({
    KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.1:9093',
    CLICKHOUSE_URL: 'http://127.0.0.1:8123',
    REDIS_URL: 'redis://127.0.0.1:6379',
    NATS_URL: 'nats://127.0.0.1:4222',
    PORT: '9000',
    AFTERGLOW_DATA_DIR: '/tmp/ag',
  });
  assert.deepEqual(c.bus.kind === 'kafka' && c.bus.brokers, ['127.0.0.1:9092', '127.0.0.1:9093']);
  assert.equal(c.store.kind, 'clickhouse');
  assert.deepEqual(c.hot, { kind: 'redis', url: 'redis://127.0.0.1:6379' });
  assert.deepEqual(c.fanout, { kind: 'nats', servers: ['nats://127.0.0.1:4222'] });
  assert.equal(c.http.port, 9000);
  assert.equal(c.dataDir, '/tmp/ag');
});

test('empty variables count as unset', () => {
  const c = loadConfig({ KAFKA_BROKERS: '', CLICKHOUSE_URL: '', PORT: '' });
  assert.equal(c.bus.kind, 'memory');
  assert.equal(c.store.kind, 'chdb');
  assert.equal(c.http.port, 8080);
});

test('invalid values are refused with every problem named', () => {
  assert.throws(
    () => loadConfig({ PORT: 'eighty', CLICKHOUSE_URL: 'not a url', LOG_LEVEL: 'loud', CLICKHOUSE_DATABASE: 'drop table' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      for (const name of ['PORT', 'CLICKHOUSE_URL', 'LOG_LEVEL', 'CLICKHOUSE_DATABASE']) assert.match(err.message, new RegExp(name));
      return true;
    },
  );
});

test('limits and batching are configurable', () => {
  const c = loadConfig({ EVENT_MAX_AGE_MS: '1000', SINK_BATCH_MAX_ROWS: '10', AFTERGLOW_DEMO: '0' });
  assert.equal(c.events.maxAgeMs, 1000);
  assert.equal(c.sink.batchMaxRows, 10);
  assert.equal(c.demo, false);
});

test('security settings: webhook egress, the webhook key, the metrics listener', () => {
  const none = loadConfig({});
  assert.deepEqual(none.triggers.webhook.egress, { allowHosts: [], allowPrivate: false, denyPorts: [...DEFAULT_DENY_PORTS] });
  assert.ok(none.triggers.webhook.egress.denyPorts.includes(8123) && none.triggers.webhook.egress.denyPorts.includes(6379));
  assert.equal(none.triggers.secretKey, undefined);
  assert.equal(none.metrics, undefined);
  const set = loadConfig({
    TRIGGERS_WEBHOOK_ALLOW_HOSTS: 'hooks.example.com, 127.0.0.1:9999,[::1]:8080',
    TRIGGERS_WEBHOOK_ALLOW_PRIVATE: '1',
    TRIGGERS_WEBHOOK_DENY_PORTS: '22, 25',
    TRIGGERS_SECRET_KEY: 'ab'.repeat(32),
  });
  assert.deepEqual(set.triggers.webhook.egress, { allowHosts: ['hooks.example.com', '127.0.0.1:9999', '[::1]:8080'], allowPrivate: true, denyPorts: [22, 25] });
  assert.deepEqual(set.triggers.secretKey, Buffer.alloc(32, 0xab));
  const b64 = Buffer.alloc(32, 7);
  assert.deepEqual(loadConfig({ TRIGGERS_SECRET_KEY: b64.toString('base64') }).triggers.secretKey, b64);
  assert.deepEqual(loadConfig({ TRIGGERS_SECRET_KEY: b64.toString('base64url') }).triggers.secretKey, b64);
  assert.throws(() => loadConfig({ TRIGGERS_SECRET_KEY: Buffer.alloc(16).toString('base64') }), /TRIGGERS_SECRET_KEY: must be 32 bytes/);
  assert.throws(() => loadConfig({ TRIGGERS_WEBHOOK_DENY_PORTS: '22,ssh' }), /TRIGGERS_WEBHOOK_DENY_PORTS/);
  assert.throws(() => loadConfig({ TRIGGERS_WEBHOOK_ALLOW_HOSTS: 'https://hooks.example.com/path' }), /TRIGGERS_WEBHOOK_ALLOW_HOSTS/);
  assert.throws(() => loadConfig({ AUTH_KEY_PEPPER: 'short' }), /AUTH_KEY_PEPPER/);
});

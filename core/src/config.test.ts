import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
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

test('managed Kafka: SASL and TLS settings, checked as a whole', () => {
  const ca = path.join(mkdtempSync(path.join(os.tmpdir(), 'ag-ca-')), 'ca.pem');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const c = loadConfig({
    KAFKA_BROKERS: 'b-1.example.com:9096',
    KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KAFKA_SASL_USERNAME: 'afterglow',
    KAFKA_SASL_PASSWORD: 's3cret',
    KAFKA_SSL: '1',
    KAFKA_SSL_CA_FILE: ca,
  });
  assert.ok(c.bus.kind === 'kafka');
  assert.deepEqual(c.bus.sasl, { mechanism: 'SCRAM-SHA-512', username: 'afterglow', password: 's3cret' });
  assert.match(c.bus.tls?.ca ?? '', /BEGIN CERTIFICATE/);

  const plain = loadConfig({ KAFKA_BROKERS: '127.0.0.1:9092' });
  assert.ok(plain.bus.kind === 'kafka' && plain.bus.sasl === undefined && plain.bus.tls === undefined);
  const tlsOnly = loadConfig({ KAFKA_BROKERS: 'b:9094', KAFKA_SSL: 'true' });
  assert.ok(tlsOnly.bus.kind === 'kafka');
  assert.deepEqual(tlsOnly.bus.tls, {});

  const refused = (env: Record<string, string>, pattern: RegExp) =>
    assert.throws(() => loadConfig({ KAFKA_BROKERS: 'b:9092', ...env }), (err: Error) => err instanceof ConfigError && pattern.test(err.message));
  refused({ KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'u' }, /KAFKA_SASL_MECHANISM: needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/);
  refused({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }, /need KAFKA_SASL_MECHANISM/);
  refused({ KAFKA_SASL_MECHANISM: 'GSSAPI', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }, /KAFKA_SASL_MECHANISM/);
  refused({ KAFKA_SSL_CA_FILE: ca }, /KAFKA_SSL_CA_FILE: needs KAFKA_SSL=1/);
  refused({ KAFKA_SSL: '1', KAFKA_SSL_CA_FILE: '/nonexistent/ca.pem' }, /KAFKA_SSL_CA_FILE: cannot read/);
});

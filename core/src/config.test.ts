import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadConfig } from './config.js';
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

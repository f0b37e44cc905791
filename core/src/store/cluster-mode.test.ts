import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { TABLES } from '../contracts.js';
import { createStore, type Store } from './clickhouse.js';
import { MIGRATIONS } from './migrations.js';
import { CLUSTER_SINK_INSERT_SETTINGS, SINGLE_NODE_SINK_INSERT_SETTINGS, applySchema, sinkInsertSettings } from './cluster.js';

/** CLICKHOUSE_CLUSTER switches the sink's insert settings and the schema the roles apply. */
describe('cluster mode switch (CLICKHOUSE_CLUSTER)', () => {
  test('config: the cluster name reaches the store config; it needs a server', () => {
    const single = loadConfig({ CLICKHOUSE_URL: 'http://ch:8123' });
    assert.equal(single.store.kind, 'clickhouse');
    assert.equal(single.store.kind === 'clickhouse' && single.store.cluster, undefined);
    const cluster = loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: 'afterglow' });
    assert.equal(cluster.store.kind === 'clickhouse' && cluster.store.cluster, 'afterglow');
    assert.throws(() => loadConfig({ CLICKHOUSE_CLUSTER: 'afterglow' }), (e: unknown) => e instanceof ConfigError && /CLICKHOUSE_CLUSTER.*CLICKHOUSE_URL/s.test(e.message));
    assert.throws(() => loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: "a'b" }), ConfigError);
  });

  test('sink insert settings: single-node dedup, or the cluster set (sync Distributed insert, quorum)', () => {
    assert.deepEqual(sinkInsertSettings(loadConfig({}).store), SINGLE_NODE_SINK_INSERT_SETTINGS);
    assert.deepEqual(sinkInsertSettings(loadConfig({ CLICKHOUSE_URL: 'http://ch:8123' }).store), SINGLE_NODE_SINK_INSERT_SETTINGS);
    const c = sinkInsertSettings(loadConfig({ CLICKHOUSE_URL: 'http://ch:8123', CLICKHOUSE_CLUSTER: 'afterglow' }).store);
    assert.deepEqual(c, CLUSTER_SINK_INSERT_SETTINGS);
    assert.equal(c.insert_distributed_sync, 1);
    assert.equal(c.insert_quorum, 'auto');
    for (const settings of [SINGLE_NODE_SINK_INSERT_SETTINGS, c]) {
      assert.equal(settings.insert_deduplicate, 1);
      assert.equal(settings.deduplicate_blocks_in_dependent_materialized_views, 1);
    }
  });

  describe('schema on a real engine (chDB)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'afterglow-cluster-mode-'));
    let store: Store;
    before(async () => {
      store = await createStore({ kind: 'chdb', path: dir, database: 'cluster_mode' });
    });
    after(async () => {
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('without a cluster: the single-node migrations, once', async () => {
      assert.deepEqual(await applySchema(store, undefined), MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
      assert.deepEqual(await applySchema(store, undefined), []);
      const rs = await store.client.query({ query: `SELECT engine FROM system.tables WHERE database = 'cluster_mode' AND name = '${TABLES.eventsRaw}'`, format: 'JSONEachRow' });
      assert.deepEqual(await rs.json(), [{ engine: 'ReplacingMergeTree' }]);
    });

    test('with a cluster: the generated ON CLUSTER DDL is what reaches the server (one node has no such cluster)', async () => {
      await assert.rejects(applySchema(store, 'afterglow'), (err: Error & { type?: string }) => {
        assert.equal(err.type, 'CLUSTER_DOESNT_EXIST', err.message);
        return true;
      });
    });
  });
});

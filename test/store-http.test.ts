import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MIGRATIONS, TABLES, createStore, migrate, type Store } from '@afterglow/core';
import { OwnClickHouse, ROOT } from './faults/services.js';

/**
 * The store port over HTTP, against deploy/local/chdb-http.ts (the ClickHouse engine behind the
 * ClickHouse HTTP interface, in ANOTHER process): what the roles do through `CLICKHOUSE_URL`, and
 * what lets several processes share one store on this machine.
 */
describe('store over the ClickHouse HTTP interface (chdb-http stand-in)', () => {
  const ch = new OwnClickHouse();
  let store: Store;
  const database = `t_${Date.now().toString(36)}`;
  const config = () => ({ kind: 'clickhouse' as const, url: ch.url, user: 'default', password: '', database });

  before(async () => {
    await ch.start();
    store = await createStore(config());
  });
  after(async () => {
    await store?.close();
    await ch.close();
  });

  test('migrations apply once and are idempotent from a second client', async () => {
    assert.deepEqual(await migrate(store), MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
    assert.deepEqual(await migrate(store), []);
    const other = await createStore(config());
    try {
      assert.deepEqual(await migrate(other), []);
      const rs = await other.client.query({ query: `EXISTS TABLE ${other.table(TABLES.eventsRaw)}`, format: 'JSONEachRow' });
      assert.deepEqual(await rs.json(), [{ result: 1 }]);
    } finally {
      await other.close();
    }
  });

  test('an insert retried with the same insert_deduplication_token lands once; the token does not leak to the next insert', async () => {
    const table = store.table(TABLES.eventsRaw);
    const row = (id: string) => ['tn', id, 'c', 'a', 'click', 1, Date.now(), Date.now(), '', '', '', '', '', '', false];
    const columns: [string, ...string[]] = ['tenant_id', 'event_id', 'campaign_id', 'asset_id', 'kind', 'value', 'occurred_at', 'received_at', 'channel', 'placement', 'region', 'device', 'edge_node', 'attrs', 'late'];
    const insert = (ids: string[], token?: string) =>
      store.client.insert({
        table,
        values: ids.map(row),
        columns,
        format: 'JSONCompactEachRow',
        clickhouse_settings: token ? { insert_deduplication_token: token, insert_deduplicate: 1, deduplicate_blocks_in_dependent_materialized_views: 1 } : {},
      });
    await insert(['e1', 'e2'], 'tok-a');
    await insert(['e1', 'e2'], 'tok-a'); // the retry of a timed-out insert that had in fact landed
    await insert(['e3']); // no token: must not inherit tok-a from the pooled session
    await insert(['e4']);
    // (64-bit integers come back as numbers or strings depending on the server's JSON settings.)
    const rs = await store.client.query({ query: `SELECT count() AS n FROM ${table} WHERE tenant_id = {t:String}`, query_params: { t: 'tn' }, format: 'JSONEachRow' });
    assert.equal(Number((await rs.json<{ n: string | number }>())[0]!.n), 4);
    const mv = await store.client.query({ query: `SELECT sum(events) AS n FROM ${store.table(TABLES.assetMinute)} WHERE tenant_id = 'tn'`, format: 'JSONEachRow' });
    assert.equal(Number((await mv.json<{ n: string | number }>())[0]!.n), 4, 'the materialized view saw each row once');
  });

  test('errors come back typed (code and type), settings apply per query only, gzip both ways', async () => {
    await assert.rejects(store.client.query({ query: `SELECT * FROM ${database}.no_such_table`, format: 'JSONEachRow' }), (err: Error & { code?: string; type?: string }) => {
      assert.equal(err.code, '60');
      assert.equal(err.type, 'UNKNOWN_TABLE');
      return true;
    });
    await assert.rejects(store.client.command({ query: 'SELEC 1' }), (err: Error & { type?: string }) => err.type === 'SYNTAX_ERROR');
    const get = async (settings?: Record<string, string>) =>
      (await (await store.client.query({ query: "SELECT getSetting('max_query_size') AS v", format: 'JSONEachRow', clickhouse_settings: settings })).json<{ v: string }>())[0]!.v;
    const before = await get();
    assert.equal(String(await get({ max_query_size: '777777' })), '777777');
    assert.equal(await get(), before, 'a per-query setting must not stick to the server session');

    const { createClient } = await import('@clickhouse/client');
    const gz = createClient({ url: ch.url, compression: { request: true, response: true } });
    try {
      await gz.insert({ table: store.table(TABLES.migrations), values: [{ version: 999, name: 'gzip body' }], format: 'JSONEachRow' });
      const rs = await gz.query({ query: `SELECT name FROM ${store.table(TABLES.migrations)} WHERE version = 999`, format: 'JSONEachRow' });
      assert.deepEqual(await rs.json(), [{ name: 'gzip body' }]);
    } finally {
      await gz.close();
    }
  });

  test('another process reads and writes the same engine', () => {
    const script = `
      import { createStore } from '@afterglow/core';
      const s = await createStore({ kind: 'clickhouse', url: process.argv[1], user: 'default', password: '', database: process.argv[2] });
      await s.client.command({ query: 'CREATE TABLE IF NOT EXISTS ' + s.table('xproc') + ' (n UInt32) ENGINE = MergeTree ORDER BY n' });
      await s.client.insert({ table: s.table('xproc'), values: [{ n: 41 }, { n: 1 }], format: 'JSONEachRow' });
      const rs = await s.client.query({ query: 'SELECT sum(n) AS s FROM ' + s.table('xproc'), format: 'JSONEachRow' });
      console.log(JSON.stringify(await rs.json()));
      await s.close();`;
    const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script, ch.url, database], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\[\{"s":"?42"?\}\]/);
  });

  test('this process sees what the other one wrote', async () => {
    const rs = await store.client.query({ query: `SELECT sum(n) AS s FROM ${store.table('xproc')}`, format: 'JSONEachRow' });
    assert.equal(Number((await rs.json<{ s: string | number }>())[0]!.s), 42);
  });
});

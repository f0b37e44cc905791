import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createStore, type Store } from './clickhouse.js';

/**
 * The embedded adapter (chDB) must give each call exactly the settings it was given, as a ClickHouse
 * server over HTTP does. chDB keeps `SET` in its session, so without care one insert's
 * insert_deduplication_token would stick and a later, different insert would be dropped as a duplicate.
 */
describe('embedded store (chDB): per-call settings', () => {
  let store: Store;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-chdb-settings-'));
    store = await createStore({ kind: 'chdb', path: dir, database: 'settings_check' });
    await store.client.command({
      query: `CREATE TABLE ${store.table('dd')} (n UInt32) ENGINE = MergeTree ORDER BY n SETTINGS non_replicated_deduplication_window = 100`,
    });
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const setting = async (name: string, clickhouse_settings?: Record<string, string | number>, query_params?: Record<string, unknown>) => {
    const rs = await store.client.query({ query: `SELECT getSetting('${name}') AS v`, format: 'JSONEachRow', clickhouse_settings, query_params });
    return String((await rs.json<{ v: unknown }>())[0]!.v);
  };
  const rows = async () => {
    const rs = await store.client.query({ query: `SELECT n FROM ${store.table('dd')} ORDER BY n`, format: 'JSONEachRow' });
    return (await rs.json<{ n: number }>()).map((r) => r.n);
  };

  test('an insert_deduplication_token applies to its own insert only', async () => {
    const insert = (ns: number[], token?: string) =>
      store.client.insert({
        table: store.table('dd'),
        values: ns.map((n) => ({ n })),
        format: 'JSONEachRow',
        clickhouse_settings: token ? { insert_deduplication_token: token, insert_deduplicate: 1 } : {},
      });
    await insert([1, 2], 'tok-a');
    await insert([1, 2], 'tok-a'); // a retry: dropped, so dedup is really on
    assert.deepEqual(await rows(), [1, 2]);
    await insert([3]); // no token: must not inherit tok-a
    await insert([4], 'tok-b');
    await insert([5], 'tok-c');
    await insert([6]);
    // The same statement shapes through exec (a raw INSERT with a body) and command.
    await store.client.exec({ query: `INSERT INTO ${store.table('dd')} FORMAT JSONEachRow`, values: Readable.from(['{"n":7}\n']) });
    await store.client.command({ query: `INSERT INTO ${store.table('dd')} VALUES (8)`, clickhouse_settings: { insert_deduplication_token: 'tok-d' } });
    await store.client.command({ query: `INSERT INTO ${store.table('dd')} VALUES (9)` });
    assert.deepEqual(await rows(), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test('settings such as max_threads do not outlive their call, on any path', async () => {
    const base = await setting('max_threads');
    assert.equal(await setting('max_threads', { max_threads: 1 }), '1');
    assert.equal(await setting('max_threads'), base);
    // Bound parameters go another way through chDB (queryBindAsync).
    assert.equal(await setting('max_threads', { max_threads: 3 }, { x: 1 }), '3');
    assert.equal(await setting('max_threads', undefined, { x: 1 }), base);
    await store.client.command({ query: 'SELECT 1', clickhouse_settings: { max_threads: 2 } });
    assert.equal(await setting('max_threads'), base);
    await store.client.insert({ table: store.table('dd'), values: [{ n: 100 }], format: 'JSONEachRow', clickhouse_settings: { max_threads: 2 } });
    assert.equal(await setting('max_threads'), base);
  });

  test("a reset returns to the session's own starting value, not the compiled default", async () => {
    // chDB starts its sessions with a few settings changed from ClickHouse's defaults.
    const rs = await store.client.query({ query: "SELECT name, value FROM system.settings WHERE changed AND name = 'allow_introspection_functions'", format: 'JSONEachRow' });
    const changed = await rs.json<{ name: string; value: string }>();
    assert.equal(changed.length, 1, 'chDB no longer changes allow_introspection_functions at start: pick another setting for this test');
    const base = await setting('allow_introspection_functions');
    assert.equal(base, 'true');
    assert.equal(await setting('allow_introspection_functions', { allow_introspection_functions: 0 }), 'false');
    assert.equal(await setting('allow_introspection_functions'), base);
  });

  test('concurrent calls each see their own settings', async () => {
    const base = await setting('max_query_size');
    const got = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? setting('max_query_size') : setting('max_query_size', { max_query_size: 100_000 + i }))),
    );
    got.forEach((v, i) => assert.equal(v, i % 3 === 0 ? base : String(100_000 + i), `call ${i}`));
  });

  test('a failing call leaves no settings behind', async () => {
    const base = await setting('max_threads');
    await assert.rejects(store.client.query({ query: 'SELECT * FROM settings_check.no_such_table', clickhouse_settings: { max_threads: 1 } }));
    assert.equal(await setting('max_threads'), base);
  });
});

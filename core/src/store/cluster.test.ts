import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TABLES } from '../contracts.js';
import { createStore, sqlString, type Store } from './clickhouse.js';
import { MIGRATIONS, migrationsTableDdl, type Migration } from './migrations.js';
import { ClusterDdlError, clusterDdlScript, toClusterSchema, type ClusterDdlOptions } from './cluster-ddl.js';
import { tokenize } from './sql-tokens.js';

const DB = 'afterglow';
const OPTIONS: ClusterDdlOptions = { cluster: 'afterglow', database: DB };
const REPLICATED_ARGS = `'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'`;
const flat = (sql: string) => sql.replace(/\s+/g, ' ').trim();
const fake = (...statements: string[]): Migration[] => [{ version: 1, name: 'fake', statements: () => statements }];

describe('cluster DDL generated from the single-node migrations', () => {
  const schema = toClusterSchema(OPTIONS);
  const script = clusterDdlScript(OPTIONS);
  const sourceStatements = MIGRATIONS.flatMap((m) => m.statements(DB));

  test('every migration statement converts, and every output statement runs ON CLUSTER', () => {
    assert.equal(schema.migrations.length, MIGRATIONS.length);
    for (const m of schema.migrations) {
      const source = MIGRATIONS.find((x) => x.version === m.version)!;
      assert.ok(m.statements.length >= source.statements(DB).length, `migration ${m.version} lost statements`);
    }
    for (const sql of script) {
      if (/^\s*INSERT\b/i.test(sql)) continue;
      assert.match(sql, /\bON CLUSTER 'afterglow'/, flat(sql).slice(0, 120));
    }
  });

  test('output is structurally sound: balanced quotes and parentheses, one statement each', () => {
    for (const sql of script) {
      let depth = 0;
      for (const t of tokenize(sql)) {
        if (t.text === '(') depth++;
        if (t.text === ')') depth--;
        assert.ok(depth >= 0, flat(sql));
        assert.ok(!(t.type === 'punct' && t.text === ';'), `stray ; in ${flat(sql)}`);
      }
      assert.equal(depth, 0, flat(sql));
    }
  });

  test('every MergeTree table becomes a Replicated local table plus a Distributed table under its name', () => {
    const creates = sourceStatements.filter((s) => /^\s*CREATE TABLE/i.test(s) && /ENGINE\s*=\s*\w*MergeTree/.test(s));
    assert.ok(creates.length >= 3);
    for (const source of creates) {
      const name = /CREATE TABLE IF NOT EXISTS \w+\.(\w+)/.exec(source)![1]!;
      const engine = /ENGINE\s*=\s*(\w*MergeTree)/.exec(source)![1]!;
      const local = script.find((s) => s.includes(`CREATE TABLE IF NOT EXISTS ${DB}.${name}_local ON CLUSTER`));
      assert.ok(local, `no local table for ${name}`);
      assert.ok(local.includes(`ENGINE = Replicated${engine}(${REPLICATED_ARGS}`), flat(local));
      const dist = script.find((s) => s.includes(`CREATE TABLE IF NOT EXISTS ${DB}.${name} ON CLUSTER`));
      assert.ok(dist, `no Distributed table for ${name}`);
      assert.ok(dist.includes(`AS ${DB}.${name}_local ENGINE = Distributed('afterglow', '${DB}', '${name}_local', `), dist);
    }
    // Nothing non-replicated is left among the MergeTree tables.
    for (const sql of script) assert.doesNotMatch(sql, /ENGINE = (Replacing|Summing|Aggregating|Collapsing)?MergeTree\b/, flat(sql));
    // Single-node-only settings are renamed to their replicated counterparts.
    assert.ok(!script.some((s) => s.includes('non_replicated_deduplication_window')));
    assert.ok(script.some((s) => s.includes('replicated_deduplication_window = 10000')));
  });

  test('sharding: raw events and the asset rollup by asset; the campaign rollup co-located with them', () => {
    const key = (t: string) => schema.tables.find((x) => x.name === t)?.shardingKey;
    assert.equal(key(TABLES.eventsRaw), 'cityHash64(asset_id)');
    assert.equal(key(TABLES.assetMinute), 'cityHash64(asset_id)');
    assert.equal(key(TABLES.campaignMinute), 'rand()');
    assert.equal(key(TABLES.migrations), 'cityHash64(version)');
  });

  test('materialized views read the local source and write the local target on the same shard', () => {
    const views = script.filter((s) => /^\s*CREATE MATERIALIZED VIEW/i.test(s));
    assert.equal(views.length, sourceStatements.filter((s) => /^\s*CREATE MATERIALIZED VIEW/i.test(s)).length);
    const locals = new Set(schema.tables.map((t) => `${DB}.${t.local}`));
    for (const v of views) {
      const to = /\bTO (\S+)/.exec(v)![1]!;
      const from = /\bFROM (\S+)/.exec(v)![1]!;
      assert.ok(locals.has(to), `${to} is not a local table`);
      assert.ok(locals.has(from), `${from} is not a local table`);
      assert.match(v, /CREATE MATERIALIZED VIEW IF NOT EXISTS \w+\.\w+_mv ON CLUSTER/);
    }
  });

  test('the script records every migration so the roles\' migrate() skips them', () => {
    const inserts = script.filter((s) => s.startsWith(`INSERT INTO ${DB}.${TABLES.migrations}`));
    assert.deepEqual(
      inserts.map((s) => Number(/VALUES \((\d+)/.exec(s)![1])),
      MIGRATIONS.map((m) => m.version).sort((a, b) => a - b),
    );
    assert.ok(inserts.every((s) => s.includes('insert_distributed_sync = 1')));
  });
});

describe('other statement kinds', () => {
  const raw = MIGRATIONS[0]!.statements(DB)[0]!;

  test('ALTER: column changes reach local and Distributed tables, others only the shards', () => {
    const s = toClusterSchema(OPTIONS, [
      ...MIGRATIONS,
      {
        version: 999,
        name: 'alters',
        statements: (db) => [
          `ALTER TABLE ${db}.events_raw ADD COLUMN IF NOT EXISTS country LowCardinality(String) DEFAULT '', ADD INDEX idx_country country TYPE set(100) GRANULARITY 4`,
          `ALTER TABLE ${db}.events_raw MODIFY TTL toDateTime(occurred_at) + INTERVAL 400 DAY`,
          `ALTER TABLE ${db}.events_by_asset_minute_mv MODIFY QUERY SELECT tenant_id, campaign_id, asset_id, kind, toStartOfMinute(occurred_at) AS minute, count() AS events, sum(value) AS value_sum, countIf(late) AS late_events FROM ${db}.events_raw GROUP BY tenant_id, campaign_id, asset_id, kind, minute`,
        ],
      },
    ]);
    const out = s.migrations.at(-1)!.statements.map(flat);
    assert.equal(out.length, 4);
    assert.match(out[0]!, /^ALTER TABLE afterglow\.events_raw_local ON CLUSTER 'afterglow' ADD COLUMN .* ADD INDEX/);
    assert.equal(out[1], `ALTER TABLE afterglow.events_raw ON CLUSTER 'afterglow' ADD COLUMN IF NOT EXISTS country LowCardinality(String) DEFAULT ''`);
    assert.match(out[2]!, /^ALTER TABLE afterglow\.events_raw_local ON CLUSTER 'afterglow' MODIFY TTL/);
    assert.match(out[3]!, /^ALTER TABLE afterglow\.events_by_asset_minute_mv ON CLUSTER 'afterglow' MODIFY QUERY .* FROM afterglow\.events_raw_local GROUP BY/);
  });

  test('DROP drops both tables, SYNC; views and non-MergeTree tables just go ON CLUSTER', () => {
    const s = toClusterSchema(OPTIONS, [
      ...MIGRATIONS,
      {
        version: 999,
        name: 'misc',
        statements: (db) => [
          `CREATE TABLE IF NOT EXISTS ${db}.assets (tenant_id String, asset_id String, master_id String, updated_at DateTime64(3)) ENGINE = ReplacingMergeTree(updated_at) ORDER BY (tenant_id, asset_id)`,
          `CREATE TABLE IF NOT EXISTS ${db}.masters (tenant_id String, master_id String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, master_id)`,
          `CREATE TABLE IF NOT EXISTS ${db}.campaigns (tenant_id String, campaign_id String, name String) ENGINE = ReplacingMergeTree ORDER BY (tenant_id, campaign_id)`,
          `CREATE TABLE IF NOT EXISTS ${db}.scratch (x UInt8) ENGINE = Null`,
          `CREATE VIEW IF NOT EXISTS ${db}.asset_totals AS SELECT asset_id, sum(events) AS n FROM ${db}.events_by_asset_minute GROUP BY asset_id`,
          `DROP TABLE IF EXISTS ${db}.campaigns`,
          `DROP VIEW IF EXISTS ${db}.asset_totals`,
          `INSERT INTO ${db}.assets SELECT tenant_id, asset_id, '', now64(3) FROM ${db}.events_raw LIMIT 1 BY asset_id`,
        ],
      },
    ]);
    const out = s.migrations.at(-1)!.statements.map(flat);
    assert.ok(out.includes(`CREATE TABLE IF NOT EXISTS afterglow.assets_local ON CLUSTER 'afterglow' (tenant_id String, asset_id String, master_id String, updated_at DateTime64(3)) ENGINE = ReplicatedReplacingMergeTree(${REPLICATED_ARGS}, updated_at) ORDER BY (tenant_id, asset_id)`), out.join('\n'));
    const key = (t: string) => s.tables.find((x) => x.name === t)?.shardingKey;
    assert.equal(key('assets'), 'cityHash64(asset_id)');
    assert.equal(key('masters'), 'cityHash64(tenant_id, master_id)');
    assert.equal(key('campaigns'), 'cityHash64(campaign_id)');
    assert.equal(key('scratch'), undefined);
    assert.ok(out.includes(`CREATE TABLE IF NOT EXISTS afterglow.scratch ON CLUSTER 'afterglow' (x UInt8) ENGINE = Null`));
    assert.ok(out.some((o) => o.startsWith(`CREATE VIEW IF NOT EXISTS afterglow.asset_totals ON CLUSTER 'afterglow' AS SELECT asset_id, sum(events) AS n FROM afterglow.events_by_asset_minute GROUP`)));
    assert.ok(out.includes(`DROP TABLE IF EXISTS afterglow.campaigns ON CLUSTER 'afterglow' SYNC`));
    assert.ok(out.includes(`DROP TABLE IF EXISTS afterglow.campaigns_local ON CLUSTER 'afterglow' SYNC`));
    assert.ok(out.includes(`DROP VIEW IF EXISTS afterglow.asset_totals ON CLUSTER 'afterglow' SYNC`));
    assert.ok(out.some((o) => o.startsWith('INSERT INTO afterglow.assets SELECT')));
  });

  test('what has no faithful cluster variant is refused, not guessed', () => {
    const refuse = (sql: string, re: RegExp) => assert.throws(() => toClusterSchema(OPTIONS, fake(raw, sql)), (e: unknown) => e instanceof ClusterDdlError && re.test(e.message));
    refuse(`SYSTEM FLUSH LOGS`, /no cluster variant for "SYSTEM/);
    refuse(`CREATE MATERIALIZED VIEW ${DB}.v ENGINE = SummingMergeTree ORDER BY asset_id AS SELECT asset_id, count() AS n FROM ${DB}.events_raw GROUP BY asset_id`, /need TO/);
    refuse(`CREATE TABLE ${DB}.x ON CLUSTER c (a String) ENGINE = MergeTree ORDER BY a`, /single-node/);
    refuse(`CREATE TABLE ${DB}.x (a String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a`, /single-node/);
    refuse(`CREATE TABLE ${DB}.x (a String) ENGINE = MergeTree ORDER BY (a`, /unbalanced/);
    assert.throws(
      () => toClusterSchema({ ...OPTIONS, shardingKeys: { events_by_campaign_minute: 'cityHash64(campaign_id)' } }),
      (e: unknown) => e instanceof ClusterDdlError && /conflicts with its materialized view/.test(e.message),
    );
    assert.throws(() => toClusterSchema({ ...OPTIONS, cluster: "x'; DROP" }), /invalid cluster name/);
  });

  test('options: macro cluster name, another database, an explicit key', () => {
    const s = clusterDdlScript({ cluster: '{cluster}', database: 'ag2', shardingKeys: { events_raw: 'cityHash64(tenant_id, asset_id)' } });
    assert.ok(s[0]!.startsWith(`CREATE DATABASE IF NOT EXISTS ag2 ON CLUSTER '{cluster}'`));
    assert.ok(s.some((x) => x.includes(`ENGINE = Distributed('{cluster}', 'ag2', 'events_raw_local', cityHash64(tenant_id, asset_id))`)));
    // The asset rollup follows the raw table's key when it can.
    assert.ok(s.some((x) => x.includes(`'events_by_asset_minute_local', cityHash64(tenant_id, asset_id))`)));
  });
});

describe('on embedded ClickHouse (chDB)', () => {
  let store: Store;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-cluster-'));
    store = await createStore({ kind: 'chdb', path: dir, database: 'cluster_check' });
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const scalar = async (query: string): Promise<string> => {
    const rs = await store.client.query({ query, format: 'JSONEachRow' });
    const rows = await rs.json<Record<string, string>>();
    return String(Object.values(rows[0] ?? {})[0]);
  };

  test('ClickHouse parses every generated statement (formatQuery), Replicated engines and macros included', async () => {
    const script = clusterDdlScript({ cluster: 'afterglow', database: 'cluster_check' });
    for (const sql of script) {
      const formatted = await scalar(`SELECT formatQuery(${sqlString(sql)}) AS f`).catch((err: Error) => {
        throw new Error(`ClickHouse rejects:\n${sql}\n${err.message}`);
      });
      assert.match(formatted, /ON CLUSTER afterglow|^INSERT INTO/, formatted);
      if (/ReplicatedSummingMergeTree|ReplicatedReplacingMergeTree/.test(sql)) assert.match(formatted, /Replicated\w*MergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'/);
    }
    // And that the check would catch a broken one.
    await assert.rejects(scalar(`SELECT formatQuery(${sqlString('CREATE TABLE a.b ON CLUSTER c (x String) ENGINE = MergeTree ORDER BY (x')})`));
  });

  test('the same script, with the cluster parts stood in for one node, builds working tables and views', async () => {
    // One shard, one replica, no Keeper: Replicated* -> its plain engine, ON CLUSTER dropped, and
    // each Distributed table -> a Merge table over its local table (reads only, like one shard).
    // This executes the generated column lists, engines' own arguments, sorting keys and views.
    const db = 'cluster_check';
    const script = clusterDdlScript({ cluster: 'afterglow', database: db });
    for (const sql of script) {
      if (/^\s*INSERT\b/i.test(sql)) continue;
      const oneNode = sql
        .replace(/ ON CLUSTER '[^']*'/g, '')
        .replace(/ENGINE = Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, ([^)]*))?\)/g, (_m, engine: string, args?: string) => `ENGINE = ${engine}${args ? `(${args})` : ''}`)
        .replace(/AS (\w+)\.(\w+) ENGINE = Distributed\(.*\)\s*$/s, (_m, d: string, local: string) => `AS ${d}.${local} ENGINE = Merge(${d}, '^${local}$')`);
      await store.client.command({ query: oneNode }).catch((err: Error) => {
        throw new Error(`chDB rejects:\n${oneNode}\n${err.message}`);
      });
    }
    const now = new Date().toISOString().replace('T', ' ').replace('Z', '');
    const rows = Array.from({ length: 300 }, (_, i) => ({
      tenant_id: 't1',
      event_id: `01J${String(i).padStart(23, '0')}`,
      campaign_id: `c${i % 3}`,
      asset_id: `a${i % 7}`,
      kind: 'click',
      value: 1,
      occurred_at: now,
      received_at: now,
      channel: 'web',
      placement: 'feed',
      region: 'eu',
      device: 'mobile',
      edge_node: 'e1',
      viewer_hash: '',
      attrs: '{}',
      late: i % 10 === 0,
    }));
    await store.client.insert({ table: `${db}.events_raw_local`, values: rows, format: 'JSONEachRow' });
    // Views fired on the LOCAL raw table and filled the LOCAL rollups; the stand-in "Distributed"
    // names read them back like the application does.
    assert.equal(await scalar(`SELECT sum(events) FROM ${db}.events_by_campaign_minute WHERE campaign_id = 'c1'`), '100');
    assert.equal(await scalar(`SELECT sum(events) FROM ${db}.events_by_asset_minute_local`), '300');
    assert.equal(await scalar(`SELECT sum(late_events) FROM ${db}.events_by_asset_minute`), '30');
    assert.equal(await scalar(`SELECT count() FROM ${db}.events_raw`), '300');
    // The local tables have exactly the single-node columns.
    for (const t of [TABLES.eventsRaw, TABLES.assetMinute, TABLES.campaignMinute]) {
      // Its CREATE and every later ALTER of it, in migration order.
      const single = MIGRATIONS.flatMap((m) => m.statements('single_check')).filter((s) => s.includes(`single_check.${t} (`) || s.startsWith(`ALTER TABLE single_check.${t} `));
      await store.client.command({ query: 'CREATE DATABASE IF NOT EXISTS single_check' });
      for (const statement of single) await store.client.command({ query: statement });
      const cols = (d: string, name: string) => scalar(`SELECT groupArray(concat(name, ' ', type)) FROM (SELECT name, type FROM system.columns WHERE database = '${d}' AND table = '${name}' ORDER BY position)`);
      assert.equal(await cols(db, `${t}_local`), await cols('single_check', t));
    }
    assert.ok(migrationsTableDdl(db).includes(TABLES.migrations));
  });
});

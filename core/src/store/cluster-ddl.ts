import { TABLES } from '../contracts.js';
import { MIGRATIONS, migrationsTableDdl, type Migration } from './migrations.js';
import { sqlString } from './clickhouse.js';
import { ClusterDdlError, Statement, identifierColumns, unquote, type Token } from './sql-tokens.js';

/**
 * ClickHouse at scale: the cluster variant of the schema, GENERATED from the single-node DDL in
 * `migrations.ts` (the one source; CI runs that DDL on chDB, and `cluster.test.ts` converts every
 * statement of it). `afterglow ddl --cluster NAME` prints the result for operators.
 *
 * What a single-node statement becomes:
 *
 * - `CREATE TABLE t (...) ENGINE = XMergeTree[(args)] ...` (any MergeTree family engine) becomes
 *     1. `t_local ON CLUSTER c` with `ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
 *        '{replica}'[, args])`: the rows of one shard, replicated through Keeper to every replica
 *        of that shard (the `{shard}`/`{replica}` macros come from each server's config; the
 *        Altinity operator sets them). Settings that only exist for the non-replicated engine are
 *        renamed (`non_replicated_deduplication_window` -> `replicated_deduplication_window`).
 *     2. `t ON CLUSTER c AS t_local ENGINE = Distributed(c, db, t_local, <sharding key>)` under the
 *        ORIGINAL name, so every query and insert in the code base runs unchanged on the cluster.
 * - `CREATE MATERIALIZED VIEW v TO target AS SELECT ... FROM source` becomes `v ON CLUSTER c TO
 *   target_local AS SELECT ... FROM source_local`: views fire on the INSERT into the local table
 *   of each shard (an insert into a Distributed table reaches the shards as inserts into their
 *   local tables), and write to the local target on the SAME shard. Other tables a view reads
 *   (joins, subqueries) keep their Distributed names: they see the whole cluster.
 * - Other DDL gets `ON CLUSTER c` (views, dictionaries, non-MergeTree tables), ALTERs go to the local
 *   table (and column changes also to the Distributed one), DROPs drop both (`SYNC`, so the Keeper
 *   path is free for a re-create). Anything this generator does not understand is an error, so a
 *   new kind of migration statement fails `cluster.test.ts` instead of silently diverging.
 *
 * Sharding (`Distributed`'s key; the shard of a row is `key % total weight`):
 *
 * - `events_raw` and every table with an `asset_id` column: `cityHash64(asset_id)`. Kafka already
 *   partitions `engagement.events` by asset_id, so an asset's events — and every re-send or
 *   redelivery of one event, which carries the same asset_id — land on one shard. That makes the
 *   per-asset rollup complete on its shard and lets an asset's reads be pruned to one shard
 *   (`optimize_skip_unused_shards=1` with `asset_id = ...`).
 * - Tables filled by a materialized view inherit the source's placement (the view writes locally):
 *   the key is the source's key when the target has its columns, else `rand()`.
 *   The campaign rollup is the case in point. Sharding it by `campaign_id` would mean its view
 *   writes into the Distributed table, re-routing partial sums between shards on every insert:
 *   asynchronously by default (rows could be lost after Kafka offsets are committed) and, even
 *   synchronously, the retried insert's re-pushed partial blocks are not covered by the replicated
 *   block dedup of the shard that took the raw rows, so a retry could count twice. Instead each
 *   shard keeps the campaign's partial sums for the assets it holds — written in the same local
 *   insert as the raw rows, deduplicated with them — and a campaign read fans out to all shards
 *   and adds the partials (`sum(...) GROUP BY`, which every read of a Summing table does anyway).
 *   `rand()` is declared (rather than `cityHash64(campaign_id)`) so that
 *   `optimize_skip_unused_shards` can never prune a shard that holds part of a campaign.
 *   A campaign read costs one small primary-key range read per shard: fine to tens of shards.
 * - Other tables with a `campaign_id`: `cityHash64(campaign_id)`; otherwise a hash of the sorting
 *   key, so that the rows a Replacing/Summing engine must collapse meet on one shard.
 * - `options.shardingKeys` overrides any of these (a view's target only with a compatible key).
 *
 * Insert dedup across replicas (what the writer, the stream sink, must do on a cluster; see
 * CLUSTER_SINK_INSERT_SETTINGS and the design note in migrations.ts):
 *
 * - ReplicatedMergeTree keeps the dedup log (block hashes, or `insert_deduplication_token`s) in
 *   Keeper, per shard, shared by all replicas of that shard. A retried insert with the same token
 *   is dropped by whichever replica receives it. So retries are safe across replicas as long as
 *   the retry sends the SAME rows to the SAME shard with the same token.
 * - The sink therefore inserts into the Distributed `events_raw` with `insert_distributed_sync=1`
 *   (`distributed_foreground_insert` in newer servers): the server splits the batch by
 *   `cityHash64(asset_id)` — deterministically, so a retry sends each shard the same sub-block,
 *   with the same token (the path contains `{shard}`, so equal tokens on different shards never
 *   collide) — and answers only when every shard has its rows. The default asynchronous mode
 *   would acknowledge rows that sit in the receiving node's spool; Kafka offsets would then be
 *   committed before the data is durable, and the Keeper dedup would see the spool's own
 *   re-batched blocks, not the sink's. Inserting into `events_raw_local` of each shard directly
 *   (client-side sharding by the same key) would also be correct and saves a hop, but puts the
 *   cluster topology into the application; the Distributed table keeps it in ClickHouse.
 * - `insert_quorum='auto'` (a majority of the shard's replicas) makes the insert return only when
 *   the rows are on more than one replica, so committing the Kafka offsets never outruns
 *   replication. With two replicas per shard (the plan in deploy/README.md) the quorum is both,
 *   so the sink's pre-insert primary-key lookup — which catches redeliveries after a rebalance,
 *   whose batches differ from the original and so carry another token — reads the rows from
 *   either replica. With three or more replicas set `insert_quorum` to the replica count, or run
 *   that lookup with `select_sequential_consistency=1` (which needs `insert_quorum_parallel=0`).
 * - `deduplicate_blocks_in_dependent_materialized_views=1` extends the same guarantee to the
 *   rollups the views write on each shard.
 * - `replicated_deduplication_window` (blocks remembered per shard and table) must exceed the
 *   inserts that can happen between a failed insert and its retry; the migration sets it.
 */

export interface ClusterDdlOptions {
  /** Cluster name from `remote_servers` (or the `'{cluster}'` macro). */
  cluster: string;
  /** Database that holds Afterglow's tables (`CLICKHOUSE_DATABASE`). */
  database: string;
  /** Suffix of the per-shard tables; the Distributed tables keep the original names. */
  localSuffix?: string;
  /** Keeper path of each replicated table. */
  replicationPath?: string;
  /** Replica name in that path. */
  replicaName?: string;
  /** Sharding key per table (original name), overriding the rules above. */
  shardingKeys?: Record<string, string>;
}

export interface ClusterTable {
  /** Original (Distributed) name, and the per-shard replicated table. */
  name: string;
  local: string;
  engine: string;
  shardingKey: string;
  /** Why that key, for the operator reading the generated script. */
  reason: string;
}

export interface ClusterMigration {
  version: number;
  name: string;
  statements: string[];
}

export interface ClusterSchema {
  migrations: ClusterMigration[];
  tables: ClusterTable[];
}

/** A statement the converter (or the tokenizer under it) does not understand. */
export { ClusterDdlError };

export const DEFAULT_REPLICATION_PATH = '/clickhouse/tables/{shard}/{database}/{table}';
export const DEFAULT_REPLICA_NAME = '{replica}';

const MERGE_TREE = /^(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing|Graphite|Coalescing)?MergeTree$/;
const RENAMED_SETTINGS: Record<string, string> = { non_replicated_deduplication_window: 'replicated_deduplication_window' };

// ---------------------------------------------------------------------------------------------
// Pass 1: what the single-node schema holds (tables, their columns and sorting keys, and which
// materialized view feeds which table), so that pass 2 can place every table consistently.

interface TableInfo {
  name: string;
  engine: string;
  columns: string[];
  orderBy: string[];
  /** Source table of the materialized view(s) that write into this one. */
  fedFrom: string | undefined;
}

interface Catalog {
  tables: Map<string, TableInfo>;
}

function leadingKeyword(s: Statement): string {
  const words: string[] = [];
  for (let i = 0; i < 4 && i < s.sig.length; i++) {
    const t = s.sig[i]!;
    if (t.type !== 'ident') break;
    words.push(t.text.toUpperCase());
  }
  const w = words.join(' ');
  for (const k of [
    'CREATE MATERIALIZED VIEW',
    'CREATE OR REPLACE VIEW',
    'CREATE VIEW',
    'CREATE TABLE',
    'CREATE DICTIONARY',
    'CREATE DATABASE',
    'ALTER TABLE',
    'DROP TABLE',
    'DROP VIEW',
    'DROP DICTIONARY',
    'INSERT INTO',
    'OPTIMIZE TABLE',
    'TRUNCATE TABLE',
    'RENAME TABLE',
  ])
    if (w === k || w.startsWith(`${k} `)) return k;
  return w;
}

/** After `CREATE <kind> [IF NOT EXISTS]` (and `ALTER TABLE`, `DROP ... [IF EXISTS]`): the name's index. */
function nameIndex(s: Statement, kind: string): number {
  let i = kind.split(' ').length;
  if (s.is(i, 'IF', 'NOT', 'EXISTS')) i += 3;
  else if (s.is(i, 'IF', 'EXISTS')) i += 2;
  return i;
}

interface CreateTable {
  name: { db: string | undefined; table: string; end: number };
  nameAt: number;
  columnsOpen: number | undefined;
  columns: string[];
  engineAt: number;
  engineName: string;
  engineArgs: [number, number] | undefined;
  engineEnd: number;
  orderBy: string[];
}

function parseCreateTable(s: Statement): CreateTable {
  const nameAt = nameIndex(s, 'CREATE TABLE');
  const name = s.name(nameAt);
  if (s.is(name.end, 'ON', 'CLUSTER')) throw new ClusterDdlError('the source DDL must be single-node (no ON CLUSTER)', s.sql);
  let columnsOpen: number | undefined;
  const columns: string[] = [];
  if (s.punct(name.end, '(')) {
    columnsOpen = name.end;
    const close = s.closeOf(columnsOpen);
    let start = columnsOpen + 1;
    for (let i = start; i < close; i++) {
      if (i === close - 1 || (s.punct(i, ',') && s.depth[i] === 1)) {
        const first = s.sig[start];
        if (first && !['INDEX', 'PROJECTION', 'CONSTRAINT'].includes(first.text.toUpperCase())) columns.push(unquote(first));
        start = i + 1;
      }
    }
  }
  const engineAt = s.find(name.end, 'ENGINE');
  if (engineAt < 0 || !s.punct(engineAt + 1, '=')) throw new ClusterDdlError('CREATE TABLE without ENGINE = ...', s.sql);
  const engineName = s.sig[engineAt + 2]?.text ?? '';
  let engineArgs: [number, number] | undefined;
  let engineEnd = engineAt + 3;
  if (s.punct(engineEnd, '(')) {
    const close = s.closeOf(engineEnd);
    engineArgs = [engineEnd + 1, close - 1];
    engineEnd = close;
  }
  let orderBy: string[] = [];
  const orderAt = s.find(engineEnd, 'ORDER', 'BY');
  if (orderAt >= 0) {
    const stop = ['PARTITION', 'PRIMARY', 'SAMPLE', 'TTL', 'SETTINGS', 'COMMENT', 'AS'];
    let end = orderAt + 2;
    while (end < s.sig.length && !(s.depth[end] === 0 && stop.includes(s.sig[end]!.text.toUpperCase()) && s.sig[end]!.type === 'ident')) end++;
    let from = orderAt + 2;
    let to = end;
    if (s.punct(from, '(') && s.closeOf(from) === to) {
      from++;
      to--;
    }
    orderBy = splitTopLevel(s, from, to).map(([a, b]) => s.text(a, b));
  }
  return { name, nameAt, columnsOpen, columns, engineAt, engineName, engineArgs, engineEnd, orderBy };
}

function splitTopLevel(s: Statement, from: number, to: number): [number, number][] {
  const parts: [number, number][] = [];
  if (from >= to) return parts;
  const d = s.depth[from]!;
  let start = from;
  for (let i = from; i < to; i++) {
    if (s.punct(i, ',') && s.depth[i] === d) {
      parts.push([start, i]);
      start = i + 1;
    }
  }
  parts.push([start, to]);
  return parts;
}

interface CreateView {
  nameAt: number;
  name: { db: string | undefined; table: string; end: number };
  to: { db: string | undefined; table: string; end: number; at: number } | undefined;
  /** Index of the name of the table the view reads (its trigger), if it reads one directly. */
  source: { db: string | undefined; table: string; end: number; at: number } | undefined;
}

function parseMaterializedView(s: Statement): CreateView {
  const nameAt = nameIndex(s, 'CREATE MATERIALIZED VIEW');
  const name = s.name(nameAt);
  if (s.is(name.end, 'ON', 'CLUSTER')) throw new ClusterDdlError('the source DDL must be single-node (no ON CLUSTER)', s.sql);
  const to = s.is(name.end, 'TO') ? { ...s.name(name.end + 1), at: name.end + 1 } : undefined;
  const asAt = s.find(name.end, 'AS');
  if (asAt < 0) throw new ClusterDdlError('materialized view without AS SELECT', s.sql);
  return { nameAt, name, to, source: triggerTable(s, asAt + 1) };
}

/** The table the SELECT starting at `from` reads first: its leftmost FROM, through subqueries. */
function triggerTable(s: Statement, from: number): CreateView['source'] {
  let depth = s.depth[from] ?? 0;
  let i = from;
  for (;;) {
    let at = -1;
    for (let k = i; k < s.sig.length; k++) {
      if ((s.depth[k] ?? 0) < depth) break;
      if (s.depth[k] === depth && s.is(k, 'FROM')) {
        at = k;
        break;
      }
    }
    if (at < 0) return undefined;
    if (s.punct(at + 1, '(')) {
      i = at + 2;
      depth++;
      continue;
    }
    const t = s.sig[at + 1];
    if (!t || (t.type !== 'ident' && t.type !== 'qident')) return undefined;
    if (s.punct(at + 2, '(')) return undefined; // a table function
    return { ...s.name(at + 1), at: at + 1 };
  }
}

function collect(statements: string[], db: string): Catalog {
  const tables = new Map<string, TableInfo>();
  const feeds: [string, string][] = [];
  for (const sql of statements) {
    const s = new Statement(sql);
    const kind = leadingKeyword(s);
    if (kind === 'CREATE TABLE') {
      const c = parseCreateTable(s);
      if ((c.name.db ?? db) !== db) continue;
      tables.set(c.name.table, { name: c.name.table, engine: c.engineName, columns: c.columns, orderBy: c.orderBy, fedFrom: undefined });
    } else if (kind === 'CREATE MATERIALIZED VIEW') {
      const v = parseMaterializedView(s);
      if (v.to && v.source && (v.to.db ?? db) === db && (v.source.db ?? db) === db) feeds.push([v.to.table, v.source.table]);
    } else if (kind === 'ALTER TABLE') {
      // Track added columns: a later view's target might depend on them.
      const name = s.name(nameIndex(s, 'ALTER TABLE'));
      const info = tables.get(name.table);
      if (!info) continue;
      for (let i = name.end; i < s.sig.length; i++) {
        if (s.depth[i] === 0 && s.is(i, 'ADD', 'COLUMN')) {
          let k = i + 2;
          if (s.is(k, 'IF', 'NOT', 'EXISTS')) k += 3;
          const col = s.sig[k];
          if (col) info.columns.push(unquote(col));
        }
      }
    }
  }
  for (const [target, source] of feeds) {
    const info = tables.get(target);
    if (info && tables.has(source)) info.fedFrom = source;
  }
  return { tables };
}

function placeTables(catalog: Catalog, overrides: Record<string, string>): Map<string, { key: string; reason: string }> {
  const placed = new Map<string, { key: string; reason: string }>();
  const place = (name: string, seen: Set<string>): { key: string; reason: string } => {
    const done = placed.get(name);
    if (done) return done;
    const t = catalog.tables.get(name)!;
    let result: { key: string; reason: string };
    if (t.fedFrom && !seen.has(name)) {
      const source = place(t.fedFrom, new Set([...seen, name]));
      const inherited = identifierColumns(source.key).every((c) => t.columns.includes(c))
        ? { key: source.key, reason: `filled on each shard by a view on ${t.fedFrom}: placed like it` }
        : {
            key: 'rand()',
            reason: `filled on each shard by a view on ${t.fedFrom}, whose key (${source.key}) it cannot express: partial rows on every shard, reads fan out and aggregate`,
          };
      const override = overrides[name];
      if (override !== undefined && override !== inherited.key && override !== 'rand()')
        throw new ClusterDdlError(
          `sharding key ${override} for ${name} conflicts with its materialized view, which writes on the shard of the ${t.fedFrom} rows (${inherited.key})`,
          name,
        );
      result = override !== undefined ? { key: override, reason: 'configured' } : inherited;
    } else if (overrides[name] !== undefined) {
      result = { key: overrides[name]!, reason: 'configured' };
    } else if (t.columns.includes('asset_id')) {
      result = { key: 'cityHash64(asset_id)', reason: 'by asset, like the Kafka partitions of engagement.events' };
    } else if (t.columns.includes('campaign_id')) {
      result = { key: 'cityHash64(campaign_id)', reason: 'by campaign' };
    } else if (t.orderBy.length > 0 && !/^tuple\(\s*\)$/i.test(t.orderBy[0]!)) {
      result = { key: `cityHash64(${t.orderBy.join(', ')})`, reason: 'by sorting key: rows that collapse together meet on one shard' };
    } else {
      result = { key: 'rand()', reason: 'no sorting key' };
    }
    placed.set(name, result);
    return result;
  };
  for (const name of catalog.tables.keys()) if (MERGE_TREE.test(catalog.tables.get(name)!.engine)) place(name, new Set());
  return placed;
}

// ---------------------------------------------------------------------------------------------
// Pass 2: rewrite.

class Converter {
  private readonly localSuffix: string;
  private readonly path: string;
  private readonly replica: string;
  private readonly onCluster: string;
  readonly tables = new Map<string, ClusterTable>();

  constructor(
    private readonly options: ClusterDdlOptions,
    private readonly placement: Map<string, { key: string; reason: string }>,
  ) {
    if (!/^[A-Za-z0-9_{}.-]+$/.test(options.cluster)) throw new Error(`invalid cluster name ${JSON.stringify(options.cluster)}`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.database)) throw new Error(`invalid database name ${JSON.stringify(options.database)}`);
    this.localSuffix = options.localSuffix ?? '_local';
    this.path = options.replicationPath ?? DEFAULT_REPLICATION_PATH;
    this.replica = options.replicaName ?? DEFAULT_REPLICA_NAME;
    this.onCluster = `ON CLUSTER ${sqlString(options.cluster)}`;
  }

  private replicated(table: string): boolean {
    return this.placement.has(table);
  }

  private qualified(db: string | undefined, table: string): string {
    return `${db ?? this.options.database}.${table}`;
  }

  private isOurs(db: string | undefined): boolean {
    return (db ?? this.options.database) === this.options.database;
  }

  convert(sql: string): string[] {
    const s = new Statement(sql);
    const kind = leadingKeyword(s);
    switch (kind) {
      case 'CREATE TABLE':
        return this.createTable(s);
      case 'CREATE MATERIALIZED VIEW':
        return [this.createMaterializedView(s)];
      case 'CREATE VIEW':
      case 'CREATE OR REPLACE VIEW':
      case 'CREATE DICTIONARY':
      case 'CREATE DATABASE':
        return [this.withOnCluster(s, kind)];
      case 'ALTER TABLE':
        return this.alterTable(s);
      case 'DROP TABLE':
      case 'DROP VIEW':
      case 'DROP DICTIONARY':
        return this.drop(s, kind);
      case 'OPTIMIZE TABLE':
      case 'TRUNCATE TABLE':
        return [this.onLocal(s, kind)];
      case 'INSERT INTO':
        // Data migrations run once, from the node that applies the script, into the Distributed
        // tables (which the script's session makes synchronous, see clusterDdlScript).
        return [s.text(0)];
      default:
        throw new ClusterDdlError(`no cluster variant for "${kind}" statements: extend core/src/store/cluster-ddl.ts`, sql);
    }
  }

  private createTable(s: Statement): string[] {
    const c = parseCreateTable(s);
    const family = MERGE_TREE.exec(c.engineName);
    if (c.engineName.startsWith('Replicated') || c.engineName === 'Distributed')
      throw new ClusterDdlError('the source DDL must be single-node (no Replicated/Distributed engines)', s.sql);
    if (!family || !this.isOurs(c.name.db) || !this.replicated(c.name.table)) {
      // Not a MergeTree table (Null, Memory, Log, ...): the same table on every node.
      return [this.withOnCluster(s, 'CREATE TABLE')];
    }
    if (s.find(c.engineEnd, 'AS', 'SELECT') >= 0) throw new ClusterDdlError('CREATE TABLE ... AS SELECT has no cluster variant: create the table, then INSERT', s.sql);
    const table = c.name.table;
    const local = `${table}${this.localSuffix}`;
    const { key, reason } = this.placement.get(table)!;
    const args = [sqlString(this.path), sqlString(this.replica)];
    if (c.engineArgs && c.engineArgs[1] > c.engineArgs[0]) args.push(s.text(c.engineArgs[0], c.engineArgs[1]));
    const engine = `Replicated${c.engineName}(${args.join(', ')})`;
    const rename = (t: Token): Token => (t.type === 'ident' && RENAMED_SETTINGS[t.text] ? { ...t, text: RENAMED_SETTINGS[t.text]! } : t);
    const localSql = s.edit(
      [
        { from: c.nameAt, to: c.name.end, text: this.qualified(c.name.db, local) },
        { from: c.name.end, to: c.name.end, text: ` ${this.onCluster}` },
        { from: c.engineAt, to: c.engineEnd, text: `ENGINE = ${engine}` },
      ],
      rename,
    );
    const ifNotExists = s.is(2, 'IF', 'NOT', 'EXISTS') ? ' IF NOT EXISTS' : '';
    const distributedSql =
      `CREATE TABLE${ifNotExists} ${this.qualified(c.name.db, table)} ${this.onCluster} AS ${this.qualified(c.name.db, local)}` +
      ` ENGINE = Distributed(${sqlString(this.options.cluster)}, ${sqlString(this.options.database)}, ${sqlString(local)}, ${key})`;
    this.tables.set(table, { name: table, local, engine: `Replicated${c.engineName}`, shardingKey: key, reason });
    return [localSql, distributedSql];
  }

  private createMaterializedView(s: Statement): string {
    const v = parseMaterializedView(s);
    if (!v.to) throw new ClusterDdlError('materialized views need TO <table> to have a cluster variant (the inner-table form is not generated)', s.sql);
    const edits = [{ from: v.name.end, to: v.name.end, text: ` ${this.onCluster}` }];
    for (const ref of [v.to, v.source])
      if (ref && this.isOurs(ref.db) && this.replicated(ref.table))
        edits.push({ from: ref.at, to: ref.end, text: this.qualified(ref.db, `${ref.table}${this.localSuffix}`) });
    return s.edit(edits);
  }

  private withOnCluster(s: Statement, kind: string): string {
    const at = nameIndex(s, kind);
    const end = kind === 'CREATE DATABASE' ? at + 1 : s.name(at).end;
    if (s.is(end, 'ON', 'CLUSTER')) throw new ClusterDdlError('the source DDL must be single-node (no ON CLUSTER)', s.sql);
    return s.edit([{ from: end, to: end, text: ` ${this.onCluster}` }]);
  }

  private onLocal(s: Statement, kind: string): string {
    const name = s.name(nameIndex(s, kind));
    return s.edit([...this.toLocal(name, nameIndex(s, kind)), { from: name.end, to: name.end, text: ` ${this.onCluster}` }]);
  }

  /** The edit that points a reference to a replicated table at its local table (none otherwise). */
  private toLocal(ref: { db: string | undefined; table: string; end: number }, at: number): { from: number; to: number; text: string }[] {
    return this.isOurs(ref.db) && this.replicated(ref.table) ? [{ from: at, to: ref.end, text: this.qualified(ref.db, `${ref.table}${this.localSuffix}`) }] : [];
  }

  private alterTable(s: Statement): string[] {
    const at = nameIndex(s, 'ALTER TABLE');
    const name = s.name(at);
    const onCluster = { from: name.end, to: name.end, text: ` ${this.onCluster}` };
    if (!(this.isOurs(name.db) && this.replicated(name.table))) {
      // Views (MODIFY QUERY reads the local source, like the CREATE) and non-replicated tables.
      const query = s.find(name.end, 'MODIFY', 'QUERY');
      const src = query >= 0 ? triggerTable(s, query + 2) : undefined;
      return [s.edit([onCluster, ...(src ? this.toLocal(src, src.at) : [])])];
    }
    // Settings of the single-node engine get their replicated names (as in CREATE TABLE).
    const rename = (t: Token): Token => (t.type === 'ident' && RENAMED_SETTINGS[t.text] ? { ...t, text: RENAMED_SETTINGS[t.text]! } : t);
    const local = s.edit([...this.toLocal(name, at), onCluster], rename);
    // Column changes must reach the Distributed table too; data/index/TTL changes only the shards.
    const commands = splitTopLevel(s, name.end, s.sig.length).filter(([a]) =>
      ['ADD', 'DROP', 'MODIFY', 'RENAME', 'COMMENT'].some((verb) => s.is(a, verb, 'COLUMN')),
    );
    if (commands.length === 0) return [local];
    const distributed = `${s.text(0, name.end)} ${this.onCluster} ${commands.map(([a, b]) => s.text(a, b)).join(', ')}`;
    return [local, distributed];
  }

  private drop(s: Statement, kind: string): string[] {
    const at = nameIndex(s, kind);
    const name = s.name(at);
    const sync = s.find(name.end, 'SYNC') >= 0 ? [] : [{ from: s.sig.length, to: s.sig.length, text: ' SYNC' }];
    const onCluster = { from: name.end, to: name.end, text: ` ${this.onCluster}` };
    const local = this.toLocal(name, at);
    if (kind === 'DROP TABLE' && local.length) return [s.edit([onCluster, ...sync]), s.edit([...local, onCluster, ...sync])];
    return [s.edit([onCluster, ...sync])];
  }
}

/** Converts every statement of the given migrations to its cluster variant. Pure. */
export function toClusterSchema(options: ClusterDdlOptions, migrations: Migration[] = MIGRATIONS): ClusterSchema & { setup: string[] } {
  const db = options.database;
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  const bootstrap = migrationsTableDdl(db);
  const catalog = collect([bootstrap, ...ordered.flatMap((m) => m.statements(db))], db);
  const converter = new Converter(options, placeTables(catalog, options.shardingKeys ?? {}));
  const setup = [`CREATE DATABASE IF NOT EXISTS ${db} ON CLUSTER ${sqlString(options.cluster)}`, ...converter.convert(bootstrap)];
  const converted = ordered.map((m) => ({ version: m.version, name: m.name, statements: m.statements(db).flatMap((sql) => converter.convert(sql)) }));
  return { setup, migrations: converted, tables: [...converter.tables.values()] };
}

/** The INSERT that records a migration as applied (through the Distributed table, synchronously). */
export function recordMigration(database: string, m: { version: number; name: string }): string {
  return `INSERT INTO ${database}.${TABLES.migrations} (version, name) SETTINGS insert_distributed_sync = 1 VALUES (${m.version}, ${sqlString(m.name)})`;
}

/**
 * The whole script an operator applies once per release, in order, on any node of the cluster:
 * the database, the migrations table (replicated and distributed like the rest), every migration's
 * statements, and a row per migration so that the roles' own `migrate()` on start finds them
 * applied and does nothing (its single-node `CREATE ... IF NOT EXISTS` would be no-ops anyway).
 * Every statement is idempotent, so re-applying the script is safe.
 */
export function clusterDdlScript(options: ClusterDdlOptions, migrations: Migration[] = MIGRATIONS): string[] {
  const schema = toClusterSchema(options, migrations);
  return [...schema.setup, ...schema.migrations.flatMap((m) => [...m.statements, recordMigration(options.database, m)])];
}

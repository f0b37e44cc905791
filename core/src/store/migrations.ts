import { TABLES } from '../contracts.js';
import { EVENT_KINDS } from '../events.js';
import type { Store } from './clickhouse.js';

/**
 * Versioned schema migrations, applied in order on start by whichever role needs the store.
 * Every statement is idempotent (IF NOT EXISTS), so two processes starting together are safe;
 * the migrations table records what ran. Append new versions; never edit an applied one.
 */
export interface Migration {
  version: number;
  name: string;
  statements: (db: string) => string[];
}

const kindEnum = `Enum8(${EVENT_KINDS.map((k, i) => `'${k}' = ${i + 1}`).join(', ')})`;

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'events_raw and per-minute rollups',
    statements: (db) => [
      /*
       * Idempotency design: a re-sent or redelivered event (same tenant_id + event_id) must never
       * count twice, and the per-minute rollups are materialized views that fire on INSERT, so
       * duplicates have to be stopped BEFORE they are inserted. The sink therefore:
       *  1. drops duplicates inside its batch;
       *  2. asks this table which of the batch's (tenant_id, event_id) it already holds — the
       *     sort key makes that a primary-key lookup, and the partition key (occurred_at day)
       *     prunes it, since a duplicate has the same occurred_at as its original;
       *  3. inserts the rest with an insert_deduplication_token derived from the rows, so a retry
       *     of the same insert after a timeout is dropped by ClickHouse itself (this also holds
       *     across replicas for ReplicatedMergeTree);
       *  4. commits Kafka offsets only after the insert returned.
       * A crash between 3 and 4 redelivers the batch; step 2 then finds its rows. Partitions are
       * keyed by asset_id, so one event id is only ever checked by one sink at a time.
       * ReplacingMergeTree on the same key is a second line of defence for raw reads.
       * Reads never need FINAL: rollups only ever saw each event once.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.eventsRaw} (
        tenant_id LowCardinality(String),
        event_id String,
        campaign_id String,
        asset_id String,
        kind ${kindEnum},
        value Float64,
        occurred_at DateTime64(3, 'UTC'),
        received_at DateTime64(3, 'UTC'),
        channel LowCardinality(String),
        placement LowCardinality(String),
        region LowCardinality(String),
        device LowCardinality(String),
        edge_node String,
        attrs String,
        late Bool,
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMMDD(occurred_at)
      ORDER BY (tenant_id, event_id)
      SETTINGS non_replicated_deduplication_window = 10000`,
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assetMinute} (
        tenant_id LowCardinality(String),
        campaign_id String,
        asset_id String,
        kind ${kindEnum},
        minute DateTime('UTC'),
        events UInt64,
        value_sum Float64,
        late_events UInt64
      ) ENGINE = SummingMergeTree
      PARTITION BY toYYYYMM(minute)
      ORDER BY (tenant_id, campaign_id, asset_id, kind, minute)`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.assetMinute}_mv TO ${db}.${TABLES.assetMinute} AS
        SELECT tenant_id, campaign_id, asset_id, kind, toStartOfMinute(occurred_at) AS minute,
               count() AS events, sum(value) AS value_sum, countIf(late) AS late_events
        FROM ${db}.${TABLES.eventsRaw}
        GROUP BY tenant_id, campaign_id, asset_id, kind, minute`,
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.campaignMinute} (
        tenant_id LowCardinality(String),
        campaign_id String,
        kind ${kindEnum},
        minute DateTime('UTC'),
        events UInt64,
        value_sum Float64,
        late_events UInt64
      ) ENGINE = SummingMergeTree
      PARTITION BY toYYYYMM(minute)
      ORDER BY (tenant_id, campaign_id, kind, minute)`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.campaignMinute}_mv TO ${db}.${TABLES.campaignMinute} AS
        SELECT tenant_id, campaign_id, kind, toStartOfMinute(occurred_at) AS minute,
               count() AS events, sum(value) AS value_sum, countIf(late) AS late_events
        FROM ${db}.${TABLES.eventsRaw}
        GROUP BY tenant_id, campaign_id, kind, minute`,
    ],
  },
];

/** The table that records applied migrations (exported for the cluster DDL in cluster.ts). */
export function migrationsTableDdl(db: string): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.migrations} (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`;
}

/** Apply every migration not yet recorded; returns the versions applied by this call. */
export async function migrate(store: Store, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  const db = store.database;
  const { client } = store;
  await client.command({ query: migrationsTableDdl(db) });
  const rs = await client.query({ query: `SELECT DISTINCT version FROM ${db}.${TABLES.migrations}`, format: 'JSONEachRow' });
  const applied = new Set((await rs.json<{ version: number | string }>()).map((r) => Number(r.version)));
  const done: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    for (const statement of m.statements(db)) await client.command({ query: statement });
    await client.insert({ table: `${db}.${TABLES.migrations}`, values: [{ version: m.version, name: m.name }], format: 'JSONEachRow' });
    done.push(m.version);
  }
  return done;
}

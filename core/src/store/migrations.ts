import { TABLES } from '../contracts.js';
import { ALL_EVENT_KINDS, VIDEO_KINDS } from '../events.js';
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

const kindEnum = `Enum8(${ALL_EVENT_KINDS.map((k, i) => `'${k}' = ${i + 1}`).join(', ')})`;

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
       *     sort key makes that a primary-key lookup in each day partition (not pruned by
       *     occurred_at: a re-sent id may carry another one);
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
  {
    version: 4,
    name: 'api keys',
    statements: (db) => [
      /*
       * API keys (core/src/auth/keys.ts). Every change of a key (created, rotated, revoked) is a new
       * row; readers fold a key's rows with GROUP BY key_id: argMax(field, updated_at) for the
       * fields, min(expires_at) and max(revoked_at), so a revocation or an expiry can never be
       * undone by a concurrent write. The sort key makes a key-id lookup a primary-key read.
       * inserted_at (the server's clock) drives the processes' incremental refresh.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.apiKeys} (
        key_id String,
        tenant_id String,
        name String,
        scopes Array(LowCardinality(String)),
        placements Array(String),
        secret_hash String,
        created_at DateTime64(3, 'UTC'),
        expires_at Nullable(DateTime64(3, 'UTC')),
        revoked_at Nullable(DateTime64(3, 'UTC')),
        rotated_to String,
        updated_at DateTime64(3, 'UTC'),
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = MergeTree
      ORDER BY (key_id, updated_at)`,
    ],
  },
  {
    version: 3,
    name: 'trigger rules, firings, webhook deliveries and closed loops',
    statements: (db) => [
      /*
       * Rules: one row per write; ReplacingMergeTree keeps the highest `version` of a rule and
       * `deleted` = 1 removes it (reads use FINAL). The webhook secret is stored because the HMAC
       * needs it; GET never returns it. The campaign column is not named campaign_id so a cluster
       * shards rules by their key (a rule moved to another campaign must still collapse on one shard).
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerRules} (
        tenant_id String,
        rule_id String,
        rule_campaign_id String,
        kind LowCardinality(String),
        params String,
        cooldown_ms UInt64,
        enabled UInt8,
        webhook_url String,
        webhook_secret String,
        updated_at DateTime64(3, 'UTC'),
        version UInt64,
        deleted UInt8
      ) ENGINE = ReplacingMergeTree(version, deleted)
      ORDER BY (tenant_id, rule_id)`,
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerFirings} (
        tenant_id String,
        firing_id String,
        rule_id String,
        kind LowCardinality(String),
        asset_id String,
        master_asset_id String,
        campaign_id String,
        reason String,
        numbers String,
        hints Array(String),
        request String,
        fired_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(fired_at)
      ORDER BY (tenant_id, fired_at, firing_id)`,
      /* One row per delivery attempt (and one per drop); the log shows the latest per target. */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerDeliveries} (
        tenant_id String,
        firing_id String,
        rule_id String,
        target String,
        attempt UInt16,
        status LowCardinality(String),
        http_status UInt16,
        error String,
        at DateTime64(3, 'UTC')
      ) ENGINE = MergeTree
      PARTITION BY toYYYYMM(at)
      ORDER BY (tenant_id, firing_id, target, attempt, at)`,
      /* A new variant tied to the master of a fired creative: the loop closed (new vs replaced). */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerLinks} (
        tenant_id String,
        firing_id String,
        master_asset_id String,
        replaced_asset_id String,
        new_asset_id String,
        registered_at Nullable(DateTime64(3, 'UTC')),
        tied_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree
      ORDER BY (tenant_id, firing_id, new_asset_id)`,
    ],
  },
  {
    version: 2,
    name: 'asset registry, tie decisions and tie candidates',
    statements: (db) => [
      /*
       * Assets (inference/src/registry): each write of an asset is a row with a higher `version`;
       * reads use FINAL (or argMax by version). Originals and thumbnails live in the blob store,
       * addressed by content_hash / thumbnail_hash (sha256 hex).
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assets} (
        tenant_id LowCardinality(String),
        asset_id String,
        role Enum8('master' = 1, 'ad' = 2),
        campaign_id String,
        name String,
        channel LowCardinality(String),
        content_hash String,
        thumbnail_hash String,
        format LowCardinality(String),
        bytes UInt64,
        width UInt32,
        height UInt32,
        created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        version UInt64,
        deleted UInt8
      ) ENGINE = ReplacingMergeTree(version, deleted)
      ORDER BY (tenant_id, asset_id)`,
      /*
       * Tie decisions: an append-only log (who, when, automatic or not, and for automatic ones the
       * decision that caused them). An ad's current tie is its latest decision (decided_at, then
       * decision_id). Replacing only folds a retried insert of the same decision_id.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.tieDecisions} (
        tenant_id LowCardinality(String),
        ad_asset_id String,
        decided_at DateTime64(3, 'UTC'),
        decision_id String,
        action Enum8('tie' = 1, 'untie' = 2, 'no_sim' = 3, 'duplicate' = 4),
        target_asset_id String,
        score Nullable(Float64),
        auto Bool,
        decided_by String,
        because_of String,
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree
      ORDER BY (tenant_id, ad_asset_id, decided_at, decision_id)`,
      /*
       * An ad's rankings, as the review API shows them and propagation reads them: the calibrated
       * candidates and the two top-20 lists (JSON), the best candidate, and the ad's whole-view
       * embedding (base64 float32, for duplicate search). Replaced (higher version) on re-ranking.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.tieCandidates} (
        tenant_id LowCardinality(String),
        ad_asset_id String,
        version UInt64,
        computed_at DateTime64(3, 'UTC'),
        masters UInt32,
        best_master String,
        best_score Float64,
        auto_tie String,
        candidates String,
        by_cosine String,
        by_euclidean String,
        embedding String,
        error String
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY (tenant_id, ad_asset_id)`,
    ],
  },
  {
    version: 5,
    name: 'asset features, scores, occlusion maps and the model registry',
    statements: (db) => [
      /*
       * Features per asset and featurizer kind (full | light; inference/src/predict/featurizer.ts):
       * named measurements (JSON), overlay words, embedding, metadata (JSON). Latest computed_at wins.
       * Training builds its vector layout from these, so a new layout never needs a recompute.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assetFeatures} (
        tenant_id LowCardinality(String),
        provider LowCardinality(String),
        asset_id String,
        campaign_id String,
        content_hash String,
        named String,
        words Array(String),
        embedding Array(Float32),
        meta String,
        computed_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(computed_at)
      ORDER BY (tenant_id, provider, asset_id)`,
      /* Every score published on assets.scores (append-only; an asset's score is its latest). */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assetScores} (
        tenant_id LowCardinality(String),
        asset_id String,
        campaign_id String,
        model_version LowCardinality(String),
        predicted Float64,
        actual Nullable(Float64),
        flag LowCardinality(String),
        reason LowCardinality(String),
        scored_at DateTime64(3, 'UTC'),
        score String
      ) ENGINE = MergeTree
      ORDER BY (tenant_id, asset_id, scored_at)`,
      /* Occlusion maps (relative change of the prediction per occluded grid cell), per model version. */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assetOcclusion} (
        tenant_id LowCardinality(String),
        asset_id String,
        model_version LowCardinality(String),
        grid_w UInt16,
        grid_h UInt16,
        cell_values Array(Float32),
        computed_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(computed_at)
      ORDER BY (tenant_id, asset_id, model_version)`,
      /* Trained models (the .onnx + JSON live in the models data dir) and which one is active. */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.predictionModels} (
        tenant_id LowCardinality(String),
        version String,
        provider LowCardinality(String),
        schema_id String,
        trained_at DateTime64(3, 'UTC'),
        n_train UInt32,
        n_valid UInt32,
        metrics String,
        params String,
        path String
      ) ENGINE = ReplacingMergeTree(trained_at)
      ORDER BY (tenant_id, version)`,
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.activeModels} (
        tenant_id LowCardinality(String),
        version String,
        activated_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(activated_at)
      ORDER BY tenant_id`,
    ],
  },
  {
    version: 9,
    name: 'rollups deduplicate a retried insert too',
    statements: (db) => [
      /*
       * A retried events_raw insert (same insert_deduplication_token, after a timeout or a lost
       * response) is dropped from events_raw, but the engine (ClickHouse 24+, chDB 26) still pushes
       * the block through the materialized views and leaves their dedup to the TARGET tables
       * (deduplicate_blocks_in_dependent_materialized_views=1). A non-replicated target with no
       * dedup window therefore counted the retry twice (found by test/store-http.test.ts). Replicated
       * targets have replicated_deduplication_window by default; the single-node ones need this.
       */
      `ALTER TABLE ${db}.${TABLES.assetMinute} MODIFY SETTING non_replicated_deduplication_window = 10000`,
      `ALTER TABLE ${db}.${TABLES.campaignMinute} MODIFY SETTING non_replicated_deduplication_window = 10000`,
    ],
  },
  {
    version: 10,
    name: 'media spend per asset, placement and day',
    statements: (db) => [
      /*
       * Platforms restate spend for days already reported, so a day's figure is replaced, never
       * added: the latest import of (tenant, campaign, asset, placement, day) wins. Reads use FINAL
       * (a few rows per asset and day).
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.spendDaily} (
        tenant_id LowCardinality(String),
        campaign_id String,
        asset_id String,
        placement LowCardinality(String),
        day Date,
        spend Float64,
        currency LowCardinality(String),
        imported_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree(imported_at)
      ORDER BY (tenant_id, campaign_id, asset_id, placement, day)`,
    ],
  },
  {
    version: 11,
    name: 'reach and frequency from hashed viewer ids',
    statements: (db) => [
      `ALTER TABLE ${db}.${TABLES.eventsRaw} ADD COLUMN IF NOT EXISTS viewer_hash String DEFAULT '' AFTER edge_node`,
      /*
       * uniqCombined states merge across assets and days, so a campaign's reach over a range is one
       * merge (viewers seen on two assets count once), not a sum. Its error is measured in
       * test/reach.test.ts. Only impressions that carry a viewer count here: frequency is impressions
       * per unique viewer among them.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.reachDay} (
        tenant_id LowCardinality(String),
        campaign_id String,
        asset_id String,
        day Date,
        viewers AggregateFunction(uniqCombined, String),
        impressions SimpleAggregateFunction(sum, UInt64)
      ) ENGINE = AggregatingMergeTree
      PARTITION BY toYYYYMM(day)
      ORDER BY (tenant_id, campaign_id, asset_id, day)
      SETTINGS non_replicated_deduplication_window = 10000`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.reachDay}_mv TO ${db}.${TABLES.reachDay} AS
        SELECT tenant_id, campaign_id, asset_id, toDate(occurred_at) AS day,
               uniqCombinedState(viewer_hash) AS viewers, toUInt64(count()) AS impressions
        FROM ${db}.${TABLES.eventsRaw}
        WHERE kind = 'impression' AND viewer_hash != ''
        GROUP BY tenant_id, campaign_id, asset_id, day`,
    ],
  },
  {
    version: 12,
    name: 'web keys: allowed page origins',
    statements: (db) => [
      // The browser SDK's public keys (core/src/auth/keys.ts, ApiKeyInfo.origins); empty for other keys.
      `ALTER TABLE ${db}.${TABLES.apiKeys} ADD COLUMN IF NOT EXISTS origins Array(String) AFTER placements`,
    ],
  },
  {
    version: 13,
    name: 'per-minute rollup by asset and event labels',
    statements: (db) => [
      /*
       * Breakdowns and filters by channel, placement, region and device (the events' optional
       * labels; '' when an event has none). One table for all four, so a breakdown by one label can
       * be filtered by the others. It fills from the migration on (no backfill: an INSERT ... SELECT
       * racing the sink could count an event twice); unfiltered reads keep using the rollups above,
       * which hold the whole history. Same dedup window as those, for the same reason (migration 9).
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.dimsMinute} (
        tenant_id LowCardinality(String),
        campaign_id String,
        asset_id String,
        kind ${kindEnum},
        minute DateTime('UTC'),
        channel LowCardinality(String),
        placement LowCardinality(String),
        region LowCardinality(String),
        device LowCardinality(String),
        events UInt64,
        value_sum Float64,
        late_events UInt64
      ) ENGINE = SummingMergeTree
      PARTITION BY toYYYYMM(minute)
      ORDER BY (tenant_id, campaign_id, asset_id, kind, minute, channel, placement, region, device)
      SETTINGS non_replicated_deduplication_window = 10000`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.dimsMinute}_mv TO ${db}.${TABLES.dimsMinute} AS
        SELECT tenant_id, campaign_id, asset_id, kind, toStartOfMinute(occurred_at) AS minute,
               channel, placement, region, device,
               count() AS events, sum(value) AS value_sum, countIf(late) AS late_events
        FROM ${db}.${TABLES.eventsRaw}
        GROUP BY tenant_id, campaign_id, asset_id, kind, minute, channel, placement, region, device`,
    ],
  },
  {
    version: 14,
    name: 'trigger snoozes and acknowledgements',
    statements: (db) => [
      /*
       * A snooze per (rule, target): target_kind '' is the whole rule, 'asset' / 'campaign' one of
       * them. The latest version wins; `deleted` = 1 is an un-snooze. Expired rows stay (reads filter
       * on `until`) and are replaced by the next snooze of the same target.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerSnoozes} (
        tenant_id String,
        rule_id String,
        target_kind LowCardinality(String),
        target_id String,
        until DateTime64(3, 'UTC'),
        note String,
        snoozed_by String,
        created_at DateTime64(3, 'UTC'),
        version UInt64,
        deleted UInt8
      ) ENGINE = ReplacingMergeTree(version, deleted)
      ORDER BY (tenant_id, rule_id, target_kind, target_id)`,
      /* One acknowledgement per firing (the API refuses a second; reads take the earliest of any that raced). */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.triggerAcks} (
        tenant_id String,
        firing_id String,
        acked_by String,
        key_id String,
        note String,
        acked_at DateTime64(3, 'UTC')
      ) ENGINE = ReplacingMergeTree
      ORDER BY (tenant_id, firing_id)`,
    ],
  },
  {
    version: 15,
    name: 'asset videos',
    statements: (db) => [
      /*
       * One row per version of a video asset's analysis (the asset itself is in `assets`): what the
       * container says, the poster and storyboard blobs, and the shots (JSON: times, transition,
       * keyframe blobs, per-shot tie candidates once ranked). The latest version wins.
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.assetVideos} (
        tenant_id LowCardinality(String),
        asset_id String,
        container LowCardinality(String),
        codec LowCardinality(String),
        duration_s Float64,
        fps Float64,
        frames UInt32,
        audio Bool,
        poster_hash String,
        poster_frame UInt32,
        storyboard_hash String,
        shots String,
        version UInt64
      ) ENGINE = ReplacingMergeTree(version)
      ORDER BY (tenant_id, asset_id)`,
    ],
  },
  {
    version: 16,
    name: 'video play events and their per-minute rollup',
    statements: (db) => [
      /*
       * The video kinds are appended to the kind enum, so every stored number keeps its meaning and
       * widening an Enum8 is a metadata change. Tables created by an older migration 1/13 learn the
       * new names here (a fresh store already has them; MODIFY to the same type is a no-op).
       */
      `ALTER TABLE ${db}.${TABLES.eventsRaw} MODIFY COLUMN kind ${kindEnum}`,
      `ALTER TABLE ${db}.${TABLES.assetMinute} MODIFY COLUMN kind ${kindEnum}`,
      `ALTER TABLE ${db}.${TABLES.campaignMinute} MODIFY COLUMN kind ${kindEnum}`,
      `ALTER TABLE ${db}.${TABLES.dimsMinute} MODIFY COLUMN kind ${kindEnum}`,
      /*
       * Video plays by milestone: for video_progress the percent reached, for video_seconds the
       * second reached, 0 for the other video kinds. The asset rollup cannot tell 25 % from 75 %
       * (it sums values), the retention curve needs exactly that. Filled from the migration on (no
       * backfill, as migration 13); same dedup window as the other rollups (migration 9).
       */
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.videoMinute} (
        tenant_id LowCardinality(String),
        campaign_id String,
        asset_id String,
        kind ${kindEnum},
        milestone UInt32,
        minute DateTime('UTC'),
        events UInt64,
        value_sum Float64
      ) ENGINE = SummingMergeTree
      PARTITION BY toYYYYMM(minute)
      ORDER BY (tenant_id, campaign_id, asset_id, kind, milestone, minute)
      SETTINGS non_replicated_deduplication_window = 10000`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.videoMinute}_mv TO ${db}.${TABLES.videoMinute} AS
        SELECT tenant_id, campaign_id, asset_id, kind,
               if(kind IN ('video_progress', 'video_seconds'), toUInt32(value), 0) AS milestone,
               toStartOfMinute(occurred_at) AS minute, count() AS events, sum(value) AS value_sum
        FROM ${db}.${TABLES.eventsRaw}
        WHERE kind IN (${VIDEO_KINDS.map((k) => `'${k}'`).join(', ')})
        GROUP BY tenant_id, campaign_id, asset_id, kind, milestone, minute`,
    ],
  },
];

/** The table that records applied migrations (exported for the cluster DDL in cluster-ddl.ts). */
export function migrationsTableDdl(db: string): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.migrations} (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`;
}

/** Apply every migration not yet recorded; returns the versions applied by this call. */
export async function migrate(store: Store, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  const versions = migrations.map((m) => m.version);
  // Two migrations with one number (branches merged side by side): the second would never run on a store that has the first.
  const twice = versions.find((v, i) => versions.indexOf(v) !== i);
  if (twice !== undefined) throw new Error(`two schema migrations are numbered ${twice}: renumber one`);
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

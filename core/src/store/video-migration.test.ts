import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TABLES } from '../contracts.js';
import { ALL_EVENT_KINDS, ulid, type EngagementEvent } from '../events.js';
import { createStore, type Store } from './clickhouse.js';
import { EventsRawRepository, toRawRow } from './events-raw.js';
import { MIGRATIONS, migrate } from './migrations.js';

/**
 * Migration 16 on a store that predates the video kinds (kind enums of eight names): it widens the
 * enums in place, and the video rollup counts plays by milestone. Embedded chDB, as CI runs it.
 */
describe('migration 16: video kinds on an older store', () => {
  let store: Store;
  let dir: string;
  const OLD_ENUM = "Enum8('impression' = 1, 'view' = 2, 'click' = 3, 'like' = 4, 'share' = 5, 'comment' = 6, 'conversion' = 7, 'dwell' = 8)";
  const NEW_ENUM = `Enum8(${ALL_EVENT_KINDS.map((k, i) => `'${k}' = ${i + 1}`).join(', ')})`;
  const now = Date.now();
  const event = (kind: EngagementEvent['kind'], value: number, asset = 'vid-1'): EngagementEvent => ({
    event_id: ulid(now),
    tenant_id: 't1',
    campaign_id: 'c1',
    asset_id: asset,
    kind,
    value,
    occurred_at: now - 1000,
    received_at: now,
  });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-video-migration-'));
    store = await createStore({ kind: 'chdb', path: dir, database: 'video_migration' });
    // Migrations 1-15 as they ran before the video kinds existed (their enums had eight names).
    const before16 = MIGRATIONS.filter((m) => m.version < 16).map((m) => ({ ...m, statements: (db: string) => m.statements(db).map((q) => q.replaceAll(NEW_ENUM, OLD_ENUM)) }));
    assert.ok(before16.some((m) => m.statements('x').some((q) => q.includes(OLD_ENUM))));
    await migrate(store, before16);
    await new EventsRawRepository(store).insert([toRawRow(event('click', 1), 600_000)], {});
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an old store refuses video kinds until migration 16 widens its enums; old rows keep their kind', async () => {
    await assert.rejects(new EventsRawRepository(store).insert([toRawRow(event('video_start', 1), 600_000)], {}));
    assert.deepEqual(await migrate(store), [16]);
    const rows = [
      event('video_start', 1),
      event('video_start', 1),
      event('video_seconds', 3),
      event('video_progress', 25),
      event('video_progress', 25),
      event('video_progress', 50),
      event('video_complete', 1),
      event('video_watch', 2500),
      event('video_watch', 1500.5),
      event('video_start', 1, 'vid-2'),
    ];
    await new EventsRawRepository(store).insert(rows.map((r) => toRawRow(r, 600_000)), {});
    const kinds = await store.client.query({
      query: `SELECT toString(kind) AS kind, sum(events) AS n FROM ${store.table(TABLES.assetMinute)} WHERE asset_id = 'vid-1' GROUP BY kind ORDER BY kind`,
      format: 'JSONEachRow',
    });
    assert.deepEqual(
      (await kinds.json<{ kind: string; n: string | number }>()).map((r) => [r.kind, Number(r.n)]),
      [
        ['click', 1],
        ['video_complete', 1],
        ['video_progress', 3],
        ['video_seconds', 1],
        ['video_start', 2],
        ['video_watch', 2],
      ],
    );
    const video = await store.client.query({
      query: `SELECT asset_id, toString(kind) AS kind, milestone, sum(events) AS n, sum(value_sum) AS v FROM ${store.table(TABLES.videoMinute)}
              GROUP BY asset_id, kind, milestone ORDER BY asset_id, kind, milestone`,
      format: 'JSONEachRow',
    });
    assert.deepEqual(
      (await video.json<{ asset_id: string; kind: string; milestone: number; n: string | number; v: number }>()).map((r) => [r.asset_id, r.kind, Number(r.milestone), Number(r.n), r.v]),
      [
        ['vid-1', 'video_complete', 0, 1, 1],
        ['vid-1', 'video_progress', 25, 2, 50],
        ['vid-1', 'video_progress', 50, 1, 50],
        ['vid-1', 'video_seconds', 3, 1, 3],
        ['vid-1', 'video_start', 0, 2, 2],
        ['vid-1', 'video_watch', 0, 2, 4000.5],
        ['vid-2', 'video_start', 0, 1, 1],
      ],
      'the click stays out of the video rollup; progress is split by percent',
    );
  });
});

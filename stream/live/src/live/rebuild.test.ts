import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { EventsRawRepository, SINGLE_NODE_SINK_INSERT_SETTINGS, createStore, migrate, toRawRow, ulid, type Store } from '@afterglow/core';
import { StoreHistorySource } from './rebuild.js';
import { RollupRepository, StoreLogRepository } from './store-repository.js';

const HOUR = 3_600_000;
const MINUTE = 60_000;
let dir: string;
let store: Store;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'afterglow-rebuild-'));
  store = await createStore({ kind: 'chdb', path: dir, database: 'rebuild_check' });
  await migrate(store);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the rebuild reads hours before the minute tier and minutes after it, with the same totals', async () => {
  const now = Date.UTC(2026, 11, 7, 15, 37, 12);
  // Three old events in three minutes of the 11:00 hour, two recent ones in two minutes, one late.
  const at = [Date.UTC(2026, 11, 7, 11, 5), Date.UTC(2026, 11, 7, 11, 20, 30), Date.UTC(2026, 11, 7, 11, 59, 59), now - 9 * MINUTE, now - 3 * MINUTE];
  const events = at.map((occurred, i) => ({
    event_id: ulid(occurred),
    tenant_id: 't',
    campaign_id: 'c',
    asset_id: 'a',
    kind: 'dwell' as const,
    value: 100 * (i + 1),
    occurred_at: occurred,
    received_at: occurred + 1000,
  }));
  const late = { ...events[0]!, event_id: ulid(at[0]!), received_at: at[0]! + HOUR };
  await new EventsRawRepository(store).insert([...events, late].map((e) => toRawRow(e, 10 * MINUTE)), SINGLE_NODE_SINK_INSERT_SETTINGS);
  const minutesSince = Date.UTC(2026, 11, 7, 14, 0);
  const rows = await new StoreHistorySource(new RollupRepository(store), new StoreLogRepository(store)).windowRows(now - 24 * HOUR, minutesSince);
  assert.deepEqual(
    rows.map((r) => [new Date(r.minute).toISOString(), r.events]),
    [
      ['2026-12-07T11:00:00.000Z', 3],
      [new Date(Math.floor((now - 9 * MINUTE) / MINUTE) * MINUTE).toISOString(), 1],
      [new Date(Math.floor((now - 3 * MINUTE) / MINUTE) * MINUTE).toISOString(), 1],
    ],
  );
  // The late event is left out, its value too: 100 + 200 + 300 in the hour.
  assert.equal(rows[0]!.value, 600);
  assert.deepEqual(rows.slice(1).map((r) => r.value), [400, 500]);
});

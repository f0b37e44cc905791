import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventsRawRepository, TABLES, createStore, migrate, toRawRow, ulid, type EngagementEvent, type Store } from '@afterglow/core';
import { wilson } from './rates.js';
import { VideoSource, addCounts, contributors, emptyCounts, shotWeights, videoMetrics, videoReport, type VideoCounts } from './video.js';

const ci = { maxRelWidth: 0.5, maxAbsWidth: 0.02 };

function counts(c: Partial<Omit<VideoCounts, 'progress' | 'seconds'>> & { progress?: [number, number][]; seconds?: [number, number][] }): VideoCounts {
  return { ...emptyCounts(), ...c, progress: new Map(c.progress ?? []), seconds: new Map(c.seconds ?? []) };
}

test('rates, average watch time and the retention curve, with Wilson intervals', () => {
  const m = videoMetrics(
    counts({
      starts: 20,
      completes: 5,
      watchMs: 150_000,
      seconds: [
        [3, 16],
        [15, 9],
      ],
      progress: [
        [25, 14],
        [50, 10],
        [75, 7],
      ],
    }),
    ci,
  );
  assert.equal(m.starts, 20);
  assert.equal(m.hook_rate.value, 16 / 20);
  assert.equal(m.hold_rate.value, 10 / 20);
  assert.equal(m.completion_rate.value, 5 / 20);
  assert.equal(m.avg_watch_ms, 7500);
  assert.deepEqual(
    m.retention.map((r) => [r.percent, r.plays, r.share.value]),
    [
      [0, 20, 1],
      [25, 14, 0.7],
      [50, 10, 0.5],
      [75, 7, 0.35],
      [100, 5, 0.25],
    ],
  );
  const w = wilson(7, 20);
  assert.equal(m.retention[3]!.share.low, w.low);
  assert.equal(m.retention[3]!.share.high, w.high);
  assert.ok(w.low < 0.35 && w.high > 0.35);
  assert.equal(m.excess, 0);
});

test('duplicates and progress without a start never push a share over 1: each step is capped by the one before, the excess reported', () => {
  // One viewer replaying 50 % a thousand times, and a 75 % with no 50 % before it.
  const m = videoMetrics(
    counts({
      starts: 4,
      completes: 9,
      seconds: [[3, 1000]],
      progress: [
        [25, 3],
        [50, 1000],
        [75, 2],
      ],
    }),
    ci,
  );
  assert.deepEqual(
    m.retention.map((r) => r.plays),
    [4, 3, 3, 2, 2],
  );
  assert.equal(m.hook_rate.value, 1);
  assert.equal(m.hold_rate.value, 0.75);
  assert.equal(m.completion_rate.value, 0.5);
  assert.equal(m.excess, 997 + 7 + 996);
  for (const r of m.retention) assert.ok(r.share.value <= 1 && r.share.high <= 1);
  // No starts at all: every share is 0 with the widest interval, nothing divides by zero.
  const none = videoMetrics(counts({ progress: [[25, 5]], completes: 2, watchMs: 10 }), ci);
  assert.equal(none.hook_rate.value, 0);
  assert.equal(none.avg_watch_ms, 0);
  assert.deepEqual(
    none.retention.map((r) => [r.plays, r.share.high]),
    [
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 1],
    ],
  );
  assert.equal(none.excess, 7);
});

test('a step other than the quartiles is a point of the curve; the quartiles are always there', () => {
  const m = videoMetrics(counts({ starts: 10, progress: [[10, 8]] }), ci);
  assert.deepEqual(
    m.retention.map((r) => [r.percent, r.plays]),
    [
      [0, 10],
      [10, 8],
      [25, 0],
      [50, 0],
      [75, 0],
      [100, 0],
    ],
  );
});

test('shot weights: time on screen per master over all shots; untied shots keep their share unattributed', () => {
  const w = shotWeights([
    { start: 0, end: 2, auto_tie: 'm1' },
    { start: 2, end: 8, auto_tie: 'm2' },
    { start: 8, end: 9, auto_tie: 'm1' },
    { start: 9, end: 10, auto_tie: null },
  ]);
  assert.deepEqual([...w].sort(), [
    ['m1', 0.3],
    ['m2', 0.6],
  ]);
  assert.equal(shotWeights([]).size, 0);
  assert.equal(shotWeights([{ start: 3, end: 3, auto_tie: 'm' }]).size, 0);
});

test('a master adds its own plays, its shot-cut ads by weight and its whole ties; an ad with shot ties is not also counted whole', () => {
  const shotAds = new Map([
    [
      'ad-a',
      [
        { start: 0, end: 3, auto_tie: 'M' },
        { start: 3, end: 12, auto_tie: 'other' },
      ],
    ],
    ['ad-b', [{ start: 0, end: 5, auto_tie: 'other' }]],
  ]);
  const parts = contributors('M', shotAds, ['ad-a', 'ad-b', 'ad-c']);
  assert.deepEqual(parts, [
    { asset_id: 'M', weight: 1, via: 'self' },
    { asset_id: 'ad-a', weight: 0.25, via: 'shots' },
    { asset_id: 'ad-c', weight: 1, via: 'tie' },
  ]);
  const total = addCounts(addCounts(emptyCounts(), counts({ starts: 10, completes: 2 })), counts({ starts: 40, completes: 20, progress: [[50, 30]] }), 0.25);
  assert.equal(total.starts, 20);
  assert.equal(total.completes, 7);
  assert.equal(total.progress.get(50), 7.5);
});

describe('VideoSource on the embedded store', () => {
  let store: Store;
  let dir: string;
  const now = Date.now();
  const ev = (asset: string, kind: EngagementEvent['kind'], value = 1, tenant = 't1'): EngagementEvent => ({
    event_id: ulid(now),
    tenant_id: tenant,
    campaign_id: 'c1',
    asset_id: asset,
    kind,
    value,
    occurred_at: now - 60_000,
    received_at: now,
  });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-video-source-'));
    store = await createStore({ kind: 'chdb', path: dir, database: 'video_source' });
    await migrate(store);
    const events = [
      ...Array.from({ length: 4 }, () => ev('M', 'video_start')),
      ev('M', 'video_seconds', 3),
      ev('M', 'video_progress', 50),
      ev('M', 'video_complete'),
      ev('M', 'video_watch', 4000),
      ...Array.from({ length: 8 }, () => ev('ad-a', 'video_start')),
      ...Array.from({ length: 4 }, () => ev('ad-a', 'video_progress', 50)),
      ev('ad-a', 'video_watch', 8000),
      ev('ad-a', 'click'),
      ev('ad-old', 'video_start'),
      ev('ad-c', 'video_start'),
      ev('ad-c', 'video_complete'),
      // Another tenant's plays of an asset with the same id stay out.
      ...Array.from({ length: 5 }, () => ev('M', 'video_start', 1, 't2')),
    ];
    await new EventsRawRepository(store).insert(
      events.map((e) => toRawRow(e, 600_000)),
      {},
    );
    const video = (asset_id: string) => ({ tenant_id: 't1', asset_id, container: 'webm', codec: 'vp9', duration_s: 4, fps: 25, frames: 100, audio: false, poster_hash: '', poster_frame: 0, storyboard_hash: '' });
    const shots = [
      { index: 0, start: 0, end: 1.5, auto_tie: 'M' },
      { index: 1, start: 1.5, end: 6, auto_tie: null },
    ];
    await store.client.insert({
      table: store.table(TABLES.assetVideos),
      values: [
        { tenant_id: 't1', asset_id: 'ad-a', container: 'mp4', codec: 'h264', duration_s: 6, fps: 25, frames: 150, audio: false, poster_hash: '', poster_frame: 0, storyboard_hash: '', shots: JSON.stringify(shots), version: 1 },
        // Cut from M once, re-ranked since: its latest analysis ties it to nothing.
        { ...video('ad-old'), shots: JSON.stringify([{ index: 0, start: 0, end: 4, auto_tie: 'M' }]), version: 1 },
        { ...video('ad-old'), shots: JSON.stringify([{ index: 0, start: 0, end: 4, auto_tie: null }]), version: 2 },
        // Another tenant's video cut from an asset with the same id.
        { ...video('ad-x'), tenant_id: 't2', shots: JSON.stringify([{ index: 0, start: 0, end: 4, auto_tie: 'M' }]), version: 1 },
      ],
      format: 'JSONEachRow',
    });
    const tie = (ad: string, action: string, target: string, at: number) => ({
      tenant_id: 't1',
      ad_asset_id: ad,
      decided_at: at,
      decision_id: ulid(),
      action,
      target_asset_id: target,
      score: null,
      auto: false,
      decided_by: 'test',
      because_of: '',
    });
    await store.client.insert({
      table: store.table(TABLES.tieDecisions),
      values: [tie('ad-c', 'tie', 'M', now - 5000), tie('ad-d', 'tie', 'M', now - 5000), tie('ad-d', 'untie', '', now - 1000), tie('ad-a', 'tie', 'M', now - 5000)],
      format: 'JSONEachRow',
    });
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a master report: own plays, shot-weighted ads, whole ties (an untied one and a re-ranked one dropped), tenant-scoped', async () => {
    const report = await videoReport(new VideoSource(store), 't1', 'M', { from: now - 3_600_000, to: now }, ci);
    assert.deepEqual(report.master.contributors, [
      { asset_id: 'M', weight: 1, via: 'self' },
      { asset_id: 'ad-a', weight: 0.25, via: 'shots' },
      { asset_id: 'ad-c', weight: 1, via: 'tie' },
    ]);
    assert.equal(report.asset.starts, 4);
    assert.equal(report.asset.hook_rate.value, 0.25);
    assert.equal(report.asset.avg_watch_ms, 1000);
    // 4 + 0.25 * 8 + 1 starts; 1 + 0.25 * 4 at 50 %; 1 + 1 completes; 4000 + 0.25 * 8000 ms.
    assert.equal(report.master.starts, 7);
    assert.equal(report.master.hold_rate.value, 2 / 7);
    assert.equal(report.master.completion_rate.value, 2 / 7);
    assert.equal(report.master.watch_ms, 6000);
    const outside = await videoReport(new VideoSource(store), 't1', 'M', { from: now - 7_200_000, to: now - 3_600_000 }, ci);
    assert.equal(outside.master.starts, 0);
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTriggerParams } from '@afterglow/core';
import { emptyCounts, type VideoCounts } from '../live/video.js';
import { VideoPlays, periods, successesOf, videoDrop } from './video-rules.js';

const plays = (starts: number, hooks: number, completes: number): VideoCounts => ({ ...emptyCounts(), starts, completes, seconds: new Map([[3, hooks]]) });
const p = parseTriggerParams('hook_rate_drop', { min_starts: 100, drop: 0.2, alpha: 0.01 });

test('a significant fall by more than the margin holds; the numbers say what was compared', () => {
  const v = videoDrop(plays(200, 60, 20), plays(200, 160, 100), 'hook_rate', p);
  assert.equal(v.holds, true);
  assert.deepEqual([v.numbers.recent_rate, v.numbers.earlier_rate, v.numbers.relative_drop], [0.3, 0.8, 0.625]);
  assert.ok(Number(v.numbers.z) < -9);
  const c = videoDrop(plays(200, 60, 20), plays(200, 160, 100), 'completion_rate', p);
  assert.equal(c.holds, true);
  assert.deepEqual([c.numbers.recent_rate, c.numbers.earlier_rate], [0.1, 0.5]);
});

test('a fall under the margin, an insignificant one, too few plays, or a rise never hold', () => {
  // 75 % vs 80 %: 6 % down, under the 20 % margin.
  assert.equal(videoDrop(plays(200, 150, 0), plays(200, 160, 0), 'hook_rate', p).holds, false);
  // 14 % vs 20 %: 30 % down, but on 100 plays each not significant at 1 %.
  const borderline = videoDrop(plays(100, 14, 0), plays(100, 20, 0), 'hook_rate', p);
  assert.equal(borderline.numbers.relative_drop, 0.3);
  assert.equal(borderline.holds, false, 'a 30 % fall on 100 plays each is not significant at 1 %');
  assert.ok(Number(borderline.numbers.p_value) > 0.01);
  assert.equal(videoDrop(plays(99, 0, 0), plays(1000, 900, 0), 'hook_rate', p).holds, false);
  assert.equal(videoDrop(undefined, plays(1000, 900, 0), 'hook_rate', p).holds, false);
  assert.equal(videoDrop(plays(1000, 950, 0), plays(1000, 500, 0), 'hook_rate', p).holds, false);
  // Nothing to fall from.
  assert.equal(videoDrop(plays(1000, 0, 0), plays(1000, 0, 0), 'hook_rate', p).holds, false);
});

test('duplicated milestones cannot fake a healthy baseline: successes are capped at starts', () => {
  assert.equal(successesOf(plays(100, 5000, 7000), 'hook_rate'), 100);
  assert.equal(successesOf(plays(100, 5000, 7000), 'completion_rate'), 100);
});

test('periods: the recent minutes up to now, the baseline hours right before them', () => {
  assert.deepEqual(periods(10 * 3_600_000, { recent_minutes: 30, baseline_hours: 2 }), {
    recent: { from: 9.5 * 3_600_000, to: 10 * 3_600_000 },
    earlier: { from: 7.5 * 3_600_000, to: 9.5 * 3_600_000 },
  });
});

test('plays are read once per refresh interval per campaign and periods; a failed read is not kept', async () => {
  let reads = 0;
  let fail = false;
  const source = {
    campaignCounts: async () => {
      reads++;
      if (fail) throw new Error('store down');
      return new Map([['a', plays(1, 1, 1)]]);
    },
  };
  const cache = new VideoPlays(source, 1000);
  await cache.read('t', 'c', p, 0);
  await cache.read('t', 'c', p, 999);
  assert.equal(reads, 2, 'two periods, read once');
  await cache.read('t', 'c', p, 1000);
  assert.equal(reads, 4);
  fail = true;
  await assert.rejects(cache.read('t', 'c', p, 5000));
  fail = false;
  await cache.read('t', 'c', p, 5001);
  assert.equal(reads, 8, 'the failure was not cached');
});

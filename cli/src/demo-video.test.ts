import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32, validateEvent, type EventLimits } from '@afterglow/core';
import { DEMO_VIDEO_ADS, DEMO_VIDEO_SECONDS, drawReach, playEvents } from './demo-video.js';

const limits: EventLimits = { maxAgeMs: 3_600_000, maxFutureMs: 60_000, liveLateMs: 600_000, maxAttrsBytes: 256, dedupWindowMs: 300_000 };
const NOW = 1_790_000_000_000;
const ad = DEMO_VIDEO_ADS[0]!;

test('a demo play sends what the web SDK would for how far it got, and ingest accepts every event', () => {
  const random = mulberry32(1);
  const kinds = (reached: number) => playEvents(ad, reached, NOW, 'v1', random).map((e) => `${e.kind}:${e.value}`);
  assert.deepEqual(kinds(1), ['video_start:1', 'video_seconds:3', 'video_progress:25', 'video_progress:50', 'video_progress:75', 'video_complete:1', `video_watch:${DEMO_VIDEO_SECONDS * 1000}`]);
  // 0.6 of 8 s = 4.8 s: past the hook and 50 %, not 75 %.
  assert.deepEqual(kinds(0.6), ['video_start:1', 'video_seconds:3', 'video_progress:25', 'video_progress:50', 'video_watch:4800']);
  // Gone at once: a start and a short watch (watch time must be > 0).
  assert.deepEqual(kinds(0), ['video_start:1', 'video_watch:150']);
  for (const e of playEvents(ad, 0.9, NOW, 'v1', random)) assert.ok(validateEvent(e, limits, NOW).ok, JSON.stringify(validateEvent(e, limits, NOW)));
});

test("plays are drawn at each ad's hook and completion rates", () => {
  for (const a of DEMO_VIDEO_ADS) {
    const random = mulberry32(7);
    const n = 20_000;
    let hooked = 0;
    let complete = 0;
    for (let i = 0; i < n; i++) {
      const r = drawReach(a, random);
      assert.ok(r >= 0 && r <= 1);
      if (r * DEMO_VIDEO_SECONDS >= 3) hooked++;
      if (r === 1) complete++;
    }
    // Binomial spread at n = 20 000 is under 0.4 points; 2 points leaves room for the seed.
    assert.ok(Math.abs(hooked / n - (1 - a.earlyExit)) < 0.02, `${a.asset} hook ${hooked / n}`);
    assert.ok(Math.abs(complete / n - (1 - a.earlyExit) * a.finish) < 0.02, `${a.asset} completion ${complete / n}`);
  }
});

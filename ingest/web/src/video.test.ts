import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VideoPlays, type VideoKind } from './video.js';

function recorder() {
  const sent: [VideoKind, number, number][] = [];
  return { sent, plays: new VideoPlays((kind, value, at) => sent.push([kind, value, at])) };
}

test('one play of a 20 s video: start, 3 s, the quartiles, complete, and its watch time in pieces that add up', () => {
  const { sent, plays } = recorder();
  plays.playing(1000);
  for (let t = 0.25; t <= 20; t += 0.25) plays.time(t, 20, 1000 + t * 1000);
  plays.ended(21_000);
  assert.deepEqual(
    sent.filter(([k]) => k !== 'video_watch').map(([k, v]) => [k, v]),
    [
      ['video_start', 1],
      ['video_seconds', 3],
      ['video_progress', 25],
      ['video_progress', 50],
      ['video_progress', 75],
      ['video_complete', 1],
    ],
  );
  const watch = sent.filter(([k]) => k === 'video_watch');
  assert.equal(watch.length, 5, 'one report per milestone and one at the end');
  assert.equal(
    watch.reduce((a, [, v]) => a + v, 0),
    20_000,
  );
});

test('pauses stop the watch clock; a seek back never sends a milestone twice; a replay after the end is a new play', () => {
  const { sent, plays } = recorder();
  plays.playing(0);
  plays.time(6, 10, 6000);
  plays.paused(6000);
  plays.time(6, 10, 60_000); // paused for almost a minute: no watch time
  plays.playing(60_000);
  plays.time(1, 10, 61_000); // seek back to 1 s
  plays.time(6, 10, 66_000);
  plays.ended(70_000);
  plays.playing(80_000);
  plays.time(3.1, 10, 83_100);
  plays.flush(84_000);
  const kinds = sent.map(([k, v]) => `${k}:${v}`);
  assert.deepEqual(
    kinds.filter((k) => !k.startsWith('video_watch')),
    ['video_start:1', 'video_seconds:3', 'video_progress:25', 'video_progress:50', 'video_progress:75', 'video_complete:1', 'video_start:1', 'video_seconds:3', 'video_progress:25'],
  );
  const watched = sent.filter(([k]) => k === 'video_watch').reduce((a, [, v]) => a + v, 0);
  assert.equal(watched, 6000 + 10_000 + 4000);
});

test('a video shorter than 3 s that ends counts as hooked; milestones a coarse timeupdate skipped are sent at the end', () => {
  const { sent, plays } = recorder();
  plays.playing(0);
  plays.time(0.5, 2, 500);
  plays.ended(2000);
  assert.deepEqual(
    sent.map(([k, v]) => [k, v]),
    [
      ['video_start', 1],
      ['video_progress', 25],
      ['video_watch', 500],
      ['video_seconds', 3],
      ['video_progress', 50],
      ['video_progress', 75],
      ['video_complete', 1],
      ['video_watch', 1500],
    ],
  );
});

test('nothing before a play starts; an unknown duration (live stream) sends no percentages; long stretches split at an hour', () => {
  const { sent, plays } = recorder();
  plays.time(5, 10, 0);
  plays.ended(10);
  plays.paused(20);
  assert.deepEqual(sent, []);
  plays.playing(0);
  plays.time(4, Number.POSITIVE_INFINITY, 4000);
  plays.time(4, Number.NaN, 4000);
  plays.flush(2 * 3_600_000 + 4000);
  assert.deepEqual(
    sent.map(([k, v]) => [k, v]),
    [
      ['video_start', 1],
      ['video_seconds', 3],
      ['video_watch', 4000],
      ['video_watch', 3_600_000],
      ['video_watch', 3_600_000],
    ],
  );
});

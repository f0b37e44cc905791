import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launches } from './timeline.js';

const H = 3_600_000;

test('timeline: launch is the first active minute, a relaunch follows a quiet spell of the gap or more', () => {
  const t0 = Date.UTC(2026, 0, 1);
  const hours = [
    { hour: t0, first: t0 + 5 * 60_000 },
    { hour: t0 + H, first: t0 + H },
    // 23 h quiet (hours 2..24): not a relaunch with a 24 h gap...
    { hour: t0 + 25 * H, first: t0 + 25 * H + 60_000 },
    // ...24 h quiet (hours 26..49): a relaunch.
    { hour: t0 + 50 * H, first: t0 + 50 * H + 120_000 },
  ];
  const got = launches([...hours].reverse(), 24 * H);
  assert.deepEqual(got.map((a) => [a.kind, a.at]), [
    ['launch', t0 + 5 * 60_000],
    ['relaunch', t0 + 50 * H + 120_000],
  ]);
  assert.match(got[1]!.label, /24 h without events/);
  assert.deepEqual(launches([], 24 * H), []);
  // Two assets active in the same hour (a master's ads): the earlier first minute counts.
  assert.deepEqual(launches([{ hour: t0, first: t0 + 30 * 60_000 }, { hour: t0, first: t0 + 60_000 }], 24 * H).map((a) => a.at), [t0 + 60_000]);
});

// Unit tests of the dashboard's pure logic for saying how true a number is (dashboard/app/src/lib):
// data freshness, ties in rank, weak models, averages over the time that has data, decay peak,
// trigger numbers in human units. Runs in Node; excluded from the server tsconfig (the app has its
// own, checked by svelte-check).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freshnessOf, fmtEventsPerSec } from '../app/src/lib/freshness.ts';

describe('data freshness', () => {
  const at = 1_800_000_000_000;
  test('green while events arrive, amber after 30 s, red after 2 min or at 0 ev/s after traffic', () => {
    const fresh = freshnessOf({ last_event_at: at - 400, events_per_sec: 2140, as_of: at }, 0, false);
    assert.equal(fresh.level, 'fresh');
    assert.equal(fresh.text, 'last event 0.4 s ago · 2,140 ev/s');
    // The age grows between polls with the browser's elapsed time, measured from the server's clock.
    const later = freshnessOf({ last_event_at: at - 400, events_per_sec: 2140, as_of: at }, 31_000, false);
    assert.equal(later.level, 'stale');
    assert.equal(later.ageMs, 31_400);
    assert.equal(freshnessOf({ last_event_at: at - 45_000, events_per_sec: 3.5, as_of: at }, 0, true).level, 'stale');
    assert.equal(freshnessOf({ last_event_at: at - 121_000, events_per_sec: 0.5, as_of: at }, 0, true).level, 'stopped');
    const zero = freshnessOf({ last_event_at: at - 61_000, events_per_sec: 0, as_of: at }, 0, true);
    assert.equal(zero.level, 'stopped');
    assert.equal(zero.text, 'last event 61 s ago · 0 ev/s');
    assert.equal(zero.short, '61 s ago · 0 ev/s');
  });
  test('no event yet is neutral; gone after traffic (restart) is red', () => {
    assert.deepEqual(freshnessOf({ last_event_at: null, events_per_sec: 0, as_of: at }, 0, false), { level: 'idle', ageMs: null, text: 'no events yet', short: 'no events yet' });
    assert.equal(freshnessOf({ last_event_at: null, events_per_sec: 0, as_of: at }, 0, true).level, 'stopped');
  });
  test('a browser clock far off the server does not matter', () => {
    // The browser is an hour ahead: only the time since the answer is taken from it.
    assert.equal(freshnessOf({ last_event_at: at - 1000, events_per_sec: 10, as_of: at }, 2000, false).ageMs, 3000);
  });
  test('events per second', () => {
    assert.equal(fmtEventsPerSec(2140.4), '2,140 ev/s');
    assert.equal(fmtEventsPerSec(12.54), '12.5 ev/s');
    assert.equal(fmtEventsPerSec(0.35), '0.35 ev/s');
    assert.equal(fmtEventsPerSec(0), '0 ev/s');
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FreshnessCounter, readFreshness } from './freshness.js';

const T0 = 1_800_000_000_000;

test('freshness: newest received_at and the events of the last minute, per tenant', () => {
  const c = new FreshnessCounter();
  // 90 s of one event a second for acme; one event for quiet, 70 s ago.
  c.count('quiet', T0 - 70_000, T0 - 70_000);
  for (let s = 0; s < 90; s++) c.count('acme', T0 - 90_000 + s * 1000 + 250, T0 - 90_000 + s * 1000 + 300);
  const fields = c.fields(T0);
  const [last, n60, written] = fields.get('acme')!.split(',').map(Number);
  assert.equal(last, T0 - 1000 + 250);
  assert.equal(n60, 59, 'the minute is the seconds T0-59 s .. T0; events fell in T0-59 s .. T0-1 s, one each');
  assert.equal(written, T0);
  assert.equal(fields.has('quiet'), false, 'a tenant quiet for over a minute is not written again');
});

test('freshness: readers add up members and age a member that stopped writing', () => {
  const now = T0;
  const fields = {
    a: `${now - 500},120,${now}`, // 2/s, written now
    b: `${now - 30_000},60,${now - 30_000}`, // 1/s, but written 30 s ago: half its minute is still inside
    broken: 'x,y,z',
  };
  const f = readFreshness(fields, now);
  assert.equal(f.last_event_at, now - 500);
  assert.equal(f.events_per_sec, (120 + 60 * 0.5) / 60);
  assert.equal(f.as_of, now);
  assert.deepEqual(readFreshness({ a: `${now - 200_000},600,${now - 120_000}` }, now), { last_event_at: now - 200_000, events_per_sec: 0, as_of: now }, 'intake stopped: the rate is 0, the last event stays');
  assert.deepEqual(readFreshness({}, now), { last_event_at: null, events_per_sec: 0, as_of: now });
  assert.equal(readFreshness({ a: `${now - 61_000},5,${now - 1_000}` }, now).events_per_sec, 0, 'written lately, but its newest event is over a minute old');
});

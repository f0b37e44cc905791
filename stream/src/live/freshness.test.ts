import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TenantFreshness } from './freshness.js';

test('freshness: last counted event and events per second over the last minute, per tenant', () => {
  const f = new TenantFreshness();
  assert.deepEqual(f.read('t', 1_000_000), { last_event_at: null, events_per_sec: 0 });
  for (let s = 0; s < 60; s++) f.note('t', 120, 1_000_000 + s * 1000);
  assert.deepEqual(f.read('t', 1_059_500), { last_event_at: 1_059_000, events_per_sec: 120 });
  assert.deepEqual(f.read('other', 1_059_500), { last_event_at: null, events_per_sec: 0 });
  // Intake stops: the rate falls to 0 within a minute, the last event stays.
  assert.equal(f.read('t', 1_089_000).events_per_sec, 60);
  assert.deepEqual(f.read('t', 1_200_000), { last_event_at: 1_059_000, events_per_sec: 0 });
  // A slot is reused for a later second, not added to.
  f.note('t', 5, 1_260_000);
  assert.equal(f.read('t', 1_260_000).events_per_sec, 0.08);
});

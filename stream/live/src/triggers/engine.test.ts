import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryHotState, createBus, createFanOut, createLogger, loadConfig, type VariantRequest } from '@afterglow/core';
import { LiveKeys } from '../live/keys.js';
import { TriggerEngine } from './engine.js';
import type { Verdict } from './evaluate.js';
import { Snoozes, latestEnd } from './snooze.js';
import type { StoredRule, StoredSnooze, TriggerStore } from './store.js';

/**
 * The engine's fire decision with snoozes, on the embedded adapters (memory hot state, in-process
 * bus and fan-out) and an injected clock: no timers run, every evaluation is a direct call with its
 * own `now`. The store is an in-memory stand-in for the ClickHouse-backed TriggerStore (whose SQL the
 * API tests in test/ exercise): it keeps firings and snoozes in arrays.
 */

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 5, 12);

function memoryStore() {
  const firings: VariantRequest[] = [];
  const snoozes: StoredSnooze[] = [];
  const store = {
    firings,
    snoozeRows: snoozes,
    async recordFiring(r: VariantRequest) {
      firings.push(r);
    },
    async recordDeliveries() {},
    async putSnooze(s: StoredSnooze) {
      const i = snoozes.findIndex((x) => x.tenant_id === s.tenant_id && x.rule_id === s.rule_id && x.asset_id === s.asset_id && x.campaign_id === s.campaign_id);
      if (i >= 0) snoozes.splice(i, 1);
      snoozes.push(s);
    },
    async snoozes(f: { tenant?: string; ruleId?: string; activeAt: number }) {
      return snoozes.filter((s) => s.until > f.activeAt && (f.tenant === undefined || s.tenant_id === f.tenant) && (f.ruleId === undefined || s.rule_id === f.ruleId));
    },
    async deleteSnooze(tenant: string, ruleId: string, t: { asset_id: string | null; campaign_id: string | null }) {
      const i = snoozes.findIndex((x) => x.tenant_id === tenant && x.rule_id === ruleId && x.asset_id === t.asset_id && x.campaign_id === t.campaign_id);
      if (i < 0) return false;
      snoozes.splice(i, 1);
      return true;
    },
  };
  return store;
}

async function harness() {
  const config = loadConfig({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '', AFTERGLOW_DEMO: '0' });
  let now = T0;
  const clock = () => now;
  // Hot state on the same clock: the cool-down is a TTL on the firing's claim.
  const hot = new MemoryHotState({ clock });
  const [bus, fanout] = await Promise.all([createBus(config.bus), createFanOut(config.fanout)]);
  const producer = await bus.producer();
  const store = memoryStore();
  const keys = new LiveKeys('engine-test');
  const snoozes = new Snoozes(hot, keys.prefix, store as unknown as TriggerStore, clock);
  const engine = new TriggerEngine({
    store: store as unknown as TriggerStore,
    hot,
    fanout,
    bus,
    producer,
    keys,
    lateMs: config.events.liveLateMs,
    ci: { maxRelWidth: config.live.ciMaxRelWidth, maxAbsWidth: config.live.ciMaxAbsWidth },
    settings: config.triggers,
    refitMs: config.live.decayRefitMs,
    processId: 'engine-test',
    log: createLogger('error', { service: 'engine-test' }),
    clock,
    snoozes,
  });
  const rule: StoredRule = {
    rule_id: 'spike',
    tenant_id: 'acme',
    campaign_id: null,
    kind: 'velocity_spike',
    params: {},
    cooldown_ms: MIN,
    enabled: true,
    webhook_url: null,
    webhook_secret: null,
    webhook_secret_set: false,
    updated_at: T0,
  };
  const holds: Verdict = { holds: true, reason: 'a spike', numbers: { ratio: 5 } };
  const quiet: Verdict = { holds: false, reason: 'no spike', numbers: {} };
  // The fire decision for one (rule, asset) and its verdict, at the clock's time.
  const settle = (asset: string, verdict: Verdict, campaign = 'c1') =>
    (engine as unknown as { settle: (...a: unknown[]) => Promise<void> }).settle(rule, { debounce_evals: 1, debounce_ms: 0 }, 'acme', campaign, { id: asset, snap: { meta: { master: 'm1' } } }, verdict, now);
  return {
    engine,
    store,
    snoozes,
    rule,
    holds,
    quiet,
    settle,
    advance(ms: number) {
      now += ms;
    },
    now: () => now,
    async close() {
      await engine.dispatcher.stop();
      await producer.close();
      await Promise.all([bus.close(), hot.close(), fanout.close()]);
    },
  };
}

const snooze = (now: number, over: Partial<StoredSnooze>): StoredSnooze => ({
  tenant_id: 'acme',
  rule_id: 'spike',
  asset_id: null,
  campaign_id: null,
  until: now + 60 * MIN,
  note: null,
  by: null,
  created_at: now,
  ...over,
});

test('a snoozed rule does not fire while the snooze runs, and fires once when it ends with the condition still holding', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  await h.snoozes.put(snooze(h.now(), { until: h.now() + 30 * MIN }));
  for (let i = 0; i < 5; i++) {
    await h.settle('ad1', h.holds);
    h.advance(5 * MIN);
  }
  assert.equal(h.store.firings.length, 0, 'nothing fires inside the snooze');
  assert.equal(h.engine.snoozedDecisions, 5);
  // 25 min in; 5 more and the snooze has ended (the clock, not a timer, says so).
  h.advance(5 * MIN);
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 1);
  assert.equal(h.store.firings[0]!.asset_id, 'ad1');
  assert.equal(h.store.firings[0]!.fired_at, T0 + 30 * MIN);
  // Still holding: the episode fired once; no second firing.
  h.advance(MIN);
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 1);
});

test('an asset or campaign snooze covers only that target; other assets and campaigns fire', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  await h.snoozes.put(snooze(h.now(), { asset_id: 'ad1' }));
  await h.snoozes.put(snooze(h.now(), { campaign_id: 'c2' }));
  await h.settle('ad1', h.holds, 'c1');
  await h.settle('ad2', h.holds, 'c1');
  await h.settle('ad3', h.holds, 'c2');
  assert.deepEqual(
    h.store.firings.map((f) => f.asset_id),
    ['ad2'],
  );
  // Another tenant's rule of the same id is not covered by acme's snooze.
  assert.equal(await h.snoozes.covering('other', 'spike', 'c1', 'ad1', h.now()), null);
  assert.equal(await h.snoozes.covering('acme', 'spike', 'c1', 'ad1', h.now()), h.now() + 60 * MIN);
});

test('un-snoozing lets the held condition fire at the next evaluation', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  await h.snoozes.put(snooze(h.now(), {}));
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 0);
  assert.equal(await h.snoozes.remove('acme', 'spike', { asset_id: null, campaign_id: null }), true);
  assert.equal(await h.snoozes.remove('acme', 'spike', { asset_id: null, campaign_id: null }), false, 'nothing left to un-snooze');
  h.advance(MIN);
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 1);
});

test('a condition that stops holding during the snooze does not fire when the snooze ends', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  await h.snoozes.put(snooze(h.now(), { until: h.now() + 10 * MIN }));
  await h.settle('ad1', h.holds);
  h.advance(5 * MIN);
  await h.settle('ad1', h.quiet);
  h.advance(10 * MIN);
  await h.settle('ad1', h.quiet);
  assert.equal(h.store.firings.length, 0);
});

test('load() brings the store’s running snoozes into an empty hot state (a restarted process)', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  h.store.snoozeRows.push(snooze(h.now(), { until: h.now() + 20 * MIN }), snooze(h.now(), { rule_id: 'ended', until: h.now() - 1 }));
  assert.equal(await h.snoozes.covering('acme', 'spike', 'c1', 'ad1', h.now()), null, 'not in hot state yet');
  assert.equal(await h.snoozes.load(), 1, 'only the running one');
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 0);
});

test('after its cool-down a rule fires again for a new episode; inside it the new episode is suppressed', async (t) => {
  const h = await harness();
  t.after(() => h.close());
  // Episode 1 fires at T0 (cool-down 1 min).
  await h.settle('ad1', h.holds);
  assert.deepEqual(h.store.firings.map((f) => f.fired_at), [T0]);
  // It clears, and a second episode starts 30 s later: inside the cool-down, suppressed.
  h.advance(10_000);
  await h.settle('ad1', h.quiet);
  h.advance(20_000);
  await h.settle('ad1', h.holds);
  assert.equal(h.store.firings.length, 1);
  assert.equal(h.engine.totals.suppressed, 1);
  // It clears again; a third episode 61 s after the first firing is past the cool-down: it fires.
  h.advance(10_000);
  await h.settle('ad1', h.quiet);
  h.advance(21_000);
  await h.settle('ad1', h.holds);
  assert.deepEqual(h.store.firings.map((f) => f.fired_at), [T0, T0 + 61_000]);
  // Another asset of the same rule has its own cool-down: it fires at once.
  await h.settle('ad2', h.holds);
  assert.deepEqual(h.store.firings.map((f) => f.asset_id), ['ad1', 'ad1', 'ad2']);
});

test('latestEnd takes the latest end still ahead and ignores garbage', () => {
  assert.equal(latestEnd([null, '200', '150', 'x'], 100), 200);
  assert.equal(latestEnd(['100', '50', null], 100), null);
  assert.equal(latestEnd([], 0), null);
});

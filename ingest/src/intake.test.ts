import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackpressureError, BusUnavailableError, TOPICS, decodeEvent, ulid, type BusProducer, type BusRecord } from '@afterglow/core';
import type { DecodedItem } from './decode.js';
import { EventIntake } from './intake.js';

/**
 * The intake both the HTTP routes and the WebSocket stream use, on a producer this test controls:
 * per-event verdicts with their index, the key's tenant and placements, the server clock, the
 * in-flight byte bound and its release, the produce timeout, and large batches sent in slices.
 */
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const limits = { maxAgeMs: 86_400_000, maxFutureMs: 300_000, liveLateMs: 600_000, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };

/** A producer whose sends are recorded and resolve when `release()` is called (or at once). */
function producer(immediate = true) {
  const sends: { topic: string; records: BusRecord[] }[] = [];
  const pending: (() => void)[] = [];
  const p: BusProducer & { sends: typeof sends; release(): void } = {
    sends,
    send(topic, records) {
      sends.push({ topic, records });
      return immediate ? Promise.resolve() : new Promise<void>((resolve) => pending.push(resolve));
    },
    close: async () => {},
    release: () => pending.splice(0).forEach((r) => r()),
  };
  return p;
}

const event = (over: Record<string, unknown> = {}) => ({
  event_id: ulid(NOW - 1000),
  tenant_id: 'acme',
  campaign_id: 'c1',
  asset_id: 'a1',
  kind: 'click',
  value: 1,
  occurred_at: NOW - 1000,
  received_at: 12345, // the client's: overwritten
  ...over,
});
const ok = (value: unknown): DecodedItem => ({ ok: true, value });

test('intake: each event judged in place; accepted ones keyed by asset, stamped with the server clock', async () => {
  const bus = producer();
  const intake = new EventIntake({ producer: bus, limits, maxInflightBytes: 1 << 20, produceTimeoutMs: 1000, clock: () => NOW });
  const good = event({ asset_id: 'a7', placement: 'lobby' });
  const items: DecodedItem[] = [
    ok(good),
    { ok: false, message: 'line 2: not JSON' },
    ok(event({ event_id: 'x'.repeat(100) })),
    ok(event({ tenant_id: 'other' })),
    ok(event({ placement: 'street' })),
    ok(event({ occurred_at: NOW + 300_001 })),
  ];
  const r = await intake.submit(items, { tenantId: 'acme', placements: ['lobby'] });
  assert.equal(r.accepted, 1);
  assert.equal(r.rejected, 5);
  assert.deepEqual(r.rejections.map((x) => [x.index, x.reason, x.field ?? null]), [
    [1, 'undecodable', null],
    [2, 'invalid_event_id', 'event_id'],
    [3, 'tenant_forbidden', 'tenant_id'],
    [4, 'placement_forbidden', 'placement'],
    [5, 'too_far_in_future', 'occurred_at'],
  ]);
  assert.equal(r.rejections[2]!.event_id, (items[3] as { value: { event_id: string } }).value.event_id);
  assert.equal(r.rejections[1]!.event_id, 'x'.repeat(64), 'a long event_id is cut to 64 characters in the rejection');
  assert.equal(bus.sends.length, 1);
  assert.equal(bus.sends[0]!.topic, TOPICS.events);
  assert.equal(bus.sends[0]!.records[0]!.key, 'a7');
  assert.deepEqual(decodeEvent(bus.sends[0]!.records[0]!.value), { ...good, received_at: NOW });
  assert.equal(intake.inflightBytes, 0);
});

test('intake: nothing valid, nothing sent; no guard, any tenant and placement', async () => {
  const bus = producer();
  const intake = new EventIntake({ producer: bus, limits, maxInflightBytes: 1 << 20, produceTimeoutMs: 1000, clock: () => NOW });
  assert.deepEqual(await intake.submit([{ ok: false, message: 'x' }]), { accepted: 0, rejected: 1, rejections: [{ index: 0, reason: 'undecodable', message: 'x' }] });
  assert.equal(bus.sends.length, 0);
  assert.equal((await intake.submit([ok(event({ tenant_id: 'other', placement: 'street' }))])).accepted, 1);
});

test('intake: past maxInflightBytes it refuses at once, and capacity returns when the bus acknowledges', async () => {
  const bus = producer(false);
  const intake = new EventIntake({ producer: bus, limits, maxInflightBytes: 100, produceTimeoutMs: 10_000, clock: () => NOW });
  const first = intake.submit([ok(event())]);
  await new Promise((r) => setImmediate(r));
  assert.ok(intake.inflightBytes > 100, `${intake.inflightBytes} bytes in flight`);
  assert.equal(intake.saturated, true);
  await assert.rejects(intake.submit([ok(event())]), (err: unknown) => err instanceof BackpressureError && err.retryAfterMs === 250);
  let capacity = false;
  const waiting = intake.whenCapacity().then(() => (capacity = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(capacity, false, 'still saturated: the waiter waits');
  bus.release();
  assert.equal((await first).accepted, 1);
  await waiting;
  assert.equal(intake.inflightBytes, 0);
  assert.equal(intake.saturated, false);
});

test('intake: a bus that never acknowledges fails the request after produceTimeoutMs and frees its bytes', async () => {
  const bus = producer(false);
  const intake = new EventIntake({ producer: bus, limits, maxInflightBytes: 1 << 20, produceTimeoutMs: 30, clock: () => NOW });
  await assert.rejects(intake.submit([ok(event())]), (err: unknown) => err instanceof BusUnavailableError && /30 ms/.test(err.message));
  assert.equal(intake.inflightBytes, 0);
});

test('intake: a batch of 12,001 events goes to the bus in slices of 5,000, in order', async () => {
  const bus = producer();
  const intake = new EventIntake({ producer: bus, limits, maxInflightBytes: 1 << 30, produceTimeoutMs: 10_000, clock: () => NOW });
  const items = Array.from({ length: 12_001 }, (_, i) => ok(event({ event_id: ulid(NOW - 1000), asset_id: `a${i}` })));
  assert.equal((await intake.submit(items)).accepted, 12_001);
  assert.deepEqual(bus.sends.map((s) => s.records.length), [5_000, 5_000, 2_001]);
  assert.deepEqual(bus.sends.flatMap((s) => s.records.map((r) => r.key)), items.map((_, i) => `a${i}`));
});

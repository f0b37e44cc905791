import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Store } from '@afterglow/core';
import type { DecodedItem } from './decode.js';
import { SpendImport } from './spend.js';

/**
 * Spend validation on dry runs (no store is touched: the store given throws if it is): a huge body
 * is validated in slices between which another tenant's request is served, the per-request row cap
 * refuses a bigger body whole, and one tenant's concurrent requests queue behind each other.
 */
const NOW = Date.UTC(2026, 5, 15, 12);
const untouchable = new Proxy({}, {
  get() {
    throw new Error('a dry run must not touch the store');
  },
}) as Store;

function rows(n: number, campaign: string, tenant?: string): DecodedItem[] {
  return Array.from({ length: n }, (_, i) => ({
    ok: true as const,
    value: { ...(tenant && { tenant_id: tenant }), campaign_id: campaign, asset_id: `ad-${i % 40}`, placement: `p${i % 3}`, date: `2026-06-1${i % 5}`, spend: (i % 97) * 1.25 },
  }));
}

const guard = (tenantId: string) => ({ tenantId }) as never;

test('another tenant is answered while a huge spend body is validated, and the huge one still validates every row', async () => {
  const spend = new SpendImport({ store: untouchable, maxAgeMs: 365 * 86_400_000, maxRowsPerRequest: 50_000, clock: () => NOW });
  const order: string[] = [];
  let turnsWhileBig = 0;
  let bigDone = false;
  // Another task of the event loop: counts how often it gets a turn while the big body is validated.
  const ticker = (): void => {
    if (bigDone) return;
    turnsWhileBig++;
    setImmediate(ticker);
  };
  setImmediate(ticker);
  const big = spend.run(rows(50_000, 'hostile'), guard('hostile'), undefined, true).then((r) => {
    bigDone = true;
    order.push('hostile');
    return r;
  });
  // Started after the big one: it must not wait for it.
  const small = spend.run(rows(20, 'polite'), guard('polite'), undefined, true).then((r) => {
    order.push('polite');
    return r;
  });
  const [bigResult, smallResult] = await Promise.all([big, small]);
  assert.deepEqual(order, ['polite', 'hostile'], 'the small request of another tenant completes first');
  assert.ok(turnsWhileBig > 1, `the event loop turned while the big body was validated (${turnsWhileBig} turns)`);
  assert.equal(bigResult.received, 50_000);
  assert.equal(bigResult.rejected, 0);
  assert.equal(bigResult.written, 0);
  assert.equal(smallResult.received, 20);
  assert.equal(smallResult.rejected, 0);
});

test('a body over the row cap is refused whole with a typed 413 before any row is validated', async () => {
  const spend = new SpendImport({ store: untouchable, maxAgeMs: 365 * 86_400_000, maxRowsPerRequest: 1000, clock: () => NOW });
  await assert.rejects(spend.run(rows(1001, 'c'), guard('t'), undefined, false), (e: unknown) => {
    const err = e as { code?: string; status?: number; message?: string };
    return err.code === 'too_many_rows' && err.status === 413 && /1001 spend rows.*limit is 1000/.test(err.message ?? '');
  });
  const atCap = await spend.run(rows(1000, 'c'), guard('t'), undefined, true);
  assert.equal(atCap.received, 1000);
  assert.equal(atCap.rejected, 0);
});

test('one tenant’s concurrent spend requests run one after another; rows naming another tenant are refused', async () => {
  const spend = new SpendImport({ store: untouchable, maxAgeMs: 365 * 86_400_000, clock: () => NOW });
  const order: string[] = [];
  const first = spend.run(rows(20_000, 'c'), guard('t'), undefined, true).then(() => order.push('first'));
  const second = spend.run(rows(10, 'c'), guard('t'), undefined, true).then(() => order.push('second'));
  await Promise.all([first, second]);
  assert.deepEqual(order, ['first', 'second'], 'the same tenant’s later request waits for its earlier one');
  const mixed = await spend.run([...rows(3, 'c', 't'), ...rows(2, 'c', 'other'), { ok: false, message: 'line is not valid JSON' }], guard('t'), undefined, true);
  assert.deepEqual(mixed.rejections.map((r) => [r.index, r.reason]), [[3, 'tenant_forbidden'], [4, 'tenant_forbidden'], [5, 'undecodable']]);
});

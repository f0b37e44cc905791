/**
 * The tie recorder's rule (one per ad: tie, untie, no_sim, duplicate) over real hot state (memory,
 * and Redis when REDIS_URL is set; CI must set it) and fan-out: a duplicate counts for whatever
 * master its original counts for, now and after every later change of the original, through
 * chains, and a loop has no master.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { SUBJECTS, createBus, createFanOut, createHotState, createLogger, type TieDecision } from '@afterglow/core';
import { uniqueName } from '@afterglow/testkit/services';
import { LiveKeys } from './keys.js';
import { LiveReader } from './reader.js';
import { TieRecorder, parseTie } from './ties.js';

const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
if (process.env.CI && !process.env.REDIS_URL) throw new Error('REDIS_URL is not set: CI runs the tie recorder on Redis too (source deploy/local/env.sh)');
const HOTS = [{ kind: 'memory' as const }, ...(process.env.REDIS_URL ? [{ kind: 'redis' as const, url: process.env.REDIS_URL }] : [])];
const closers: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function rig(hotConfig: (typeof HOTS)[number]) {
  const bus = await createBus({ kind: 'memory', partitions: 2, maxBacklogBytes: 1024 * 1024 });
  const hot = await createHotState(hotConfig);
  const fanout = await createFanOut({ kind: 'memory' });
  closers.push(() => bus.close(), () => hot.close(), () => fanout.close());
  const keys = new LiveKeys(uniqueName('ties'));
  const tenant = uniqueName('t');
  const notices: string[] = [];
  fanout.subscribe(SUBJECTS.tieChanged(tenant), (data) => notices.push((JSON.parse(Buffer.from(data).toString('utf8')) as { ad: string }).ad));
  const recorder = new TieRecorder({ bus, hot, fanout, keys, log, groupId: uniqueName('g') });
  let at = 1000;
  const decide = async (ad: string, action: TieDecision['action'], target?: string, decidedAt = ++at) => {
    const d: TieDecision = { action, tenant_id: tenant, ad_asset_id: ad, ...(target ? { target_asset_id: target } : {}), auto: false, decided_by: 'test', decided_at: decidedAt };
    await recorder.replay({ tieDecisions: async function* () { yield [d]; } });
  };
  const master = async (ad: string) => parseTie(await hot.get(keys.tie(tenant, ad))).master || null;
  const masters = async (...ads: string[]) => Promise.all(ads.map(master));
  return { hot, fanout, keys, tenant, notices, decide, master, masters, reader: new LiveReader(hot, keys, 600_000, { maxRelWidth: 0.5, maxAbsWidth: 0.01 }, 0.25) };
}

for (const h of HOTS) {
  test(`${h.kind}: ties: a duplicate follows its original through tie, re-tie and untie`, async () => {
    const r = await rig(h);
    await r.decide('b', 'duplicate', 'a');
    assert.deepEqual(await r.masters('a', 'b'), [null, null], 'a duplicate of an untied ad has no master');
    await r.decide('a', 'tie', 'm1');
    assert.deepEqual(await r.masters('a', 'b'), ['m1', 'm1'], 'tying the original ties its duplicate');
    await r.fanout.flush();
    assert.ok(r.notices.includes('b'), 'the duplicate got a tie notice (its aggregator re-attributes it)');
    await r.decide('a', 'tie', 'm2');
    assert.deepEqual(await r.masters('a', 'b'), ['m2', 'm2'], 're-tying the original moves its duplicate');
    await r.decide('a', 'untie');
    assert.deepEqual(await r.masters('a', 'b'), [null, null], 'untying the original unties its duplicate');
    await r.decide('a', 'tie', 'm1');
    await r.decide('b', 'tie', 'm3');
    await r.decide('a', 'tie', 'm2');
    assert.deepEqual(await r.masters('a', 'b'), ['m2', 'm3'], 'a duplicate tied on its own stops following');
  });

  test(`${h.kind}: ties: chains are followed, loops have no master, stale decisions change nothing`, async () => {
    const r = await rig(h);
    await r.decide('c', 'duplicate', 'b');
    await r.decide('b', 'duplicate', 'a');
    await r.decide('a', 'tie', 'm1');
    assert.deepEqual(await r.masters('a', 'b', 'c'), ['m1', 'm1', 'm1']);
    await r.decide('a', 'duplicate', 'c');
    assert.deepEqual(await r.masters('a', 'b', 'c'), [null, null, null], 'a -> c -> b -> a is a loop');
    await r.decide('a', 'tie', 'm2');
    assert.deepEqual(await r.masters('a', 'b', 'c'), ['m2', 'm2', 'm2'], 'breaking the loop ties the chain again');
    await r.decide('a', 'untie', undefined, 5);
    assert.deepEqual(await r.masters('a', 'b', 'c'), ['m2', 'm2', 'm2'], 'an older decision is ignored');
    await r.decide('c', 'no_sim');
    await r.decide('a', 'tie', 'm1');
    assert.deepEqual(await r.masters('a', 'b', 'c'), ['m1', 'm1', null], 'c left the chain');
  });

  test(`${h.kind}: ties: a master counts only the ads whose tie still names it`, async () => {
    const r = await rig(h);
    await r.decide('a', 'tie', 'm1');
    await r.decide('b', 'tie', 'm1');
    // The aggregator indexes a master's ads as it flushes them, and keeps them until they go quiet.
    await r.hot.zadd(r.keys.masterAds(r.tenant, 'm1'), [{ member: 'a', score: 1 }, { member: 'b', score: 1 }]);
    assert.deepEqual((await r.reader.masterAdIds(r.tenant, 'm1')).sort(), ['a', 'b']);
    await r.decide('b', 'untie');
    assert.deepEqual(await r.reader.masterAdIds(r.tenant, 'm1'), ['a']);
    assert.deepEqual([...(await r.reader.tieMasters(r.tenant, ['a', 'b', 'zz']))], [['a', 'm1'], ['b', null], ['zz', null]]);
  });

  test(`${h.kind}: ties: a duplicate and a tie of its original recorded at the same time (two partitions) still agree`, async () => {
    for (let i = 0; i < 20; i++) {
      const r = await rig(h);
      await Promise.all([r.decide(`b${i}`, 'duplicate', `a${i}`, 10), r.decide(`a${i}`, 'tie', 'm1', 11)]);
      assert.deepEqual(await r.masters(`a${i}`, `b${i}`), ['m1', 'm1'], `round ${i}`);
    }
  });
}

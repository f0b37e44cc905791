import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { HotOp, HotState } from '@afterglow/core';
import { eventually, uniqueName } from '../services.js';

/** Two handles on one store: two connections for Redis, the same instance twice in memory. */
export interface HotStatePair {
  a: HotState;
  b: HotState;
}

interface Case {
  a: HotState;
  b: HotState;
  /** A key unique to this run; every key made here is deleted after the test. */
  key(name: string): string;
}

/**
 * The behaviour every HotState adapter must share, run against each one. `open` returns
 * undefined when the test was skipped (a service that is not configured).
 */
export function runHotStateContract(open: (t: TestContext) => Promise<HotStatePair | undefined>): void {
  function contract(name: string, body: (c: Case) => Promise<void>): void {
    test(name, async (t) => {
      const pair = await open(t);
      // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
      if (!pair) return;
      const prefix = uniqueName('afterglow-hot');
      const made = new Set<string>();
      const key = (n: string): string => {
        const k = `${prefix}:${n}`;
        made.add(k);
        return k;
      };
      try {
        await body({ ...pair, key });
      } finally {
        await pair.a.del([...made]);
        await pair.a.close();
        if (pair.b !== pair.a) await pair.b.close();
      }
    });
  }

  contract('get, set and mget, with missing keys and keys of another type', async ({ a, b, key }) => {
    const [one, two, missing, hash] = [key('one'), key('two'), key('missing'), key('hash')];
    await a.set(one, '1');
    await a.set(two, 'two');
    await a.hset(hash, { f: 'v' });
    assert.equal(await b.get(one), '1');
    assert.equal(await b.get(missing), null);
    assert.deepEqual(await b.mget([one, missing, two, hash, one]), ['1', null, 'two', null, '1']);
    assert.deepEqual(await b.mget([]), []);
    await a.set(one, 'again');
    assert.equal(await b.get(one), 'again');
  });

  contract('a key holds one type: reads of another type reject, set replaces', async ({ a, key }) => {
    const [str, hash] = [key('str'), key('hash')];
    await a.set(str, 'x');
    await a.hset(hash, { f: 1 });
    await assert.rejects(a.get(hash), { code: 'wrong_type' });
    await assert.rejects(a.hgetall(str), { code: 'wrong_type' });
    await assert.rejects(a.hincrby(str, { f: 1 }), { code: 'wrong_type' });
    await assert.rejects(a.zadd(str, [{ member: 'm', score: 1 }]), { code: 'wrong_type' });
    await assert.rejects(a.zrange(hash, 0, -1), { code: 'wrong_type' });
    await a.set(hash, 'now a string');
    assert.equal(await a.get(hash), 'now a string');
  });

  contract('del counts the keys that existed', async ({ a, b, key }) => {
    const [s, h, z, missing] = [key('s'), key('h'), key('z'), key('missing')];
    await a.set(s, 'x');
    await a.hset(h, { f: 1 });
    await a.zadd(z, [{ member: 'm', score: 1 }]);
    assert.equal(await b.del([s, h, z, missing]), 3);
    assert.equal(await b.del([s]), 0);
    assert.equal(await b.del([]), 0);
    assert.deepEqual(await a.mget([s]), [null]);
    assert.deepEqual(await a.hgetall(h), {});
    assert.deepEqual(await a.zrange(z, 0, -1), []);
  });

  contract('keys expire after their TTL', async ({ a, b, key }) => {
    const [str, hash, zset, kept] = [key('str'), key('hash'), key('zset'), key('kept')];
    await a.set(str, 'x', 150);
    await a.hset(hash, { f: 1 });
    assert.equal(await a.expire(hash, 150), true);
    await a.zadd(zset, [{ member: 'm', score: 1 }]);
    await a.expire(zset, 150);
    await a.set(kept, 'y');
    // Read right away, before the TTL can have run out.
    assert.equal(await b.get(str), 'x');
    assert.deepEqual(await b.hgetall(hash), { f: '1' });
    await eventually(async () => ((await b.get(str)) === null ? true : undefined), 3_000, 20);
    await eventually(async () => (Object.keys(await b.hgetall(hash)).length === 0 ? true : undefined), 3_000, 20);
    await eventually(async () => ((await b.zrange(zset, 0, -1)).length === 0 ? true : undefined), 3_000, 20);
    assert.equal(await b.get(kept), 'y');
    assert.equal(await a.expire(key('missing'), 1_000), false);
  });

  contract('set without a TTL clears one; hash writes keep it', async ({ a, key }) => {
    const [str, hash] = [key('str'), key('hash')];
    await a.set(str, 'short', 150);
    await a.set(str, 'forever');
    await a.hset(hash, { f: 1 });
    await a.expire(hash, 150);
    await a.hset(hash, { g: 2 });
    await a.hincrby(hash, { f: 1 });
    await eventually(async () => (Object.keys(await a.hgetall(hash)).length === 0 ? true : undefined), 3_000, 20);
    assert.equal(await a.get(str), 'forever');
  });

  contract('a TTL must be a positive number of milliseconds', async ({ a, key }) => {
    const k = key('k');
    await assert.rejects(a.set(k, 'x', 0), { code: 'invalid_argument' });
    await assert.rejects(a.setIfAbsent(k, 'x', -5), { code: 'invalid_argument' });
    await assert.rejects(a.expire(k, Number.NaN), { code: 'invalid_argument' });
    assert.equal(await a.get(k), null);
  });

  contract('setIfAbsent succeeds for exactly one of many concurrent callers, then again after expiry', async ({ a, b, key }) => {
    const lease = key('lease');
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).setIfAbsent(lease, `owner-${i}`, 300)));
    const winners = outcomes.flatMap((won, i) => (won ? [i] : []));
    assert.equal(winners.length, 1);
    assert.equal(await a.get(lease), `owner-${winners[0]}`);
    assert.equal(await a.setIfAbsent(lease, 'late', 300), false);
    await eventually(async () => ((await a.setIfAbsent(lease, 'next', 300)) ? true : undefined), 3_000, 20);
    assert.equal(await b.get(lease), 'next');
  });

  contract('claimFields: the first value for a field wins, in either bucket; a created bucket expires', async ({ a, b, key }) => {
    const [cur, prev, next] = [key('claims:2'), key('claims:1'), key('claims:3')];
    assert.deepEqual(await a.claimFields(prev, key('claims:0'), [['x', '1']], 60_000), [null]);
    assert.deepEqual(
      await b.claimFields(cur, prev, [
        ['x', '2'],
        ['y', '3'],
        ['y', '4'],
      ], 200),
      ['1', null, '3'],
    );
    const concurrent = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claimFields(cur, prev, [['z', String(i)]], 200)));
    assert.equal(concurrent.filter(([v]) => v === null).length, 1, 'one caller claims z');
    assert.deepEqual(await a.claimFields(next, cur, [['y', '9']], 60_000), ['3']);
    // Once `cur` (created with a 200 ms TTL) expires, what it held can be claimed again.
    await eventually(async () => ((await b.claimFields(next, cur, [['z', 'late']], 60_000))[0] === null ? true : undefined), 3_000, 20);
    await a.set(key('claims:str'), 'v');
    await assert.rejects(a.claimFields(cur, key('claims:str'), [['q', '1']], 1000));
  });

  contract('hset and hgetall store every value as a string', async ({ a, b, key }) => {
    const h = key('h');
    assert.deepEqual(await a.hgetall(h), {});
    await a.hset(h, { name: 'x', count: 3, ratio: 0.5 });
    await a.hset(h, { count: 4 });
    await a.hset(h, {});
    assert.deepEqual(await b.hgetall(h), { name: 'x', count: '4', ratio: '0.5' });
  });

  contract('hincrby returns the new values in field order', async ({ a, key }) => {
    const h = key('h');
    assert.deepEqual(await a.hincrby(h, {}), {});
    const first = await a.hincrby(h, { zeta: 2, alpha: -1 });
    assert.deepEqual(Object.entries(first), [['zeta', 2], ['alpha', -1]]);
    assert.deepEqual(await a.hincrby(h, { alpha: 5, zeta: 1 }), { alpha: 4, zeta: 3 });
    assert.deepEqual(await a.hgetall(h), { zeta: '3', alpha: '4' });
  });

  contract('hincrby under 100 concurrent callers loses no increment', async ({ a, b, key }) => {
    const h = key('h');
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).hincrby(h, { hits: 1, bytes: 10 })));
    // Each caller saw its own intermediate total: the increments were applied one at a time.
    assert.deepEqual(replies.map((r) => r.hits ?? -1).sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(await a.hgetall(h), { hits: '100', bytes: '1000' });
  });

  contract('hincrby takes fractional increments; an integer increment on a fractional field rejects', async ({ a, key }) => {
    const h = key('h');
    assert.deepEqual(await a.hincrby(h, { sum: 0.5 }), { sum: 0.5 });
    assert.deepEqual(await a.hincrby(h, { sum: 0.5 }), { sum: 1 });
    assert.deepEqual(await a.hincrby(h, { sum: 1 }), { sum: 2 });
    assert.deepEqual(await a.hincrby(h, { sum: 0.25 }), { sum: 2.25 });
    await assert.rejects(a.hincrby(h, { sum: 1 }), { code: 'not_numeric' });
    await a.hset(h, { label: 'abc' });
    await assert.rejects(a.hincrby(h, { label: 0.5 }), { code: 'not_numeric' });
    await assert.rejects(a.hincrby(h, { sum: Number.POSITIVE_INFINITY }), { code: 'invalid_argument' });
    assert.deepEqual(await a.hgetall(h), { sum: '2.25', label: 'abc' });
  });

  contract('zrange orders by score then member, with inclusive and negative indices', async ({ a, b, key }) => {
    const z = key('z');
    assert.deepEqual(await a.zrange(z, 0, -1), []);
    assert.equal(await a.zcard(z), 0);
    await a.zadd(z, [
      { member: 'c', score: 1 },
      { member: 'a', score: 1 },
      { member: 'e', score: 2 },
      { member: 'b', score: 1 },
      { member: 'd', score: 0 },
    ]);
    const members = async (start: number, stop: number, reverse = false) =>
      (await b.zrange(z, start, stop, { reverse })).map((m) => m.member).join('');
    assert.deepEqual(await b.zrange(z, 0, 1), [
      { member: 'd', score: 0 },
      { member: 'a', score: 1 },
    ]);
    assert.equal(await members(0, -1), 'dabce');
    assert.equal(await b.zcard(z), 5);
    assert.equal(await members(1, 2), 'ab');
    assert.equal(await members(-2, -1), 'ce');
    assert.equal(await members(-100, 1), 'da');
    assert.equal(await members(3, 100), 'ce');
    assert.equal(await members(4, 3), '');
    assert.equal(await members(5, 10), '');
    assert.equal(await members(0, -6), '');
    assert.equal(await members(0, -1, true), 'ecbad');
    assert.equal(await members(0, 1, true), 'ec');
    assert.equal(await members(-1, -1, true), 'd');
    assert.equal(await members(1, 3, true), 'cba');
    // A new score moves the member; re-adding with the same score changes nothing.
    await a.zadd(z, [{ member: 'd', score: 3 }, { member: 'a', score: 1 }]);
    assert.equal(await members(0, -1), 'abced');
    assert.deepEqual(await b.zrange(z, 0, 0, { reverse: true }), [{ member: 'd', score: 3 }]);
  });

  contract('zadd keeps negative, fractional and infinite scores', async ({ a, key }) => {
    const z = key('z');
    const scores = [
      { member: 'ninf', score: Number.NEGATIVE_INFINITY },
      { member: 'neg', score: -2.5 },
      { member: 'tiny', score: 1e-9 },
      { member: 'big', score: 2 ** 52 + 1 },
      { member: 'inf', score: Number.POSITIVE_INFINITY },
    ];
    await a.zadd(z, [...scores].reverse());
    assert.deepEqual(await a.zrange(z, 0, -1), scores);
    await assert.rejects(a.zadd(z, [{ member: 'nan', score: Number.NaN }]), { code: 'invalid_argument' });
  });

  contract('zrem removes members and an emptied set disappears', async ({ a, key }) => {
    const z = key('z');
    await a.zadd(z, [
      { member: 'x', score: 1 },
      { member: 'y', score: 2 },
    ]);
    assert.equal(await a.zrem(z, ['x', 'nope']), 1);
    assert.equal(await a.zrem(z, []), 0);
    assert.deepEqual(await a.zrange(z, 0, -1), [{ member: 'y', score: 2 }]);
    assert.equal(await a.zrem(z, ['y']), 1);
    // The key is gone, not an empty set: it can be claimed as a string.
    assert.equal(await a.setIfAbsent(z, 'free', 1_000), true);
  });

  contract('zrange matches a reference ordering after many updates', async ({ a, key }) => {
    const z = key('z');
    const reference = new Map<string, number>();
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 6; round++) {
      // Few distinct scores, so ties (ordered by member) are common.
      const members = Array.from({ length: 400 }, () => ({ member: `m${random(2_000)}`, score: random(50) / 2 }));
      await a.zadd(z, members);
      for (const { member, score } of members) reference.set(member, score);
      const gone = Array.from({ length: 100 }, () => `m${random(2_000)}`);
      await a.zrem(z, gone);
      for (const member of gone) reference.delete(member);
    }
    const expected = [...reference]
      .map(([member, score]) => ({ member, score }))
      .sort((x, y) => x.score - y.score || (x.member < y.member ? -1 : x.member > y.member ? 1 : 0));
    assert.deepEqual(await a.zrange(z, 0, -1), expected);
    assert.deepEqual(await a.zrange(z, 100, 149), expected.slice(100, 150));
    assert.deepEqual(await a.zrange(z, 0, 9, { reverse: true }), expected.slice(-10).reverse());
    assert.deepEqual(await a.zrange(z, -20, -11, { reverse: true }), expected.slice(10, 20).reverse());
  });

  contract('batch applies every kind of op', async ({ a, b, key }) => {
    const [s, t, gone, h, z] = [key('s'), key('t'), key('gone'), key('h'), key('z')];
    await a.set(gone, 'x');
    await a.hset(h, { n: 1 });
    await a.batch([
      { op: 'set', key: s, value: 'v' },
      { op: 'set', key: t, value: 'short', ttlMs: 150 },
      { op: 'del', key: gone },
      { op: 'hset', key: h, fields: { label: 'x' } },
      { op: 'hincrby', key: h, increments: { n: 2, avg: 0.5 } },
      { op: 'zadd', key: z, member: 'm', score: 4 },
      { op: 'zadd', key: z, member: 'k', score: 4 },
      { op: 'expire', key: h, ttlMs: 150 },
    ]);
    await a.batch([]);
    assert.deepEqual(await b.mget([s, t, gone]), ['v', 'short', null]);
    assert.deepEqual(await b.hgetall(h), { n: '3', label: 'x', avg: '0.5' });
    assert.deepEqual(await b.zrange(z, 0, -1), [
      { member: 'k', score: 4 },
      { member: 'm', score: 4 },
    ]);
    await eventually(async () => ((await b.get(t)) === null && Object.keys(await b.hgetall(h)).length === 0 ? true : undefined), 3_000, 20);
    assert.equal(await b.get(s), 'v');
  });

  contract('append extends a string, creates a missing one, and keeps its TTL', async ({ a, b, key }) => {
    const [fresh, timed] = [key('fresh'), key('timed')];
    await a.set(timed, 'ab', 200);
    await a.batch([
      { op: 'append', key: fresh, value: 'x' },
      { op: 'append', key: fresh, value: 'yz' },
      { op: 'append', key: timed, value: 'c' },
    ]);
    assert.deepEqual(await b.mget([fresh, timed]), ['xyz', 'abc']);
    await eventually(async () => ((await b.get(timed)) === null ? true : undefined), 3_000, 20);
    assert.equal(await b.get(fresh), 'xyz', 'a string created by append has no TTL');
  });

  contract('another client never sees part of a batch', async ({ a, b, key }) => {
    const [x, y, h] = [key('x'), key('y'), key('h')];
    await a.batch([
      { op: 'set', key: x, value: '0' },
      { op: 'set', key: y, value: '0' },
    ]);
    // Batches span several socket reads of the server and the reader keeps commands queued,
    // so a batch sent as a plain pipeline (not MULTI) gets reads run in the middle of it.
    const padding = 'p'.repeat(32 * 1024);
    const pad = (n: number): HotOp => ({ op: 'set', key: key(`padding-${n}`), value: padding });
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 1; i <= 100; i++) {
          await a.batch([
            { op: 'set', key: x, value: String(i) },
            pad(1),
            { op: 'hincrby', key: h, increments: { n: 1 } },
            pad(2),
            { op: 'zadd', key: key('z'), member: 'm', score: i },
            pad(3),
            pad(4),
            { op: 'set', key: y, value: String(i) },
          ]);
        }
      } finally {
        writing = false;
      }
    })();
    let reads = 0;
    while (writing) {
      for (const [vx, vy] of await Promise.all(Array.from({ length: 20 }, () => b.mget([x, y])))) {
        assert.equal(vx, vy, 'read x and y from different batches');
        reads++;
      }
    }
    await writer;
    assert.ok(reads > 0);
    assert.deepEqual(await b.mget([x, y]), ['100', '100']);
    assert.deepEqual(await b.hgetall(h), { n: '100' });
  });

  contract('a batch op failing at run time rejects the batch without undoing the others', async ({ a, key }) => {
    const [before, str, after] = [key('before'), key('str'), key('after')];
    await a.set(str, 'not a hash');
    await assert.rejects(
      a.batch([
        { op: 'set', key: before, value: '1' },
        { op: 'hincrby', key: str, increments: { n: 1 } },
        { op: 'set', key: after, value: '2' },
      ]),
      { code: 'wrong_type' },
    );
    // MULTI/EXEC semantics: Redis has no rollback.
    assert.deepEqual(await a.mget([before, str, after]), ['1', 'not a hash', '2']);
  });

  contract('a batch with an invalid argument applies nothing', async ({ a, key }) => {
    const [first, second] = [key('first'), key('second')];
    await assert.rejects(
      a.batch([
        { op: 'set', key: first, value: '1' },
        { op: 'set', key: second, value: '2', ttlMs: 0 },
      ]),
      { code: 'invalid_argument' },
    );
    assert.deepEqual(await a.mget([first, second]), [null, null]);
  });

  contract('takeTokens: a full bucket gives its capacity to concurrent callers, then refuses with a retry time', async ({ a, b, key }) => {
    const bucket = key('bucket');
    // 10 tokens, refilling one per 100 s (nothing refills during the test): 25 concurrent takes of 1 from two handles.
    const outcomes = await Promise.all(Array.from({ length: 25 }, (_, i) => (i % 2 ? a : b).takeTokens(bucket, { capacity: 10, perSec: 0.01 }, 1)));
    assert.equal(outcomes.filter((o) => o.ok).length, 10);
    const refused = outcomes.filter((o) => !o.ok);
    for (const r of refused) assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 100_000, `retry after ${r.retryAfterMs} ms`);
    assert.equal(outcomes.filter((o) => o.ok).every((o) => o.retryAfterMs === 0), true);
    await assert.rejects(a.takeTokens(bucket, { capacity: 0, perSec: 1 }, 1), { code: 'invalid_argument' });
    await assert.rejects(a.takeTokens(bucket, { capacity: 1, perSec: 1 }, -1), { code: 'invalid_argument' });
  });

  contract('takeTokens: a cost above the capacity passes from a full bucket and leaves it in debt', async ({ a, key }) => {
    const bucket = key('bucket');
    const spec = { capacity: 100, perSec: 1_000 };
    assert.deepEqual(await a.takeTokens(bucket, spec, 1_100), { ok: true, retryAfterMs: 0 });
    // 1000 tokens of debt at 1000/s: the next token is ~1 s away (a little less by the time it asks).
    const next = await a.takeTokens(bucket, spec, 1);
    assert.equal(next.ok, false);
    assert.ok(next.retryAfterMs > 0 && next.retryAfterMs <= 1_002, `retry after ${next.retryAfterMs} ms`);
    await eventually(async () => ((await a.takeTokens(bucket, spec, 1)).ok ? true : undefined), 3_000, 20);
  });

  contract('acquireSlot holds at most the limit, renews a held slot, and frees released or expired ones', async ({ a, b, key }) => {
    const slots = key('slots');
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).acquireSlot(slots, `conn-${i}`, 3, 60_000)));
    const holders = outcomes.flatMap((ok, i) => (ok ? [`conn-${i}`] : []));
    assert.equal(holders.length, 3);
    assert.equal(await a.acquireSlot(slots, holders[0]!, 3, 60_000), true, 'renewing a held slot succeeds at the limit');
    assert.equal(await a.acquireSlot(slots, 'late', 3, 60_000), false);
    await b.releaseSlot(slots, holders[0]!);
    await b.releaseSlot(slots, 'never-held');
    assert.equal(await a.acquireSlot(slots, 'late', 3, 60_000), true);
    // A short lease lapses on its own.
    const short = key('short');
    assert.equal(await a.acquireSlot(short, 'x', 1, 150), true);
    assert.equal(await b.acquireSlot(short, 'y', 1, 150), false);
    await eventually(async () => ((await b.acquireSlot(short, 'y', 1, 150)) ? true : undefined), 3_000, 20);
  });
}

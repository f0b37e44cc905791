import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '@afterglow/testkit/services';
import { runHotStateContract } from '@afterglow/testkit/contracts';
import { MemoryHotState } from './memory.js';

describe('MemoryHotState', () => {
  runHotStateContract(async () => {
    const state = new MemoryHotState();
    return { a: state, b: state };
  });

  test('the sweep removes expired keys that are never read again', async () => {
    const state = new MemoryHotState({ sweepIntervalMs: 10 });
    try {
      for (let i = 0; i < 1_000; i++) await state.set(`k${i}`, 'x', 20);
      await state.set('kept', 'y');
      assert.equal(state.keyCount, 1_001);
      // The sweep runs on its own (nothing reads the keys): wait for the count, not for a fixed time.
      await eventually(() => (state.keyCount === 1 ? true : undefined), 5_000, 10);
    } finally {
      await state.close();
    }
  });

  test('a closed state rejects every call', async () => {
    const state = new MemoryHotState();
    await state.close();
    await assert.rejects(state.get('k'), { code: 'hot_closed' });
    await assert.rejects(state.batch([{ op: 'del', key: 'k' }]), { code: 'hot_closed' });
  });

  test('sorted sets stay ordered through heavy inserts, updates and removals', async () => {
    const state = new MemoryHotState();
    try {
      const reference = new Map<string, number>();
      let seed = 42;
      const random = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed % n;
      };
      // Enough members to split into many chunks, then removals to shrink and merge them again.
      for (let round = 0; round < 20; round++) {
        const adds = Array.from({ length: 1_000 }, () => ({ member: `m${random(8_000)}`, score: random(300) }));
        await state.zadd('z', adds);
        for (const { member, score } of adds) reference.set(member, score);
        const removals = Array.from({ length: round < 10 ? 200 : 1_500 }, () => `m${random(8_000)}`);
        await state.zrem('z', removals);
        for (const member of removals) reference.delete(member);
        const expected = [...reference]
          .map(([member, score]) => ({ member, score }))
          .sort((x, y) => x.score - y.score || (x.member < y.member ? -1 : x.member > y.member ? 1 : 0));
        assert.deepEqual(await state.zrange('z', 0, -1), expected, `round ${round}`);
        const mid = expected.length >> 1;
        assert.deepEqual(await state.zrange('z', mid, mid + 600), expected.slice(mid, mid + 601));
      }
    } finally {
      await state.close();
    }
  });

  // How fast: bench/structures.ts (a figure, not an assert).
  test('a 100k-member sorted set takes 200k score updates and keeps the top right', async () => {
    const state = new MemoryHotState();
    try {
      const members = Array.from({ length: 100_000 }, (_, i) => ({ member: `asset-${i}`, score: (i * 7_919) % 100_000 }));
      await state.zadd('board', members);
      for (let i = 0; i < 200_000; i++) {
        await state.zadd('board', [{ member: `asset-${(i * 31) % 100_000}`, score: i }]);
        if (i % 1_000 === 0) await state.zrange('board', 0, 9, { reverse: true });
      }
      const top = await state.zrange('board', 0, 2, { reverse: true });
      // The last three updates (i = 199,999..199,997) hit assets 31 apart: the top three, in order.
      assert.deepEqual(top, [199_999, 199_998, 199_997].map((i) => ({ member: `asset-${(i * 31) % 100_000}`, score: i })));
    } finally {
      await state.close();
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LruEmbeddingCache } from './cache.js';
import { Limiter } from './limiter.js';

describe('LruEmbeddingCache', () => {
  it('evicts least recently used entries past its byte bound', () => {
    const v = () => new Float32Array(256); // 1 KiB
    const c = new LruEmbeddingCache(3 * (1024 + 2));
    c.set('a', v());
    c.set('b', v());
    c.set('c', v());
    assert.equal(c.size, 3);
    c.get('a'); // a is now the most recent
    c.set('d', v());
    assert.equal(c.size, 3);
    assert.equal(c.get('b'), undefined);
    assert.ok(c.get('a') && c.get('c') && c.get('d'));
    assert.ok(c.byteSize <= c.maxBytes);
    c.set('huge', new Float32Array(10_000)); // larger than the whole cache: not stored
    assert.equal(c.get('huge'), undefined);
    assert.equal(c.size, 3);
  });
});

describe('Limiter', () => {
  it('runs at most n at once, in order', async () => {
    const l = new Limiter(2);
    let active = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        l.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          order.push(i);
          active--;
        }),
      ),
    );
    assert.equal(peak, 2);
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  });

  it('with a bounded queue, refuses at once (OverloadedError) when it is full', async () => {
    const l = new Limiter(1, 2, 'jobs');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = [l.run(() => gate), l.run(() => gate), l.run(() => gate)];
    assert.deepEqual([l.running, l.queued], [1, 2]);
    await assert.rejects(l.run(async () => 1), { code: 'overloaded' });
    release();
    await Promise.all(held);
    assert.equal(await l.run(async () => 7), 7);
    assert.deepEqual([l.running, l.queued], [0, 0]);
  });
});

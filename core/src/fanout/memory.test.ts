import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runFanOutContract } from '@afterglow/testkit/contracts';
import { MemoryFanOut } from './memory.js';
import { assertPublishSubject, assertSubscribeSubject, InvalidSubjectError, subjectMatches } from './subject.js';

describe('subjects', () => {
  test('valid and invalid subjects', () => {
    for (const s of ['a', 'a.b.c', 'live.t-1.campaign.c_9', 'a*b.c>', 'ünï.cödé']) assertPublishSubject(s);
    for (const s of ['*', '>', 'a.*', 'a.>', '*.*.>', 'a.*.c']) assertSubscribeSubject(s);
    const bad: [string, boolean][] = [
      ['', true],
      ['.', true],
      ['a.', true],
      ['.a', true],
      ['a..b', true],
      ['a b', true],
      ['a\nb', true],
      ['a\u00a0b', true],
      ['a.>.b', true],
      ['>.a', true],
      ['a.*', false],
      ['a.>', false],
    ];
    for (const [subject, wildcards] of bad) {
      const check = wildcards ? assertSubscribeSubject : assertPublishSubject;
      assert.throws(() => check(subject), (err: unknown) => err instanceof InvalidSubjectError && err.code === 'invalid_subject', JSON.stringify(subject));
    }
  });

  test('matching follows NATS rules', () => {
    const cases: [string, string, boolean][] = [
      ['a.b', 'a.b', true],
      ['a.b', 'a.b.c', false],
      ['a.b', 'a', false],
      ['a.*', 'a.b', true],
      ['a.*', 'a', false],
      ['a.*', 'a.b.c', false],
      ['*.b', 'a.b', true],
      ['a.*.c', 'a.x.c', true],
      ['a.*.c', 'a.x.d', false],
      ['a.>', 'a', false],
      ['a.>', 'a.b', true],
      ['a.>', 'a.b.c', true],
      ['>', 'a', true],
      ['>', 'a.b', true],
      ['*.>', 'a', false],
      ['*.>', 'a.b', true],
      ['a*b', 'axb', false],
      ['a*b', 'a*b', true],
    ];
    for (const [pattern, subject, expected] of cases) assert.equal(subjectMatches(pattern, subject), expected, `${pattern} ~ ${subject}`);
  });
});

describe('MemoryFanOut', () => {
  runFanOutContract(async () => {
    const fanout = new MemoryFanOut();
    return { pub: fanout, sub: fanout };
  });

  test('the subscription index agrees with subjectMatches on random patterns', async () => {
    const fanout = new MemoryFanOut();
    const tokens = ['a', 'b', 'c'];
    let seed = 3;
    const pick = <T>(xs: T[]): T => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return xs[seed % xs.length]!;
    };
    const word = (n: number, extra: string[]) => Array.from({ length: n }, () => pick([...tokens, ...extra])).join('.');
    const patterns = Array.from({ length: 300 }, () => {
      const p = word(pick([1, 2, 3, 4]), ['*']);
      return pick([true, false]) ? `${p}.>` : p;
    });
    const hits = patterns.map(() => [] as string[]);
    const subs = patterns.map((p, i) => fanout.subscribe(p, (_, subject) => hits[i]!.push(subject)));
    // Unsubscribing half checks that removal leaves the others intact.
    for (let i = 0; i < patterns.length; i += 2) subs[i]!.unsubscribe();
    const subjects = Array.from({ length: 200 }, () => word(pick([1, 2, 3, 4, 5]), []));
    for (const subject of subjects) fanout.publish(subject, new Uint8Array());
    await fanout.flush();
    patterns.forEach((pattern, i) => {
      const expected = i % 2 === 0 ? [] : subjects.filter((s) => subjectMatches(pattern, s));
      assert.deepEqual(hits[i], expected, pattern);
    });
    await fanout.close();
  });

  test('flush resolves once queued messages are delivered; close delivers what is queued', async () => {
    const fanout = new MemoryFanOut();
    const got: number[] = [];
    fanout.subscribe('n', (data) => got.push(data[0]!));
    fanout.publish('n', new Uint8Array([1]));
    fanout.publish('n', new Uint8Array([2]));
    assert.deepEqual(got, []);
    await fanout.flush();
    assert.deepEqual(got, [1, 2]);
    fanout.publish('n', new Uint8Array([3]));
    await fanout.close();
    assert.deepEqual(got, [1, 2, 3]);
  });

  test('a handler that publishes again cannot starve timers and I/O', async () => {
    const fanout = new MemoryFanOut();
    let echoes = 0;
    fanout.subscribe('loop', (data) => {
      echoes++;
      fanout.publish('loop', data);
    });
    fanout.publish('loop', new Uint8Array([1]));
    await sleep(20);
    assert.ok(echoes > 0);
    await fanout.close().catch(() => {});
  });

  test('a throwing handler is counted and reported', async () => {
    const failures: string[] = [];
    const fanout = new MemoryFanOut({ onHandlerError: (err, subject) => failures.push(`${subject}: ${String(err)}`) });
    fanout.subscribe('e', () => {
      throw new Error('boom');
    });
    fanout.publish('e', new Uint8Array());
    await fanout.flush();
    assert.equal(fanout.handlerErrors, 1);
    assert.deepEqual(failures, ['e: Error: boom']);
    await fanout.close();
  });

  // How fast: bench/structures.ts (a figure, not an assert).
  test('publishing with many exact and wildcard subscriptions reaches exactly the matching ones', async () => {
    const fanout = new MemoryFanOut();
    let delivered = 0;
    for (let i = 0; i < 20_000; i++) fanout.subscribe(`live.t${i % 100}.campaign.c${i}`, () => delivered++);
    for (let i = 0; i < 2_000; i++) fanout.subscribe(`live.t${i}.>`, () => delivered++);
    for (let i = 0; i < 100_000; i++) fanout.publish(`live.t${i % 100}.campaign.c${i % 20_000}`, new Uint8Array(16));
    await fanout.flush();
    // Each publish matches one exact subscription and one wildcard (live.t<0..99>.>): 2 x 100,000.
    assert.equal(delivered, 200_000);
    await fanout.close();
  });
});

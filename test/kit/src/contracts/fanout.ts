import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { FanOut } from '@afterglow/core';
import { eventually, uniqueName } from '../services.js';

/** A publishing and a subscribing side: two connections for NATS, one instance twice in memory. */
export interface FanOutPair {
  pub: FanOut;
  sub: FanOut;
}

interface Case extends FanOutPair {
  /** A subject root unique to this run, so parallel and earlier runs cannot interfere. */
  root: string;
}

interface Received {
  subject: string;
  data: Uint8Array;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (d: Uint8Array): string => new TextDecoder().decode(d);

/**
 * The behaviour every FanOut adapter must share. Part of it: once flush() resolves on the
 * subscribing side, its earlier subscriptions are live, so a caller can subscribe, flush, then
 * read a snapshot without missing deltas in between. `open` returns undefined when skipped.
 */
export function runFanOutContract(open: (t: TestContext) => Promise<FanOutPair | undefined>): void {
  function contract(name: string, body: (c: Case) => Promise<void>): void {
    test(name, async (t) => {
      const pair = await open(t);
      // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
      if (!pair) return;
      try {
        await body({ ...pair, root: uniqueName('afterglow-test') });
      } finally {
        await pair.pub.close();
        if (pair.sub !== pair.pub) await pair.sub.close();
      }
    });
  }

  /** Subscribes, makes the subscription live, and collects what arrives. */
  async function listen(fanout: FanOut, pattern: string): Promise<{ got: Received[]; texts: () => string[]; unsubscribe: () => void }> {
    const got: Received[] = [];
    const subscription = fanout.subscribe(pattern, (data, subject) => got.push({ subject, data }));
    await fanout.flush();
    return { got, texts: () => got.map((m) => `${m.subject}=${decode(m.data)}`), unsubscribe: () => subscription.unsubscribe() };
  }

  async function until(count: () => number, n: number): Promise<void> {
    await eventually(() => (count() >= n ? true : undefined), 5_000, 5);
  }

  /**
   * Publishes `subjects` in order, then a sentinel on `sentinel`; once the sentinel arrives
   * (order is kept per publisher) anything else that was going to arrive has arrived.
   */
  async function publishThenSentinel(pub: FanOut, subjects: string[], sentinel: string, got: Received[], expected: number): Promise<void> {
    for (const subject of subjects) pub.publish(subject, text('m'));
    pub.publish(sentinel, text('end'));
    await pub.flush();
    await until(() => got.length, expected);
  }

  contract('an exact subscription gets its subject only', async ({ pub, sub, root }) => {
    const l = await listen(sub, `${root}.a.b`);
    pub.publish(`${root}.a.b`, text('first'));
    await publishThenSentinel(pub, [`${root}.a`, `${root}.a.b.c`, `${root}.a.c`, `${root}x.a.b`], `${root}.a.b`, l.got, 2);
    assert.deepEqual(l.texts(), [`${root}.a.b=first`, `${root}.a.b=end`]);
  });

  contract("'*' matches exactly one token, anywhere in the subject", async ({ pub, sub, root }) => {
    const last = await listen(sub, `${root}.*`);
    const middle = await listen(sub, `${root}.*.x`);
    pub.publish(`${root}.a`, text('1'));
    pub.publish(`${root}.b.x`, text('2'));
    await publishThenSentinel(pub, [root, `${root}.a.b`, `${root}.a.y`, `${root}.a.b.x`, `${root}.x.y.x`], `${root}.c.x`, middle.got, 2);
    pub.publish(`${root}.z`, text('end'));
    await until(() => last.got.length, 2);
    assert.deepEqual(last.texts(), [`${root}.a=1`, `${root}.z=end`]);
    assert.deepEqual(middle.texts(), [`${root}.b.x=2`, `${root}.c.x=end`]);
  });

  contract("'>' matches one or more trailing tokens", async ({ pub, sub, root }) => {
    const all = await listen(sub, `${root}.>`);
    const under = await listen(sub, `${root}.a.>`);
    pub.publish(`${root}.a`, text('1'));
    pub.publish(`${root}.a.b`, text('2'));
    pub.publish(`${root}.a.b.c.d`, text('3'));
    await publishThenSentinel(pub, [root, `${root}x.a`, `${root}.b.a`], `${root}.a.end`, under.got, 3);
    assert.deepEqual(under.texts(), [`${root}.a.b=2`, `${root}.a.b.c.d=3`, `${root}.a.end=end`]);
    await until(() => all.got.length, 5);
    assert.deepEqual(all.texts(), [`${root}.a=1`, `${root}.a.b=2`, `${root}.a.b.c.d=3`, `${root}.b.a=m`, `${root}.a.end=end`]);
  });

  contract('unsubscribe stops delivery', async ({ pub, sub, root }) => {
    const leaving = await listen(sub, `${root}.s`);
    const staying = await listen(sub, `${root}.s`);
    pub.publish(`${root}.s`, text('before'));
    await until(() => leaving.got.length, 1);
    leaving.unsubscribe();
    leaving.unsubscribe();
    await sub.flush();
    pub.publish(`${root}.s`, text('after'));
    pub.publish(`${root}.s`, text('end'));
    await until(() => staying.got.length, 3);
    assert.deepEqual(leaving.texts(), [`${root}.s=before`]);
  });

  contract('each subscriber gets 1,000 messages in publish order', async ({ pub, sub, root }) => {
    const exact = await listen(sub, `${root}.seq`);
    const wildcard = await listen(sub, `${root}.>`);
    for (let i = 0; i < 1_000; i++) pub.publish(`${root}.seq`, text(String(i)));
    await pub.flush();
    await until(() => Math.min(exact.got.length, wildcard.got.length), 1_000);
    const expected = Array.from({ length: 1_000 }, (_, i) => String(i));
    assert.deepEqual(exact.got.map((m) => decode(m.data)), expected);
    assert.deepEqual(wildcard.got.map((m) => decode(m.data)), expected);
  });

  contract('binary payloads arrive byte for byte, even if the publisher reuses its buffer', async ({ pub, sub, root }) => {
    const l = await listen(sub, `${root}.bin`);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const reused = Uint8Array.from([1, 2, 3]);
    pub.publish(`${root}.bin`, all);
    pub.publish(`${root}.bin`, new Uint8Array(0));
    pub.publish(`${root}.bin`, reused);
    reused.fill(9);
    await pub.flush();
    await until(() => l.got.length, 3);
    assert.deepEqual(l.got.map((m) => [...m.data]), [[...all], [], [1, 2, 3]]);
  });

  contract('every subscriber of a subject gets each message', async ({ pub, sub, root }) => {
    const first = await listen(sub, `${root}.both`);
    const second = await listen(sub, `${root}.both`);
    const onPublisher = await listen(pub, `${root}.both`);
    pub.publish(`${root}.both`, text('hello'));
    await pub.flush();
    await until(() => Math.min(first.got.length, second.got.length, onPublisher.got.length), 1);
    for (const l of [first, second, onPublisher]) assert.deepEqual(l.texts(), [`${root}.both=hello`]);
  });

  contract('a throwing handler neither breaks other subscribers nor loses its own later messages', async ({ pub, sub, root }) => {
    const seenByThrower: string[] = [];
    sub.subscribe(`${root}.e`, (data) => {
      seenByThrower.push(decode(data));
      throw new Error('handler failure');
    });
    const good = await listen(sub, `${root}.e`);
    for (const m of ['1', '2', '3']) pub.publish(`${root}.e`, text(m));
    await pub.flush();
    await until(() => good.got.length, 3);
    await until(() => seenByThrower.length, 3);
    assert.deepEqual(seenByThrower, ['1', '2', '3']);
  });

  contract('handlers never run inside publish()', async ({ pub, sub, root }) => {
    let publishing = false;
    const calls: boolean[] = [];
    sub.subscribe(`${root}.async`, () => calls.push(publishing));
    pub.subscribe(`${root}.async`, () => calls.push(publishing));
    await sub.flush();
    await pub.flush();
    publishing = true;
    pub.publish(`${root}.async`, text('x'));
    publishing = false;
    await until(() => calls.length, 2);
    assert.deepEqual(calls, [false, false]);
  });

  contract('invalid subjects are refused with a typed error', async ({ pub, root }) => {
    for (const subject of ['', `${root}..a`, `${root}.`, `.${root}`, `${root}.a b`, `${root}.a\tb`, `${root}.*`, `${root}.>`]) {
      assert.throws(() => pub.publish(subject, text('x')), { code: 'invalid_subject' }, `publish ${JSON.stringify(subject)}`);
    }
    for (const pattern of ['', `${root}..a`, `${root}.>.a`, `${root}.a b`, '>.a']) {
      assert.throws(() => pub.subscribe(pattern, () => {}), { code: 'invalid_subject' }, `subscribe ${JSON.stringify(pattern)}`);
    }
  });

  contract('a closed fan-out refuses publishes; close is idempotent', async ({ pub, root }) => {
    await pub.close();
    await pub.close();
    assert.throws(() => pub.publish(`${root}.x`, text('x')), { code: 'fanout_closed' });
    assert.throws(() => pub.subscribe(`${root}.x`, () => {}), { code: 'fanout_closed' });
  });
}

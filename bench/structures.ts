/**
 * bench/structures: the in-process adapters' hot paths, timed here instead of in their tests
 * (tests assert what they deliver; how fast is a figure). Prints figures; asserts nothing about speed.
 *
 *   node bench/dist/structures.js [--short]
 *
 *   1. memory fan-out: publishes to 100 tenants with 20,000 exact and 2,000 wildcard subscriptions
 *   2. memory hot state: score updates on a 100k-member sorted set, with a top-10 read every 1,000
 */
import { createFanOut, createHotState } from '@afterglow/core';
import { flag } from './args.js';

const SHORT = flag('short');

async function fanout(): Promise<void> {
  const publishes = SHORT ? 100_000 : 1_000_000;
  const f = await createFanOut({ kind: 'memory' });
  let delivered = 0;
  for (let i = 0; i < 20_000; i++) f.subscribe(`live.t${i % 100}.campaign.c${i}`, () => delivered++);
  for (let i = 0; i < 2_000; i++) f.subscribe(`live.t${i}.>`, () => delivered++);
  const started = performance.now();
  for (let i = 0; i < publishes; i++) f.publish(`live.t${i % 100}.campaign.c${i % 20_000}`, new Uint8Array(16));
  await f.flush();
  const ms = performance.now() - started;
  await f.close();
  console.log(`memory fan-out: ${publishes.toLocaleString('en')} publishes, ${delivered.toLocaleString('en')} deliveries in ${ms.toFixed(0)} ms (${Math.round(publishes / (ms / 1000)).toLocaleString('en')} publishes/s)`);
}

async function sortedSet(): Promise<void> {
  const updates = SHORT ? 200_000 : 1_000_000;
  const state = await createHotState({ kind: 'memory' });
  const started = performance.now();
  await state.zadd('board', Array.from({ length: 100_000 }, (_, i) => ({ member: `asset-${i}`, score: (i * 7_919) % 100_000 })));
  for (let i = 0; i < updates; i++) {
    await state.zadd('board', [{ member: `asset-${(i * 31) % 100_000}`, score: i }]);
    if (i % 1_000 === 0) await state.zrange('board', 0, 9, { reverse: true });
  }
  const ms = performance.now() - started;
  await state.close();
  console.log(`memory hot state: 100k-member sorted set, ${updates.toLocaleString('en')} score updates in ${ms.toFixed(0)} ms (${((ms * 1000) / updates).toFixed(2)} µs each)`);
}

console.log(`== bench/structures${SHORT ? ' (short)' : ''}`);
await fanout();
await sortedSet();

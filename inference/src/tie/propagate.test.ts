import assert from 'node:assert/strict';
import { test } from 'node:test';
import { propagateHumanTie } from './propagate.js';

const ads = [
  { ad: 'a1', candidates: [{ master: 'M', score: 0.9 }, { master: 'X', score: 0.5 }] },
  { ad: 'a2', candidates: [{ master: 'X', score: 0.95 }, { master: 'Y', score: 0.9 }, { master: 'Z', score: 0.8 }, { master: 'W', score: 0.75 }, { master: 'M', score: 0.7 }] },
  { ad: 'a3', candidates: [{ master: 'X', score: 0.95 }, { master: 'Y', score: 0.9 }, { master: 'Z', score: 0.8 }, { master: 'W', score: 0.75 }, { master: 'V', score: 0.72 }, { master: 'M', score: 0.71 }] },
  { ad: 'a4', candidates: [{ master: 'M', score: 0.6 }] },
  { ad: 'a5', candidates: [{ master: 'M', score: 0.61 }] },
  { ad: 'a6', candidates: [{ master: 'M', score: 0.99 }] },
  // unsorted input: ranked by score
  { ad: 'a7', candidates: [{ master: 'A', score: 0.1 }, { master: 'B', score: 0.2 }, { master: 'C', score: 0.3 }, { master: 'D', score: 0.4 }, { master: 'E', score: 0.5 }, { master: 'M', score: 0.65 }] },
];

test('ties every other ad whose top-5 holds the master with score > 0.60', () => {
  const ties = propagateHumanTie('a1', 'M', ads);
  assert.deepEqual(
    ties.map((t) => [t.ad, t.rank]),
    [['a2', 5], ['a5', 1], ['a6', 1], ['a7', 1]],
  );
  // a1 (the tied ad) never; a3: rank 6; a4: 0.60 is not > 0.60
});

test('rule and eligibility are configurable', () => {
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, { topN: 6 }).map((t) => t.ad), ['a2', 'a3', 'a5', 'a6', 'a7']);
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, { minScore: 0.9 }).map((t) => t.ad), ['a6']);
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, {}, (ad) => ad !== 'a6').map((t) => t.ad), ['a2', 'a5', 'a7']);
  assert.throws(() => propagateHumanTie('a1', 'M', ads, { topN: 0 }), RangeError);
  assert.throws(() => propagateHumanTie('a1', 'M', ads, { minScore: 2 }), RangeError);
});

test('rule bounds are inclusive: topN 1, minScore 0 and 1 are valid; just outside is refused', () => {
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, { topN: 1 }).map((t) => t.ad), ['a5', 'a6', 'a7']);
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, { minScore: 0, topN: 1 }).map((t) => t.ad), ['a4', 'a5', 'a6', 'a7']);
  assert.deepEqual(propagateHumanTie('a1', 'M', ads, { minScore: 1 }), [], 'no score is above 1');
  assert.throws(() => propagateHumanTie('a1', 'M', ads, { minScore: -0.01 }), RangeError);
  assert.throws(() => propagateHumanTie('a1', 'M', ads, { minScore: 1.01 }), RangeError);
  assert.throws(() => propagateHumanTie('a1', 'M', ads, { topN: 1.5 }), RangeError);
});

test('equal scores keep their given order when the top-N cut falls between them', () => {
  // Three candidates at 0.8: M is the third given, so rank 3; a top-2 cut leaves it out.
  const tied = [{ ad: 'b1', candidates: [{ master: 'P', score: 0.8 }, { master: 'Q', score: 0.8 }, { master: 'M', score: 0.8 }, { master: 'R', score: 0.9 }] }];
  assert.deepEqual(propagateHumanTie('x', 'M', tied, { topN: 4 }).map((t) => [t.ad, t.rank]), [['b1', 4]]);
  assert.deepEqual(propagateHumanTie('x', 'M', tied, { topN: 3 }), []);
  const first = [{ ad: 'b2', candidates: [{ master: 'M', score: 0.8 }, { master: 'P', score: 0.8 }, { master: 'Q', score: 0.8 }] }];
  assert.deepEqual(propagateHumanTie('x', 'M', first, { topN: 1 }).map((t) => [t.ad, t.rank]), [['b2', 1]]);
});

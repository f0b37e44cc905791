import assert from 'node:assert/strict';
import { test } from 'node:test';
import { averagePrecision, retrievalReport } from './metrics.js';

test('recall@k, mAP (1/rank per ad), auto-tie precision and coverage', () => {
  const truth = new Map([['a', 'M1'], ['b', 'M2'], ['c', 'M3'], ['d', 'M4']]);
  const r = retrievalReport(
    [
      { ad: 'a', masters: ['M1', 'M2'], scores: [0.9, 0.1], autoTie: 'M1' },
      { ad: 'b', masters: ['M1', 'M2'], scores: [0.8, 0.7], autoTie: 'M1' },
      { ad: 'c', masters: ['M9', 'M8', 'M7', 'M6', 'M5', 'M3'], scores: [0.6, 0.5, 0.4, 0.3, 0.2, 0.1], autoTie: null },
      { ad: 'd', masters: ['M9'], scores: [0.5], autoTie: null },
    ],
    truth,
  );
  assert.equal(r.recallAt1, 0.25);
  assert.equal(r.recallAt5, 0.5);
  assert.equal(r.recallAt20, 0.75);
  assert.ok(Math.abs(r.mAP - (1 + 1 / 2 + 1 / 6 + 0) / 4) < 1e-12);
  assert.equal(r.autoTies, 2);
  assert.equal(r.autoTiePrecision, 0.5);
  assert.equal(r.autoTieCoverage, 0.5);
  assert.ok(r.pairAp !== undefined && r.pairAp > 0 && r.pairAp < 1);
});

test('pair AP: perfect separation is 1, unscored positives count as misses', () => {
  assert.equal(averagePrecision([{ s: 0.9, pos: true }, { s: 0.1, pos: false }], 1), 1);
  assert.equal(averagePrecision([{ s: 0.9, pos: true }, { s: 0.1, pos: false }], 2), 0.5);
});

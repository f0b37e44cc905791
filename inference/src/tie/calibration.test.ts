import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import {
  candidateFeatures,
  chooseAutoTie,
  isAutoTie,
  autoTieOf,
  autoTiePolicy,
  chooseThreshold,
  DEFAULT_CALIBRATION,
  fitLogistic,
  loadCalibration,
  scoreCandidates,
  scoreFeatures,
  wilsonLower,
  FEATURE_NAMES,
  type Calibration,
} from './calibration.js';

test('scores are in [0, 1] and monotone in cosine and in inliers (stored and default calibration)', () => {
  for (const cal of [DEFAULT_CALIBRATION, loadCalibration()]) {
    let prev = -1;
    for (let inl = 0; inl <= 200; inl += 5) {
      const s = scoreCandidates(cal, [{ cosine: 0.8, matches: Math.max(inl, 10), inliers: inl }, { cosine: 0.7, matches: 10, inliers: 3 }])[0]!;
      assert.ok(s >= 0 && s <= 1);
      assert.ok(s >= prev - 1e-12, `inliers ${inl}: ${s} < ${prev}`);
      prev = s;
    }
    prev = -1;
    for (let c = 0.3; c <= 1; c += 0.05) {
      const s = scoreCandidates(cal, [{ cosine: c, matches: 20, inliers: 12 }, { cosine: 0.5, matches: 10, inliers: 2 }])[0]!;
      assert.ok(s >= prev - 1e-12);
      prev = s;
    }
    prev = -1;
    for (let d = -0.4; d <= 1; d += 0.1) {
      const s = scoreCandidates(cal, [{ cosine: 0.6, matches: 10, inliers: 0, dense: d }, { cosine: 0.62, matches: 10, inliers: 0, dense: 0.5 }])[0]!;
      assert.ok(s >= prev - 1e-12, `dense ${d}: ${s} < ${prev}`);
      prev = s;
    }
    for (const w of cal.weights) assert.ok(w >= 0, 'every weight is non-negative (monotone calibration)');
  }
});

test('features: gap to the best cosine, inlier lead over the best other candidate', () => {
  const f = candidateFeatures([
    { cosine: 0.9, matches: 40, inliers: 30 },
    { cosine: 0.8, matches: 10, inliers: 4 },
    { cosine: 0.7, matches: 0, inliers: 0 },
  ]);
  assert.equal(f.length, 3);
  assert.deepEqual(f[0]!.slice(0, 2), [0.9, 0]);
  assert.ok(Math.abs(f[1]![1]! + 0.1) < 1e-12);
  assert.ok(Math.abs(f[0]![3]! - (Math.log1p(30) - Math.log1p(4))) < 1e-12);
  assert.ok(Math.abs(f[1]![3]! - Math.max(-3, Math.log1p(4) - Math.log1p(30))) < 1e-12);
  assert.equal(f[2]![4], 0);
  assert.deepEqual(f.map((x) => x[5]), [0, 0, 0], 'not checked densely: 0');
  const g = candidateFeatures([{ cosine: 0.9, matches: 0, inliers: 0, dense: 0.7 }, { cosine: 0.8, matches: 0, inliers: 0, dense: -0.2 }]);
  assert.deepEqual(g.map((x) => x[5]), [0.7, 0], 'dense clipped to [0, 1]');
  // The stored calibration weighs the dense check: a better placement raises the score.
  const cal = loadCalibration();
  assert.ok(cal.features.includes('dense'));
  const [hi, lo] = [0.9, 0.3].map((d) => scoreCandidates(cal, [{ cosine: 0.6, matches: 0, inliers: 0, dense: d }])[0]!);
  assert.ok(hi! > lo!, `${hi} > ${lo}`);
});

test('logistic fit recovers a separable signal and keeps weights >= 0 when monotone', () => {
  const rng = mulberry32(1);
  const X: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const a = rng();
    const b = rng();
    X.push([a, b]);
    // true model: 6a - 2b - 2 (b hurts)
    y.push(rng() < 1 / (1 + Math.exp(-(6 * a - 2 * b - 2))) ? 1 : 0);
  }
  const free = fitLogistic(X, y, { monotone: false, l2: 0 });
  assert.ok(Math.abs(free.weights[0]! - 6) < 1.2 && Math.abs(free.weights[1]! + 2) < 1.0, JSON.stringify(free));
  const mono = fitLogistic(X, y, { monotone: true, l2: 0 });
  assert.equal(mono.weights[1], 0);
  assert.ok(mono.weights[0]! > 3);
  const cal: Calibration = { version: 1, features: ['cosine', 'cosineGap'], weights: mono.weights, bias: mono.bias, autoTieThreshold: 0.9, targetPrecision: 0.995 };
  const x = (a: number) => [a, 0, 0, 0, 0, 0];
  assert.ok(scoreFeatures(cal, x(0.9)) > scoreFeatures(cal, x(0.1)));
  assert.equal(FEATURE_NAMES.length, 6);
});

test('threshold: lowest score reaching the target precision (max coverage); never when unreachable', () => {
  const top1 = [
    { score: 0.99, correct: true },
    { score: 0.97, correct: true },
    { score: 0.95, correct: false },
    { score: 0.9, correct: true },
    { score: 0.8, correct: true },
  ];
  assert.deepEqual(chooseThreshold(top1, 1), { threshold: 0.97, precision: 1, coverage: 0.4, tied: 2, wrong: 0 });
  assert.equal(chooseThreshold(top1, 0.8).threshold, 0.8);
  assert.equal(chooseThreshold([{ score: 0.9, correct: false }], 0.995).threshold, 1.0001);
  assert.ok(wilsonLower(100, 100) > 0.96 && wilsonLower(100, 100) < 1);
});

test('auto-tie: threshold and margin over the runner-up (indistinguishable masters go to a human)', () => {
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2), true);
  assert.equal(isAutoTie([0.9, 0.85], 0.8, 0.2), false);
  assert.equal(isAutoTie([0.7], 0.8), false);
  assert.equal(isAutoTie([], 0), false);
  // Wrong top-1s come with a close runner-up: a margin lets the threshold drop and coverage grow.
  const top = [
    { score: 0.95, second: 0.9, correct: false },
    { score: 0.9, second: 0.1, correct: true },
    { score: 0.8, second: 0.05, correct: true },
    { score: 0.6, second: 0.55, correct: false },
    { score: 0.5, second: 0.0, correct: true },
  ];
  const c = chooseAutoTie(top, 1);
  assert.equal(c.precision, 1);
  assert.ok(c.margin >= 0.1 && c.margin <= 0.4);
  assert.equal(c.threshold, 0.5);
  assert.equal(c.coverage, 0.6);
});

test('auto-tie: a confident candidate without keypoint evidence goes to a human', () => {
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2, 0, 8), false);
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2, 8, 8), true);
  // A wrong top-1 that beat its runner-up clearly but verified with no inliers (a sibling frame):
  // with the floor the threshold can drop below it and cover more.
  const top = [
    { score: 0.95, second: 0.1, correct: false, inliers: 0 },
    { score: 0.9, second: 0.1, correct: true, inliers: 40 },
    { score: 0.7, second: 0.1, correct: true, inliers: 12 },
    { score: 0.6, second: 0.1, correct: true, inliers: 3 },
  ];
  const without = chooseAutoTie(top, 1);
  const withFloor = chooseAutoTie(top, 1, 8);
  assert.equal(without.tied, 0, 'the unverified wrong tie sits on top: nothing reaches precision 1 without the floor');
  assert.equal(withFloor.minInliers, 8);
  assert.equal(withFloor.tied, 2);
  assert.equal(withFloor.threshold, 0.7);
  assert.equal(withFloor.precision, 1);
});

test('auto-tie: keypoints on a shared region do not outvote clearly better appearance', () => {
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2, 20, 8, 0.3, 0.25), false, 'the tied master looks 0.3 less like the ad than the best candidate');
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2, 20, 8, 0.1, 0.25), true);
  assert.equal(isAutoTie([0.9, 0.1], 0.8, 0.2, 20, 8, 0.3), true, 'no limit by default');
  // A sibling frame that verified on the overlap (many inliers, low cosine) tops the scores.
  const top = [
    { score: 0.95, second: 0.1, correct: false, inliers: 28, cosineGap: 0.3 },
    { score: 0.9, second: 0.1, correct: true, inliers: 40, cosineGap: 0 },
    { score: 0.7, second: 0.1, correct: true, inliers: 12, cosineGap: 0.05 },
  ];
  assert.equal(chooseAutoTie(top, 1, 8).tied, 0, 'without the limit nothing reaches precision 1');
  const limited = chooseAutoTie(top, 1, 8, 0.25);
  assert.equal(limited.maxCosineGap, 0.25);
  assert.equal(limited.tied, 2);
  assert.equal(limited.precision, 1);
});

test('autoTieOf: the calibration\'s rule with overrides, the cosine gap over all the ad\'s candidates', () => {
  const cal = { ...DEFAULT_CALIBRATION, autoTieThreshold: 0.8, autoTieMargin: 0.2, autoTieMinInliers: 8, autoTieMaxCosineGap: 0.25 };
  const policy = autoTiePolicy(cal);
  assert.deepEqual(policy, { threshold: 0.8, margin: 0.2, minInliers: 8, maxCosineGap: 0.25 });
  assert.equal(autoTiePolicy(cal, { threshold: 0.5 }).threshold, 0.5);
  assert.equal(autoTiePolicy({ ...DEFAULT_CALIBRATION }).maxCosineGap, Number.POSITIVE_INFINITY, 'no limit unless the calibration sets one');
  const candidates = [
    { score: 0.9, cosine: 0.5, inliers: 20, matches: 30 },
    { score: 0.1, cosine: 0.6, inliers: 0, matches: 5 },
  ];
  assert.equal(autoTieOf(policy, candidates), true, 'gap 0.1 among these candidates');
  assert.equal(autoTieOf(policy, candidates, 0.8), false, 'gap 0.3 to a better candidate outside the list');
  assert.equal(autoTieOf(policy, []), false);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import { PlacementPosteriors, betaSample } from './posterior.js';

test('beta sampling has the right mean, also for shapes below one', () => {
  const random = mulberry32(3);
  for (const [a, b] of [[2, 8], [0.5, 0.5], [30, 970]] as const) {
    let sum = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) sum += betaSample(a, b, random);
    assert.ok(Math.abs(sum / n - a / (a + b)) < 0.01, `Beta(${a}, ${b}): ${sum / n}`);
  }
});

test('posteriors: the better creative gets the share; a fading one loses it; state is bounded', () => {
  const p = new PlacementPosteriors({ halfLifeMs: 60_000, priorStrength: 20, maxPlacements: 3, maxAssetsPerPlacement: 4, random: mulberry32(11) });
  const t0 = 1_000_000_000;
  for (let i = 0; i < 1000; i++) {
    p.add('t', 'p', 'a', 'impression', t0);
    p.add('t', 'p', 'b', 'impression', t0);
    if (i % 5 === 0) p.add('t', 'p', 'a', 'click', t0);
    if (i % 20 === 0) p.add('t', 'p', 'b', 'like', t0);
  }
  const s = p.get('t', 'p')!;
  let shares = p.shares(p.posteriors(s, t0));
  assert.ok(shares.a! > 0.95, JSON.stringify(shares));
  // Ten minutes on (ten half-lives): a gets impressions without engagement, b as before.
  const t1 = t0 + 10 * 60_000;
  for (let i = 0; i < 1000; i++) {
    p.add('t', 'p', 'a', 'impression', t1);
    p.add('t', 'p', 'b', 'impression', t1);
    if (i % 20 === 0) p.add('t', 'p', 'b', 'share', t1);
  }
  shares = p.shares(p.posteriors(s, t1));
  assert.ok(shares.b! > 0.95, JSON.stringify(shares));
  // A prediction sets the prior of an asset without data.
  p.declare('t', 'p', ['new']);
  p.setPrediction('t', 'new', 0.2);
  const post = p.posteriors(s, t1).find((x) => x.asset_id === 'new')!;
  assert.ok(Math.abs(post.mean - 0.2) < 1e-9);
  // Bounds: 4 assets per placement, 3 placements.
  p.declare('t', 'p', ['x', 'y']);
  assert.equal(s.assets.size, 4);
  for (const q of ['q1', 'q2', 'q3']) p.touch('t', q);
  assert.equal(p.size, 3);
  assert.equal(p.get('t', 'p'), undefined, 'the least recently touched placement went first');
});

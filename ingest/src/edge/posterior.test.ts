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

test('placements are bounded per tenant: a tenant that floods evicts only its own, least recently touched first', () => {
  const evicted: string[] = [];
  const p = new PlacementPosteriors({ halfLifeMs: 60_000, priorStrength: 20, maxPlacements: 100, maxPlacementsPerTenant: 10, maxAssetsPerPlacement: 4, onEvict: (t, r) => evicted.push(`${t}/${r}`) });
  const t0 = 1_000_000_000;
  for (let i = 0; i < 5; i++) p.add('a', `a-${i}`, 'x', 'click', t0);
  for (let i = 0; i < 10_001; i++) p.add('b', `b-${i}`, 'x', 'impression', t0);
  assert.equal(p.placementsOf('a'), 5, "the other tenant's placements are all there");
  for (let i = 0; i < 5; i++) assert.equal(p.get('a', `a-${i}`)?.assets.get('x')?.engagements, 1);
  assert.equal(p.placementsOf('b'), 10);
  assert.ok(p.get('b', 'b-10000') && !p.get('b', 'b-9990'), 'the flooding tenant keeps its ten most recent');
  assert.equal(evicted.length, 10_001 - 10);
  assert.ok(evicted.every((e) => e === 'b/tenant'));
  // Recency is per touch: b's oldest, touched again, survives the next ones.
  p.touch('b', 'b-9991');
  for (let i = 0; i < 9; i++) p.touch('b', `b-new-${i}`);
  assert.ok(p.get('b', 'b-9991'));
  assert.equal(p.get('b', 'b-9992'), undefined);
});

test('the global bound takes from the tenant holding the most, never from a small tenant first', () => {
  const evicted: string[] = [];
  const p = new PlacementPosteriors({ halfLifeMs: 60_000, priorStrength: 20, maxPlacements: 20, maxPlacementsPerTenant: 8, maxAssetsPerPlacement: 4, onEvict: (t, r) => evicted.push(`${t}/${r}`) });
  for (let i = 0; i < 2; i++) p.touch('small', `s-${i}`);
  for (let i = 0; i < 8; i++) p.touch('big1', `p-${i}`);
  for (let i = 0; i < 8; i++) p.touch('big2', `p-${i}`);
  assert.equal(p.size, 18);
  // Many tenants of one placement each: past 20 in all, the largest tenants shrink, the small one never.
  for (let i = 0; i < 12; i++) p.touch(`t${i}`, 'only');
  assert.equal(p.size, 20);
  assert.equal(p.placementsOf('small'), 2);
  for (let i = 0; i < 12; i++) assert.equal(p.placementsOf(`t${i}`), 1, `t${i}`);
  assert.equal(p.placementsOf('big1') + p.placementsOf('big2'), 6);
  assert.ok(Math.abs(p.placementsOf('big1') - p.placementsOf('big2')) <= 1, 'the two largest shrink in turn');
  assert.ok(evicted.every((e) => e.startsWith('big') && e.endsWith('/total')), evicted.join());
  // Within a tenant the least recently touched goes: big1's first placements are gone, its last are there.
  assert.equal(p.get('big1', 'p-0'), undefined);
  assert.ok(p.get('big1', 'p-7'));
  assert.deepEqual(p.largestTenants(2).map(([, n]) => n), [3, 3]);
});

test('predictions are bounded per tenant too; assets per placement as before', () => {
  const p = new PlacementPosteriors({ halfLifeMs: 60_000, priorStrength: 20, maxPlacements: 100, maxPlacementsPerTenant: 2, maxAssetsPerPlacement: 3 });
  p.setPrediction('a', 'keep', 0.3);
  for (let i = 0; i < 1000; i++) p.setPrediction('b', `asset-${i}`, 0.1);
  assert.equal(p.predictionsOf('b'), 8, 'four per allowed placement');
  assert.equal(p.predictionsOf('a'), 1);
  p.declare('a', 'p', ['keep']);
  const post = p.posteriors(p.get('a', 'p')!, 0).find((x) => x.asset_id === 'keep')!;
  assert.ok(Math.abs(post.mean - 0.3) < 1e-9, "a's prediction survived b's flood");
  p.declare('a', 'p', ['u', 'v', 'w']);
  assert.equal(p.get('a', 'p')!.assets.size, 3);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import { mergeRankings, packVectors, searchTopK, TopHeap } from './similarity.js';

function randomVectors(n: number, d: number, rng: () => number): Float32Array[] {
  return Array.from({ length: n }, () => Float32Array.from({ length: d }, () => rng() * 2 - 1));
}

/** The definition, by brute force in float64. */
function bruteForce(masters: Float32Array[], views: Float32Array[][], mNorm: number[], vNorm: number[][], vpm = 1) {
  const unit = (v: Float32Array) => {
    const n = Math.hypot(...v);
    return Array.from(v, (x) => x / n);
  };
  const M = masters.map(unit);
  return views.map((vs, a) => {
    const V = vs.map(unit);
    const rows = [];
    for (let m = 0; m < M.length / vpm; m++) {
      let cos = -Infinity;
      let d2 = Infinity;
      for (let u = 0; u < vpm; u++) {
        for (let v = 0; v < V.length; v++) {
          const c = V[v]!.reduce((s, x, i) => s + x * M[m * vpm + u]![i]!, 0);
          cos = Math.max(cos, c);
          const nq = vNorm[a]![v]!;
          const nm = mNorm[m * vpm + u]!;
          d2 = Math.min(d2, nq * nq + nm * nm - 2 * nq * nm * c);
        }
      }
      rows.push({ m, cos, euc: Math.sqrt(Math.max(0, d2)) });
    }
    return {
      cosine: [...rows].sort((x, y) => y.cos - x.cos || x.m - y.m),
      euclidean: [...rows].sort((x, y) => x.euc - y.euc || x.m - y.m),
    };
  });
}

test('top-K equals brute force (cosine and euclidean, best over views), across block sizes', () => {
  const rng = mulberry32(7);
  const d = 37;
  const masters = randomVectors(203, d, rng);
  const ads = Array.from({ length: 9 }, () => randomVectors(6, d, rng));
  const M = packVectors(masters);
  const Q = packVectors(ads.flat());
  const expected = bruteForce(masters, ads, Array.from(M.norms!), ads.map((_, a) => Array.from(Q.norms!.subarray(a * 6, a * 6 + 6))));
  for (const [blockMasters, blockAds] of [[1024, 16], [7, 2], [2, 1]] as const) {
    const got = searchTopK(M, Q, 6, 25, { blockMasters, blockAds });
    got.forEach((g, a) => {
      const e = expected[a]!;
      assert.deepEqual(Array.from(g.cosine.index), e.cosine.slice(0, 25).map((r) => r.m), `cosine order, ad ${a}, blocks ${blockMasters}/${blockAds}`);
      g.cosine.value.forEach((v, i) => assert.ok(Math.abs(v - e.cosine[i]!.cos) < 1e-4));
      assert.deepEqual(Array.from(g.euclidean.index), e.euclidean.slice(0, 25).map((r) => r.m), `euclidean order, ad ${a}`);
      g.euclidean.value.forEach((v, i) => assert.ok(Math.abs(v - e.euclidean[i]!.euc) < 1e-3));
    });
  }
});

test('master views: best over ad views x master views, equal to brute force', () => {
  const rng = mulberry32(11);
  const masters = randomVectors(40 * 2, 16, rng);
  const ads = Array.from({ length: 3 }, () => randomVectors(6, 16, rng));
  const M = packVectors(masters);
  const Q = packVectors(ads.flat());
  const expected = bruteForce(masters, ads, Array.from(M.norms!), ads.map((_, a) => Array.from(Q.norms!.subarray(a * 6, a * 6 + 6))), 2);
  const got = searchTopK(M, Q, 6, 10, { viewsPerMaster: 2, blockMasters: 6 });
  got.forEach((g, a) => assert.deepEqual(Array.from(g.cosine.index), expected[a]!.cosine.slice(0, 10).map((r) => r.m)));
});

test('cosine vs euclidean lists: identical for unit embeddings, different with raw norms', () => {
  const rng = mulberry32(3);
  const masters = randomVectors(60, 8, rng);
  const ads = [randomVectors(6, 8, rng)];
  const Q = packVectors(ads.flat());
  // Unit norms (what the embedder returns): d = sqrt(2 - 2 cos), so the rankings coincide.
  const unit = packVectors(masters);
  const r1 = searchTopK({ ...unit, norms: undefined }, { ...Q, norms: undefined }, 6, 60)[0]!;
  assert.deepEqual(Array.from(r1.cosine.index), Array.from(r1.euclidean.index));
  r1.cosine.value.forEach((c, i) => assert.ok(Math.abs(r1.euclidean.value[i]! - Math.sqrt(2 - 2 * c)) < 1e-4));
  // Raw magnitudes (e.g. un-normalized ResNet features as in the paper): the lists differ.
  const scaled = masters.map((v, i) => v.map((x) => x * (1 + (i % 7))));
  const raw = packVectors(scaled);
  const r2 = searchTopK(raw, Q, 6, 60)[0]!;
  assert.notDeepEqual(Array.from(r2.cosine.index), Array.from(r2.euclidean.index));
  assert.deepEqual(Array.from(r2.cosine.index), Array.from(r1.cosine.index)); // cosine ignores magnitude
});

test('k larger than the collection returns every master; k = 0 returns none', () => {
  const rng = mulberry32(5);
  const M = packVectors(randomVectors(5, 4, rng));
  const Q = packVectors(randomVectors(6, 4, rng));
  assert.equal(searchTopK(M, Q, 6, 500)[0]!.cosine.index.length, 5);
  assert.equal(searchTopK(M, Q, 6, 0)[0]!.cosine.index.length, 0);
  assert.throws(() => searchTopK(M, packVectors(randomVectors(5, 4, rng)), 6, 3), RangeError);
});

test('TopHeap keeps the best k with ties to the lower index', () => {
  const h = new TopHeap(3, true);
  [[5, 0.5], [1, 0.9], [2, 0.9], [7, 0.1], [0, 0.9], [3, 0.95]].forEach(([i, v]) => h.push(i!, v!));
  assert.deepEqual(Array.from(h.sorted().index), [3, 0, 1]);
  const l = new TopHeap(2, false);
  [[4, 2], [1, 3], [0, 2], [9, 1]].forEach(([i, v]) => l.push(i!, v!));
  assert.deepEqual(Array.from(l.sorted().index), [9, 0]);
});

test('mergeRankings of two exact top-k searches equals one search over both view sets', () => {
  const rng = mulberry32(11);
  const d = 12;
  const nM = 40;
  // Masters have 2 "base" rows and 3 "strip" rows; the ad has 4 views, of which views 1 and 3 also meet strips.
  const base = randomVectors(nM * 2, d, rng);
  const strips = randomVectors(nM * 3, d, rng);
  const ad = randomVectors(4, d, rng);
  const k = 7;
  // Unit rows (no original norms), as the tie engine searches.
  const unitSet = (v: Float32Array[]) => ({ ...packVectors(v), norms: undefined });
  const a = searchTopK(unitSet(base), unitSet(ad), 4, k, { viewsPerMaster: 2 })[0]!;
  const b = searchTopK(unitSet(strips), unitSet([ad[1]!, ad[3]!]), 2, k, { viewsPerMaster: 3 })[0]!;
  const merged = mergeRankings(a, b, k, [1, 3]);
  // Reference: every master's best over both view sets, sorted.
  const unit = (v: Float32Array) => Array.from(v, (x) => x / Math.hypot(...v));
  const dot = (x: number[], y: number[]) => x.reduce((s, xi, i) => s + xi * y[i]!, 0);
  const ref = Array.from({ length: nM }, (_, m) => {
    let best = -Infinity;
    let view = -1;
    for (let u = 0; u < 2; u++) for (let v = 0; v < 4; v++) { const c = dot(unit(ad[v]!), unit(base[m * 2 + u]!)); if (c > best) { best = c; view = v; } } // prettier-ignore
    for (let u = 0; u < 3; u++) for (const v of [1, 3]) { const c = dot(unit(ad[v]!), unit(strips[m * 3 + u]!)); if (c > best) { best = c; view = v; } } // prettier-ignore
    return { m, best, view };
  }).sort((x, y) => y.best - x.best || x.m - y.m);
  assert.deepEqual(Array.from(merged.cosine.index), ref.slice(0, k).map((r) => r.m));
  ref.slice(0, k).forEach((r, i) => {
    assert.ok(Math.abs(merged.cosine.value[i]! - r.best) < 1e-5);
    assert.equal(merged.cosine.view[i], r.view, 'view indices are the ad\'s, not the strip query\'s');
  });
  // Unit rows: the euclidean list is the cosine list, ascending distances.
  assert.deepEqual(Array.from(merged.euclidean.index), Array.from(merged.cosine.index));
  for (let i = 1; i < k; i++) assert.ok(merged.euclidean.value[i]! >= merged.euclidean.value[i - 1]!);
  // Some master must have come from the strips for the test to mean anything.
  const fromStrips = ref.slice(0, k).filter((r) => { let bb = -Infinity; for (let u = 0; u < 2; u++) for (let v = 0; v < 4; v++) bb = Math.max(bb, dot(unit(ad[v]!), unit(base[r.m * 2 + u]!))); return bb < r.best; }); // prettier-ignore
  assert.ok(fromStrips.length > 0);
});

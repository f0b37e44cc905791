import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import type { Features } from './orb.js';
import { OrbVoteIndex } from './orb-index.js';

function randomFeatures(n: number, rng: () => number): Features {
  const desc = Uint8Array.from({ length: n * 32 }, () => Math.floor(rng() * 256));
  return { n, xy: new Float32Array(2 * n), desc, width: 100, height: 100 };
}

/** Flips `bits` random bits of each descriptor (a noisy re-detection). */
function perturb(f: Features, bits: number, rng: () => number, keep: number): Features {
  const n = Math.floor(f.n * keep);
  const desc = f.desc.slice(0, n * 32);
  for (let k = 0; k < n; k++) for (let b = 0; b < bits; b++) {
    const bit = Math.floor(rng() * 256);
    desc[k * 32 + (bit >> 3)] = desc[k * 32 + (bit >> 3)]! ^ (1 << (bit & 7));
  }
  return { ...f, n, desc, xy: new Float32Array(2 * n) };
}

test('descriptor votes find the master an ad was cut from (noisy, partial descriptors)', () => {
  const rng = mulberry32(9);
  const masters = Array.from({ length: 50 }, () => randomFeatures(300, rng));
  const index = new OrbVoteIndex();
  masters.forEach((m, i) => index.add(i, m));
  assert.equal(index.descriptors, 50 * 300);
  for (const target of [0, 17, 49]) {
    const ad = perturb(masters[target]!, 12, rng, 0.3); // 30 % of its keypoints, 12 bits flipped each
    const votes = index.vote(ad, randomFeatures(200, rng));
    const best = votes.indexOf(Math.max(...votes));
    assert.equal(best, target);
    assert.ok(votes[target]! >= 50, `votes ${votes[target]}`);
    const others = Array.from(votes).filter((_, i) => i !== target);
    assert.ok(Math.max(...others) <= 3);
  }
});

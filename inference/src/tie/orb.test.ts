import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import sharp from 'sharp';
import { photosOrSkip } from '@afterglow/testkit/images';
import { DEFAULT_ORB_PARAMS, describeSize, extractFeatures, flipGrayX, loadCv, matchAd, MIN_FEATURE_SIDE } from './orb.js';
import { OrbPool } from './orb-pool.js';

async function gray(input: Buffer, role: 'master' | 'ad', extract?: { left: number; top: number; width: number; height: number }, flop = false) {
  let img = sharp(input);
  if (extract) img = img.extract(extract);
  if (flop) img = img.flop();
  const buf = await img.png().toBuffer();
  const meta = await sharp(buf).metadata();
  const { width, height } = describeSize(meta.width!, meta.height!, role, DEFAULT_ORB_PARAMS);
  const g = await sharp(buf).resize(width, height, { fit: 'fill' }).greyscale().raw().toBuffer();
  return { gray: new Uint8Array(g), width, height };
}

test('ORB + RANSAC: a crop (and a flipped crop) of a photo verifies against it, not against another photo', async (t) => {
  const photos = photosOrSkip(t, 2, ['python3-skimage']);
  if (!photos) return;
  const cv = await loadCv();
  const p = DEFAULT_ORB_PARAMS;
  const a = readFileSync(photos.find((x) => x.id.endsWith('astronaut.png'))?.path ?? photos[0]!.path);
  const b = readFileSync(photos.find((x) => x.id.endsWith('coffee.png'))?.path ?? photos[1]!.path);
  const describe = (g: { gray: Uint8Array; width: number; height: number }) => extractFeatures(cv, g.gray, g.width, g.height, p);
  const masterA = describe(await gray(a, 'master'));
  const masterB = describe(await gray(b, 'master'));
  assert.ok(masterA.n > 100 && masterA.desc.length === masterA.n * 32 && masterA.xy.length === masterA.n * 2);
  for (const flop of [false, true]) {
    const g = await gray(a, 'ad', { left: 100, top: 60, width: 300, height: 250 }, flop);
    const ad = describe(g);
    const adFlipped = extractFeatures(cv, flipGrayX(g.gray, g.width, g.height), g.width, g.height, p);
    const [onA, onB] = matchAd(cv, ad, adFlipped, [masterA, masterB], p);
    assert.ok(onA!.inliers >= 25, `crop${flop ? ' (flipped)' : ''} on its master: ${JSON.stringify(onA)}`);
    assert.equal(onA!.flipped, flop);
    assert.ok(onB!.inliers < 10, `crop on another photo: ${JSON.stringify(onB)}`);
    // Described on demand: the same verdict, and the flipped ad is described only when the flip is tried.
    let described = 0;
    const lazy = () => {
      described++;
      return adFlipped;
    };
    const [lazyA] = matchAd(cv, ad, lazy, [masterA, masterB], p);
    assert.deepEqual(lazyA, onA);
    assert.equal(described, flop ? 1 : 0, flop ? 'nothing verified as is: the flip was tried' : 'verified as is: the flipped ad was never described');
  }
});

test('flipGrayX mirrors rows', () => {
  assert.deepEqual(Array.from(flipGrayX(Uint8Array.from([1, 2, 3, 4, 5, 6]), 3, 2)), [3, 2, 1, 6, 5, 4]);
});

test('tiny views (a 1-px side aborted OpenCV.js ORB) get no keypoints and leave the module usable', async () => {
  const cv = await loadCv();
  const p = DEFAULT_ORB_PARAMS;
  // A thin ad is described at adMaxSide along its long side: 1 px across for a 1 x 2000 strip.
  assert.deepEqual(describeSize(1, 2000, 'ad', p), { width: 1, height: 1024 });
  const checker = (w: number, h: number) => Uint8Array.from({ length: w * h }, (_, i) => (((i % w) >> 3) + (Math.floor(i / w) >> 3)) % 2 ? 255 : 0);
  for (const [w, h] of [[1, 1], [1, 64], [64, 1], [1, 1024], [2, 64], [MIN_FEATURE_SIDE - 1, 500]] as const) {
    const f = extractFeatures(cv, checker(w, h), w, h, p);
    assert.deepEqual([f.n, f.xy.length, f.desc.length, f.width, f.height], [0, 0, 0, w, h], `${w}x${h}`);
    // Matching against a featureless image is 0 inliers, not an error.
    const [r] = matchAd(cv, f, f, [f], p);
    assert.equal(r!.inliers, 0);
  }
  const big = extractFeatures(cv, checker(256, 256), 256, 256, p);
  assert.ok(big.n > 0, 'ORB still works after the tiny inputs');
});

test('a worker whose OpenCV.js aborted is replaced, so later work is not run on a corrupt wasm instance', async () => {
  const pool = new OrbPool(1);
  try {
    const checker = Uint8Array.from({ length: 256 * 256 }, (_, i) => (((i % 256) >> 3) + (Math.floor(i / 256) >> 3)) % 2 ? 255 : 0);
    const good = await pool.features(checker.slice(), 256, 256, DEFAULT_ORB_PARAMS, false);
    assert.ok(good.features.n > 0);
    // nFeatures 1e12 makes ORB throw a C++ exception, which this build turns into Aborted(); ~6-10 of
    // them in one instance corrupt its memory for good.
    for (let i = 0; i < 10; i++) {
      await assert.rejects(pool.features(checker.slice(), 256, 256, { ...DEFAULT_ORB_PARAMS, nFeatures: 1e12 }, false), /Aborted/);
    }
    const again = await pool.features(checker.slice(), 256, 256, DEFAULT_ORB_PARAMS, false);
    assert.equal(again.features.n, good.features.n);
    assert.deepEqual(again.features.desc, good.features.desc);
  } finally {
    await pool.close();
  }
});

/**
 * Dense verification on real photos (python3-skimage): ads cut the ways creative teams cut them
 * (cover crop under a copy block, mirrored and graded; a photo panel beside the copy; a photo
 * contained in a leaderboard) score their master above a sibling frame of the same picture and above
 * other pictures; the mosaic gives each master what a call of its own gives; the worker pool agrees.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import sharp from 'sharp';
import { photosOrSkip } from '@afterglow/testkit/images';
import { adParts, DEFAULT_DENSE_PARAMS, denseScores, thumbSize, type Thumb } from './dense.js';
import { loadCv } from './orb.js';
import { OrbPool } from './orb-pool.js';

async function thumb(input: Buffer, role: 'master' | 'ad'): Promise<Thumb> {
  const m = await sharp(input).metadata();
  const { width, height } = thumbSize(m.width!, m.height!, role);
  const data = await sharp(input).resize(width, height, { fit: 'fill' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
  return { data: new Uint8Array(data), width, height };
}

const block = (w: number, h: number, colour: string) => sharp({ create: { width: w, height: h, channels: 3, background: colour } }).png().toBuffer();

/** Masters: two overlapping frames of one picture (60 % wide each, left and right) and another picture. */
async function masters(photos: Array<{ id: string; path: string }>) {
  const p = readFileSync(photos.find((x) => x.id.endsWith('chelsea.png'))?.path ?? photos[0]!.path);
  const other = readFileSync(photos.find((x) => x.id.endsWith('coffee.png'))?.path ?? photos[1]!.path);
  const m = await sharp(p).metadata();
  const fw = Math.round(m.width! * 0.6);
  const left = await sharp(p).extract({ left: 0, top: 0, width: fw, height: m.height! }).png().toBuffer();
  const right = await sharp(p).extract({ left: m.width! - fw, top: 0, width: fw, height: m.height! }).png().toBuffer();
  return { left, right, other: await sharp(other).png().toBuffer(), width: fw, height: m.height! };
}

test('dense: a cover crop under a copy block, mirrored and graded, scores its master above its sibling frame and another photo', async (t) => {
  const photos = photosOrSkip(t, 2, ['python3-skimage']);
  if (!photos) return;
  const cv = await loadCv();
  const ms = await masters(photos);
  // 300x250 from the left frame's part that the right frame does not hold, zoomed, with a copy block over a quarter.
  const crop = await sharp(ms.left).extract({ left: 0, top: Math.round(ms.height * 0.15), width: Math.round(ms.width * 0.6), height: Math.round(ms.width * 0.5) }).resize(300, 250, { fit: 'fill' }).toBuffer();
  const ad = await sharp(crop)
    .flop()
    .modulate({ brightness: 1.1, saturation: 0.8, hue: 8 })
    .composite([{ input: await block(300, 70, '#1c2a5e'), left: 0, top: 170 }])
    .jpeg({ quality: 60 })
    .toBuffer();
  const adThumb = await thumb(ad, 'ad');
  const thumbs = [await thumb(ms.left, 'master'), await thumb(ms.right, 'master'), await thumb(ms.other, 'master')];
  const s = denseScores(cv, adThumb, thumbs);
  assert.ok(s[0]! > 0.6, `true master ${s[0]}`);
  assert.ok(s[0]! > s[1]! + 0.1, `true master ${s[0]} vs sibling frame ${s[1]}`);
  assert.ok(s[0]! > s[2]! + 0.1, `true master ${s[0]} vs another photo ${s[2]}`);
  // Told the ad is mirrored, the search keeps what it found; told it is not, it loses the true placement.
  const mirrored = denseScores(cv, adThumb, thumbs, DEFAULT_DENSE_PARAMS, true);
  const asIs = denseScores(cv, adThumb, thumbs, DEFAULT_DENSE_PARAMS, false);
  assert.ok(Math.abs(mirrored[0]! - s[0]!) < 1e-6, `mirrored only: ${mirrored[0]} vs both ${s[0]}`);
  assert.ok(asIs[0]! < s[0]! - 0.1, `as is only: ${asIs[0]} vs both ${s[0]}`);
});

test('dense: a photo panel beside the copy, and a photo contained in a leaderboard, score their master first', async (t) => {
  const photos = photosOrSkip(t, 2, ['python3-skimage']);
  if (!photos) return;
  const cv = await loadCv();
  const ms = await masters(photos);
  const thumbs = [await thumb(ms.left, 'master'), await thumb(ms.right, 'master'), await thumb(ms.other, 'master')];
  // Split: the left frame cover-cropped into a 150x250 panel, a flat copy panel with a CTA on the right.
  const panel = await sharp(ms.left).resize(150, 250, { fit: 'cover' }).toBuffer();
  const split = await sharp({ create: { width: 300, height: 250, channels: 3, background: '#f4f1ea' } })
    .composite([{ input: panel, left: 0, top: 0 }, { input: await block(110, 40, '#e0402a'), left: 170, top: 180 }])
    .jpeg({ quality: 70 })
    .toBuffer();
  const s1 = denseScores(cv, await thumb(split, 'ad'), thumbs);
  assert.ok(s1[0]! > Math.max(s1[1]!, s1[2]!), `split: ${Array.from(s1).join(', ')}`);
  // Contain: the whole left frame at 86 % of the leaderboard's height, on a brand colour.
  const h = Math.round(90 * 0.86);
  const small = await sharp(ms.left).resize(Math.round((ms.width * h) / ms.height), h, { fit: 'fill' }).toBuffer();
  const contain = await sharp({ create: { width: 728, height: 90, channels: 3, background: '#2a4d3b' } })
    .composite([{ input: small, left: 420, top: 6 }])
    .jpeg({ quality: 70 })
    .toBuffer();
  const s2 = denseScores(cv, await thumb(contain, 'ad'), thumbs);
  assert.ok(s2[0]! > 0.8, `contain: true master ${s2[0]}`);
  assert.ok(s2[0]! > Math.max(s2[1]!, s2[2]!) + 0.1, `contain: ${Array.from(s2).join(', ')}`);
});

test('dense: masters side by side in one mosaic score as each would alone; the worker pool gives the same', async (t) => {
  const photos = photosOrSkip(t, 2, ['python3-skimage']);
  if (!photos) return;
  const cv = await loadCv();
  const ms = await masters(photos);
  const thumbs = [await thumb(ms.right, 'master'), await thumb(ms.other, 'master'), await thumb(ms.left, 'master')];
  const ad = await thumb(await sharp(ms.left).extract({ left: 10, top: 40, width: Math.round(ms.width * 0.7), height: 90 }).resize(728, 90, { fit: 'fill' }).jpeg().toBuffer(), 'ad');
  const together = denseScores(cv, ad, thumbs);
  thumbs.forEach((m, i) => {
    const alone = denseScores(cv, ad, [m])[0]!;
    assert.ok(Math.abs(alone - together[i]!) < 1e-3, `master ${i}: alone ${alone}, in the mosaic ${together[i]}`);
  });
  assert.equal(adParts(728, 90).length, 4, 'a thin ad also uses its ends');
  assert.equal(adParts(300, 250).length, 4, "a near-square ad: halves along and across");
  assert.equal(adParts(300, 250, { ...DEFAULT_DENSE_PARAMS, crossHalves: false }).length, 2);
  const pool = new OrbPool(1);
  try {
    const viaPool = await pool.dense(ad, thumbs, DEFAULT_DENSE_PARAMS);
    assert.deepEqual(Array.from(viaPool), Array.from(together));
  } finally {
    await pool.close();
  }
  assert.throws(() => denseScores(cv, ad, [{ data: new Uint8Array(40 * 20 * 3), width: 40, height: 20 }]), /24 px high/);
  assert.throws(() => denseScores(cv, ad, [{ data: new Uint8Array(10), width: 40, height: 24 }]), /needs 2880 bytes, got 10/);
  assert.throws(() => denseScores(cv, { ...ad, data: ad.data.subarray(0, 100) }, thumbs), /RGB thumbnail needs/);
});

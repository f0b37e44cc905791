import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { mulberry32 } from '@afterglow/core';
import { photosOrSkip } from '@afterglow/testkit/images';
import { BlurBatcher, blurStacked } from './blur-batch.js';
import { DEFAULT_IMAGE_LIMITS, decodeImage, preprocess } from './image.js';

/** Noise with hard edges and flat areas: every row and column differs, so any mix-up between stacked images shows. */
function pattern(w: number, h: number, c: number, seed: number): Uint8Array {
  const rng = mulberry32(seed);
  const b = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) b[(y * w + x) * c + k] = (x + y) % 37 < 18 ? Math.floor(rng() * 256) : (x * 3 + y * 5 + k * 40 + seed) & 255;
  return b;
}

const alone = async (im: Uint8Array, w: number, h: number, c: number, sigma: number) =>
  new Uint8Array(await sharp(im, { raw: { width: w, height: h, channels: c as 3 } }).blur(sigma).raw().toBuffer());

describe('stacked blur', () => {
  it('gives the same bytes as blurring each image alone', async () => {
    for (const [w, h, c, sigma] of [[224, 224, 3, 1.2], [64, 40, 3, 2.5], [299, 299, 3, 1.2], [17, 5, 3, 1.2]] as const) {
      const images = Array.from({ length: 5 }, (_, k) => pattern(w, h, c, k + 1));
      const stacked = await blurStacked(images, w, h, c, sigma);
      for (let k = 0; k < images.length; k++) {
        const ref = await alone(images[k]!, w, h, c, sigma);
        assert.ok(Buffer.from(stacked[k]!).equals(Buffer.from(ref)), `${w}x${h}x${c} sigma ${sigma}: image ${k} differs`);
        assert.ok(!Buffer.from(ref).equals(Buffer.from(images[k]!)), 'the blur changed something');
      }
    }
  });

  it('equals the blur inside the resize pipeline on real photo crops (what the embedder feeds the model)', async (t) => {
    const photos = photosOrSkip(t, 2);
    if (!photos) return;
    const spec = { size: [224, 224] as [number, number], fit: 'fill' as const, kernel: 'lanczos3' as const };
    for (const p of photos.slice(0, 2)) {
      const raw = await decodeImage(new Uint8Array(readFileSync(p.path)), DEFAULT_IMAGE_LIMITS, { maxSide: 1024 });
      const crops = [
        { left: 0, top: 0, width: raw.width, height: raw.height },
        { left: 0, top: Math.floor(raw.height * 0.4), width: raw.width, height: Math.max(1, Math.floor(raw.width / 8)) },
        { left: Math.floor(raw.width * 0.3), top: 0, width: Math.floor(raw.width * 0.2), height: raw.height },
      ];
      const inPipeline = await Promise.all(crops.map((crop) => preprocess({ raw, crop }, { ...spec, blurSigma: 1.2 }, DEFAULT_IMAGE_LIMITS)));
      const sharpOnly = await Promise.all(crops.map((crop) => preprocess({ raw, crop }, { ...spec, blurSigma: 0 }, DEFAULT_IMAGE_LIMITS)));
      const stacked = await blurStacked(sharpOnly, 224, 224, 3, 1.2);
      stacked.forEach((s, i) => assert.ok(Buffer.from(s).equals(Buffer.from(inPipeline[i]!)), `${p.id} crop ${i}`));
    }
  });

  it('a batcher answers each concurrent caller with its own image, in stacks', async () => {
    const batcher = new BlurBatcher(1, 4);
    const images = Array.from({ length: 11 }, (_, k) => pattern(32, 24, 3, 100 + k));
    const out = await Promise.all(images.map((im) => batcher.blur(im, 32, 24, 3, 1.2)));
    for (let k = 0; k < images.length; k++) assert.ok(Buffer.from(out[k]!).equals(Buffer.from(await alone(images[k]!, 32, 24, 3, 1.2))), `caller ${k}`);
    // Mixed shapes never share a stack.
    const mixed = await Promise.all([batcher.blur(pattern(8, 8, 3, 1), 8, 8, 3, 1.2), batcher.blur(pattern(16, 8, 3, 2), 16, 8, 3, 1.2)]);
    assert.equal(mixed[0]!.byteLength, 8 * 8 * 3);
    assert.equal(mixed[1]!.byteLength, 16 * 8 * 3);
    await assert.rejects(blurStacked([new Uint8Array(10)], 4, 4, 3, 1.2), /expected 4x4x3/);
    await assert.rejects(blurStacked([new Uint8Array(16)], 4, 4, 1, 1.2), /RGB/);
  });
});

/**
 * Colour histograms of views: unit norm, crop- and mirror-stable for one photo, far apart for photos of
 * other palettes, grey images accepted; the fused rows keep unit norm and mix the two similarities.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeImage } from '../models/image.js';
import type { RawImage } from '../models/types.js';
import { photosOrSkip } from '@afterglow/testkit/images';
import { colourDims, colourHistogram, fuseColour } from './colour.js';

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const whole = (r: RawImage) => ({ left: 0, top: 0, width: r.width, height: r.height });

describe('colour histograms', () => {
  it('are unit vectors; a crop, a mirror and a graded copy of a photo stay closer to it than other photos', async (t) => {
    const photos = photosOrSkip(t, 4);
    if (!photos) return;
    const raws = await Promise.all(photos.slice(0, 4).map((p) => decodeImage(readFileSync(p.path), undefined, { maxSide: 512 })));
    const hs = raws.map((r) => colourHistogram(r, whole(r)));
    for (const h of hs) {
      assert.equal(h.length, colourDims());
      assert.ok(Math.abs(dot(h, h) - 1) < 1e-5);
    }
    const r0 = raws[0]!;
    const crop = colourHistogram(r0, { left: Math.round(r0.width * 0.15), top: Math.round(r0.height * 0.1), width: Math.round(r0.width * 0.7), height: Math.round(r0.height * 0.8) });
    const mirroredBuf = await sharp(r0.data, { raw: { width: r0.width, height: r0.height, channels: r0.channels } }).flop().raw().toBuffer();
    const mirrored: RawImage = { ...r0, data: new Uint8Array(mirroredBuf) };
    const gradedBuf = await sharp(r0.data, { raw: { width: r0.width, height: r0.height, channels: r0.channels } }).modulate({ brightness: 1.08, saturation: 0.9 }).raw().toBuffer();
    const graded: RawImage = { ...r0, data: new Uint8Array(gradedBuf) };
    const mirroredSim = dot(colourHistogram(mirrored, whole(mirrored)), hs[0]!);
    assert.ok(mirroredSim > 0.97, `a histogram barely sees mirroring (only through its sample grid): ${mirroredSim}`);
    const others = Math.max(...hs.slice(1).map((h) => dot(h, hs[0]!)));
    assert.ok(dot(crop, hs[0]!) > others, `crop ${dot(crop, hs[0]!).toFixed(3)} vs other photos ${others.toFixed(3)}`);
    assert.ok(dot(colourHistogram(graded, whole(graded)), hs[0]!) > others, 'a lightly graded copy stays closer than other photos');
  });

  it('take grey images and uniform colours', () => {
    const grey: RawImage = { data: new Uint8Array(64 * 64).fill(128), width: 64, height: 64, channels: 1 };
    const red: RawImage = { data: new Uint8Array(64 * 64 * 3).map((_, i) => (i % 3 === 0 ? 220 : 20)), width: 64, height: 64, channels: 3 };
    const hg = colourHistogram(grey, whole(grey));
    const hr = colourHistogram(red, whole(red));
    assert.ok(Math.abs(dot(hg, hg) - 1) < 1e-6 && Math.abs(dot(hr, hr) - 1) < 1e-6);
    assert.equal(dot(hg, hr), 0, 'mid grey and saturated red share no bin');
  });

  it('fuse with descriptors into unit rows whose dot product mixes both similarities', () => {
    const unit = (xs: number[]) => {
      const n = Math.hypot(...xs);
      return Float32Array.from(xs, (x) => x / n);
    };
    const d = [unit([1, 2, 3]), unit([3, 2, 1])];
    const c = [unit([1, 0, 1, 0]), unit([1, 1, 0, 0])];
    const w = 0.35;
    const fused = fuseColour(Float32Array.from([...d[0]!, ...d[1]!]), 3, Float32Array.from([...c[0]!, ...c[1]!]), 4, w);
    const a = fused.subarray(0, 7);
    const b = fused.subarray(7, 14);
    assert.ok(Math.abs(dot(a, a) - 1) < 1e-6 && Math.abs(dot(b, b) - 1) < 1e-6);
    assert.ok(Math.abs(dot(a, b) - (dot(d[0]!, d[1]!) + w * dot(c[0]!, c[1]!)) / (1 + w)) < 1e-6);
    assert.throws(() => fuseColour(new Float32Array(6), 3, new Float32Array(4), 4, w), RangeError);
  });
});

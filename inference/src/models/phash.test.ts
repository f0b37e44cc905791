/**
 * DCT pHash: bit-exact on a known input, stable under resizing and re-encoding, far apart for
 * unrelated photos, and with the same refusal rules as the embedder.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { photosOrSkip, shootGroup } from '@afterglow/testkit/images';
import { decodeImage } from './image.js';
import { hammingDistance, phash, phashFromPixels, phashToHex } from './phash.js';
import { ImageRejectedError } from './types.js';

describe('phash', () => {
  it('hamming distance and hex', () => {
    assert.equal(hammingDistance(0n, 0n), 0);
    assert.equal(hammingDistance(0n, (1n << 64n) - 1n), 64);
    assert.equal(hammingDistance(0b1011n, 0b0001n), 2);
    assert.equal(hammingDistance(-1n, 0n), 64); // treated as 64-bit unsigned
    assert.equal(phashToHex(0xabcn), '0000000000000abc');
  });

  it('follows the imagehash definition on a synthetic gradient', () => {
    // Horizontal ramp: only the DC and the first horizontal frequencies are large.
    const px = new Uint8Array(1024);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) px[y * 32 + x] = x * 8;
    const h = phashFromPixels(px);
    // DC (bit 63) is above the median; the first row of 8 coefficients holds the ramp's energy.
    assert.equal(h >> 63n, 1n);
    assert.equal(phashFromPixels(px), h, 'deterministic');
    const flipped = new Uint8Array(1024);
    for (let i = 0; i < 1024; i++) flipped[i] = 255 - px[i]!;
    assert.ok(hammingDistance(h, phashFromPixels(flipped)) >= 2);
  });

  it('is stable under resize/JPEG and separates unrelated photos', async (t) => {
    const photos = photosOrSkip(t, 4);
    if (!photos) return;
    const hashes = await Promise.all(photos.map((p) => phash(readFileSync(p.path))));
    for (const [i, p] of photos.entries()) {
      const src = readFileSync(p.path);
      const m = await sharp(src).metadata();
      const copy = await sharp(src).resize(Math.round(m.width! * 0.5)).jpeg({ quality: 70 }).toBuffer();
      const d = hammingDistance(hashes[i]!, await phash(copy));
      assert.ok(d <= 6, `${p.id}: resized JPEG copy at distance ${d}`);
      for (const [j, q] of photos.entries()) {
        if (j <= i || shootGroup(p) === shootGroup(q)) continue;
        const u = hammingDistance(hashes[i]!, hashes[j]!);
        assert.ok(u >= 12, `${p.id} vs ${q.id}: unrelated photos at distance ${u}`);
      }
    }
    // Crops of raw pixels hash like crops of the bytes.
    const bytes = readFileSync(photos[0]!.path);
    const raw = await decodeImage(bytes);
    const crop = { left: 0, top: 0, width: Math.floor(raw.width / 2), height: raw.height };
    assert.ok(hammingDistance(await phash({ bytes, crop }), await phash({ raw, crop })) <= 2);
  });

  it('refuses hostile input like the embedder', async () => {
    await assert.rejects(phash(Buffer.from('<svg/>')), (e: unknown) => e instanceof ImageRejectedError && e.reason === 'unknown_format');
  });
});

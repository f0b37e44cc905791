/**
 * Hostile and awkward images: everything here must be refused with a typed `ImageRejectedError`
 * before any large allocation (decompression bombs, lying headers) or during decode (truncation),
 * and legitimate oddities (EXIF rotation, greyscale, alpha, 16-bit, animated GIF) must work.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { clampCrop, DEFAULT_IMAGE_LIMITS, decodeImage, preprocess, probeImage, sniffFormat } from './image.js';
import { ImageRejectedError, type ImageRejectReason } from './types.js';

const SPEC = { size: [224, 224] as [number, number], fit: 'fill' as const, kernel: 'lanczos3' as const, blurSigma: 1.2 };

/** A PNG from raw parts: any IHDR, any IDAT payload (already zlib-compressed or not). */
function png(width: number, height: number, idat: Buffer, colorType = 0): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = colorType; // 0 greyscale
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

async function noiseJpeg(w = 640, h = 480): Promise<Buffer> {
  const px = Buffer.alloc(w * h * 3);
  let s = 7;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = ((i % (w * 3)) / 6 + ((s >>> 24) & 63)) & 255;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

async function rejects(p: Promise<unknown>, reasons: ImageRejectReason | ImageRejectReason[]): Promise<void> {
  const want = Array.isArray(reasons) ? reasons : [reasons];
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ImageRejectedError, `expected ImageRejectedError, got ${String(err)}`);
    assert.equal(err.code, 'image_rejected');
    assert.ok(want.includes(err.reason), `reason ${err.reason} (${err.message}), expected ${want.join('|')}`);
    return true;
  });
}

describe('image intake limits', () => {
  it('sniffs only the accepted formats', () => {
    assert.equal(sniffFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'jpeg');
    assert.equal(sniffFormat(png(1, 1, deflateSync(Buffer.from([0, 0])))), 'png');
    assert.equal(sniffFormat(Buffer.from('GIF89a')), 'gif');
    assert.equal(sniffFormat(Buffer.from('RIFF\0\0\0\0WEBPVP8 ')), 'webp');
    for (const s of ['<svg xmlns="http://www.w3.org/2000/svg"></svg>', '%PDF-1.7', '<html>', 'PK\x03\x04', '8BPS', 'BM6\0', '']) {
      assert.equal(sniffFormat(Buffer.from(s, 'latin1')), undefined, s);
    }
  });

  it('refuses non-images, empty and oversized inputs before decoding', async () => {
    await rejects(probeImage(Buffer.alloc(0), DEFAULT_IMAGE_LIMITS), 'empty');
    await rejects(probeImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"/>'), DEFAULT_IMAGE_LIMITS), 'unknown_format');
    await rejects(probeImage(Buffer.from('%PDF-1.4\n1 0 obj'), DEFAULT_IMAGE_LIMITS), 'unknown_format');
    await rejects(probeImage(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 0x41)]), DEFAULT_IMAGE_LIMITS), ['corrupt', 'truncated']);
    const jpg = await noiseJpeg(64, 64);
    await rejects(probeImage(jpg, { ...DEFAULT_IMAGE_LIMITS, maxBytes: 1024 }), 'too_many_bytes');
  });

  it('refuses a real PNG decompression bomb (64 Mpixel in 62 kB) from its header, without allocating it', async () => {
    const w = 8000;
    const h = 8000;
    const bomb = png(w, h, deflateSync(Buffer.alloc((w + 1) * h), { level: 9 }));
    assert.ok(bomb.length < 100_000, `bomb is ${bomb.length} bytes`);
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    await rejects(probeImage(bomb, DEFAULT_IMAGE_LIMITS), 'too_many_pixels');
    await rejects(preprocess(bomb, SPEC, DEFAULT_IMAGE_LIMITS), 'too_many_pixels');
    await rejects(decodeImage(bomb), 'too_many_pixels');
    const ms = performance.now() - t0;
    const grew = (process.memoryUsage().rss - rss0) / 1e6;
    assert.ok(ms < 500, `refusal took ${ms} ms`);
    assert.ok(grew < 48, `rss grew ${grew.toFixed(1)} MB (the decoded bomb would be 64 MB)`);
  });

  it('refuses headers that lie about huge dimensions (PNG and JPEG)', async () => {
    await rejects(probeImage(png(60_000, 60_000, deflateSync(Buffer.alloc(60_001))), DEFAULT_IMAGE_LIMITS), 'too_large_side');
    await rejects(probeImage(png(16_000, 16_000, deflateSync(Buffer.alloc(16_001))), DEFAULT_IMAGE_LIMITS), 'too_many_pixels');
    // JPEG whose SOF0 claims 65000 x 65000.
    const jpg = Buffer.from(await noiseJpeg(32, 32));
    let sof = -1;
    for (let i = 2; i < jpg.length - 9; i++) if (jpg[i] === 0xff && (jpg[i + 1] === 0xc0 || jpg[i + 1] === 0xc2)) {
      sof = i;
      break;
    }
    assert.ok(sof > 0, 'no SOF marker');
    jpg.writeUInt16BE(65000, sof + 5);
    jpg.writeUInt16BE(65000, sof + 7);
    await rejects(probeImage(jpg, DEFAULT_IMAGE_LIMITS), 'too_large_side');
  });

  it('refuses truncated files with reason truncated', async () => {
    const jpg = await noiseJpeg();
    await rejects(preprocess(jpg.subarray(0, Math.floor(jpg.length * 0.6)), SPEC, DEFAULT_IMAGE_LIMITS), 'truncated');
    const p = await sharp(jpg).png().toBuffer();
    await rejects(preprocess(p.subarray(0, Math.floor(p.length * 0.6)), SPEC, DEFAULT_IMAGE_LIMITS), 'truncated');
    // Header intact, pixel data cut short: a PNG claiming 2000x1500 with one row of data.
    await rejects(preprocess(png(2000, 1500, deflateSync(Buffer.alloc(2001))), SPEC, DEFAULT_IMAGE_LIMITS), ['truncated', 'corrupt']);
    const webp = await sharp(jpg).webp().toBuffer();
    await rejects(preprocess(webp.subarray(0, Math.floor(webp.length * 0.5)), SPEC, DEFAULT_IMAGE_LIMITS), ['truncated', 'corrupt']);
  });

  it('validates crops', () => {
    assert.deepEqual(clampCrop({ left: -10, top: 5, width: 50, height: 500 }, 100, 100), { left: 0, top: 5, width: 40, height: 95 });
    assert.throws(() => clampCrop({ left: 200, top: 0, width: 10, height: 10 }, 100, 100), (e: unknown) => e instanceof ImageRejectedError && e.reason === 'bad_crop');
    assert.throws(() => clampCrop({ left: 0, top: 0, width: Number.NaN, height: 10 }, 100, 100), (e: unknown) => e instanceof ImageRejectedError && e.reason === 'bad_crop');
  });

  it('accepts legitimate oddities: EXIF rotation, greyscale, alpha, 16-bit, animated GIF, CMYK', async () => {
    const rotated = await sharp({ create: { width: 100, height: 50, channels: 3, background: '#ff0000' } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const probed = await probeImage(rotated, DEFAULT_IMAGE_LIMITS);
    assert.deepEqual([probed.width, probed.height], [50, 100]);
    const raw = await decodeImage(rotated);
    assert.deepEqual([raw.width, raw.height, raw.channels], [50, 100, 3]);
    const inputs = [
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#808080' } }).greyscale().png().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).toColourspace('rgb16').png().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).gif().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).toColourspace('cmyk').jpeg().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).tiff().toBuffer(),
      await sharp({ create: { width: 40, height: 30, channels: 3, background: '#336699' } }).webp().toBuffer(),
    ];
    for (const [i, b] of inputs.entries()) {
      const px = await preprocess(b, SPEC, DEFAULT_IMAGE_LIMITS);
      assert.equal(px.length, 224 * 224 * 3, `input ${i}`);
    }
    // Transparent pixels become white.
    const transparent = await preprocess(inputs[1]!, { ...SPEC, blurSigma: 0 }, DEFAULT_IMAGE_LIMITS);
    assert.deepEqual([...transparent.subarray(0, 3)], [255, 255, 255]);
    // decodeImage can downscale while decoding.
    const big = await sharp({ create: { width: 3000, height: 1000, channels: 3, background: '#123456' } }).jpeg().toBuffer();
    const small = await decodeImage(big, DEFAULT_IMAGE_LIMITS, { maxSide: 600 });
    assert.deepEqual([small.width, small.height], [600, 200]);
  });
});

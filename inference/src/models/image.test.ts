/**
 * Hostile and awkward images: everything here must be refused with a typed `ImageRejectedError`
 * before any large allocation (decompression bombs, lying headers) or during decode (truncation),
 * and legitimate oddities (EXIF rotation, greyscale, alpha, 16-bit, animated GIF) must work.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { rawPng as png } from '@afterglow/testkit/fixtures';
import { checkContainer, clampCrop, DEFAULT_IMAGE_LIMITS, decodeImage, JPEG_MAX_PADDING, preprocess, probeImage, sniffFormat } from './image.js';
import { ImageRejectedError, type ImageRejectReason } from './types.js';

const SPEC = { size: [224, 224] as [number, number], fit: 'fill' as const, kernel: 'lanczos3' as const, blurSigma: 1.2 };

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
    await rejects(probeImage(bomb, DEFAULT_IMAGE_LIMITS), 'too_many_pixels');
    await rejects(preprocess(bomb, SPEC, DEFAULT_IMAGE_LIMITS), 'too_many_pixels');
    await rejects(decodeImage(bomb), 'too_many_pixels');
    // Refused from the header: memory, not time, shows the bomb was never decoded.
    const grew = (process.memoryUsage().rss - rss0) / 1e6;
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
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#808080' } }).greyscale().png().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#336699' } }).toColourspace('rgb16').png().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#336699' } }).gif().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#336699' } }).toColourspace('cmyk').jpeg().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#336699' } }).tiff().toBuffer(),
      await sharp({ create: { width: 48, height: 36, channels: 3, background: '#336699' } }).webp().toBuffer(),
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

describe('image container checks: truncated files, polyglots and tiny images', () => {
  const gradient = (w: number, h: number) => {
    const px = Buffer.alloc(w * h * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7) & 255;
    return sharp(px, { raw: { width: w, height: h, channels: 3 } });
  };
  const TAILS = ['PK\u0003\u0004\u0014\u0000zipdata', '<html><script>alert(1)</script></html>', '%PDF-1.4\n1 0 obj', 'GIF89a'];

  it('refuses images with a side under minSide (too_small) from the header, and honours the limit', async () => {
    for (const [w, h] of [[1, 1], [1, 64], [64, 1], [31, 200]] as const) {
      const b = png(w, h, deflateSync(Buffer.alloc((w + 1) * h)));
      await rejects(probeImage(b, DEFAULT_IMAGE_LIMITS), 'too_small');
      await rejects(decodeImage(b), 'too_small');
      await rejects(preprocess(b, SPEC, DEFAULT_IMAGE_LIMITS), 'too_small');
    }
    const ok = png(32, 32, deflateSync(Buffer.alloc(33 * 32)));
    assert.deepEqual([(await probeImage(ok, DEFAULT_IMAGE_LIMITS)).width, (await decodeImage(ok)).height], [32, 32]);
    // Configurable (IMAGE_MIN_SIDE), and limits without minSide get the default.
    await probeImage(png(8, 8, deflateSync(Buffer.alloc(72))), { ...DEFAULT_IMAGE_LIMITS, minSide: 8 });
    await rejects(probeImage(ok, { maxBytes: 1e6, maxPixels: 1e6, maxSide: 1000, minSide: 33 }), 'too_small');
    await rejects(probeImage(png(16, 16, deflateSync(Buffer.alloc(17 * 16))), { maxBytes: 1e6, maxPixels: 1e6, maxSide: 1000 }), 'too_small');
  });

  it('refuses PNG polyglots (data after IEND) and PNGs without IEND, before decoding', async () => {
    const good = await gradient(64, 48).png().toBuffer();
    await probeImage(good, DEFAULT_IMAGE_LIMITS);
    for (const tail of TAILS) await rejects(probeImage(Buffer.concat([good, Buffer.from(tail, 'latin1')]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
    await rejects(probeImage(Buffer.concat([good, Buffer.alloc(1)]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
    // Missing IEND (the last 12 bytes), or cut anywhere inside a chunk.
    await rejects(probeImage(good.subarray(0, good.length - 12), DEFAULT_IMAGE_LIMITS), 'truncated');
    for (const cut of [1, 5, 13, 40, good.length - 30]) await rejects(probeImage(good.subarray(0, good.length - cut), DEFAULT_IMAGE_LIMITS), 'truncated');
    // A chunk whose type is not 4 letters (garbage where a chunk should start).
    const bad = Buffer.from(good);
    bad.write('\u0000\u0001\u0002\u0003', 12, 'latin1');
    await rejects(probeImage(bad, DEFAULT_IMAGE_LIMITS), 'corrupt');
    // Decompression bombs still get their own reason (the container is well formed).
    await rejects(probeImage(png(60_000, 60_000, deflateSync(Buffer.alloc(60_001))), DEFAULT_IMAGE_LIMITS), 'too_large_side');
  });

  it('refuses JPEGs with data after EOI or without EOI; tolerates padding and concatenated (MPF) images', async () => {
    const jpg = await noiseJpeg(64, 48);
    const progressive = await gradient(96, 64).jpeg({ progressive: true, quality: 90 }).toBuffer();
    const exif = await gradient(64, 64).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    for (const b of [jpg, progressive, exif]) {
      await probeImage(b, DEFAULT_IMAGE_LIMITS);
      for (const tail of TAILS) await rejects(probeImage(Buffer.concat([b, Buffer.from(tail, 'latin1')]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
      await rejects(probeImage(b.subarray(0, b.length - 2), DEFAULT_IMAGE_LIMITS), 'truncated');
      await rejects(probeImage(b.subarray(0, b.length - 100), DEFAULT_IMAGE_LIMITS), 'truncated');
    }
    // Padding after EOI (0x00 / 0xFF, up to JPEG_MAX_PADDING bytes) is accepted; more is not.
    await probeImage(Buffer.concat([jpg, Buffer.alloc(16, 0), Buffer.alloc(16, 0xff)]), DEFAULT_IMAGE_LIMITS);
    await probeImage(Buffer.concat([jpg, Buffer.alloc(JPEG_MAX_PADDING, 0)]), DEFAULT_IMAGE_LIMITS);
    await rejects(probeImage(Buffer.concat([jpg, Buffer.alloc(JPEG_MAX_PADDING + 1, 0)]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
    await rejects(probeImage(Buffer.concat([jpg, Buffer.alloc(8, 0), Buffer.from('PK\u0003\u0004', 'latin1')]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
    // Extraneous bytes between segments are skipped, as libjpeg does.
    const app0End = 4 + jpg.readUInt16BE(4);
    checkContainer(Buffer.concat([jpg.subarray(0, app0End), Buffer.from([1, 2, 3]), jpg.subarray(app0End)]), 'jpeg');
    // A second JPEG after the first (as MPF files store camera previews) is walked too.
    await probeImage(Buffer.concat([jpg, progressive]), DEFAULT_IMAGE_LIMITS);
    await rejects(probeImage(Buffer.concat([jpg, progressive.subarray(0, progressive.length - 2)]), DEFAULT_IMAGE_LIMITS), 'truncated');
    await rejects(probeImage(Buffer.concat([jpg, progressive, Buffer.from('<html>')]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
  });

  it('refuses GIFs without trailer or with data after it, and WebPs whose RIFF size is not the file size', async () => {
    const gif = await gradient(48, 40).gif().toBuffer();
    const animated = await sharp(Buffer.concat([await gradient(40, 40).raw().toBuffer(), Buffer.alloc(40 * 40 * 3, 200)]), { raw: { width: 40, height: 80, channels: 3, pageHeight: 40 } })
      .gif({ loop: 0, delay: [100, 100] })
      .toBuffer();
    for (const b of [gif, animated]) {
      await probeImage(b, DEFAULT_IMAGE_LIMITS);
      assert.equal(b[b.length - 1], 0x3b);
      await rejects(probeImage(Buffer.concat([b, Buffer.from(TAILS[0]!, 'latin1')]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
      await rejects(probeImage(b.subarray(0, b.length - 1), DEFAULT_IMAGE_LIMITS), 'truncated');
      await rejects(probeImage(b.subarray(0, b.length - 20), DEFAULT_IMAGE_LIMITS), 'truncated');
    }
    for (const webp of [await gradient(64, 48).webp().toBuffer(), await gradient(64, 48).webp({ lossless: true }).toBuffer()]) {
      await probeImage(webp, DEFAULT_IMAGE_LIMITS);
      await rejects(probeImage(Buffer.concat([webp, Buffer.from(TAILS[1]!)]), DEFAULT_IMAGE_LIMITS), 'trailing_data');
      await rejects(probeImage(webp.subarray(0, webp.length - 10), DEFAULT_IMAGE_LIMITS), 'truncated');
    }
  });

  it('walks a large PNG of many chunks in linear time, without decoding it', () => {
    // 200k empty tEXt-like chunks (ancillary 'teXt'): the walk is bounded by the file, not by sharp.
    const chunk = Buffer.from([0, 0, 0, 0, 0x74, 0x45, 0x58, 0x74, 0, 0, 0, 0]);
    const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const iend = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);
    const many = Buffer.concat([sig, ...Array.from({ length: 200_000 }, () => chunk), iend]);
    checkContainer(many, 'png');
    assert.throws(() => checkContainer(many.subarray(0, many.length - 12), 'png'), (e: unknown) => e instanceof ImageRejectedError && e.reason === 'truncated');
  });
});

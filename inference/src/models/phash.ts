/**
 * Perceptual hash (DCT pHash, 64 bits), the tie engine's baseline: the image (or crop) to 32x32
 * greyscale with sharp (same refusal rules as the embedder), 2-D DCT-II, the 8x8 lowest frequencies
 * (DC included), each bit = coefficient > median of those 64. This is the definition of the widely
 * used `imagehash.phash`; bits are row-major, most significant first.
 */
import sharp, { type Sharp } from 'sharp';
import { clampCrop, probeImage, resolveLimits } from './image.js';
import { ImageRejectedError, type EmbedInput, type ImageLimits } from './types.js';

const N = 32;
const K = 8;

/** cos((2x+1) u pi / 2N) for u < K, x < N. */
const COS = (() => {
  const t = new Float64Array(K * N);
  for (let u = 0; u < K; u++) for (let x = 0; x < N; x++) t[u * N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N));
  return t;
})();

/** 32x32 greyscale pixels of an input (row-major, 1024 bytes). */
export async function phashPixels(image: EmbedInput, limits: ImageLimits = resolveLimits()): Promise<Uint8Array> {
  let img: Sharp;
  if (image instanceof Uint8Array || 'bytes' in image) {
    const bytes = image instanceof Uint8Array ? image : image.bytes;
    const probed = await probeImage(bytes, limits);
    img = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error', sequentialRead: true, pages: 1 }).autoOrient();
    if (!(image instanceof Uint8Array) && image.crop) img = img.extract(clampCrop(image.crop, probed.width, probed.height));
  } else {
    const r = image.raw;
    if (r.data.byteLength !== r.width * r.height * r.channels) throw new ImageRejectedError('corrupt', 'raw image size mismatch');
    img = sharp(r.data, { raw: { width: r.width, height: r.height, channels: r.channels } });
    if (image.crop) img = img.extract(clampCrop(image.crop, r.width, r.height));
  }
  try {
    const { data, info } = await img
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .greyscale()
      .resize(N, N, { fit: 'fill', kernel: 'lanczos3' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== N || info.height !== N || info.channels !== 1) throw new ImageRejectedError('corrupt', `phash: got ${info.width}x${info.height}x${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    if (err instanceof ImageRejectedError) throw err;
    const msg = (err as Error).message.split('\n')[0] ?? '';
    throw new ImageRejectedError(/premature end|truncat|read error/i.test(msg) ? 'truncated' : 'corrupt', `phash: ${msg}`);
  }
}

/** The 64-bit pHash of 32x32 greyscale pixels. */
export function phashFromPixels(px: Uint8Array): bigint {
  if (px.length !== N * N) throw new RangeError(`phash needs ${N * N} pixels`);
  // Rows first: R[y][u] = sum_x px[y][x] cos(u, x); then columns: D[v][u] = sum_y R[y][u] cos(v, y).
  const rows = new Float64Array(N * K);
  for (let y = 0; y < N; y++)
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let x = 0; x < N; x++) s += px[y * N + x]! * COS[u * N + x]!;
      rows[y * K + u] = s;
    }
  const low = new Float64Array(K * K);
  for (let v = 0; v < K; v++)
    for (let u = 0; u < K; u++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += rows[y * K + u]! * COS[v * N + y]!;
      low[v * K + u] = s;
    }
  const sorted = Float64Array.from(low).sort();
  const median = (sorted[31]! + sorted[32]!) / 2;
  let h = 0n;
  for (let i = 0; i < K * K; i++) h = (h << 1n) | (low[i]! > median ? 1n : 0n);
  return h;
}

/** 64-bit DCT perceptual hash of an image (bytes, bytes + crop, or raw pixels + crop). */
export async function phash(image: EmbedInput, limits?: Partial<ImageLimits>): Promise<bigint> {
  return phashFromPixels(await phashPixels(image, resolveLimits(limits)));
}

/** Number of differing bits between two 64-bit hashes (0..64). */
export function hammingDistance(a: bigint, b: bigint): number {
  let x = BigInt.asUintN(64, a ^ b);
  let n = 0;
  while (x) {
    x &= x - 1n;
    n++;
  }
  return n;
}

/** 16 hex digits, for storing or printing a hash. */
export function phashToHex(h: bigint): string {
  return BigInt.asUintN(64, h).toString(16).padStart(16, '0');
}

/**
 * Untrusted image bytes -> model input pixels, refusing hostile input before any full decode:
 *
 * 1. byte limit, then magic number (JPEG, PNG, WebP, GIF, TIFF, AVIF only: no SVG/PDF/PSD/...);
 * 2. container structure, walked without decoding (`checkContainer`): the file must end where the
 *    image ends, so truncated files (`truncated`) and polyglots (a PNG/JPEG/GIF/WebP with a zip, HTML
 *    or PDF tail: `trailing_data`) are refused. PNG: chunks (length + type) up to IEND, nothing after;
 *    JPEG: marker segments and entropy-coded data up to EOI, then only concatenated JPEGs (MPF: camera
 *    previews) or up to 4 KiB of 0x00/0xFF padding; GIF: blocks up to the 0x3B trailer, nothing after;
 *    WebP: the RIFF size is the file size. TIFF and AVIF are not walked (offset-based containers);
 * 3. header only (`sharp().metadata()`): the container must agree with the magic, and width x height,
 *    the longest side and the page count must be within the limits: a decompression bomb (a tiny file
 *    that claims 100k x 100k pixels) is refused here, without allocating its pixels; so is a side below
 *    `minSide` (`too_small`: a 1-px side aborts OpenCV's ORB, see ../tie/orb.ts);
 * 4. decode with sharp's own `limitInputPixels` as a second line, `failOn: 'error'` so truncated or
 *    corrupt pixel data aborts instead of decoding to grey, first page only.
 *
 * Every refusal is an `ImageRejectedError` with a stable `reason`.
 */
import sharp, { type KernelEnum, type Metadata, type Sharp, type SharpOptions } from 'sharp';
import { ImageRejectedError, type EmbedInput, type ImageLimits, type RawImage, type Rect, type ResizeFit } from './types.js';

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif';

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({
  maxBytes: 32 * 1024 * 1024,
  maxPixels: 50_000_000,
  maxSide: 16_384,
  minSide: 32,
});

/** Bytes of 0x00/0xFF tolerated after a JPEG's last EOI (some cameras and card writers pad files). */
export const JPEG_MAX_PADDING = 4096;
/** A PNG/GIF with more chunks or blocks than this is refused rather than walked further. */
const MAX_CONTAINER_UNITS = 1_000_000;

const WHITE = { r: 255, g: 255, b: 255 };

/** The format the first bytes announce, or undefined for anything we do not accept. */
export function sniffFormat(b: Uint8Array): ImageFormat | undefined {
  const at = (i: number) => b[i] ?? -1;
  const ascii = (i: number, s: string) => [...s].every((c, k) => at(i + k) === c.charCodeAt(0));
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'jpeg';
  if (at(0) === 0x89 && ascii(1, 'PNG\r\n\x1a\n')) return 'png';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'gif';
  if ((ascii(0, 'II') && at(2) === 42 && at(3) === 0) || (ascii(0, 'MM') && at(2) === 0 && at(3) === 42)) return 'tiff';
  if (ascii(4, 'ftyp') && (ascii(8, 'avif') || ascii(8, 'avis'))) return 'avif';
  return undefined;
}

/** sharp's name for each accepted container. */
const SHARP_FORMAT: Record<ImageFormat, string> = { jpeg: 'jpeg', png: 'png', webp: 'webp', gif: 'gif', tiff: 'tiff', avif: 'heif' };

export interface ProbedImage {
  format: ImageFormat;
  /** After EXIF orientation. */
  width: number;
  height: number;
  bytes: number;
}

export function resolveLimits(limits?: Partial<ImageLimits>): ImageLimits {
  return { ...DEFAULT_IMAGE_LIMITS, ...(limits ?? {}) };
}

/** Checks bytes, magic and header against the limits without decoding pixels. */
export async function probeImage(bytes: Uint8Array, limits: ImageLimits): Promise<ProbedImage> {
  if (bytes.byteLength === 0) throw new ImageRejectedError('empty', 'empty image');
  if (bytes.byteLength > limits.maxBytes) throw new ImageRejectedError('too_many_bytes', `image of ${bytes.byteLength} bytes is over the ${limits.maxBytes}-byte limit`);
  const format = sniffFormat(bytes);
  if (!format) throw new ImageRejectedError('unknown_format', 'not a JPEG, PNG, WebP, GIF, TIFF or AVIF image (magic number)');
  checkContainer(bytes, format);
  let meta: Metadata;
  try {
    // Header only; limitInputPixels: false so that oversized headers reach our own typed check.
    meta = await sharp(bytes, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (err) {
    throw classify(err, 'corrupt');
  }
  if (meta.format !== SHARP_FORMAT[format]) throw new ImageRejectedError('unsupported_format', `magic says ${format} but the container is ${meta.format}`);
  if (format === 'avif' && meta.compression !== undefined && meta.compression !== 'av1') throw new ImageRejectedError('unsupported_format', `HEIF with ${meta.compression} compression`);
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw new ImageRejectedError('corrupt', 'image header has no dimensions');
  if (w > limits.maxSide || h > limits.maxSide) throw new ImageRejectedError('too_large_side', `image ${w}x${h} is over the ${limits.maxSide}-pixel side limit`);
  if (w * h > limits.maxPixels) throw new ImageRejectedError('too_many_pixels', `image ${w}x${h} (${w * h} pixels) is over the ${limits.maxPixels}-pixel limit`);
  const minSide = limits.minSide ?? DEFAULT_IMAGE_LIMITS.minSide!;
  if (w < minSide || h < minSide) throw new ImageRejectedError('too_small', `image ${w}x${h} is under the ${minSide}-pixel minimum side`);
  const oriented = meta.autoOrient ?? { width: w, height: h };
  return { format, width: oriented.width, height: oriented.height, bytes: bytes.byteLength };
}

const truncated = (what: string) => new ImageRejectedError('truncated', `truncated ${what}`);
const trailing = (what: string, at: number, size: number) => new ImageRejectedError('trailing_data', `${size - at} bytes after the end of the ${what} (polyglot or appended data)`);

/**
 * Walks the container of an image without decoding it: refuses a file that ends before the image does
 * (`truncated`) or goes on after it (`trailing_data`). Linear in the file size, no allocation.
 */
export function checkContainer(b: Uint8Array, format: ImageFormat): void {
  if (format === 'png') checkPng(b);
  else if (format === 'jpeg') checkJpeg(b);
  else if (format === 'gif') checkGif(b);
  else if (format === 'webp') checkWebp(b);
}

const u32be = (b: Uint8Array, i: number) => ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!;

/** PNG: chunk lengths and types from the signature to IEND; nothing may follow IEND. */
function checkPng(b: Uint8Array): void {
  let off = 8;
  for (let n = 0; n < MAX_CONTAINER_UNITS; n++) {
    if (off + 12 > b.length) throw truncated(`PNG (no IEND chunk after ${n} chunks)`);
    const len = u32be(b, off);
    if (len > 0x7fffffff) throw new ImageRejectedError('corrupt', `PNG chunk ${n} has length ${len}`);
    for (let k = 4; k < 8; k++) {
      const c = b[off + k]! | 0x20;
      if (c < 0x61 || c > 0x7a) throw new ImageRejectedError('corrupt', `PNG chunk ${n} has a type that is not 4 letters`);
    }
    const end = off + 12 + len;
    if (end > b.length) throw truncated(`PNG (chunk ${n} runs past the end of the file)`);
    if (b[off + 4] === 0x49 && b[off + 5] === 0x45 && b[off + 6] === 0x4e && b[off + 7] === 0x44) {
      if (end < b.length) throw trailing('PNG (IEND)', end, b.length);
      return;
    }
    off = end;
  }
  throw new ImageRejectedError('corrupt', `PNG with over ${MAX_CONTAINER_UNITS} chunks`);
}

/** One JPEG from SOI at `off`: marker segments, entropy-coded data after each SOS; returns the offset after EOI. */
function jpegEnd(b: Uint8Array, start: number): number {
  let off = start + 2; // SOI
  for (let n = 0; n < MAX_CONTAINER_UNITS; n++) {
    if (off >= b.length) throw truncated('JPEG (no EOI marker)');
    if (b[off] !== 0xff) {
      // Extraneous bytes before a marker: libjpeg skips them with a warning, so do we.
      off = b.indexOf(0xff, off);
      if (off < 0) throw truncated('JPEG (no EOI marker)');
    }
    while (off < b.length && b[off] === 0xff) off++; // fill bytes
    if (off >= b.length) throw truncated('JPEG (no EOI marker)');
    const m = b[off++]!;
    if (m === 0xd9) return off; // EOI
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; // no length
    if (m === 0xd8 || m === 0x00) throw new ImageRejectedError('corrupt', `JPEG: unexpected marker 0x${m.toString(16)} at byte ${off - 1}`);
    if (off + 2 > b.length) throw truncated('JPEG (segment header)');
    const len = (b[off]! << 8) | b[off + 1]!;
    if (len < 2) throw new ImageRejectedError('corrupt', `JPEG: segment length ${len} at byte ${off}`);
    off += len;
    if (off > b.length) throw truncated('JPEG (segment runs past the end of the file)');
    if (m === 0xda) {
      // Entropy-coded data: up to the next 0xFF that is neither stuffing (FF 00), a restart (FF D0-D7) nor fill (FF FF).
      for (;;) {
        const i = b.indexOf(0xff, off);
        if (i < 0 || i + 1 >= b.length) throw truncated('JPEG (scan data without EOI)');
        const next = b[i + 1]!;
        if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) off = i + 2;
        else if (next === 0xff) off = i + 1;
        else {
          off = i;
          break;
        }
      }
    }
  }
  throw new ImageRejectedError('corrupt', `JPEG with over ${MAX_CONTAINER_UNITS} segments`);
}

/**
 * JPEG: each image up to its EOI; after it only another JPEG (SOI, as in MPF files where cameras store
 * previews after the primary image) or at most JPEG_MAX_PADDING bytes of 0x00/0xFF padding.
 */
function checkJpeg(b: Uint8Array): void {
  let off = 0;
  for (let images = 0; images < 64; images++) {
    off = jpegEnd(b, off);
    let pad = off;
    while (pad < b.length && pad - off <= JPEG_MAX_PADDING && (b[pad] === 0x00 || (b[pad] === 0xff && b[pad + 1] !== 0xd8))) pad++;
    if (pad === b.length && pad - off <= JPEG_MAX_PADDING) return;
    if (b[pad] === 0xff && b[pad + 1] === 0xd8 && b[pad + 2] === 0xff) off = pad;
    else throw trailing('JPEG (EOI)', off, b.length);
  }
  throw new ImageRejectedError('corrupt', 'JPEG with over 64 concatenated images');
}

/** GIF: header, colour tables, extension and image blocks (sub-block chains) up to the 0x3B trailer; nothing after. */
function checkGif(b: Uint8Array): void {
  const need = (end: number) => {
    if (end > b.length) throw truncated('GIF (no trailer)');
  };
  const table = (flags: number) => (flags & 0x80 ? 3 * 2 ** ((flags & 7) + 1) : 0);
  const subBlocks = (off: number) => {
    for (let n = 0; n < MAX_CONTAINER_UNITS; n++) {
      need(off + 1);
      const size = b[off]!;
      off += 1 + size;
      if (size === 0) return off;
    }
    throw new ImageRejectedError('corrupt', `GIF with over ${MAX_CONTAINER_UNITS} sub-blocks`);
  };
  need(13);
  let off = 13 + table(b[10]!);
  for (let n = 0; n < MAX_CONTAINER_UNITS; n++) {
    need(off + 1);
    const intro = b[off]!;
    if (intro === 0x3b) {
      if (off + 1 < b.length) throw trailing('GIF (trailer)', off + 1, b.length);
      return;
    }
    if (intro === 0x21) off = subBlocks(off + 2);
    else if (intro === 0x2c) {
      need(off + 10);
      off = subBlocks(off + 10 + table(b[off + 9]!) + 1);
    } else throw new ImageRejectedError('corrupt', `GIF: unexpected block 0x${intro.toString(16)} at byte ${off}`);
  }
  throw new ImageRejectedError('corrupt', `GIF with over ${MAX_CONTAINER_UNITS} blocks`);
}

/** WebP: the RIFF size field (+ 8) is the file size. */
function checkWebp(b: Uint8Array): void {
  if (b.length < 12) throw truncated('WebP (RIFF header)');
  const size = 8 + (b[4]! | (b[5]! << 8) | (b[6]! << 16)) + b[7]! * 2 ** 24;
  if (size > b.length) throw truncated(`WebP (RIFF says ${size} bytes, the file has ${b.length})`);
  if (size < b.length) throw trailing('WebP (RIFF)', size, b.length);
}

function classify(err: unknown, fallback: 'corrupt' | 'truncated'): ImageRejectedError {
  if (err instanceof ImageRejectedError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const first = msg.split('\n')[0] ?? msg;
  if (/exceeds pixel limit/i.test(msg)) return new ImageRejectedError('too_many_pixels', first);
  if (/premature end|truncat|unexpected end|read error|not enough data|short read|out of data|end of (file|stream)/i.test(msg)) {
    return new ImageRejectedError('truncated', `truncated image: ${first}`);
  }
  if (/unsupported image format/i.test(msg)) return new ImageRejectedError('unknown_format', first);
  return new ImageRejectedError(fallback, `${fallback === 'corrupt' ? 'corrupt' : 'truncated'} image: ${first}`);
}

/** Validates a crop against an image of w x h; clamps it to the image, refuses empty or non-integral crops. */
export function clampCrop(crop: Rect, w: number, h: number): Rect {
  const vals = [crop.left, crop.top, crop.width, crop.height];
  if (!vals.every((v) => Number.isFinite(v))) throw new ImageRejectedError('bad_crop', `crop ${JSON.stringify(crop)} is not finite`);
  const left = Math.max(0, Math.round(crop.left));
  const top = Math.max(0, Math.round(crop.top));
  const right = Math.min(w, Math.round(crop.left + crop.width));
  const bottom = Math.min(h, Math.round(crop.top + crop.height));
  if (right - left < 1 || bottom - top < 1) throw new ImageRejectedError('bad_crop', `crop ${JSON.stringify(crop)} is empty within ${w}x${h}`);
  return { left, top, width: right - left, height: bottom - top };
}

function decodeOptions(limits: ImageLimits): SharpOptions {
  return { limitInputPixels: limits.maxPixels, failOn: 'error', sequentialRead: true, pages: 1 };
}

export interface DecodeOptions {
  /** Downscale (keeping aspect) so the longer side is at most this; crops then refer to the decoded size. */
  maxSide?: number;
}

/**
 * Decodes once to 8-bit sRGB RGB (EXIF-oriented, alpha flattened onto white), e.g. to embed several
 * crops of one ad without decoding it six times: pass `{ raw, crop }` to `embed`.
 */
export async function decodeImage(bytes: Uint8Array, limits: ImageLimits = DEFAULT_IMAGE_LIMITS, options: DecodeOptions = {}): Promise<RawImage> {
  const probed = await probeImage(bytes, limits);
  let img = sharp(bytes, decodeOptions(limits)).autoOrient();
  if (options.maxSide && Math.max(probed.width, probed.height) > options.maxSide) {
    img = img.resize(options.maxSide, options.maxSide, { fit: 'inside', kernel: 'lanczos3' });
  }
  try {
    const { data, info } = await img.flatten({ background: WHITE }).toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new ImageRejectedError('corrupt', `decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
  } catch (err) {
    throw classify(err, 'corrupt');
  }
}

export interface ResizeSpec {
  /** [width, height]. */
  size: [number, number];
  fit: ResizeFit;
  kernel: keyof KernelEnum;
  /** Gaussian blur after the resize (sharp needs sigma >= 0.3; smaller means none). */
  blurSigma?: number;
}

/** Pixels of one input at the model's input size: uint8 RGB HWC, length w*h*3. */
export async function preprocess(input: EmbedInput, spec: ResizeSpec, limits: ImageLimits): Promise<Uint8Array> {
  const [w, h] = spec.size;
  let img: Sharp;
  let crop: Rect | undefined;
  if (input instanceof Uint8Array) {
    await probeImage(input, limits);
    img = sharp(input, decodeOptions(limits)).autoOrient();
  } else if ('bytes' in input) {
    const probed = await probeImage(input.bytes, limits);
    img = sharp(input.bytes, decodeOptions(limits)).autoOrient();
    if (input.crop) crop = clampCrop(input.crop, probed.width, probed.height);
  } else if ('raw' in input) {
    const r = input.raw;
    if (!(r.width > 0 && r.height > 0) || ![1, 3, 4].includes(r.channels) || r.data.byteLength !== r.width * r.height * r.channels) {
      throw new ImageRejectedError('corrupt', `raw image ${r.width}x${r.height}x${r.channels} does not match ${r.data.byteLength} bytes`);
    }
    img = sharp(r.data, { raw: { width: r.width, height: r.height, channels: r.channels }, limitInputPixels: false });
    if (input.crop) crop = clampCrop(input.crop, r.width, r.height);
  } else {
    throw new ImageRejectedError('unknown_format', 'unsupported input: expected bytes, { bytes, crop } or { raw, crop }');
  }
  if (crop) img = img.extract(crop);
  if (!(input instanceof Uint8Array) && input.mirror) img = img.flop();
  try {
    const { data, info } = await img
      .flatten({ background: WHITE })
      .toColourspace('srgb')
      .resize(w, h, { fit: spec.fit, kernel: spec.kernel, background: WHITE, position: 'centre' })
      .blur(spec.blurSigma && spec.blurSigma >= 0.3 ? spec.blurSigma : false)
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.width !== w || info.height !== h || info.channels !== 3) {
      throw new ImageRejectedError('corrupt', `preprocessing produced ${info.width}x${info.height}x${info.channels}, expected ${w}x${h}x3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    throw classify(err, 'corrupt');
  }
}

/**
 * Pixel operations behind the element edits: soft-mask blending, HSL recolouring, inpainting by
 * normalised convolution (fill a region from its surroundings), and small helpers. Blurs and resizes
 * go through sharp (libvips, off the event loop); the per-pixel arithmetic is plain loops.
 */
import sharp from 'sharp';
import type { RawImage, Rect } from '../features/types.js';

export function sharpOf(img: RawImage) {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
}

export function rgbImage(data: Uint8Array | Buffer, width: number, height: number): RawImage {
  const d = data instanceof Uint8Array && !(data instanceof Buffer) ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { data: d, width, height, channels: 3 };
}

/** Gaussian blur of an RGB image (sigma in pixels). */
export async function blurred(img: RawImage, sigma: number): Promise<RawImage> {
  const buf = await sharpOf(img).blur(Math.max(0.3, sigma)).raw().toBuffer();
  return rgbImage(buf, img.width, img.height);
}

/** out = a * fg + (1 - a) * bg per pixel, a = alpha / 255 (alpha below `cut` counts as 0: background stays exact). */
export function blend(fg: RawImage, bg: RawImage, alpha: Uint8Array, cut = 13): RawImage {
  const n = fg.width * fg.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const m = alpha[i]!;
    const a = m < cut ? 0 : m / 255;
    for (let c = 0; c < 3; c++) {
      const k = 3 * i + c;
      out[k] = Math.round(a * fg.data[k]! + (1 - a) * bg.data[k]!);
    }
  }
  return rgbImage(out, fg.width, fg.height);
}

export function rgbToHsl(r: number, g: number, b: number): [number, number, number] {
  const R = r / 255;
  const G = g / 255;
  const B = b / 255;
  const max = Math.max(R, G, B);
  const min = Math.min(R, G, B);
  const l = (max + min) / 2;
  const d = max - min;
  if (d === 0) return [0, 0, l];
  const s = d / (1 - Math.abs(2 * l - 1));
  let h: number;
  if (max === R) h = ((G - B) / d) % 6;
  else if (max === G) h = (B - R) / d + 2;
  else h = (R - G) / d + 4;
  h *= 60;
  if (h < 0) h += 360;
  return [h, s, l];
}

export function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const hp = h / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  let r = 0;
  let g = 0;
  let b = 0;
  if (hp < 1) [r, g, b] = [c, x, 0];
  else if (hp < 2) [r, g, b] = [x, c, 0];
  else if (hp < 3) [r, g, b] = [0, c, x];
  else if (hp < 4) [r, g, b] = [0, x, c];
  else if (hp < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  const m = l - c / 2;
  const q = (v: number) => Math.max(0, Math.min(255, Math.round((v + m) * 255)));
  return [q(r), q(g), q(b)];
}

/**
 * Recolours the masked region to a target colour keeping its shading: hue := target hue, saturation
 * pulled to the target's, lightness shifted so the region's mean lightness matches the target's
 * (each pixel keeps its offset from the mean, so texture and highlights survive). Soft mask blend.
 */
export function recolour(img: RawImage, alpha: Uint8Array, target: [number, number, number], cut = 13): RawImage {
  const [th, ts, tl] = rgbToHsl(target[0], target[1], target[2]);
  const n = img.width * img.height;
  let sw = 0;
  let sl = 0;
  for (let i = 0; i < n; i++) {
    const m = alpha[i]!;
    if (m < cut) continue;
    const r = img.data[3 * i]!;
    const g = img.data[3 * i + 1]!;
    const b = img.data[3 * i + 2]!;
    sl += (m * (Math.max(r, g, b) + Math.min(r, g, b))) / 510;
    sw += m;
  }
  const meanL = sw > 0 ? sl / sw : 0.5;
  const achromatic = ts < 0.12;
  const out = new Uint8Array(img.data);
  for (let i = 0; i < n; i++) {
    const m = alpha[i]!;
    if (m < cut) continue;
    const a = m / 255;
    const [, s, l] = rgbToHsl(img.data[3 * i]!, img.data[3 * i + 1]!, img.data[3 * i + 2]!);
    // Contrast around the mean is compressed a little for very dark/light targets so they stay dark/light.
    const spread = tl < 0.2 || tl > 0.85 ? 0.5 : 1;
    const nl = Math.max(0, Math.min(1, tl + (l - meanL) * spread));
    const ns = achromatic ? Math.min(ts, s * 0.1) : Math.min(1, 0.35 * s + 0.65 * ts);
    const [r, g, b] = hslToRgb(th, ns, nl);
    out[3 * i] = Math.round(a * r + (1 - a) * img.data[3 * i]!);
    out[3 * i + 1] = Math.round(a * g + (1 - a) * img.data[3 * i + 1]!);
    out[3 * i + 2] = Math.round(a * b + (1 - a) * img.data[3 * i + 2]!);
  }
  return rgbImage(out, img.width, img.height);
}

/**
 * A soft probability mask made decisive: 0 below `lo`, 255 above `hi`, smoothstep between, so faint
 * background responses of the segmenter do not tint the background while edges stay feathered.
 */
export function harden(alpha: Uint8Array, lo = 0.35, hi = 0.65): Uint8Array {
  const out = new Uint8Array(alpha.length);
  for (let i = 0; i < alpha.length; i++) {
    const t = Math.max(0, Math.min(1, (alpha[i]! / 255 - lo) / (hi - lo)));
    out[i] = Math.round(255 * t * t * (3 - 2 * t));
  }
  return out;
}

/** In-place separable box blur (radius r) of `ch` interleaved float channels, `passes` times (~Gaussian). */
function boxBlur(data: Float32Array, w: number, h: number, ch: number, r: number, passes = 3): void {
  const tmp = new Float32Array(Math.max(w, h) * ch);
  const run = (len: number, get: (i: number, c: number) => number, set: (i: number, c: number, v: number) => void) => {
    for (let c = 0; c < ch; c++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) acc += get(Math.min(len - 1, Math.max(0, i)), c);
      for (let i = 0; i < len; i++) {
        tmp[i * ch + c] = acc / (2 * r + 1);
        acc += get(Math.min(len - 1, i + r + 1), c) - get(Math.max(0, i - r), c);
      }
      for (let i = 0; i < len; i++) set(i, c, tmp[i * ch + c]!);
    }
  };
  for (let p = 0; p < passes; p++) {
    for (let y = 0; y < h; y++) {
      const base = y * w * ch;
      run(w, (i, c) => data[base + i * ch + c]!, (i, c, v) => {
        data[base + i * ch + c] = v;
      });
    }
    for (let x = 0; x < w; x++) {
      run(h, (i, c) => data[(i * w + x) * ch + c]!, (i, c, v) => {
        data[(i * w + x) * ch + c] = v;
      });
    }
  }
}

/**
 * Inpaints the region where `hole` > 127 from its surroundings by normalised convolution at two
 * scales: fill = blur(image * known) / blur(known), from the fine scale (radius ~ `radius`) where
 * enough known pixels are near, else the coarse one (4x), else the mean of the known pixels. Smooth
 * backgrounds behind text come back well; a hint, not a generative fill.
 */
export async function inpaint(img: RawImage, hole: Uint8Array, radius: number): Promise<RawImage> {
  const { width: w, height: h } = img;
  const n = w * h;
  // Work on a copy at most 512 px on the long side (blurs are O(pixels)), then upsample the fill.
  const s = Math.min(1, 512 / Math.max(w, h));
  const sw = Math.max(1, Math.round(w * s));
  const sh = Math.max(1, Math.round(h * s));
  const [smallImg, smallHole] = await Promise.all([
    sharpOf(img).resize(sw, sh, { fit: 'fill' }).raw().toBuffer(),
    sharp(hole, { raw: { width: w, height: h, channels: 1 } }).resize(sw, sh, { fit: 'fill' }).extractChannel(0).raw().toBuffer(),
  ]);
  const sn = sw * sh;
  const scales = [Math.max(1, Math.round(radius * s)), Math.max(2, Math.round(radius * s * 4))];
  const fills = scales.map((r) => {
    const buf = new Float32Array(sn * 4);
    for (let i = 0; i < sn; i++) {
      const k = smallHole[i]! > 64 ? 0 : 1;
      buf[4 * i] = smallImg[3 * i]! * k;
      buf[4 * i + 1] = smallImg[3 * i + 1]! * k;
      buf[4 * i + 2] = smallImg[3 * i + 2]! * k;
      buf[4 * i + 3] = k;
    }
    boxBlur(buf, sw, sh, 4, r);
    return buf;
  });
  let mr = 0;
  let mg = 0;
  let mb = 0;
  let mk = 0;
  for (let i = 0; i < sn; i++) {
    if (smallHole[i]! > 64) continue;
    mr += smallImg[3 * i]!;
    mg += smallImg[3 * i + 1]!;
    mb += smallImg[3 * i + 2]!;
    mk++;
  }
  const fallback = mk ? [mr / mk, mg / mk, mb / mk] : [128, 128, 128];
  const fill = new Uint8Array(sn * 3);
  for (let i = 0; i < sn; i++) {
    const [fine, coarse] = fills as [Float32Array, Float32Array];
    const src = fine[4 * i + 3]! > 0.15 ? fine : coarse[4 * i + 3]! > 0.02 ? coarse : undefined;
    for (let c = 0; c < 3; c++) fill[3 * i + c] = src ? Math.round(src[4 * i + c]! / src[4 * i + 3]!) : Math.round(fallback[c]!);
  }
  const big = s < 1 ? await sharp(fill, { raw: { width: sw, height: sh, channels: 3 } }).resize(w, h, { fit: 'fill' }).raw().toBuffer() : fill;
  const out = new Uint8Array(img.data);
  for (let i = 0; i < n; i++) {
    if (hole[i]! <= 127) continue;
    out[3 * i] = big[3 * i]!;
    out[3 * i + 1] = big[3 * i + 1]!;
    out[3 * i + 2] = big[3 * i + 2]!;
  }
  return rgbImage(out, w, h);
}

/** Thickness estimate of rectangles (median of min sides). */
export function typicalThickness(rects: readonly Rect[]): number {
  if (rects.length === 0) return 0;
  const t = rects.map((r) => Math.min(r.width, r.height)).sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

/** Grows a rectangle by `by` pixels on each side, clamped to w x h. */
export function grow(r: Rect, by: number, w: number, h: number): Rect {
  const left = Math.max(0, r.left - by);
  const top = Math.max(0, r.top - by);
  const right = Math.min(w, r.left + r.width + by);
  const bottom = Math.min(h, r.top + r.height + by);
  return { left, top, width: right - left, height: bottom - top };
}

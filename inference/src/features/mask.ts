/**
 * Subject segmentation (ISNet on onnxruntime, see the manifest's `featureModels.isnet`) and mask
 * helpers shared by the featurizer and the edits.
 */
import sharp from 'sharp';
import type { TensorPool } from '../models/tensor-pool.js';
import type { Mask, RawImage, Rect } from './types.js';

export interface SegmentModel {
  pool: TensorPool;
  path: string;
  /** Square input side the graph was built for. */
  resolution: number;
}

/** Foreground probability map of an image at the model's resolution (0..255). */
export async function runSegment(model: SegmentModel, raw: RawImage): Promise<Mask> {
  const R = model.resolution;
  const px = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
    .removeAlpha()
    .resize(R, R, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  const plane = R * R;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    data[i] = (px[3 * i]! - 128) / 256;
    data[plane + i] = (px[3 * i + 1]! - 128) / 256;
    data[2 * plane + i] = (px[3 * i + 2]! - 128) / 256;
  }
  const out = await model.pool.run('isnet', model.path, { input: { type: 'float32', data, dims: [1, 3, R, R] } }, ['output']);
  const p = out.output!.data;
  const mask = new Uint8Array(plane);
  for (let i = 0; i < plane; i++) mask[i] = Math.max(0, Math.min(255, Math.round(p[i]! * 255)));
  return { width: R, height: R, data: mask };
}

/** The mask resampled to w x h (bilinear). */
export async function maskAt(mask: Mask, w: number, h: number): Promise<Uint8Array> {
  if (mask.width === w && mask.height === h) return mask.data;
  const buf = await sharp(mask.data, { raw: { width: mask.width, height: mask.height, channels: 1 } })
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .extractChannel(0).raw()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Mean of the mask (0..1): the share of the frame it covers. */
export function maskShare(mask: Mask): number {
  let s = 0;
  for (let i = 0; i < mask.data.length; i++) s += mask.data[i]!;
  return mask.data.length ? s / (255 * mask.data.length) : 0;
}

/** Bounding box of mask >= threshold, in pixels of a w x h image; null when empty. */
export function maskBox(mask: Mask, w: number, h: number, threshold = 128): Rect | null {
  let x0 = mask.width;
  let y0 = mask.height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x]! < threshold) continue;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (x1 < 0) return null;
  const sx = w / mask.width;
  const sy = h / mask.height;
  const left = Math.floor(x0 * sx);
  const top = Math.floor(y0 * sy);
  return { left, top, width: Math.min(w, Math.ceil((x1 + 1) * sx)) - left, height: Math.min(h, Math.ceil((y1 + 1) * sy)) - top };
}

/** Weighted centroid of the mask in [0, 1] x [0, 1] (0.5, 0.5 when empty). */
export function maskCentroid(mask: Mask): [number, number] {
  let s = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      const v = mask.data[y * mask.width + x]!;
      s += v;
      sx += v * (x + 0.5);
      sy += v * (y + 0.5);
    }
  }
  return s > 0 ? [sx / s / mask.width, sy / s / mask.height] : [0.5, 0.5];
}

/** A mask of w x h with the given rectangles set to 255 (e.g. the text boxes). */
export function rectsMask(rects: readonly Rect[], w: number, h: number): Mask {
  const data = new Uint8Array(w * h);
  for (const r of rects) {
    const x0 = Math.max(0, Math.floor(r.left));
    const y0 = Math.max(0, Math.floor(r.top));
    const x1 = Math.min(w, Math.ceil(r.left + r.width));
    const y1 = Math.min(h, Math.ceil(r.top + r.height));
    for (let y = y0; y < y1; y++) data.fill(255, y * w + x0, y * w + x1);
  }
  return { width: w, height: h, data };
}

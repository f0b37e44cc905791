/**
 * PP-OCRv4 text detection (DB) + recognition (CTC) on onnxruntime, pre/post-processing as PaddleOCR
 * does it (see the manifest's `featureModels.ocr_det` / `ocr_rec`):
 *
 * detection: BGR, ImageNet mean/std, longest side <= 960 in multiples of 32 -> probability map ->
 *   threshold 0.3 -> connected components -> axis-aligned boxes scored by mean probability (>= 0.6)
 *   -> unclipped by area * 1.5 / perimeter -> image coordinates;
 * recognition: each box cropped from the analysed image, height 48, (x/255 - 0.5) / 0.5, batched by
 *   similar width and right-padded -> CTC greedy decoding over the 6623-character dictionary + space;
 *   lines read with a mean confidence under 0.5 are dropped (PaddleOCR's drop_score).
 */
import sharp from 'sharp';
import type { TensorPool } from '../models/tensor-pool.js';
import type { RawImage, Rect, TextBox } from './types.js';

export interface OcrModels {
  pool: TensorPool;
  detPath: string;
  recPath: string;
  /** Dictionary lines (index i + 1 in the CTC output); the last output index is a space. */
  keys: string[];
}

export const DET = Object.freeze({ maxSide: 960, threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, minSide: 3, input: 'x', output: 'sigmoid_0.tmp_0' });
export const REC = Object.freeze({ height: 48, maxWidth: 640, batch: 8, minScore: 0.5, input: 'x', output: 'softmax_11.tmp_0' });

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** Detection input size for an image: longest side <= maxSide, both sides multiples of 32. */
export function detSize(w: number, h: number, maxSide: number = DET.maxSide): [number, number] {
  const s = Math.min(1, maxSide / Math.max(w, h));
  const r32 = (x: number) => Math.max(32, Math.round((x * s) / 32) * 32);
  return [r32(w), r32(h)];
}

/** Raw RGB -> NCHW float32 for the detector (BGR order, ImageNet mean/std). */
export async function detInput(raw: RawImage, maxSide: number = DET.maxSide): Promise<{ data: Float32Array; w: number; h: number }> {
  const [w, h] = detSize(raw.width, raw.height, maxSide);
  const px = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
    .removeAlpha()
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  const plane = w * h;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    // channel 0 = B, 1 = G, 2 = R (PaddleOCR feeds cv2's BGR with the mean/std in that order)
    data[i] = (px[3 * i + 2]! / 255 - MEAN[0]!) / STD[0]!;
    data[plane + i] = (px[3 * i + 1]! / 255 - MEAN[1]!) / STD[1]!;
    data[2 * plane + i] = (px[3 * i]! / 255 - MEAN[2]!) / STD[2]!;
  }
  return { data, w, h };
}

export interface DetBox extends Rect {
  score: number;
}

/**
 * DB post-processing on a probability map (w x h): boxes in map pixels. 8-connected components of
 * p > threshold, each scored by its mean probability and unclipped (DB's offset d = A * r / L).
 */
export function dbBoxes(prob: Float32Array, w: number, h: number, opts: { threshold?: number; boxThreshold?: number; unclipRatio?: number; minSide?: number } = {}): DetBox[] {
  const thr = opts.threshold ?? DET.threshold;
  const boxThr = opts.boxThreshold ?? DET.boxThreshold;
  const ratio = opts.unclipRatio ?? DET.unclipRatio;
  const minSide = opts.minSide ?? DET.minSide;
  const label = new Int32Array(w * h);
  const stack: number[] = [];
  const boxes: DetBox[] = [];
  let next = 1;
  for (let start = 0; start < w * h; start++) {
    if (label[start] !== 0 || prob[start]! <= thr) continue;
    const id = next++;
    label[start] = id;
    stack.push(start);
    let x0 = w;
    let y0 = h;
    let x1 = -1;
    let y1 = -1;
    let sum = 0;
    let count = 0;
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % w;
      const y = (p - x) / w;
      sum += prob[p]!;
      count++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= w || (dx === 0 && dy === 0)) continue;
          const q = yy * w + xx;
          if (label[q] === 0 && prob[q]! > thr) {
            label[q] = id;
            stack.push(q);
          }
        }
      }
    }
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    if (Math.min(bw, bh) < minSide) continue;
    const score = sum / count;
    if (score < boxThr) continue;
    const d = (bw * bh * ratio) / (2 * (bw + bh));
    const left = Math.max(0, x0 - d);
    const top = Math.max(0, y0 - d);
    const right = Math.min(w, x1 + 1 + d);
    const bottom = Math.min(h, y1 + 1 + d);
    boxes.push({ left, top, width: right - left, height: bottom - top, score });
  }
  // Reading order: top to bottom, then left to right (lines within half a line height count as one row).
  return boxes.sort((a, b) => (Math.abs(a.top - b.top) < Math.min(a.height, b.height) / 2 ? a.left - b.left : a.top - b.top));
}

/** Greedy CTC decoding of one line: [T, C] probabilities -> text and mean confidence of kept steps. */
export function ctcDecode(probs: Float32Array, offset: number, steps: number, classes: number, keys: readonly string[]): { text: string; score: number } {
  let text = '';
  let prev = -1;
  let sum = 0;
  let count = 0;
  for (let t = 0; t < steps; t++) {
    const base = offset + t * classes;
    let best = 0;
    let bestP = -1;
    for (let c = 0; c < classes; c++) {
      const p = probs[base + c]!;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    if (best !== 0 && best !== prev) {
      text += best - 1 < keys.length ? keys[best - 1]! : ' ';
      sum += bestP;
      count++;
    }
    prev = best;
  }
  return { text: text.trim(), score: count ? sum / count : 0 };
}

function clampRect(r: Rect, w: number, h: number): Rect | undefined {
  const left = Math.max(0, Math.floor(r.left));
  const top = Math.max(0, Math.floor(r.top));
  const right = Math.min(w, Math.ceil(r.left + r.width));
  const bottom = Math.min(h, Math.ceil(r.top + r.height));
  if (right - left < 2 || bottom - top < 2) return undefined;
  return { left, top, width: right - left, height: bottom - top };
}

/** One line crop at height 48: RGB pixels and its width. */
async function recCrop(raw: RawImage, box: Rect): Promise<{ px: Buffer; w: number }> {
  const w = Math.max(8, Math.min(REC.maxWidth, Math.round((REC.height * box.width) / box.height)));
  const px = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
    .extract(box)
    .removeAlpha()
    .resize(w, REC.height, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return { px, w };
}

/** Detects and reads text lines in an image (analysed-image pixels). */
export async function runOcr(models: OcrModels, raw: RawImage): Promise<{ boxes: TextBox[]; detMs: number; recMs: number }> {
  const t0 = performance.now();
  const det = await detInput(raw);
  const out = await models.pool.run('ocr_det', models.detPath, { [DET.input]: { type: 'float32', data: det.data, dims: [1, 3, det.h, det.w] } }, [DET.output]);
  const map = out[DET.output]!;
  const mh = map.dims[2]!;
  const mw = map.dims[3]!;
  const sx = raw.width / mw;
  const sy = raw.height / mh;
  const found = dbBoxes(map.data, mw, mh)
    .map((b) => ({ rect: clampRect({ left: b.left * sx, top: b.top * sy, width: b.width * sx, height: b.height * sy }, raw.width, raw.height), score: b.score }))
    .filter((b): b is { rect: Rect; score: number } => b.rect !== undefined);
  const t1 = performance.now();
  const boxes: TextBox[] = found.map((b) => ({ ...b.rect, text: '', detScore: b.score, recScore: 0 }));
  // Recognition: crops sorted by width, batches of similar width padded to the widest.
  // A little horizontal context around each line: the detector's boxes can clip a first/last glyph.
  const crops = await Promise.all(
    found.map((b) => {
      const pad = Math.round(b.rect.height * 0.2);
      return recCrop(raw, clampRect({ left: b.rect.left - pad, top: b.rect.top, width: b.rect.width + 2 * pad, height: b.rect.height }, raw.width, raw.height) ?? b.rect);
    }),
  );
  const order = crops.map((_, i) => i).sort((a, b) => crops[a]!.w - crops[b]!.w);
  const jobs: Promise<void>[] = [];
  for (let s = 0; s < order.length; s += REC.batch) {
    const idx = order.slice(s, s + REC.batch);
    const W = Math.max(...idx.map((i) => crops[i]!.w));
    const H = REC.height;
    const n = idx.length;
    const data = new Float32Array(n * 3 * H * W); // 0 = mid-grey after normalisation, PaddleOCR's padding
    idx.forEach((ci, k) => {
      const { px, w } = crops[ci]!;
      const base = k * 3 * H * W;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < w; x++) {
          const p = 3 * (y * w + x);
          const o = y * W + x;
          data[base + o] = (px[p + 2]! / 255 - 0.5) / 0.5; // B
          data[base + H * W + o] = (px[p + 1]! / 255 - 0.5) / 0.5; // G
          data[base + 2 * H * W + o] = (px[p]! / 255 - 0.5) / 0.5; // R
        }
      }
    });
    jobs.push(
      models.pool.run('ocr_rec', models.recPath, { [REC.input]: { type: 'float32', data, dims: [n, 3, H, W] } }, [REC.output]).then((res) => {
        const t = res[REC.output]!;
        const [, steps, classes] = t.dims as [number, number, number];
        idx.forEach((ci, k) => {
          const { text, score } = ctcDecode(t.data, k * steps * classes, steps, classes, models.keys);
          const box = boxes[ci]!;
          box.recScore = score;
          box.text = score >= REC.minScore ? text : '';
        });
      }),
    );
  }
  await Promise.all(jobs);
  // As PaddleOCR's drop_score: a region the recogniser cannot read is not text (e.g. latte art).
  return { boxes: boxes.filter((b) => b.text !== ''), detMs: t1 - t0, recMs: performance.now() - t1 };
}

/** Words of recognised lines: lower-cased runs of letters/digits (Unicode), in reading order. */
export function wordsOf(boxes: readonly TextBox[]): string[] {
  const words: string[] = [];
  for (const b of boxes) for (const m of b.text.toLowerCase().matchAll(/[\p{L}\p{N}]+(?:['’][\p{L}]+)?/gu)) words.push(m[0]);
  return words;
}

/**
 * Colour histograms of views, fused with the CNN descriptor by the tie engine (an addition to
 * Knot-Tie). Many masters are smooth gradients, skies and abstract wallpapers where keypoints find
 * nothing and mid-level CNN features say "blue, soft"; the joint Lab colour distribution of a view
 * tells such masters apart and survives crops, borders and the ads' moderate grading.
 *
 * Per view: a bins^3 joint histogram over CIELAB (L 0..100, a and b -60..60, clamped), counted on a
 * fixed grid of sample points (so the cost does not grow with the image), square-rooted (Hellinger)
 * and L2-normalized: the dot product of two histograms is their Bhattacharyya coefficient.
 */
import { rgbToLab } from '../features/colour.js';
import type { RawImage, Rect } from '../models/types.js';

export const DEFAULT_COLOUR_BINS = 6;
/** Sample points per side of a view. */
const GRID = 48;

export function colourDims(bins = DEFAULT_COLOUR_BINS): number {
  return bins * bins * bins;
}

/** Colour histogram of `rect` of `raw` (grey images give their grey axis), unit L2 norm. */
export function colourHistogram(raw: RawImage, rect: Rect, bins = DEFAULT_COLOUR_BINS): Float32Array {
  const h = new Float32Array(colourDims(bins));
  const ch = raw.channels;
  const left = Math.max(0, Math.min(raw.width - 1, Math.floor(rect.left)));
  const top = Math.max(0, Math.min(raw.height - 1, Math.floor(rect.top)));
  const w = Math.max(1, Math.min(raw.width - left, Math.floor(rect.width)));
  const hh = Math.max(1, Math.min(raw.height - top, Math.floor(rect.height)));
  const lStep = 100 / bins;
  const abStep = 120 / bins;
  const clampBin = (x: number) => (x < 0 ? 0 : x >= bins ? bins - 1 : x);
  for (let gy = 0; gy < GRID; gy++) {
    const y = top + Math.min(hh - 1, Math.floor(((gy + 0.5) * hh) / GRID));
    for (let gx = 0; gx < GRID; gx++) {
      const x = left + Math.min(w - 1, Math.floor(((gx + 0.5) * w) / GRID));
      const o = (y * raw.width + x) * ch;
      const r = raw.data[o]!;
      const [L, A, B] = ch >= 3 ? rgbToLab(r, raw.data[o + 1]!, raw.data[o + 2]!) : rgbToLab(r, r, r);
      const li = clampBin(Math.floor(L / lStep));
      const ai = clampBin(Math.floor((A + 60) / abStep));
      const bi = clampBin(Math.floor((B + 60) / abStep));
      h[(li * bins + ai) * bins + bi]! += 1;
    }
  }
  // The squared roots of the counts sum to the number of samples: dividing by its root gives unit norm.
  for (let i = 0; i < h.length; i++) h[i] = Math.sqrt(h[i]!) / GRID;
  return h;
}

/**
 * Rows of [descriptor x 1/sqrt(1+w), colour x sqrt(w)/sqrt(1+w)]: unit vectors (both parts are)
 * whose dot product is (descriptor cosine + w x colour similarity) / (1 + w).
 */
export function fuseColour(descriptors: Float32Array, dims: number, colours: Float32Array, colourDim: number, weight: number): Float32Array {
  const n = descriptors.length / dims;
  if (colours.length !== n * colourDim) throw new RangeError(`${colours.length / colourDim} colour rows for ${n} descriptor rows`);
  const a = 1 / Math.sqrt(1 + weight);
  const c = Math.sqrt(weight) * a;
  const out = new Float32Array(n * (dims + colourDim));
  for (let i = 0; i < n; i++) {
    const o = i * (dims + colourDim);
    for (let j = 0; j < dims; j++) out[o + j] = descriptors[i * dims + j]! * a;
    for (let j = 0; j < colourDim; j++) out[o + dims + j] = colours[i * colourDim + j]! * c;
  }
  return out;
}

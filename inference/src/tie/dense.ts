/**
 * Dense verification: locate the ad's photo in each of its best candidate masters by normalized
 * cross-correlation of small colour images, and score each master by the best correlation found.
 *
 * Keypoints verify about a third of the true masters at all: smooth wallpapers have few corners, thin
 * banners few pixels, and a sibling frame of the right shoot verifies on the region it shares with
 * the ad as well as the true master does. Correlating the pixels themselves needs no keypoints, and
 * only the master the ad was cut from holds the whole of its photo.
 *
 * Hypotheses, from how creative teams cut ads (cover crop with zoom and focal point, a photo panel
 * beside the copy, the whole photo contained with margins, a frame; any of them mirrored):
 *  - ad in master: each half of the ad along its long axis and, for near-square ads, across it (for
 *    thin ads each end's 30 % instead): a photo panel, or the part of a cover crop that the headline,
 *    CTA and copy bands leave more of; each
 *    resized to several scales relative to a master of typical aspect and searched in all candidates
 *    at once: their thumbnails (one height) side by side in one mosaic, so one `matchTemplate` call
 *    serves every candidate (a placement counts for a master only when it lies wholly inside it, so
 *    the mosaic gives each master exactly what a call of its own would);
 *  - master in ad (contain): each master's thumbnail fitted into the ad at a few margins, searched in
 *    the ad and its mirror image stacked (one call for both orientations).
 * Both orientations of the ad, unless the caller knows which (keypoints verified it strongly). A master's score is the best `TM_CCOEFF_NORMED` value, in [-1, 1],
 * over placements where both the template and the image window vary (on a flat one the normalisation
 * divides rounding noise by almost nothing and reads +-1).
 *
 * Synchronous and CPU-bound: meant for the worker threads of ./orb-pool.ts (OpenCV.js, as ./orb.ts).
 */
import type { Cv } from './orb.js';

export interface DenseParams {
  /** Masters' thumbnails are this high (px); the ad is searched for masters at this shorter side. */
  height: number;
  /** The ad's thumbnail has this longer side (px); its parts are cut from it. */
  adSide: number;
  /** Sizes of an ad part relative to its largest fit in a master of `aspect`, largest first. */
  scales: readonly number[];
  /** Aspect (width / height) of the master the part sizes are computed for. */
  aspect: number;
  /** Sizes of a master relative to its fit in the ad (contained photos leave a margin). */
  margins: readonly number[];
  /** Templates with a side below this (px) are skipped: too few pixels to mean anything. */
  minSide: number;
  /** Ads at least this elongated (long / short side) also use each end's 30 %... */
  thinAspect: number;
  /** ...and less elongated ones their halves across too (a copy band across a cover crop spoils both halves along). */
  crossHalves: boolean;
  /**
   * Placements over image windows whose pixels vary less than this (standard deviation, grey levels,
   * mean over channels) do not count: on a near-flat window (a brand colour, a clear sky) the
   * normalisation divides rounding noise by almost nothing and reads +-1.
   */
  minWindowStd: number;
}

export const DEFAULT_DENSE_PARAMS: Readonly<DenseParams> = Object.freeze({
  height: 24,
  adSide: 256,
  scales: Object.freeze([1, 0.84, 0.7, 0.59, 0.5, 0.42, 0.35]),
  aspect: 1.6,
  margins: Object.freeze([0.82, 0.9]),
  minSide: 6,
  thinAspect: 2.5,
  crossHalves: true,
  minWindowStd: 4,
});

/** An RGB image (3 bytes per pixel, rows top to bottom). */
export interface Thumb {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Size of the thumbnail of a w x h image: masters at `height`, ads at `adSide` longer side. */
export function thumbSize(w: number, h: number, role: 'master' | 'ad', p: DenseParams = DEFAULT_DENSE_PARAMS): { width: number; height: number } {
  if (role === 'master') return { width: Math.max(p.minSide + 2, Math.round((w * p.height) / h)), height: p.height };
  const k = p.adSide / Math.max(w, h);
  return { width: Math.max(p.minSide + 2, Math.round(w * k)), height: Math.max(p.minSide + 2, Math.round(h * k)) };
}

/** The ad's parts searched in masters, as fractions of the ad: [left, top, width, height]. */
export function adParts(w: number, h: number, p: DenseParams = DEFAULT_DENSE_PARAMS): Array<[number, number, number, number]> {
  const wide = w >= h;
  const along: Array<[number, number]> = [[0, 0.5], [0.5, 0.5]];
  const thin = Math.max(w, h) / Math.min(w, h) >= p.thinAspect;
  if (thin) along.push([0, 0.3], [0.7, 0.3]);
  const parts = along.map(([a, b]): [number, number, number, number] => (wide ? [a, 0, b, 1] : [0, a, 1, b]));
  if (!thin && p.crossHalves) parts.push(...along.map(([a, b]): [number, number, number, number] => (wide ? [0, a, 1, b] : [a, 0, b, 1])));
  return parts;
}

/** Per-channel sums and sums of squares of an RGB image (OpenCV integral images, doubles). */
interface Integrals {
  sum: Float64Array;
  sq: Float64Array;
  /** Row stride in pixels (image width + 1). */
  stride: number;
}

function integrals(cv: Cv, img: Cv, keep: (m: Cv) => Cv): Integrals {
  const sum = keep(new cv.Mat());
  const sq = keep(new cv.Mat());
  cv.integral2(img, sum, sq, cv.CV_64F, cv.CV_64F);
  return { sum: sum.data64F as Float64Array, sq: sq.data64F as Float64Array, stride: img.cols + 1 };
}

/** Whether the w x h window at (x, y) varies enough for its correlation to mean something. */
function textured(ii: Integrals, x: number, y: number, w: number, h: number, minVar: number): boolean {
  const n = w * h;
  let variance = 0;
  const a = (y * ii.stride + x) * 3;
  const b = (y * ii.stride + x + w) * 3;
  const c = ((y + h) * ii.stride + x) * 3;
  const d = ((y + h) * ii.stride + x + w) * 3;
  for (let k = 0; k < 3; k++) {
    const s = ii.sum[d + k]! - ii.sum[b + k]! - ii.sum[c + k]! + ii.sum[a + k]!;
    const q = ii.sq[d + k]! - ii.sq[b + k]! - ii.sq[c + k]! + ii.sq[a + k]!;
    variance += q / n - (s / n) * (s / n);
  }
  return variance / 3 >= minVar;
}

/** Best value of a `matchTemplate` result over x in [x0, x1], y in [y0, y1] whose image window is textured; `floor` if none beats it. */
function bestPlacement(result: Cv, ii: Integrals, x0: number, x1: number, y0: number, y1: number, tw: number, th: number, minVar: number, floor: number): number {
  const r = result.data32F as Float32Array;
  const rc = result.cols as number;
  let best = floor;
  for (let y = y0; y <= y1; y++) {
    const row = y * rc;
    for (let x = x0; x <= x1; x++) {
      const v = r[row + x]!;
      // The window check only for values that would win (few once a good placement is found).
      if (v > best && textured(ii, x, y, tw, th, minVar)) best = v;
    }
  }
  return best;
}

/** Whether a template varies enough (mean of its channels' variances) to be searched for. */
function templateTextured(cv: Cv, t: Cv, minVar: number): boolean {
  const mean = new cv.Mat();
  const std = new cv.Mat();
  try {
    cv.meanStdDev(t, mean, std);
    const sd = std.data64F as Float64Array;
    return (sd[0]! * sd[0]! + sd[1]! * sd[1]! + sd[2]! * sd[2]!) / 3 >= minVar;
  } finally {
    mean.delete();
    std.delete();
  }
}

/** Refuses a thumbnail whose bytes do not cover its size (a clear error, not a wasm read past the buffer). */
function checkThumb(t: Thumb): void {
  if (!(t.width > 0 && t.height > 0) || t.data.length < t.width * t.height * 3) throw new RangeError(`dense: a ${t.width} x ${t.height} RGB thumbnail needs ${t.width * t.height * 3} bytes, got ${t.data.length}`);
}

function mat(cv: Cv, t: Thumb): Cv {
  checkThumb(t);
  const m = new cv.Mat(t.height, t.width, cv.CV_8UC3);
  m.data.set(t.data.subarray(0, t.width * t.height * 3));
  return m;
}

/**
 * Scores of `masters` (thumbnails at `p.height`) for the ad (thumbnail at `p.adSide`): per master the
 * best normalized cross-correlation over the hypotheses above; -1 where no hypothesis fits. With
 * `mirrored` known (keypoints verified the ad strongly in one orientation), only that orientation of
 * the ad's parts is searched.
 */
export function denseScores(cv: Cv, ad: Thumb, masters: readonly Thumb[], p: DenseParams = DEFAULT_DENSE_PARAMS, mirrored?: boolean): Float32Array {
  const scores = new Float32Array(masters.length).fill(-1);
  if (masters.length === 0) return scores;
  for (const m of masters) {
    if (m.height !== p.height) throw new RangeError(`dense: master thumbnails must be ${p.height} px high, got ${m.height}`);
    checkThumb(m);
  }
  const H = p.height;
  const offsets: number[] = [];
  let mosaicWidth = 0;
  for (const m of masters) {
    offsets.push(mosaicWidth);
    mosaicWidth += m.width;
  }
  const live: Cv[] = [];
  const keep = <T>(m: T): T => {
    live.push(m);
    return m;
  };
  try {
    const mosaic = keep(new cv.Mat(H, mosaicWidth, cv.CV_8UC3));
    masters.forEach((m, i) => {
      for (let y = 0; y < H; y++) mosaic.data.set(m.data.subarray(y * m.width * 3, (y + 1) * m.width * 3), (y * mosaicWidth + offsets[i]!) * 3);
    });
    const adMat = keep(mat(cv, ad));
    const adFlipped = keep(new cv.Mat());
    cv.flip(adMat, adFlipped, 1);
    const result = keep(new cv.Mat());
    const template = keep(new cv.Mat());
    const parts = adParts(ad.width, ad.height, p);
    const minVar = p.minWindowStd * p.minWindowStd;
    const mosaicSums = integrals(cv, mosaic, keep);
    /**
     * `src` resized (area averaging) to w x h, searched in `image` (at most maxW x maxH), the result
     * handed to `place`. Sizes out of range are skipped; false when the template is too flat to
     * search for (a copy panel's brand colour matches noise, and so do its smaller sizes: stop).
     */
    const matchSized = (src: Cv, w: number, h: number, image: Cv, maxW: number, maxH: number, place: () => void): boolean => {
      if (w < p.minSide || h < p.minSide || w > maxW || h > maxH) return true;
      cv.resize(src, template, new cv.Size(w, h), 0, 0, cv.INTER_AREA);
      if (!templateTextured(cv, template, minVar)) return false;
      cv.matchTemplate(image, template, result, cv.TM_CCOEFF_NORMED);
      place();
      return true;
    };

    // Ad parts in the mosaic of masters.
    for (const src of mirrored === undefined ? [adMat, adFlipped] : [mirrored ? adFlipped : adMat]) {
      for (const [fx, fy, fw, fh] of parts) {
        // From rounded edges, so that a part never reaches past the ad.
        const x0 = Math.round(fx * ad.width);
        const y0 = Math.round(fy * ad.height);
        const rect = new cv.Rect(x0, y0, Math.max(1, Math.round((fx + fw) * ad.width) - x0), Math.max(1, Math.round((fy + fh) * ad.height) - y0));
        const roi = src.roi(rect);
        try {
          const fit = Math.min((p.aspect * H) / roi.cols, H / roi.rows);
          for (const s of p.scales) {
            const tw = Math.round(roi.cols * fit * s);
            const th = Math.round(roi.rows * fit * s);
            const searched = matchSized(roi, tw, th, mosaic, mosaicWidth, H, () =>
              masters.forEach((m, i) => {
                if (tw <= m.width) scores[i] = bestPlacement(result, mosaicSums, offsets[i]!, offsets[i]! + m.width - tw, 0, H - th, tw, th, minVar, scores[i]!);
              }),
            );
            if (!searched) break;
          }
        } finally {
          roi.delete();
        }
      }
    }

    // Masters contained in the ad: the ad at `height` shorter side, as is above mirrored (one call
    // serves both orientations; placements count within one copy).
    const k = H / Math.min(ad.width, ad.height);
    const sw = Math.max(1, Math.round(ad.width * k));
    const sh = Math.max(1, Math.round(ad.height * k));
    const small = keep(new cv.Mat());
    cv.resize(adMat, small, new cv.Size(sw, sh), 0, 0, cv.INTER_AREA);
    const copies = mirrored === undefined ? 2 : 1;
    const stacked = keep(new cv.Mat(sh * copies, sw, cv.CV_8UC3));
    if (mirrored !== true) stacked.data.set(small.data.subarray(0, sw * sh * 3), 0);
    if (mirrored !== false) {
      const flipped = keep(new cv.Mat());
      cv.flip(small, flipped, 1);
      stacked.data.set(flipped.data.subarray(0, sw * sh * 3), (copies - 1) * sw * sh * 3);
    }
    const stackedSums = integrals(cv, stacked, keep);
    masters.forEach((m, i) => {
      const mm = mat(cv, m);
      try {
        const fit = Math.min(sw / m.width, sh / m.height);
        for (const margin of p.margins) {
          const tw = Math.round(m.width * fit * margin);
          const th = Math.round(m.height * fit * margin);
          const searched = matchSized(mm, tw, th, stacked, sw, sh, () => {
            for (let c = 0; c < copies; c++) scores[i] = bestPlacement(result, stackedSums, 0, sw - tw, c * sh, c * sh + sh - th, tw, th, minVar, scores[i]!);
          });
          if (!searched) break;
        }
      } finally {
        mm.delete();
      }
    });
  } finally {
    for (const m of live) m.delete();
  }
  return scores;
}

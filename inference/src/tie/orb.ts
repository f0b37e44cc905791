/**
 * Geometric verification with local features, OpenCV compiled to WebAssembly (`@opencvjs/web`,
 * OpenCV 5.0, Apache-2.0): ORB keypoints + binary descriptors, brute-force Hamming `knnMatch` (k = 2),
 * Lowe's ratio test, then `findHomography` with RANSAC; the number of inliers (distinct master
 * keypoints consistent with one homography) says whether the ad was cut from the master.
 *
 * ORB is not mirror-invariant, so an ad is described twice (as is and flipped left-right) and each
 * candidate is matched in both orientations; the better orientation is verified.
 *
 * Functions here take the loaded `cv` module and run synchronously: they are meant for the worker
 * threads of ./orb-pool.ts (one OpenCV instance per worker), or for tests in-process.
 */
/** The few OpenCV.js calls used here, typed loosely (the bundled typings are large and approximate). */
/* eslint-disable @typescript-eslint/no-explicit-any */
// biome-ignore lint/suspicious/noExplicitAny: OpenCV's wasm build ships no types
export type Cv = any;

export interface OrbParams {
  /** Keypoints per image (ORB nfeatures). */
  nFeatures: number;
  /** Masters are described at this longer side (px). */
  masterSide: number;
  /** Ads are described at this longer side (px)... */
  adSide: number;
  /** ...but upscaled so that their shorter side is at least this (thin banners). */
  adMinSide: number;
  /** ...and never longer than this. */
  adMaxSide: number;
  /** Lowe's ratio test. */
  ratio: number;
  /** RANSAC reprojection threshold, in master pixels at `masterSide`. */
  ransacThreshold: number;
  /** Fewer ratio-test matches than this: no homography is tried (0 inliers). */
  minMatches: number;
  /** Geometric model verified: a full homography, or an affine map (6 DOF; more robust with few matches). */
  model: 'homography' | 'affine';
  /** Robust estimator of OpenCV: 'ransac' or 'magsac' (USAC MAGSAC++, homography only). */
  estimator: 'ransac' | 'magsac';
  /**
   * The flipped ad is matched only when no candidate reached this many inliers as is (most ads are not
   * mirrored: this halves the matching work for them). 0 = always match both orientations.
   */
  flipSkipInliers: number;
}

export const DEFAULT_ORB_PARAMS: Readonly<OrbParams> = Object.freeze({
  nFeatures: 400,
  masterSide: 512,
  adSide: 512,
  adMinSide: 160,
  adMaxSide: 1024,
  ratio: 0.8,
  ransacThreshold: 5,
  minMatches: 8,
  model: 'homography',
  estimator: 'ransac',
  flipSkipInliers: 25,
});

/** Keypoints and descriptors of one image, as plain arrays (cacheable, transferable between threads). */
export interface Features {
  /** Number of keypoints. */
  n: number;
  /** x, y per keypoint (pixels of the described image). */
  xy: Float32Array;
  /** 32 bytes per keypoint (ORB). */
  desc: Uint8Array;
  width: number;
  height: number;
}

export interface MatchResult {
  /** Ratio-test matches in the better orientation. */
  matches: number;
  /** RANSAC inliers (distinct master keypoints) of the homography; 0 when none was found. */
  inliers: number;
  /** The ad matched better flipped left-right. */
  flipped: boolean;
}

let cvPromise: Promise<Cv> | undefined;

/** Loads OpenCV.js once per thread (~0.3 s; the wasm is inlined in the package's JS). */
export function loadCv(): Promise<Cv> {
  if (!cvPromise) {
    cvPromise = (async () => {
      const mod = await import('@opencvjs/web');
      const cv: Cv = await mod.loadOpenCV();
      // The Emscripten module is a thenable: never hand it to a Promise resolver as is (infinite then-loop).
      return { cv };
    })().then((box) => box.cv);
  }
  return cvPromise;
}

/** Size an image of w x h is described at for the given role. */
export function describeSize(w: number, h: number, role: 'master' | 'ad', p: OrbParams): { width: number; height: number } {
  const long = Math.max(w, h);
  const short = Math.min(w, h);
  let scale: number;
  if (role === 'master') scale = Math.min(1, p.masterSide / long);
  else {
    scale = p.adSide / long;
    if (short * scale < p.adMinSide) scale = p.adMinSide / short;
    if (long * scale > p.adMaxSide) scale = p.adMaxSide / long;
  }
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)) };
}

/**
 * Images with a shorter side below this get no keypoints and never reach OpenCV. ORB builds an 8-level
 * pyramid (scale 1.2): a level of round(side / 1.2^k) = 0 px (any side of 1 px) fails a CV_Assert in
 * cv::resize, and this OpenCV.js build turns any C++ exception into an Emscripten `Aborted()` that
 * leaves the wasm instance in an undefined state. ORB finds nothing within 31 px (edgeThreshold) of a
 * border anyway, so nothing is lost below 32 px.
 */
export const MIN_FEATURE_SIDE = 32;

/** ORB features of an 8-bit greyscale image (row-major, width * height bytes). */
export function extractFeatures(cv: Cv, gray: Uint8Array, width: number, height: number, p: OrbParams): Features {
  if (gray.length !== width * height) throw new RangeError(`grey image of ${gray.length} bytes is not ${width}x${height}`);
  if (!(Math.min(width, height) >= MIN_FEATURE_SIDE)) return { n: 0, xy: new Float32Array(0), desc: new Uint8Array(0), width, height };
  const img = new cv.Mat(height, width, cv.CV_8UC1);
  const mask = new cv.Mat();
  const kps = new cv.KeyPointVector();
  const desc = new cv.Mat();
  const orb = new cv.ORB(p.nFeatures);
  try {
    img.data.set(gray);
    orb.detectAndCompute(img, mask, kps, desc);
    const n = desc.rows > 0 ? Math.min(kps.size(), desc.rows) : 0;
    const xy = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const pt = kps.get(i).pt;
      xy[2 * i] = pt.x;
      xy[2 * i + 1] = pt.y;
    }
    const d = n > 0 ? new Uint8Array(desc.data.subarray(0, n * 32)) : new Uint8Array(0);
    return { n, xy, desc: d, width, height };
  } finally {
    orb.delete();
    img.delete();
    mask.delete();
    kps.delete();
    desc.delete();
  }
}

/** Mirrors a greyscale image left-right (for the flipped description of an ad). */
export function flipGrayX(gray: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(gray.length);
  for (let y = 0; y < height; y++) {
    const o = y * width;
    for (let x = 0; x < width; x++) out[o + x] = gray[o + width - 1 - x]!;
  }
  return out;
}

/** Descriptor matrix of features (owned by the caller: delete it). */
export function descMat(cv: Cv, f: Features): Cv {
  const m = new cv.Mat(f.n, 32, cv.CV_8UC1);
  if (f.n > 0) m.data.set(f.desc);
  return m;
}

/** Ratio-test matches of `query` against `train` as [queryIdx, trainIdx] pairs. */
export function ratioMatches(cv: Cv, matcher: Cv, query: Cv, train: Cv, ratio: number): Int32Array {
  if (query.rows < 2 || train.rows < 2) return new Int32Array(0);
  const knn = new cv.DMatchVectorVector();
  try {
    matcher.knnMatch(query, train, knn, 2);
    const out: number[] = [];
    const n = knn.size();
    for (let i = 0; i < n; i++) {
      const pair = knn.get(i);
      if (pair.size() >= 2) {
        const a = pair.get(0);
        const b = pair.get(1);
        if (a.distance < ratio * b.distance) out.push(a.queryIdx, a.trainIdx);
      }
      pair.delete?.();
    }
    return Int32Array.from(out);
  } finally {
    knn.delete();
  }
}

/**
 * RANSAC inliers (distinct train keypoints) of ratio-test matches under one geometric model from the
 * query (ad) to the train (master) image. Implausible models count as none: a homography must keep
 * orientation (det > 0, the ad is never mirrored here: flips are matched separately), must not scale
 * area by more than 1e4 either way, and must be nearly affine (ads are 2-D crops, not perspective views).
 */
export function homographyInliers(cv: Cv, pairs: Int32Array, q: Features, t: Features, p: Pick<OrbParams, 'ransacThreshold' | 'model' | 'estimator'>): number {
  const n = pairs.length / 2;
  if (n < (p.model === 'affine' ? 3 : 4)) return 0;
  const src = new cv.Mat(n, 1, cv.CV_32FC2);
  const dst = new cv.Mat(n, 1, cv.CV_32FC2);
  const mask = new cv.Mat();
  let H: Cv | undefined;
  try {
    const s = src.data32F as Float32Array;
    const d = dst.data32F as Float32Array;
    for (let i = 0; i < n; i++) {
      const qi = pairs[2 * i]!;
      const ti = pairs[2 * i + 1]!;
      s[2 * i] = q.xy[2 * qi]!;
      s[2 * i + 1] = q.xy[2 * qi + 1]!;
      d[2 * i] = t.xy[2 * ti]!;
      d[2 * i + 1] = t.xy[2 * ti + 1]!;
    }
    if (p.model === 'affine') H = cv.estimateAffine2D(src, dst, mask, cv.RANSAC, p.ransacThreshold, 2000, 0.995, 10);
    else H = cv.findHomography(src, dst, p.estimator === 'magsac' ? cv.USAC_MAGSAC : cv.RANSAC, p.ransacThreshold, mask, 2000, 0.995);
    if (!H || H.empty() || H.rows < 2) return 0;
    const h = H.data64F as Float64Array;
    const det = h[0]! * h[4]! - h[1]! * h[3]!;
    if (!(det > 1e-4 && det < 1e4)) return 0;
    if (p.model === 'homography') {
      // Perspective terms, scaled by the ad's size: a 2-D crop keeps them near 0.
      const persp = (Math.abs(h[6]!) * q.width + Math.abs(h[7]!) * q.height) / Math.max(1e-9, Math.abs(h[8]!));
      if (persp > 0.5) return 0;
    }
    const seen = new Set<number>();
    const m = mask.data as Uint8Array;
    for (let i = 0; i < n; i++) if (m[i]) seen.add(pairs[2 * i + 1]!);
    return seen.size;
  } finally {
    src.delete();
    dst.delete();
    mask.delete();
    H?.delete();
  }
}

/**
 * Matches an ad (described as is and flipped) against candidate masters. Descriptor matrices are built
 * once per call. The flipped description may be a function, called only when the flip is tried.
 * Returns one result per master, in order.
 */
export function matchAd(cv: Cv, ad: Features, adFlippedOrLazy: Features | (() => Features) | undefined, masters: readonly Features[], p: OrbParams): MatchResult[] {
  const matcher = new cv.BFMatcher(cv.NORM_HAMMING, false);
  const qa = descMat(cv, ad);
  let qf: Cv | undefined;
  let adFlipped: Features | undefined;
  try {
    const ts = masters.map((m) => descMat(cv, m));
    try {
      // As is first; the flipped ad only if nothing verified well as is.
      const asIs = ts.map((t, i) => {
        const a = ratioMatches(cv, matcher, qa, t, p.ratio);
        return { pairs: a, inliers: a.length / 2 >= p.minMatches ? homographyInliers(cv, a, ad, masters[i]!, p) : 0 };
      });
      const bestAsIs = asIs.reduce((b, r) => Math.max(b, r.inliers), 0);
      const tryFlip = adFlippedOrLazy !== undefined && (p.flipSkipInliers <= 0 || bestAsIs < p.flipSkipInliers);
      if (tryFlip) {
        // Described only now when lazy: most ads verify as they are and never need it.
        adFlipped = typeof adFlippedOrLazy === 'function' ? adFlippedOrLazy() : adFlippedOrLazy;
        qf = descMat(cv, adFlipped);
      }
      return ts.map((t, i) => {
        const a = asIs[i]!;
        if (!tryFlip) return { matches: a.pairs.length / 2, inliers: a.inliers, flipped: false };
        const f = ratioMatches(cv, matcher, qf!, t, p.ratio);
        const iff = f.length / 2 >= p.minMatches ? homographyInliers(cv, f, adFlipped!, masters[i]!, p) : 0;
        const useFlip = iff > a.inliers || (iff === a.inliers && f.length > a.pairs.length);
        return { matches: (useFlip ? f : a.pairs).length / 2, inliers: useFlip ? iff : a.inliers, flipped: useFlip };
      });
    } finally {
      for (const t of ts) t.delete();
    }
  } finally {
    qa.delete();
    qf?.delete();
    matcher.delete();
  }
}

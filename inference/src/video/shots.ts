/**
 * Shot boundaries from small decoded frames (every frame, RGB, ~64-96 px wide):
 *
 * - per frame: a 64-bin colour histogram (4 levels per channel), the luma plane, mean luma;
 * - fades through black or white, and flash frames: runs of flat frames (little spread, mean luma
 *   under DARK_LUMA or as close to white), with the ramps of brightness moving steadily towards them
 *   on each side, are one transition; the boundary is the middle of the flat run (one at the very
 *   start or end of the video is no boundary);
 * - hard cuts: a frame-to-frame distance (histogram L1 and luma difference) that is high in absolute
 *   terms and several times the local median and both neighbours (fast motion is a run of high
 *   distances, a cut is a lone peak);
 * - dissolves (cross-fades): peaks of the distance between the frames k before and k after (k a
 *   quarter second; the wide-window form of twin comparison, Zhang, Kankanhalli & Smoliar 1993) that
 *   stand out from their surroundings, whose middle frame is the blend of the two, and whose two
 *   frames are not one view moved (a pan also changes a lot over 2k frames: that is what tells them apart);
 * - shots shorter than `minShotS` are merged into their neighbour (flashes, glitches).
 *
 * Keyframes per shot: first, middle and last frame clear of its transitions.
 */

export type Transition = 'start' | 'cut' | 'fade' | 'dissolve';

export interface Shot {
  index: number;
  /** Frame range [startFrame, endFrame) and its time range in seconds. */
  startFrame: number;
  endFrame: number;
  start: number;
  end: number;
  /** How the shot begins. */
  transition: Transition;
  /** First, middle and last frame of the shot clear of its transitions (indices into the video). */
  keyframes: [number, number, number];
}

export interface ShotOptions {
  fps: number;
  /** Shots shorter than this merge into a neighbour (default 0.3 s). */
  minShotS?: number;
}

export interface FrameInput {
  width: number;
  height: number;
  /** RGB frames, 3 bytes a pixel. */
  frames: readonly Uint8Array[];
}

const BINS = 64;
const DARK_LUMA = 0.07;
const DARK_SPREAD = 0.05;
const CUT_MIN = 0.25;
const CUT_RATIO = 3;
const GRADUAL_HIGH = 0.35;
const BLEND_MAX = 0.45;
const DISSOLVE_RATIO = 2;

interface Features {
  hist: Float32Array;
  luma: Float32Array;
  mean: number;
  spread: number;
}

function features(rgb: Uint8Array, pixels: number): Features {
  const hist = new Float32Array(BINS);
  const luma = new Float32Array(pixels);
  let sum = 0;
  let sq = 0;
  for (let p = 0, i = 0; p < pixels; p++, i += 3) {
    const r = rgb[i]!;
    const g = rgb[i + 1]!;
    const b = rgb[i + 2]!;
    hist[((r >> 6) << 4) | ((g >> 6) << 2) | (b >> 6)]! += 1 / pixels;
    const y = (0.299 * r + 0.587 * g + 0.114 * b) / 255;
    luma[p] = y;
    sum += y;
    sq += y * y;
  }
  const mean = sum / pixels;
  return { hist, luma, mean, spread: Math.sqrt(Math.max(0, sq / pixels - mean * mean)) };
}

function histDistance(a: Features, b: Features): number {
  let d = 0;
  for (let i = 0; i < BINS; i++) d += Math.abs(a.hist[i]! - b.hist[i]!);
  return d / 2;
}

function lumaDistance(a: Features, b: Features): number {
  let d = 0;
  for (let i = 0; i < a.luma.length; i++) d += Math.abs(a.luma[i]! - b.luma[i]!);
  return d / a.luma.length;
}

/** Frame distance in [0, 1]: colour content and its layout. */
function distance(a: Features, b: Features): number {
  return Math.max(histDistance(a, b), Math.min(1, 3 * lumaDistance(a, b)));
}

/** How far `mid` is from the blend of `a` and `b`, relative to how far `a` is from `b` (0 = a perfect cross-fade). */
function blendError(a: Features, mid: Features, b: Features): number {
  let err = 0;
  let span = 0;
  for (let i = 0; i < a.luma.length; i++) {
    err += Math.abs(mid.luma[i]! - (a.luma[i]! + b.luma[i]!) / 2);
    span += Math.abs(a.luma[i]! - b.luma[i]!);
  }
  return span > 0 ? err / span : 1;
}

/**
 * Whether `b` is `a` moved (a pan or tilt): shifted by some offset, it matches far better than in
 * place. Mean luma difference over the overlap, shifts up to a quarter of each side.
 */
function movedView(a: Features, b: Features, width: number, height: number): boolean {
  const err = (dx: number, dy: number) => {
    let sum = 0;
    let count = 0;
    for (let y = Math.max(0, -dy); y < Math.min(height, height - dy); y++) {
      for (let x = Math.max(0, -dx); x < Math.min(width, width - dx); x++) {
        sum += Math.abs(a.luma[y * width + x]! - b.luma[(y + dy) * width + x + dx]!);
        count++;
      }
    }
    return count ? sum / count : Infinity;
  };
  const still = err(0, 0);
  let best = still;
  const mx = Math.floor(width / 4);
  const my = Math.floor(height / 4);
  for (let dy = -my; dy <= my; dy++) for (let dx = -mx; dx <= mx; dx++) if (dx || dy) best = Math.min(best, err(dx, dy));
  return best < 0.5 * still;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

interface Boundary {
  /** First frame of the new shot. */
  at: number;
  transition: Exclude<Transition, 'start'>;
  /** Frames [from, to) that belong to the transition itself (no keyframe from there). */
  from: number;
  to: number;
}

export function detectShots(input: FrameInput, options: ShotOptions): Shot[] {
  const n = input.frames.length;
  const fps = options.fps > 0 ? options.fps : 25;
  if (n === 0) return [];
  const pixels = input.width * input.height;
  const f = input.frames.map((fr) => features(fr, pixels));
  const d = new Float32Array(n); // d[t]: distance between t-1 and t
  for (let t = 1; t < n; t++) d[t] = distance(f[t - 1]!, f[t]!);

  // Flat frames: black (-1), white (+1), neither (0). The same two thresholds for both, the white
  // side mirrored (a fade through white or a flash frame is a fade through black in negative).
  const flatness = (t: number) => (f[t]!.spread >= DARK_SPREAD ? 0 : f[t]!.mean < DARK_LUMA ? -1 : f[t]!.mean > 1 - DARK_LUMA ? 1 : 0);
  const flat = Int8Array.from({ length: n }, (_, t) => flatness(t));
  const isFlat = (t: number) => flat[t] !== 0;
  const inTransition = new Uint8Array(n);
  const boundaries: Boundary[] = [];

  // Fades through black or white, flash frames.
  for (let t = 0; t < n; ) {
    const colour = flat[t]!;
    if (!colour) {
      t++;
      continue;
    }
    let e = t;
    while (e + 1 < n && flat[e + 1] === colour) e++;
    // Ramps: brightness moving steadily towards the flat run on either side (down to black, up to white).
    const towards = (from: number, to: number) => colour * (f[to]!.mean - f[from]!.mean) > 0.002;
    let from = t;
    while (from > 0 && towards(from - 1, from) && t - from < 3 * fps) from--;
    let to = e + 1;
    while (to < n && towards(to, to - 1) && to - e < 3 * fps) to++;
    for (let k = from; k < to; k++) inTransition[k] = 1;
    if (from > 0 && to < n) boundaries.push({ at: Math.round((t + e + 1) / 2), transition: 'fade', from, to });
    t = e + 1;
  }

  const window = Math.max(5, Math.round(fps / 2));
  const localMedian = (t: number) => {
    const xs: number[] = [];
    for (let k = Math.max(1, t - window); k <= Math.min(n - 1, t + window); k++) if (Math.abs(k - t) > 1) xs.push(d[k]!);
    return median(xs);
  };

  // Hard cuts: lone peaks.
  for (let t = 1; t < n; t++) {
    if (inTransition[t] || inTransition[t - 1]) continue;
    const x = d[t]!;
    const neighbours = Math.max(t > 1 ? d[t - 1]! : 0, t + 1 < n ? d[t + 1]! : 0);
    if (x > CUT_MIN && x > CUT_RATIO * localMedian(t) && x > 2 * neighbours) {
      boundaries.push({ at: t, transition: 'cut', from: t, to: t });
    }
  }
  const cutAt = new Set(boundaries.filter((b) => b.transition === 'cut').map((b) => b.at));

  // Dissolves: the distance between frames k before and k after each frame peaks in the middle of a
  // cross-fade. A peak counts when it stands out from its surroundings, its middle frame is the blend
  // of its ends, and the ends are not one view moved (a pan moves far over 2k frames too).
  const k = Math.max(3, Math.round(fps / 4));
  const wide = new Float32Array(n);
  for (let t = k; t + k < n; t++) wide[t] = distance(f[t - k]!, f[t + k]!);
  const near = (t: number) => {
    for (let j = Math.max(0, t - k); j <= Math.min(n - 1, t + k); j++) if (inTransition[j] || cutAt.has(j)) return true;
    return false;
  };
  for (let t = k; t + k < n; t++) {
    const x = wide[t]!;
    if (x < GRADUAL_HIGH || near(t)) continue;
    let peak = true;
    for (let j = Math.max(k, t - k); j <= Math.min(n - k - 1, t + k); j++) if (wide[j]! > x || (wide[j] === x && j < t)) peak = false;
    if (!peak) continue;
    const around: number[] = [];
    for (let j = Math.max(k, t - 6 * k); j <= Math.min(n - k - 1, t + 6 * k); j++) if (Math.abs(j - t) > 2 * k) around.push(wide[j]!);
    if (around.length && x < DISSOLVE_RATIO * median(around)) continue;
    const a = f[t - k]!;
    const b = f[t + k]!;
    if (blendError(a, f[t]!, b) > BLEND_MAX) continue;
    if (movedView(a, b, input.width, input.height)) continue;
    for (let j = t - k + 1; j < t + k; j++) inTransition[j] = 1;
    boundaries.push({ at: t, transition: 'dissolve', from: t - k + 1, to: t + k });
  }
  boundaries.sort((a, b) => a.at - b.at);
  const minFrames = Math.max(1, Math.round((options.minShotS ?? 0.3) * fps));
  const kept: Boundary[] = [];
  for (const b of boundaries) {
    const prev = kept.length ? kept[kept.length - 1]!.at : 0;
    if (b.at - prev < minFrames || n - b.at < minFrames) continue;
    kept.push(b);
  }

  const shots: Shot[] = [];
  const starts = [{ at: 0, transition: 'start' as Transition }, ...kept];
  for (let i = 0; i < starts.length; i++) {
    const startFrame = starts[i]!.at;
    const endFrame = i + 1 < starts.length ? starts[i + 1]!.at : n;
    // Keyframes clear of transitions (and of flat frames); the whole shot when nothing is clear.
    const clear: number[] = [];
    for (let k = startFrame; k < endFrame; k++) if (!inTransition[k] && !isFlat(k)) clear.push(k);
    const pool = clear.length ? clear : Array.from({ length: endFrame - startFrame }, (_, k) => startFrame + k);
    shots.push({
      index: i,
      startFrame,
      endFrame,
      start: startFrame / fps,
      end: endFrame / fps,
      transition: starts[i]!.transition,
      keyframes: [pool[0]!, pool[pool.length >> 1]!, pool[pool.length - 1]!],
    });
  }
  return shots;
}

/**
 * A second family of generated video ("family B") for scoring the shot detector and video tying on
 * data its thresholds were not fitted to. Written apart from ./video.ts (family A: textured scenes,
 * stripes and blobs, cuts / fades through black / dissolves), sharing only its ffmpeg encoder
 * (`encodeClip`). Everything else differs:
 *
 * - content: crops of real photos (./tie/sources.ts, Debian packages) under a moving camera: zoom in
 *   or out, slow pans, handheld shake, and whip pans (a fast move inside one shot: not a cut);
 *   each shot colour-graded (gain, lift, saturation, contrast); sometimes two shots of one photo;
 * - overlays appearing inside a shot: text blocks (a lower third) and a CTA end card (not cuts);
 * - transitions: hard cuts, dissolves of 3-30 frames, fades through black and through white (with or
 *   without a held colour), wipes (four directions, soft edge), pushes, and flash frames (1-3 frames
 *   of white between two shots);
 * - formats: 9:16, 1:1, 4:5 and 16:9 at 24, 25, 29.97, 30 and 50 fps; H.264 at CRF 18-38.
 *
 * Truth: every transition's frame range [from, to) (a cut: from = to = the new shot's first frame),
 * every in-shot event that must not be read as a boundary, and each shot's photo (for tying).
 * Deterministic for a seed (mulberry32, not ./video.ts's xorshift).
 */
import { mulberry32 } from '@afterglow/core';

export type HeldoutTransition = 'cut' | 'dissolve' | 'fade-black' | 'fade-white' | 'wipe' | 'push' | 'flash';
export const HELDOUT_TRANSITIONS: readonly HeldoutTransition[] = ['cut', 'dissolve', 'fade-black', 'fade-white', 'wipe', 'push', 'flash'];

/** Things inside a shot that change the picture fast but are no shot boundary. */
export type HeldoutEventKind = 'whip-pan' | 'text' | 'cta';
export type HeldoutMotion = 'zoom-in' | 'zoom-out' | 'pan' | 'shake' | 'whip';

export interface HeldoutPhoto {
  /** Stable id (the source photo's id). */
  id: string;
  /** RGB, 3 bytes a pixel. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface HeldoutBoundary {
  /** Frames [from, to) of the transition; for a cut from = to = the first frame of the new shot. */
  from: number;
  to: number;
  transition: HeldoutTransition;
  /** Transition length in frames (0 for a cut). */
  frames: number;
  /** Both shots show the same photo (another framing of it). */
  samePhoto: boolean;
}

export interface HeldoutEvent {
  /** Frames [from, to) over which the picture changes. */
  from: number;
  to: number;
  kind: HeldoutEventKind;
}

export interface HeldoutShot {
  /** Frames [from, to) where this shot alone is on screen (transitions excluded). */
  from: number;
  to: number;
  photo: string;
  motion: HeldoutMotion;
}

export interface HeldoutClip {
  name: string;
  width: number;
  height: number;
  fps: number;
  /** Suggested H.264 quality for encodeClip. */
  crf: number;
  aspect: string;
  frames: Uint8Array[];
  boundaries: HeldoutBoundary[];
  events: HeldoutEvent[];
  shots: HeldoutShot[];
}

/** Output sizes per aspect ratio (even sides for yuv420p). */
export const HELDOUT_FORMATS = [
  { aspect: '9:16', width: 180, height: 320 },
  { aspect: '1:1', width: 256, height: 256 },
  { aspect: '4:5', width: 224, height: 280 },
  { aspect: '16:9', width: 320, height: 180 },
] as const;
const RATES = [24, 25, 29.97, 30, 25, 30, 50] as const;
const QUALITIES = [18, 23, 28, 33, 38] as const;

export interface HeldoutClipOptions {
  seed: number;
  /** Shots in the clip (default 5-8, drawn). */
  shots?: number;
  /** Force a format (index into HELDOUT_FORMATS). */
  format?: number;
  /** Force a frame rate. */
  fps?: number;
  /** Photos the clip may use (default all given); the first argument still supplies their pixels. */
  only?: readonly string[];
  /** Transitions in this order, repeated (default: drawn). */
  transitions?: readonly HeldoutTransition[];
  /** Draw the text and CTA overlays (default true; false renders the same clip without them, for tests). */
  overlays?: boolean;
}

type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const between = (r: Rng, lo: number, hi: number) => lo + r() * (hi - lo);
const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));
const smooth = (t: number) => t * t * (3 - 2 * t);

interface Camera {
  /** Crop centre (photo pixels) and crop width (photo pixels) at frame k of `length`. */
  at(k: number): { cx: number; cy: number; cw: number };
}

interface Grade {
  gain: [number, number, number];
  lift: number;
  saturation: number;
  contrast: number;
}

interface Overlay {
  kind: 'text' | 'cta';
  /** Frame of the shot (its own count) where it starts to appear, and the frames it takes. */
  start: number;
  ramp: number;
  draw: (f: Uint8Array, width: number, height: number, alpha: number) => void;
}

interface ShotPlan {
  photo: HeldoutPhoto;
  motion: HeldoutMotion;
  camera: Camera;
  grade: Grade;
  overlays: Overlay[];
  draw: boolean;
  /** Frame (shot count) where a whip pan starts and its length, if any. */
  whip?: { start: number; frames: number };
}

/** `length`: the shot's frames of its own (the whip happens inside them); `total` with its transitions' frames. */
function cameraFor(r: Rng, motion: HeldoutMotion, photo: HeldoutPhoto, aspect: number, length: number, total: number, fps: number): { camera: Camera; whip?: { start: number; frames: number } } {
  const maxW = Math.min(photo.width, photo.height * aspect);
  const inside = (cx: number, cy: number, cw: number) => {
    const ch = cw / aspect;
    return { cx: clamp(cx, cw / 2, photo.width - cw / 2), cy: clamp(cy, ch / 2, photo.height - ch / 2), cw };
  };
  const cx0 = between(r, 0.3, 0.7) * photo.width;
  const cy0 = between(r, 0.3, 0.7) * photo.height;
  const span = Math.max(1, total - 1);
  if (motion === 'zoom-in' || motion === 'zoom-out') {
    const wide = between(r, 0.85, 1) * maxW;
    const tight = between(r, 0.45, 0.7) * maxW;
    const [a, b] = motion === 'zoom-in' ? [wide, tight] : [tight, wide];
    const dx = between(r, -0.1, 0.1) * photo.width;
    const dy = between(r, -0.1, 0.1) * photo.height;
    return { camera: { at: (k) => inside(cx0 + (dx * k) / span, cy0 + (dy * k) / span, a + ((b - a) * k) / span) } };
  }
  if (motion === 'pan') {
    const cw = between(r, 0.5, 0.75) * maxW;
    const horizontal = photo.width / maxW > photo.height / (maxW / aspect);
    const from = between(r, 0.2, 0.35);
    const to = 1 - from;
    const [a, b] = r() < 0.5 ? [from, to] : [to, from];
    return {
      camera: {
        at: (k) => {
          const t = a + ((b - a) * k) / span;
          return horizontal ? inside(t * photo.width, cy0, cw) : inside(cx0, t * photo.height, cw);
        },
      },
    };
  }
  if (motion === 'shake') {
    const cw = between(r, 0.55, 0.8) * maxW;
    const amp = between(r, 0.015, 0.04) * cw;
    const waves = Array.from({ length: 3 }, () => ({ fx: between(r, 0.5, 3) / fps, fy: between(r, 0.5, 3) / fps, px: r() * 6.3, py: r() * 6.3 }));
    const drift = between(r, -0.05, 0.05) * photo.width;
    return {
      camera: {
        at: (k) => {
          let jx = 0;
          let jy = 0;
          for (const w of waves) {
            jx += Math.sin(2 * Math.PI * w.fx * k + w.px) / waves.length;
            jy += Math.sin(2 * Math.PI * w.fy * k + w.py) / waves.length;
          }
          return inside(cx0 + (drift * k) / span + amp * jx, cy0 + amp * jy, cw * (1 + 0.01 * jx));
        },
      },
    };
  }
  // Whip: a slow drift, then a fast move over a quarter to a third of a second, then slow again.
  const cw = between(r, 0.4, 0.55) * maxW;
  const frames = Math.max(4, Math.round(between(r, 0.2, 0.35) * fps));
  const start = Math.round(between(r, 0.3, 0.55) * Math.max(1, length - frames));
  const horizontal = photo.width / cw >= photo.height / (cw / aspect);
  const sign = r() < 0.5 ? -1 : 1;
  const x0 = sign > 0 ? 0.25 : 0.75;
  const y0 = sign > 0 ? 0.3 : 0.7;
  const jump = 0.5;
  // Shared with the plan: the start moves when the shot begins with an incoming transition.
  const whip = { start, frames };
  return {
    whip,
    camera: {
      at: (k) => {
        const slow = 0.03 * (k / span);
        const fast = k < whip.start ? 0 : k >= whip.start + frames ? 1 : smooth((k - whip.start) / frames);
        const t = sign * (slow + jump * fast);
        return horizontal ? inside((x0 + t) * photo.width, cy0, cw) : inside(cx0, (y0 + t) * photo.height, cw);
      },
    },
  };
}

function gradeFor(r: Rng): Grade {
  const look = Math.floor(r() * 4);
  if (look === 0) return { gain: [1, 1, 1], lift: 0, saturation: 1, contrast: 1 };
  if (look === 1) return { gain: [between(r, 1, 1.15), between(r, 0.95, 1.05), between(r, 0.8, 0.95)], lift: between(r, 0, 12), saturation: between(r, 0.9, 1.2), contrast: between(r, 1, 1.15) };
  if (look === 2) return { gain: [between(r, 0.8, 0.95), between(r, 0.95, 1.05), between(r, 1, 1.2)], lift: between(r, 0, 20), saturation: between(r, 0.6, 0.9), contrast: between(r, 0.85, 1) };
  return { gain: [1, 1, 1], lift: between(r, -10, 10), saturation: between(r, 0, 0.3), contrast: between(r, 1.05, 1.3) };
}

/** Renders one frame of a shot: bilinear sample of the camera's crop, graded, with its overlays. */
function renderShotFrame(plan: ShotPlan, k: number, width: number, height: number): Uint8Array {
  const { photo, grade } = plan;
  const { cx, cy, cw } = plan.camera.at(k);
  const ch = (cw * height) / width;
  const left = cx - cw / 2;
  const top = cy - ch / 2;
  const out = new Uint8Array(width * height * 3);
  const pw = photo.width;
  const src = photo.data;
  const [gr, gg, gb] = grade.gain;
  const { saturation: sat, contrast: con, lift } = grade;
  const tone = (v: number, luma: number, gain: number) => {
    const x = 128 + ((luma + (v - luma) * sat) * gain - 128) * con + lift;
    return x < 0 ? 0 : x > 255 ? 255 : x + 0.5;
  };
  for (let y = 0; y < height; y++) {
    const sy = clamp(top + ((y + 0.5) * ch) / height - 0.5, 0, photo.height - 1.001);
    const y0 = Math.floor(sy);
    const fy = sy - y0;
    for (let x = 0; x < width; x++) {
      const sx = clamp(left + ((x + 0.5) * cw) / width - 0.5, 0, pw - 1.001);
      const x0 = Math.floor(sx);
      const fx = sx - x0;
      const i00 = (y0 * pw + x0) * 3;
      const i01 = i00 + pw * 3;
      const w00 = (1 - fx) * (1 - fy);
      const w10 = fx * (1 - fy);
      const w01 = (1 - fx) * fy;
      const w11 = fx * fy;
      const r = src[i00]! * w00 + src[i00 + 3]! * w10 + src[i01]! * w01 + src[i01 + 3]! * w11;
      const g = src[i00 + 1]! * w00 + src[i00 + 4]! * w10 + src[i01 + 1]! * w01 + src[i01 + 4]! * w11;
      const b = src[i00 + 2]! * w00 + src[i00 + 5]! * w10 + src[i01 + 2]! * w01 + src[i01 + 5]! * w11;
      const luma = 0.299 * r + 0.587 * g + 0.114 * b;
      const o = (y * width + x) * 3;
      out[o] = tone(r, luma, gr);
      out[o + 1] = tone(g, luma, gg);
      out[o + 2] = tone(b, luma, gb);
    }
  }
  for (const ov of plan.overlays) {
    if (k < ov.start || !plan.draw) continue;
    ov.draw(out, width, height, Math.min(1, (k - ov.start + 1) / ov.ramp));
  }
  return out;
}

function fillRect(f: Uint8Array, width: number, height: number, x0: number, y0: number, w: number, h: number, rgb: readonly number[], alpha: number): void {
  const xa = clamp(Math.round(x0), 0, width);
  const xb = clamp(Math.round(x0 + w), 0, width);
  const ya = clamp(Math.round(y0), 0, height);
  const yb = clamp(Math.round(y0 + h), 0, height);
  for (let y = ya; y < yb; y++) {
    for (let x = xa; x < xb; x++) {
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) f[o + c] = Math.round(f[o + c]! * (1 - alpha) + rgb[c]! * alpha);
    }
  }
}

/** A lower third: a translucent bar and lines of "words" (blocks), sliding in as it appears. */
function textOverlay(r: Rng, start: number): Overlay {
  const ink = r() < 0.7 ? [250, 250, 250] : [255, 220, 40];
  const bar = r() < 0.6 ? [10, 10, 20] : [between(r, 0, 200), between(r, 0, 120), between(r, 60, 220)];
  const lines = 1 + Math.floor(r() * 3);
  const words = Array.from({ length: lines }, () => Array.from({ length: 2 + Math.floor(r() * 4) }, () => between(r, 0.06, 0.18)));
  const top = between(r, 0.6, 0.72);
  return {
    kind: 'text',
    start,
    ramp: 1 + Math.floor(r() * 4),
    draw: (f, width, height, alpha) => {
      const lineH = 0.05 * height;
      const barH = lines * lineH * 1.6 + lineH * 0.6;
      const slide = (1 - alpha) * 0.3 * width;
      fillRect(f, width, height, 0.05 * width - slide, top * height, 0.9 * width, barH, bar, 0.65 * alpha);
      words.forEach((line, li) => {
        let x = 0.08 * width - slide;
        for (const w of line) {
          fillRect(f, width, height, x, top * height + lineH * (0.6 + 1.6 * li), w * width, lineH, ink, alpha);
          x += (w + 0.03) * width;
        }
      });
    },
  };
}

/** An end card over the last shot: a brand-coloured panel, a button, a logo; pops or fades in. */
function ctaOverlay(r: Rng, start: number): Overlay {
  const brand = [between(r, 0, 255), between(r, 0, 255), between(r, 0, 255)];
  const button = brand.map((v) => 255 - v);
  const share = between(r, 0.3, 0.45);
  return {
    kind: 'cta',
    start,
    ramp: r() < 0.5 ? 1 : 3 + Math.floor(r() * 3),
    draw: (f, width, height, alpha) => {
      const top = (1 - share) * height;
      fillRect(f, width, height, 0, top, width, share * height, brand, 0.92 * alpha);
      fillRect(f, width, height, 0.2 * width, top + 0.45 * share * height, 0.6 * width, 0.25 * share * height, button, alpha);
      fillRect(f, width, height, 0.08 * width, top + 0.1 * share * height, 0.2 * share * height, 0.2 * share * height, [250, 250, 250], alpha);
      for (let i = 0; i < 3; i++) fillRect(f, width, height, 0.25 * width + i * 0.15 * width, top + 0.12 * share * height, 0.12 * width, 0.06 * share * height, [250, 250, 250], alpha);
    },
  };
}

const blend = (a: Uint8Array, b: Uint8Array, t: number) => {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.round(a[i]! * (1 - t) + b[i]! * t);
  return out;
};
const toColour = (a: Uint8Array, level: number, t: number) => {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.round(a[i]! * (1 - t) + level * t);
  return out;
};

/** A wipe: b covers a behind a soft edge moving across in `dir` (0 left->right, 1 right->left, 2 top->bottom, 3 diagonal). */
function wipe(a: Uint8Array, b: Uint8Array, width: number, height: number, p: number, dir: number): Uint8Array {
  const out = new Uint8Array(a.length);
  const soft = 0.05;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = dir === 0 ? x / width : dir === 1 ? 1 - x / width : dir === 2 ? y / height : (x / width + y / height) / 2;
      const edge = p * (1 + 2 * soft) - soft;
      const t = clamp((edge - u) / soft + 0.5, 0, 1);
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(a[o + c]! * (1 - t) + b[o + c]! * t);
    }
  }
  return out;
}

/** A push: b slides in from one side (0 right, 1 left, 2 bottom, 3 top) and pushes a out. */
function push(a: Uint8Array, b: Uint8Array, width: number, height: number, p: number, dir: number): Uint8Array {
  const out = new Uint8Array(a.length);
  const horizontal = dir < 2;
  const size = horizontal ? width : height;
  const shift = Math.round(smooth(p) * size);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = horizontal ? x : y;
      const s = dir === 0 || dir === 2 ? v + shift : v - shift;
      const fromA = s >= 0 && s < size;
      const sv = fromA ? s : dir === 0 || dir === 2 ? s - size : s + size;
      const sx = horizontal ? sv : x;
      const sy = horizontal ? y : sv;
      const src = fromA ? a : b;
      const i = (sy * width + sx) * 3;
      const o = (y * width + x) * 3;
      out[o] = src[i]!;
      out[o + 1] = src[i + 1]!;
      out[o + 2] = src[i + 2]!;
    }
  }
  return out;
}

/** Renders one clip of family B from the given photos. */
export function renderHeldoutClip(photos: readonly HeldoutPhoto[], options: HeldoutClipOptions): HeldoutClip {
  const r = mulberry32(options.seed);
  const pool = options.only ? photos.filter((p) => options.only!.includes(p.id)) : [...photos];
  if (pool.length < 2) throw new Error(`renderHeldoutClip needs 2 photos or more, got ${pool.length}`);
  const format = HELDOUT_FORMATS[options.format ?? Math.floor(r() * HELDOUT_FORMATS.length)]!;
  const fps = options.fps ?? pick(r, RATES);
  const crf = pick(r, QUALITIES);
  const { width, height } = format;
  const aspect = width / height;
  const count = options.shots ?? 5 + Math.floor(r() * 4);
  const sec = (s: number) => Math.max(1, Math.round(s * fps));

  // Plans: photos (a different one each shot, one reuse in five), motion, grade, overlays.
  const plans: ShotPlan[] = [];
  const lengths: number[] = [];
  for (let i = 0; i < count; i++) {
    const prev = plans[i - 1]?.photo;
    const photo = prev && r() < 0.2 ? prev : pick(r, pool.filter((p) => p !== prev));
    const motion = pick<HeldoutMotion>(r, ['zoom-in', 'zoom-out', 'pan', 'shake', 'whip']);
    const length = sec(motion === 'whip' ? between(r, 1.6, 3.2) : between(r, 0.8, 3));
    const cam = cameraFor(r, motion, photo, aspect, length, length + sec(1.5), fps);
    const overlays: Overlay[] = [];
    const margin = sec(0.3);
    // One fast change per shot: a whip pan or an overlay, never both at once.
    if (motion !== 'whip') {
      if (i === count - 1 && r() < 0.7) overlays.push(ctaOverlay(r, Math.round(between(r, 0.35, 0.6) * length)));
      else if (r() < 0.3 && length > 2 * margin + 2) overlays.push(textOverlay(r, margin + Math.floor(r() * (length - 2 * margin))));
    }
    plans.push({ photo, motion, camera: cam.camera, grade: gradeFor(r), overlays, draw: options.overlays ?? true, ...(cam.whip ? { whip: cam.whip } : {}) });
    lengths.push(length);
  }

  const frames: Uint8Array[] = [];
  const boundaries: HeldoutBoundary[] = [];
  const events: HeldoutEvent[] = [];
  const shots: HeldoutShot[] = [];
  // `skip`: frames of this shot already shown as the incoming side of the last transition.
  let skip = 0;
  for (let i = 0; i < count; i++) {
    const plan = plans[i]!;
    const frame = (k: number) => renderShotFrame(plan, k, width, height);
    const shotStart = frames.length - skip; // index of the shot's own frame 0
    const alone = frames.length;
    for (let k = skip; k < skip + lengths[i]!; k++) frames.push(frame(k));
    shots.push({ from: alone, to: frames.length, photo: plan.photo.id, motion: plan.motion });
    if (plan.whip) events.push({ from: shotStart + plan.whip.start, to: shotStart + plan.whip.start + plan.whip.frames, kind: 'whip-pan' });
    for (const ov of plan.overlays) events.push({ from: shotStart + ov.start, to: shotStart + ov.start + ov.ramp, kind: ov.kind });
    if (i === count - 1) break;

    const next = plans[i + 1]!;
    const incoming = (k: number) => renderShotFrame(next, k, width, height);
    const drawn = pick(r, HELDOUT_TRANSITIONS);
    const transition = options.transitions ? options.transitions[i % options.transitions.length]! : drawn;
    const slow = fps > 40 ? 2 : 1;
    const dir = Math.floor(r() * 4);
    const level = transition === 'fade-black' ? between(r, 0, 12) : between(r, 240, 255);
    const down = 3 + Math.floor(r() * 12);
    const hold = Math.floor(r() * 5);
    const up = 3 + Math.floor(r() * 12);
    const n =
      transition === 'dissolve' ? slow * pick(r, [3, 5, 8, 12, 16, 20, 30])
      : transition === 'fade-black' || transition === 'fade-white' ? down + hold + up
      : transition === 'wipe' || transition === 'push' ? slow * (5 + Math.floor(r() * 11))
      : transition === 'flash' ? 1 + Math.floor(r() * 3)
      : 0;
    const incomingFrames = transition === 'dissolve' || transition === 'wipe' || transition === 'push' ? n : transition.startsWith('fade') ? up : 0;
    // The incoming shot's events keep to its frames of its own, after the transition.
    if (next.whip) next.whip.start += incomingFrames;
    for (const ov of next.overlays) ov.start += incomingFrames;
    const from = frames.length;
    let out = skip + lengths[i]!; // the outgoing shot's next frame
    let inK = 0; // the incoming shot's next frame
    if (transition === 'dissolve') {
      for (let j = 1; j <= n; j++) frames.push(blend(frame(out++), incoming(inK++), j / (n + 1)));
    } else if (transition === 'fade-black' || transition === 'fade-white') {
      for (let j = 1; j <= down; j++) frames.push(toColour(frame(out++), level, j / down));
      for (let j = 0; j < hold; j++) frames.push(new Uint8Array(width * height * 3).fill(Math.round(level)));
      for (let j = 0; j < up; j++) frames.push(toColour(incoming(inK++), level, 1 - j / up));
    } else if (transition === 'wipe' || transition === 'push') {
      const fn = transition === 'wipe' ? wipe : push;
      for (let j = 1; j <= n; j++) frames.push(fn(frame(out++), incoming(inK++), width, height, j / (n + 1), dir));
    } else if (transition === 'flash') {
      const last = frames[frames.length - 1]!;
      for (let j = 0; j < n; j++) frames.push(toColour(last, 255, j === 0 ? 0.9 : 0.97));
    }
    boundaries.push({ from, to: frames.length, transition, frames: n, samePhoto: next.photo === plan.photo });
    skip = inK;
  }
  return { name: `b-${options.seed}`, width, height, fps, crf, aspect: format.aspect, frames, boundaries, events, shots };
}

/**
 * The photos of family B, decoded once: each scaled to fit `maxSide` (the camera crops 40-100 % of
 * it to clips up to 320 px) as RGB.
 */
export async function loadHeldoutPhotos(files: ReadonlyArray<{ id: string; path: string }>, maxSide = 720): Promise<HeldoutPhoto[]> {
  const sharp = (await import('sharp')).default;
  return Promise.all(
    files.map(async (f) => {
      const { data, info } = await sharp(f.path).removeAlpha().toColourspace('srgb').resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true });
      return { id: f.id, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    }),
  );
}

export interface HeldoutScore {
  truth: number;
  detected: number;
  matched: number;
  /** Per transition kind: true boundaries and how many were found. */
  byTransition: Map<HeldoutTransition, { truth: number; found: number }>;
  /** Unmatched detections inside an in-shot event (±tolerance), per kind; the rest under 'other'. */
  falseBy: Map<HeldoutEventKind | 'other', number>;
}

/**
 * Scores detected shot starts against a clip's truth: a detection matches an unmatched boundary when
 * it falls in the transition's range widened by `tolerance` frames (a cut: within ±tolerance); each
 * detection matches at most one boundary, each boundary at most one detection.
 */
export function scoreHeldout(clip: Pick<HeldoutClip, 'boundaries' | 'events'>, detected: readonly number[], tolerance = 2): HeldoutScore {
  const used = new Set<number>();
  const byTransition = new Map<HeldoutTransition, { truth: number; found: number }>();
  const falseBy = new Map<HeldoutEventKind | 'other', number>();
  for (const b of clip.boundaries) {
    const k = byTransition.get(b.transition) ?? { truth: 0, found: 0 };
    k.truth++;
    byTransition.set(b.transition, k);
  }
  let matched = 0;
  for (const at of detected) {
    // The nearest unmatched boundary whose widened range holds the detection.
    let best = -1;
    let bestGap = Infinity;
    clip.boundaries.forEach((b, i) => {
      if (used.has(i) || at < b.from - tolerance || at > b.to + tolerance) return;
      const gap = at < b.from ? b.from - at : at > b.to ? at - b.to : 0;
      if (gap < bestGap) {
        best = i;
        bestGap = gap;
      }
    });
    if (best >= 0) {
      used.add(best);
      matched++;
      byTransition.get(clip.boundaries[best]!.transition)!.found++;
      continue;
    }
    const ev = clip.events.find((e) => at >= e.from - tolerance && at <= e.to + tolerance);
    const kind = ev ? ev.kind : 'other';
    falseBy.set(kind, (falseBy.get(kind) ?? 0) + 1);
  }
  return { truth: clip.boundaries.length, detected: detected.length, matched, byTransition, falseBy };
}

/**
 * Generated video for tests and evaluation: frames rendered here (seeded), encoded by the same packaged
 * ffmpeg the product decodes with, so no sample video is downloaded or checked in. Each clip is a
 * sequence of shots (a textured scene the camera pans over, objects moving) joined by hard cuts, fades
 * through black or dissolves, with the true boundaries returned for scoring a detector.
 */
import { spawn } from 'node:child_process';
import { packagedFfmpeg } from '@afterglow/inference';

export type GeneratedTransition = 'cut' | 'fade' | 'dissolve';

export interface ShotSpec {
  /** Frames of the shot itself (transitions are added between shots). */
  frames: number;
  /** Seed of the scene. */
  seed: number;
  /** Camera pan, pixels a frame (fast pans are the usual false cut). */
  pan?: number;
}

export interface ClipSpec {
  width: number;
  height: number;
  fps: number;
  shots: ShotSpec[];
  /** Transition into shot i+1 (length shots.length - 1). */
  transitions: GeneratedTransition[];
  /** Frames of each fade half / dissolve. */
  transitionFrames?: number;
}

export interface TrueBoundary {
  /** Frame range of the transition [from, to); a cut has from = to = the new shot's first frame. */
  from: number;
  to: number;
  transition: GeneratedTransition;
}

export interface RenderedClip {
  width: number;
  height: number;
  fps: number;
  frames: Uint8Array[];
  boundaries: TrueBoundary[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

interface Scene {
  w: number;
  h: number;
  rgb: Uint8Array;
  blobs: Array<{ x: number; y: number; r: number; vx: number; vy: number; c: [number, number, number] }>;
}

/** A scene twice as wide as the frame: gradient, stripes and noise in its own palette. */
function scene(seed: number, width: number, height: number): Scene {
  const r = rng(seed);
  const w = width * 2;
  const h = height;
  const rgb = new Uint8Array(w * h * 3);
  const base = [r() * 255, r() * 255, r() * 255];
  const tint = [r() * 255, r() * 255, r() * 255];
  const freq = 0.01 + r() * 0.05;
  const angle = r() * Math.PI;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = (x / w + y / h) / 2;
      const stripe = Math.sin((x * Math.cos(angle) + y * Math.sin(angle)) * freq) > 0 ? 1 : 0.75;
      const noise = (r() - 0.5) * 30;
      const i = (y * w + x) * 3;
      for (let c = 0; c < 3; c++) rgb[i + c] = Math.max(0, Math.min(255, (base[c]! * (1 - t) + tint[c]! * t) * stripe + noise));
    }
  }
  const blobs = Array.from({ length: 3 }, () => ({
    x: r() * width,
    y: r() * height,
    r: 6 + r() * height * 0.15,
    vx: (r() - 0.5) * 4,
    vy: (r() - 0.5) * 4,
    c: [r() * 255, r() * 255, r() * 255] as [number, number, number],
  }));
  return { w, h, rgb, blobs };
}

function renderFrame(s: Scene, k: number, width: number, height: number, pan: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const maxOff = s.w - width;
  const period = 2 * maxOff;
  const p = period > 0 ? Math.floor(k * pan) % period : 0;
  const off = p <= maxOff ? p : period - p;
  for (let y = 0; y < height; y++) out.set(s.rgb.subarray((y * s.w + off) * 3, (y * s.w + off + width) * 3), y * width * 3);
  for (const b of s.blobs) {
    const cx = b.x + b.vx * k;
    const cy = b.y + b.vy * k;
    for (let y = Math.max(0, Math.floor(cy - b.r)); y < Math.min(height, Math.ceil(cy + b.r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - b.r)); x < Math.min(width, Math.ceil(cx + b.r)); x++) {
        if ((x - cx) ** 2 + (y - cy) ** 2 <= b.r * b.r) out.set(b.c, (y * width + x) * 3);
      }
    }
  }
  return out;
}

const mix = (a: Uint8Array, b: Uint8Array, t: number) => {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.round(a[i]! * (1 - t) + b[i]! * t);
  return out;
};
const scale = (a: Uint8Array, t: number) => {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Math.round(a[i]! * t);
  return out;
};

/** Renders the clip's frames (RGB) and where its transitions truly are. */
export function renderClip(spec: ClipSpec): RenderedClip {
  const { width, height } = spec;
  const tf = spec.transitionFrames ?? Math.round(spec.fps / 2);
  const frames: Uint8Array[] = [];
  const boundaries: TrueBoundary[] = [];
  let prevScene: Scene | undefined;
  let prevK = 0;
  let prevPan = 0;
  spec.shots.forEach((shot, i) => {
    const sc = scene(shot.seed, width, height);
    const pan = shot.pan ?? 1;
    const transition = i > 0 ? spec.transitions[i - 1]! : undefined;
    let k = 0;
    if (transition && prevScene) {
      const from = frames.length;
      if (transition === 'fade') {
        const last = frames[frames.length - 1]!;
        for (let j = 1; j <= tf; j++) frames.push(scale(last, 1 - j / tf));
        for (let j = 0; j < tf; j++) frames.push(scale(renderFrame(sc, k++, width, height, pan), j / tf));
      } else if (transition === 'dissolve') {
        for (let j = 1; j < tf; j++) frames.push(mix(renderFrame(prevScene, prevK++, width, height, prevPan), renderFrame(sc, k++, width, height, pan), j / tf));
      }
      boundaries.push({ from, to: frames.length, transition });
    }
    for (let j = 0; j < shot.frames; j++) frames.push(renderFrame(sc, k++, width, height, pan));
    prevScene = sc;
    prevK = k;
    prevPan = pan;
  });
  return { width, height, fps: spec.fps, frames, boundaries };
}

export interface EncodeOptions {
  /** 'h264' (default), 'hevc', 'vp9' or 'av1'. */
  codec?: 'h264' | 'hevc' | 'vp9' | 'av1';
  /** x264/x265 CRF or VP9/AV1 CRF-like quality (default 23). */
  crf?: number;
  /** Container: mp4 (default; faststart off), mov or webm. */
  container?: 'mp4' | 'mov' | 'webm';
  /** Add a sine audio track. */
  audio?: boolean;
}

const ENCODER: Record<NonNullable<EncodeOptions['codec']>, string[]> = {
  h264: ['-c:v', 'libx264', '-preset', 'veryfast'],
  hevc: ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error'],
  vp9: ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '0'],
  av1: ['-c:v', 'libaom-av1', '-strict', 'experimental', '-cpu-used', '8', '-b:v', '0'],
};

/** Runs the packaged ffmpeg (test-side: fixed arguments, our own frames on stdin); resolves with stdout. */
export function ffmpeg(args: string[], stdin?: (write: (b: Uint8Array) => Promise<void>) => Promise<void>): Promise<Buffer> {
  const bin = packagedFfmpeg();
  if (!bin) throw new Error('the packaged ffmpeg (@ffmpeg-installer/linux-x64) is missing: run npm ci on linux x64');
  const child = spawn(bin, ['-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<Buffer>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`ffmpeg exit ${code}: ${err.slice(-500)}`))));
  });
  if (stdin && child.stdin) {
    const sink = child.stdin;
    sink.on('error', () => {});
    const write = (b: Uint8Array) => new Promise<void>((resolve) => (sink.write(b) ? resolve() : sink.once('drain', () => resolve())));
    void stdin(write).then(() => sink.end());
  }
  return done;
}

/** Encodes rendered frames to a video file's bytes (through a temp file: MP4 needs a seekable output). */
export async function encodeClip(clip: Pick<RenderedClip, 'width' | 'height' | 'fps' | 'frames'>, file: string, options: EncodeOptions = {}): Promise<Buffer> {
  const codec = options.codec ?? 'h264';
  const crf = String(options.crf ?? 23);
  const container = options.container ?? (codec === 'vp9' || codec === 'av1' ? 'webm' : 'mp4');
  const audio = options.audio ? ['-f', 'lavfi', '-i', `sine=frequency=440:duration=${clip.frames.length / clip.fps}`, '-c:a', container === 'webm' ? 'libopus' : 'aac', '-shortest'] : ['-an'];
  const args = ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${clip.width}x${clip.height}`, '-r', String(clip.fps), '-i', 'pipe:0', ...audio.slice(0, 4), ...ENCODER[codec], '-crf', crf,
    '-pix_fmt', 'yuv420p', ...audio.slice(4), '-f', container === 'webm' ? 'webm' : container, `file:${file}`];
  await ffmpeg(args, async (write) => {
    for (const f of clip.frames) await write(f);
  });
  const { readFile } = await import('node:fs/promises');
  return readFile(file);
}

/** A clip from one of ffmpeg's own test sources (testsrc2), for decoder and limit tests. */
export async function lavfiClip(file: string, o: { width: number; height: number; fps: number; seconds: number } & EncodeOptions): Promise<Buffer> {
  const codec = o.codec ?? 'h264';
  const container = o.container ?? (codec === 'vp9' || codec === 'av1' ? 'webm' : 'mp4');
  const audio = o.audio ? ['-f', 'lavfi', '-i', `sine=frequency=440:duration=${o.seconds}`] : [];
  await ffmpeg([
    '-f', 'lavfi', '-i', `testsrc2=size=${o.width}x${o.height}:rate=${o.fps}:duration=${o.seconds}`, ...audio,
    ...ENCODER[codec], '-crf', String(o.crf ?? 30), '-pix_fmt', 'yuv420p', ...(o.audio ? ['-c:a', container === 'webm' ? 'libopus' : 'aac'] : ['-an']),
    '-f', container, `file:${file}`,
  ]);
  const { readFile } = await import('node:fs/promises');
  return readFile(file);
}

export interface ShotScore {
  truth: number;
  detected: number;
  matched: number;
  precision: number;
  recall: number;
  f1: number;
}

/**
 * Scores detected shot starts against true boundaries: a detection matches an unmatched boundary
 * when it falls in the transition's range widened by `tolerance` frames (a cut: within ±tolerance).
 */
export function scoreBoundaries(truth: readonly TrueBoundary[], detected: readonly number[], tolerance = 2): ShotScore {
  const used = new Set<number>();
  let matched = 0;
  for (const at of detected) {
    const k = truth.findIndex((b, i) => !used.has(i) && at >= b.from - tolerance && at <= b.to + tolerance);
    if (k >= 0) {
      used.add(k);
      matched++;
    }
  }
  const precision = detected.length ? matched / detected.length : 1;
  const recall = truth.length ? matched / truth.length : 1;
  return { truth: truth.length, detected: detected.length, matched, precision, recall, f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0 };
}

export interface HostileVideo {
  name: string;
  filename: string;
  bytes: Uint8Array;
  /** HTTP status and error code the registry must answer with. */
  status: number;
  error: string;
}

/** A zip archive's local header and end record, with an HTML payload: what a polyglot carries. */
export const ZIP_PAYLOAD = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(26), Buffer.from('a.html<script>alert(1)</script>'), Buffer.from('PK\x05\x06', 'latin1'), Buffer.alloc(18)]);

/**
 * Hostile video uploads, generated in `dir`: truncated, absurd dimensions, a frame-count bomb (over
 * `maxFrames`), polyglots, a codec and a container off the allow-lists.
 */
export async function hostileVideoUploads(dir: string, maxFrames: number): Promise<HostileVideo[]> {
  const path = await import('node:path');
  const { readFile } = await import('node:fs/promises');
  const good = await lavfiClip(path.join(dir, 'good.mp4'), { width: 160, height: 96, fps: 25, seconds: 1 });
  const webm = await lavfiClip(path.join(dir, 'good.webm'), { width: 160, height: 96, fps: 25, seconds: 1, codec: 'vp9' });
  const bomb = await lavfiClip(path.join(dir, 'bomb.mp4'), { width: 32, height: 32, fps: 100, seconds: Math.ceil((maxFrames * 2) / 100), crf: 51 });
  await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x96:rate=25:duration=1', '-c:v', 'mpeg4', '-an', '-f', 'mp4', `file:${path.join(dir, 'mp4v.mp4')}`]);
  await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x96:rate=25:duration=1', '-c:v', 'libx264', '-an', '-f', 'matroska', `file:${path.join(dir, 'h264.mkv')}`]);
  const huge = Buffer.from(good);
  const entry = huge.indexOf('avc1', huge.indexOf('stsd', 0, 'latin1'), 'latin1');
  huge.writeUInt16BE(30_000, entry + 28);
  huge.writeUInt16BE(30_000, entry + 30);
  return [
    { name: 'truncated mp4', filename: 'cut.mp4', bytes: good.subarray(0, Math.floor(good.byteLength * 0.7)), status: 422, error: 'truncated' },
    { name: 'truncated webm', filename: 'cut.webm', bytes: webm.subarray(0, Math.floor(webm.byteLength * 0.7)), status: 422, error: 'truncated' },
    { name: 'huge dimensions', filename: 'huge.mp4', bytes: huge, status: 413, error: 'too_large_side' },
    { name: 'frame-count bomb', filename: 'bomb.mp4', bytes: bomb, status: 413, error: 'too_many_frames' },
    { name: 'mp4 + zip polyglot', filename: 'poly.mp4', bytes: Buffer.concat([good, ZIP_PAYLOAD]), status: 422, error: 'trailing_data' },
    { name: 'webm + zip polyglot', filename: 'poly.webm', bytes: Buffer.concat([webm, ZIP_PAYLOAD]), status: 422, error: 'trailing_data' },
    { name: 'MPEG-4 Part 2 codec', filename: 'old.mp4', bytes: await readFile(path.join(dir, 'mp4v.mp4')), status: 415, error: 'unsupported_codec' },
    { name: 'Matroska container', filename: 'x.mkv', bytes: await readFile(path.join(dir, 'h264.mkv')), status: 415, error: 'unsupported_container' },
  ];
}

export interface PhotoShot {
  /** RGB pixels of the photo (e.g. sharp(...).removeAlpha().raw()). */
  photo: { data: Uint8Array; width: number; height: number };
  frames: number;
  /** Crop of the photo at the first and last frame, as fractions [left, top, width, height]; the camera moves linearly between them (Ken Burns). */
  from: [number, number, number, number];
  to: [number, number, number, number];
}

/** Frames of a Ken Burns move over a photo (bilinear sampling), width x height RGB. */
export function kenBurns(shot: PhotoShot, width: number, height: number): Uint8Array[] {
  const { data, width: pw, height: ph } = shot.photo;
  const out: Uint8Array[] = [];
  for (let k = 0; k < shot.frames; k++) {
    const t = shot.frames > 1 ? k / (shot.frames - 1) : 0;
    const [l, tp, w, h] = shot.from.map((v, i) => v + (shot.to[i]! - v) * t) as [number, number, number, number];
    const f = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      const sy = Math.min(ph - 1.001, (tp + (h * (y + 0.5)) / height) * ph);
      const y0 = Math.floor(sy);
      const fy = sy - y0;
      for (let x = 0; x < width; x++) {
        const sx = Math.min(pw - 1.001, (l + (w * (x + 0.5)) / width) * pw);
        const x0 = Math.floor(sx);
        const fx = sx - x0;
        for (let c = 0; c < 3; c++) {
          const at = (yy: number, xx: number) => data[(yy * pw + xx) * 3 + c]!;
          const v = (at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy) + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy;
          f[(y * width + x) * 3 + c] = v;
        }
      }
    }
    out.push(f);
  }
  return out;
}

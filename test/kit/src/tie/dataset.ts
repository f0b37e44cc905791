/**
 * Generates the tie evaluation set: masters cut from real photos (./sources.ts) and ads derived from
 * them the way creative teams cut banners, with the ground truth and per-master provenance.
 *
 * Masters ("shoots"): each source picture yields 1-4 frames (sub-rectangles with little overlap, like
 * several frames of one shoot), so masters of one shoot share colours, light and subject; ~6 % of the
 * frames also get a black-and-white select as a distinct master; pictures in one `family` (light/dark
 * or colourway variants, a stereo pair) are distinct masters too. All of these are hard negatives.
 *
 * Ads: a banner format (728x90, 300x250, 160x600, 1080x1080, 1080x1920, 1200x628), a layout (cover
 * crop with zoom and focal point, split panel, contain with solid or blurred fill, framed), the photo
 * flipped, colour-graded, warmed/cooled or blurred, headline + CTA + badge + logo overlays (SVG), then
 * low resolution and JPEG/PNG/WebP encoding at varied quality.
 *
 * Deterministic for a seed. Written to a cache directory keyed by every input (never into git) and
 * reused when complete.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '@afterglow/core';
import type { Rect } from '@afterglow/inference';
import { renderAd } from 'afterglow';
import { findSourcePhotos, FULL_PACKAGES, type SourcePhoto } from './sources.js';

/** Bump when the generator's output changes: cached sets are keyed by it. */
export const GENERATOR_VERSION = 5;

export interface GenerateOptions {
  masters: number;
  ads: number;
  seed?: number;
  /** Debian packages to take source photos from (default: FULL_PACKAGES). */
  packages?: readonly string[];
  /** Root of the dataset cache (default AFTERGLOW_TIE_DATA_DIR or <tmpdir>/afterglow-tie-data). */
  cacheDir?: string;
  /** Share of masters that have at least one ad (the rest are distractors). Default 0.7. */
  usedShare?: number;
  /** Concurrent sharp pipelines (default 4). */
  concurrency?: number;
  log?: (msg: string) => void;
}

export interface MasterRecord {
  file: string;
  width: number;
  height: number;
  family: string;
  /** Frame of the source picture this master is (source pixels). */
  frame: Rect;
  frameIndex: number;
  framesOfSource: number;
  variant: 'colour' | 'mono';
  source: {
    id: string;
    package: string;
    packageVersion: string | undefined;
    path: string;
    license: string;
    copyright: string;
    upstreamLicense?: string;
  };
}

export interface AdRecord {
  file: string;
  master: string;
  format: string;
  width: number;
  height: number;
  layout: string;
  /** Human-readable list of what was done (for error analysis). */
  transforms: string[];
}

export interface TieDataset {
  dir: string;
  mastersDir: string;
  adsDir: string;
  masters: MasterRecord[];
  ads: AdRecord[];
  /** Ad file name -> master file name. */
  truth: Map<string, string>;
  /** Seconds generation took (0 when reused from the cache). */
  generatedInS: number;
}

/** Banner formats of the evaluation (IAB and social sizes). */

export function defaultTieDataDir(): string {
  return process.env.AFTERGLOW_TIE_DATA_DIR ?? path.join(os.tmpdir(), 'afterglow-tie-data');
}

/** Builds (or reuses) a dataset. Throws when the packages yield too few pictures. */
export async function generateTieDataset(options: GenerateOptions): Promise<TieDataset> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 1;
  const packages = options.packages ?? FULL_PACKAGES;
  const sources = findSourcePhotos(packages);
  if (sources.length === 0) throw new Error(`no source photos found in Debian packages ${packages.join(', ')} (install them or allow apt-get download)`);
  const key = createHash('sha256')
    .update(JSON.stringify({ v: GENERATOR_VERSION, m: options.masters, a: options.ads, seed, used: options.usedShare ?? 0.7, src: sources.map((s) => [s.id, statSync(s.path).size]) }))
    .digest('hex')
    .slice(0, 16);
  const root = options.cacheDir ?? defaultTieDataDir();
  const dir = path.join(root, `tie-${options.masters}m-${options.ads}a-s${seed}-${key}`);
  if (existsSync(path.join(dir, '.complete'))) return { ...readDataset(dir), generatedInS: 0 };

  const t0 = performance.now();
  log(`generating ${options.masters} masters and ${options.ads} ads from ${sources.length} pictures in ${packages.join(', ')} -> ${dir}`);
  const work = `${dir}.tmp-${process.pid}`;
  try {
    return await generateInto(work, dir, sources, packages, seed, options, t0, log);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function generateInto(
  work: string,
  dir: string,
  allSources: SourcePhoto[],
  packages: readonly string[],
  seed: number,
  options: GenerateOptions,
  t0: number,
  log: (msg: string) => void,
): Promise<TieDataset> {
  let sources = allSources;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.join(work, 'masters'), { recursive: true });
  mkdirSync(path.join(work, 'ads'), { recursive: true });
  const rng = mulberry32(seed);
  const conc = options.concurrency ?? 4;

  // 1. Plan frames per source, then cut masters.
  const probed = await Promise.all(sources.map(async (s) => {
    const m = await sharp(s.path, { limitInputPixels: false }).metadata();
    const w = m.autoOrient?.width ?? m.width ?? 0;
    const h = m.autoOrient?.height ?? m.height ?? 0;
    return { w, h, overlay: m.hasAlpha ? await isOverlay(s.path) : false };
  }));
  const overlays = sources.filter((_, i) => probed[i]!.overlay);
  if (overlays.length) log(`skipped ${overlays.length} transparent overlay pictures (not photos): ${overlays.map((s) => path.basename(s.path)).join(', ')}`);
  sources = sources.filter((_, i) => !probed[i]!.overlay);
  const dims = probed.filter((p) => !p.overlay);
  const plan = planMasters(sources, dims, options.masters, rng);
  const masters: MasterRecord[] = new Array(plan.length);
  const bySource = new Map<number, number[]>();
  plan.forEach((p, i) => bySource.set(p.source, [...(bySource.get(p.source) ?? []), i]));
  await forEachLimit([...bySource.entries()], Math.max(1, Math.floor(conc / 2)), async ([si, idxs]) => {
    const src = sources[si]!;
    const { w, h } = dims[si]!;
    // Decode once (bounded size), cut every frame of this picture from the pixels.
    const scale = Math.min(1, 3200 / Math.max(w, h));
    const sw = Math.round(w * scale);
    const sh = Math.round(h * scale);
    const raw = await sharp(src.path, { limitInputPixels: false }).autoOrient().resize(sw, sh, { fit: 'fill' }).flatten({ background: '#ffffff' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
    for (const i of idxs) {
      const p = plan[i]!;
      const fr = scaleRect(p.frame, scale, sw, sh);
      const long = Math.min(1800, Math.max(fr.width, fr.height));
      let img = sharp(raw, { raw: { width: sw, height: sh, channels: 3 } }).extract(fr).resize(long, long, { fit: 'inside' });
      if (p.variant === 'mono') img = img.greyscale().toColourspace('srgb');
      const buf = await img.jpeg({ quality: 90 }).toBuffer();
      const meta = await sharp(buf).metadata();
      writeFileSync(path.join(work, 'masters', p.file), buf);
      masters[i] = {
        file: p.file,
        width: meta.width ?? 0,
        height: meta.height ?? 0,
        family: src.family,
        frame: p.frame,
        frameIndex: p.frameIndex,
        framesOfSource: p.framesOfSource,
        variant: p.variant,
        source: {
          id: src.id,
          package: src.package,
          packageVersion: src.packageVersion,
          path: src.path.replace(/^.*?\/(usr\/)/, '/$1'),
          license: src.license,
          copyright: src.copyright,
          ...(src.upstreamLicense ? { upstreamLicense: src.upstreamLicense } : {}),
        },
      };
    }
  });

  // 2. Ads: which masters are used, then one spec per ad, rendered.
  const order = shuffle(masters.map((_, i) => i), rng);
  const used = order.slice(0, Math.max(1, Math.min(masters.length, Math.round(masters.length * (options.usedShare ?? 0.7)))));
  const specs: Array<{ file: string; master: number; rseed: number }> = [];
  for (let a = 0; a < options.ads; a++) {
    const master = a < used.length ? used[a]! : used[Math.floor(rng() * used.length)]!;
    specs.push({ file: '', master, rseed: Math.floor(rng() * 2 ** 32) });
  }
  const shuffledSpecs = shuffle(specs, rng);
  const ads: AdRecord[] = new Array(shuffledSpecs.length);
  await forEachLimit(
    shuffledSpecs.map((s, i) => ({ ...s, i })),
    conc,
    async (s) => {
      const m = masters[s.master]!;
      const rendered = await renderAd(path.join(work, 'masters', m.file), mulberry32(s.rseed));
      const file = `ad${String(s.i + 1).padStart(4, '0')}-${rendered.format}.${rendered.ext}`;
      writeFileSync(path.join(work, 'ads', file), rendered.bytes);
      ads[s.i] = { file, master: m.file, format: rendered.format, width: rendered.width, height: rendered.height, layout: rendered.layout, transforms: rendered.transforms };
    },
  );

  const manifest = {
    generator: { version: GENERATOR_VERSION, seed, masters: options.masters, ads: options.ads, packages: [...packages] },
    note: 'Generated by @afterglow/inference tie/dataset from real photos of Debian packages; per-master provenance below. Not for redistribution beyond the source licences.',
    masters,
    ads,
  };
  writeFileSync(path.join(work, 'manifest.json'), JSON.stringify(manifest, null, 1));
  writeFileSync(path.join(work, '.complete'), '');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.dirname(dir), { recursive: true });
  renameSync(work, dir);
  const generatedInS = (performance.now() - t0) / 1000;
  log(`generated in ${generatedInS.toFixed(1)} s`);
  return { ...readDataset(dir), generatedInS };
}

function readDataset(dir: string): Omit<TieDataset, 'generatedInS'> {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { masters: MasterRecord[]; ads: AdRecord[] };
  return {
    dir,
    mastersDir: path.join(dir, 'masters'),
    adsDir: path.join(dir, 'ads'),
    masters: manifest.masters,
    ads: manifest.ads,
    truth: new Map(manifest.ads.map((a) => [a.file, a.master])),
  };
}

// ---------------------------------------------------------------------------------------------------
// Masters

interface PlannedMaster {
  source: number;
  file: string;
  frame: Rect;
  frameIndex: number;
  framesOfSource: number;
  variant: 'colour' | 'mono';
}

/** Frames a picture can give: by its size, and at most 3 for members of a multi-picture family. */
function capacity(w: number, h: number, familySize: number): number {
  const long = Math.max(w, h);
  const c = long < 1000 ? 1 : long < 1600 ? 2 : long < 2500 ? 3 : 4;
  return familySize > 1 ? Math.min(3, c) : c;
}

function planMasters(sources: SourcePhoto[], dims: Array<{ w: number; h: number }>, target: number, rng: () => number): PlannedMaster[] {
  const familySize = new Map<string, number>();
  for (const s of sources) familySize.set(s.family, (familySize.get(s.family) ?? 0) + 1);
  const caps = sources.map((s, i) => capacity(dims[i]!.w, dims[i]!.h, familySize.get(s.family)!));
  const monoTarget = target >= 20 ? Math.max(1, Math.round(target * 0.06)) : 0;
  const frameTarget = target - monoTarget;
  const totalCap = caps.reduce((a, b) => a + b, 0);
  if (totalCap < frameTarget) throw new Error(`${sources.length} pictures give at most ${totalCap} frames; ${frameTarget} needed (use more packages or fewer masters)`);
  // Round-robin over sources in a seeded order: every picture gets a frame before any gets a second.
  const order = shuffle(sources.map((_, i) => i), rng);
  const frames = new Array<number>(sources.length).fill(0);
  let placed = 0;
  for (let round = 1; placed < frameTarget; round++) {
    for (const i of order) {
      if (placed >= frameTarget) break;
      if (caps[i]! >= round) {
        frames[i] = round;
        placed++;
      }
    }
  }
  const out: PlannedMaster[] = [];
  sources.forEach((_source, i) => {
    const n = frames[i]!;
    if (n === 0) return;
    const rects = shootFrames(dims[i]!.w, dims[i]!.h, n, rng);
    rects.forEach((frame, k) => out.push({ source: i, file: '', frame, frameIndex: k + 1, framesOfSource: n, variant: 'colour' }));
  });
  // Black-and-white selects of some colour frames (photos, not skimage's small pictures).
  const colourIdx = shuffle(out.map((_, i) => i).filter((i) => Math.max(out[i]!.frame.width, out[i]!.frame.height) >= 800), rng);
  for (const i of colourIdx.slice(0, monoTarget)) out.push({ ...out[i]!, variant: 'mono' });
  // File names in a seeded order (the number says nothing about the source).
  const ids = shuffle(out.map((_, i) => i), rng);
  ids.forEach((oi, n) => {
    const p = out[oi]!;
    const s = sources[p.source]!;
    p.file = `m${String(n + 1).padStart(4, '0')}-${s.slug}-f${p.frameIndex}${p.variant === 'mono' ? '-bw' : ''}.jpg`;
  });
  return out;
}

/**
 * `n` frames of a w x h picture, like several frames of one shoot: 1 = the whole picture; 2 = two
 * halves along the long side (58 % each); 3 = three 40 % strips along the long side; 4 = 2 x 2 corners
 * (56 % each). Overlaps stay small, positions and sizes are jittered.
 */
export function shootFrames(w: number, h: number, n: number, rng: () => number): Rect[] {
  const j = (span: number) => (rng() - 0.5) * span;
  const clampRect = (x: number, y: number, fw: number, fh: number): Rect => {
    const width = Math.max(1, Math.min(w, Math.round(fw)));
    const height = Math.max(1, Math.min(h, Math.round(fh)));
    const left = Math.max(0, Math.min(w - width, Math.round(x)));
    const top = Math.max(0, Math.min(h - height, Math.round(y)));
    return { left, top, width, height };
  };
  if (n <= 1) return [{ left: 0, top: 0, width: w, height: h }];
  const wide = w >= h;
  // Work in (long, short) coordinates, swap back for portrait pictures.
  const L = wide ? w : h;
  const S = wide ? h : w;
  const rects: Array<[number, number, number, number]> = [];
  if (n === 2 || n === 3) {
    const f = n === 2 ? 0.58 : 0.4;
    for (let k = 0; k < n; k++) {
      const fl = L * (f + j(0.03));
      const fs = S * (0.88 + j(0.08));
      const x = n === 2 ? (k === 0 ? L * (0.01 + rng() * 0.02) : L - fl - L * (0.01 + rng() * 0.02)) : L * (k * 0.3 + j(0.02)) ;
      const y = (S - fs) * rng();
      rects.push([x, y, fl, fs]);
    }
  } else {
    for (let k = 0; k < 4; k++) {
      const fl = L * (0.56 + j(0.03));
      const fs = S * (0.56 + j(0.03));
      const x = k % 2 === 0 ? L * 0.01 * rng() : L - fl - L * 0.01 * rng();
      const y = k < 2 ? S * 0.01 * rng() : S - fs - S * 0.01 * rng();
      rects.push([x, y, fl, fs]);
    }
  }
  return rects.map(([x, y, fl, fs]) => (wide ? clampRect(x, y, fl, fs) : clampRect(y, x, fs, fl)));
}

/**
 * A picture with mostly transparent pixels is an overlay meant to be composited on a desktop colour
 * (several mate-backgrounds "abstract" PNGs: mean alpha 2-11 %), not a photo: flattened onto white it is a
 * blank master, and every ad cut from it is blank too. Generator v4 kept them (about 7 % of the full set's
 * masters were pure white).
 */
async function isOverlay(file: string): Promise<boolean> {
  const { channels } = await sharp(file, { limitInputPixels: false }).stats();
  const alpha = channels[3];
  return alpha !== undefined && alpha.mean < 0.9 * 255;
}

function scaleRect(r: Rect, s: number, w: number, h: number): Rect {
  const left = Math.max(0, Math.min(w - 1, Math.round(r.left * s)));
  const top = Math.max(0, Math.min(h - 1, Math.round(r.top * s)));
  return { left, top, width: Math.max(1, Math.min(w - left, Math.round(r.width * s))), height: Math.max(1, Math.min(h - top, Math.round(r.height * s))) };
}

function shuffle<T>(xs: T[], rng: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

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
import sharp, { type OverlayOptions } from 'sharp';
import type { Rect } from '../../models/types.js';
import { findSourcePhotos, FULL_PACKAGES, type SourcePhoto } from './sources.js';
import { mulberry32 } from '@afterglow/core';

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
export const AD_FORMATS = [
  { name: 'leaderboard', width: 728, height: 90, weight: 1 },
  { name: 'mrec', width: 300, height: 250, weight: 1.2 },
  { name: 'skyscraper', width: 160, height: 600, weight: 0.8 },
  { name: 'square', width: 1080, height: 1080, weight: 1.2 },
  { name: 'story', width: 1080, height: 1920, weight: 1 },
  { name: 'landscape', width: 1200, height: 628, weight: 1 },
] as const;

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
  sources.forEach((s, i) => {
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

// ---------------------------------------------------------------------------------------------------
// Ads

const HEADLINES = ['Summer Sale', 'New Collection', 'Up to 50% off', 'Discover the range', 'Limited Edition', 'Made to last', 'Feel the difference', 'This season only', 'Autumn Drop', 'The Weekend Edit', 'Go further', 'Fresh arrivals'];
const CTAS = ['Shop now', 'Learn more', 'Book today', 'Discover', 'Get yours', 'Sign up', 'Explore'];
const BRANDS = ['NORDIK', 'Aurora', 'VELOCE', 'Maison Lume', 'KAIRO', 'Pinecrest', 'Solenne', 'ORBIT'];
const BADGES = ['-30%', 'NEW', '2 for 1', 'SALE', '-50%'];

interface RenderedAd {
  bytes: Buffer;
  ext: 'jpg' | 'png' | 'webp';
  format: string;
  width: number;
  height: number;
  layout: string;
  transforms: string[];
}

type Layout = 'cover' | 'split' | 'contain' | 'frame';

function pickWeighted<T>(items: ReadonlyArray<readonly [T, number]>, rng: () => number): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let r = rng() * total;
  for (const [v, w] of items) {
    r -= w;
    if (r <= 0) return v;
  }
  return items[items.length - 1]![0];
}

function hsl(h: number, s: number, l: number): string {
  return `hsl(${Math.round(h)},${Math.round(s)}%,${Math.round(l)}%)`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** One ad from a master file. */
export async function renderAd(masterPath: string, rng: () => number): Promise<RenderedAd> {
  const fmt = pickWeighted(AD_FORMATS.map((f) => [f, f.weight] as const), rng);
  const W: number = fmt.width;
  const H: number = fmt.height;
  const thin = fmt.name === 'leaderboard' || fmt.name === 'skyscraper';
  const layout: Layout = thin
    ? pickWeighted<Layout>([['split', 0.5], ['cover', 0.3], ['contain', 0.2]], rng)
    : pickWeighted<Layout>([['cover', 0.4], ['split', 0.25], ['contain', 0.2], ['frame', 0.15]], rng);
  const tf: string[] = [`${fmt.name} ${W}x${H}`, layout];
  const brandHue = rng() * 360;
  const brand = hsl(brandHue, 40 + rng() * 50, 18 + rng() * 40);
  const accent = hsl((brandHue + 150 + rng() * 60) % 360, 70 + rng() * 30, 45 + rng() * 15);

  // Photo region within the banner.
  let region: Rect = { left: 0, top: 0, width: W, height: H };
  let panel: Rect | undefined;
  const wide = W >= H;
  if (layout === 'split') {
    const share = thin ? 0.3 + rng() * 0.18 : 0.5 + rng() * 0.22;
    const first = rng() < 0.5;
    if (wide) {
      const pw = Math.round(W * share);
      region = { left: first ? 0 : W - pw, top: 0, width: pw, height: H };
      panel = { left: first ? pw : 0, top: 0, width: W - pw, height: H };
    } else {
      const ph = Math.round(H * share);
      region = { left: 0, top: first ? 0 : H - ph, width: W, height: ph };
      panel = { left: 0, top: first ? ph : 0, width: W, height: H - ph };
    }
    tf.push(`photo ${Math.round(share * 100)}% ${first ? (wide ? 'left' : 'top') : wide ? 'right' : 'bottom'}`);
  } else if (layout === 'frame') {
    const t = Math.round(Math.min(W, H) * (0.04 + rng() * 0.05));
    const bar = Math.round(H * (0.12 + rng() * 0.06));
    region = { left: t, top: t, width: W - 2 * t, height: H - 2 * t - bar };
    panel = { left: 0, top: H - t - bar, width: W, height: bar + t };
    tf.push(`frame ${t}px`);
  }

  // Photo: cover-crop (zoom, focal point) or contain.
  const meta = await sharp(masterPath).metadata();
  const mw = meta.width ?? 1;
  const mh = meta.height ?? 1;
  let photo = sharp(masterPath);
  let photoW = region.width;
  let photoH = region.height;
  let photoLeft = region.left;
  let photoTop = region.top;
  let fillBlur = false;
  if (layout === 'contain') {
    const margin = 0.82 + rng() * 0.16;
    const s = Math.min(region.width / mw, region.height / mh) * margin;
    photoW = Math.max(8, Math.round(mw * s));
    photoH = Math.max(8, Math.round(mh * s));
    photoLeft = region.left + Math.round((region.width - photoW) * (wide ? 0.15 + rng() * 0.7 : 0.5));
    photoTop = region.top + Math.round((region.height - photoH) * (wide ? 0.5 : 0.15 + rng() * 0.7));
    photo = photo.resize(photoW, photoH, { fit: 'fill' });
    fillBlur = rng() < 0.4;
    tf.push(`contain ${Math.round(margin * 100)}%${fillBlur ? ' blurred fill' : ''}`);
    // Copy goes in the wider free space beside the contained photo when there is room for it, as a
    // designer sets it (v4 laid the headline band and CTA across thin banners, over the photo).
    const before = wide ? photoLeft - region.left : photoTop - region.top;
    const after = wide ? region.left + region.width - photoLeft - photoW : region.top + region.height - photoTop - photoH;
    const free = Math.max(before, after);
    if (free >= 0.25 * (wide ? W : H)) {
      panel = wide
        ? { left: before >= after ? region.left : photoLeft + photoW, top: 0, width: free, height: H }
        : { left: 0, top: before >= after ? region.top : photoTop + photoH, width: W, height: free };
    }
  } else {
    const zoom = 1 + rng() * (thin ? 0.3 : 0.6);
    const s = Math.max(region.width / mw, region.height / mh) * zoom;
    const ww = Math.min(mw, Math.max(4, Math.round(region.width / s)));
    const wh = Math.min(mh, Math.max(4, Math.round(region.height / s)));
    const fx = 0.3 + rng() * 0.4;
    const fy = 0.3 + rng() * 0.4;
    const left = Math.max(0, Math.min(mw - ww, Math.round(fx * mw - ww / 2)));
    const top = Math.max(0, Math.min(mh - wh, Math.round(fy * mh - wh / 2)));
    photo = photo.extract({ left, top, width: ww, height: wh }).resize(region.width, region.height, { fit: 'fill' });
    tf.push(`cover zoom ${zoom.toFixed(2)} window ${ww}x${wh}@${left},${top}`);
  }
  if (rng() < 0.2) {
    photo = photo.flop();
    tf.push('flipped');
  }
  if (rng() < 0.75) {
    const b = 0.85 + rng() * 0.3;
    const sat = 0.65 + rng() * 0.7;
    const hue = Math.round((rng() - 0.5) * 30);
    const a = 0.85 + rng() * 0.35;
    const c = Math.round((rng() - 0.5) * 30);
    photo = photo.modulate({ brightness: b, saturation: sat, hue }).linear(a, c);
    tf.push(`grade b${b.toFixed(2)} s${sat.toFixed(2)} h${hue} c${a.toFixed(2)}/${c}`);
  }
  if (rng() < 0.1) {
    const warm = rng() < 0.5;
    photo = photo.recomb(warm ? [[1.08, 0.02, 0], [0, 1, 0], [0, 0, 0.88]] : [[0.9, 0, 0], [0, 1, 0.02], [0, 0.02, 1.1]]);
    tf.push(warm ? 'warm' : 'cool');
  }
  if (rng() < 0.15) {
    const sigma = 0.6 + rng() * 1.0;
    photo = photo.blur(sigma);
    tf.push(`blur ${sigma.toFixed(1)}`);
  }
  const photoBuf = await photo.removeAlpha().png({ compressionLevel: 1 }).toBuffer();

  // Background: brand colour, or the photo itself blurred (contain with blurred fill).
  const layers: OverlayOptions[] = [];
  if (fillBlur) {
    const bg = await sharp(masterPath).resize(region.width, region.height, { fit: 'cover' }).blur(12).modulate({ brightness: 0.7 }).png({ compressionLevel: 1 }).toBuffer();
    layers.push({ input: bg, left: region.left, top: region.top });
  }
  layers.push({ input: photoBuf, left: photoLeft, top: photoTop });
  layers.push({ input: Buffer.from(overlaySvg(W, H, layout, panel, brand, accent, rng, tf)), left: 0, top: 0 });
  const base = layout === 'contain' && !fillBlur ? (rng() < 0.5 ? brand : '#f4f1ea') : brand;
  let out = sharp({ create: { width: W, height: H, channels: 3, background: base } }).composite(layers);
  let width = W;
  let height = H;
  let buf = await out.png({ compressionLevel: 1 }).toBuffer();
  if (rng() < 0.15) {
    const f = 2 + rng() * 1.5;
    const sw = Math.max(16, Math.round(W / f));
    const sh = Math.max(16, Math.round(H / f));
    if (thin || rng() < 0.5) {
      buf = await sharp(buf).resize(sw, sh, { fit: 'fill' }).resize(W, H, { fit: 'fill', kernel: 'nearest' }).png({ compressionLevel: 1 }).toBuffer();
      tf.push(`low-res x${f.toFixed(1)} upscaled`);
    } else {
      buf = await sharp(buf).resize(sw, sh, { fit: 'fill' }).png({ compressionLevel: 1 }).toBuffer();
      width = sw;
      height = sh;
      tf.push(`low-res delivered ${sw}x${sh}`);
    }
  }
  out = sharp(buf);
  const enc = rng();
  let bytes: Buffer;
  let ext: RenderedAd['ext'];
  if (enc < 0.85) {
    const q = Math.round(40 + rng() * 52);
    bytes = await out.jpeg({ quality: q }).toBuffer();
    ext = 'jpg';
    tf.push(`jpeg q${q}`);
  } else if (enc < 0.95) {
    bytes = await out.png().toBuffer();
    ext = 'png';
    tf.push('png');
  } else {
    const q = Math.round(50 + rng() * 40);
    bytes = await out.webp({ quality: q }).toBuffer();
    ext = 'webp';
    tf.push(`webp q${q}`);
  }
  return { bytes, ext, format: fmt.name, width, height, layout, transforms: tf };
}

/** Headline, CTA button, badge, logo and (on photos) a legibility gradient, as one SVG layer. */
function overlaySvg(W: number, H: number, layout: Layout, panel: Rect | undefined, brand: string, accent: string, rng: () => number, tf: string[]): string {
  const parts: string[] = [];
  const headline = HEADLINES[Math.floor(rng() * HEADLINES.length)]!;
  const cta = CTAS[Math.floor(rng() * CTAS.length)]!;
  const brandName = BRANDS[Math.floor(rng() * BRANDS.length)]!;
  const light = rng() < 0.7;
  const ink = light ? '#ffffff' : '#111111';
  const font = rng() < 0.5 ? 'DejaVu Sans' : 'DejaVu Serif';
  // Text area: the panel, or a band over the photo (bottom or top) with a gradient behind it.
  let area: Rect;
  if (panel && layout === 'split') area = panel;
  else if (panel) area = panel;
  else {
    const band = Math.round(H * (W > 3 * H ? 1 : 0.32));
    const atTop = rng() < 0.3;
    area = { left: 0, top: atTop ? 0 : H - band, width: W, height: band };
    if (W <= 3 * H) {
      parts.push(
        `<defs><linearGradient id="g" x1="0" y1="${atTop ? 1 : 0}" x2="0" y2="${atTop ? 0 : 1}"><stop offset="0" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="${(0.35 + rng() * 0.3).toFixed(2)}"/></linearGradient></defs>`,
        `<rect x="0" y="${area.top}" width="${W}" height="${band}" fill="url(#g)"/>`,
      );
    }
  }
  const horizontal = area.width >= area.height * 2.2;
  // Font size: fits the area; on one line, headline + CTA button (~0.62 em per character) fit its width.
  let unit = Math.max(10, Math.min(area.height * (horizontal ? 0.34 : 0.09), area.width * 0.085));
  if (horizontal) unit = Math.max(8, Math.min(unit, area.width / (0.62 * (headline.length + cta.length) + 3.6)));
  else unit = Math.max(8, Math.min(unit, area.width / (0.62 * headline.length + 1.4)));
  const pad = Math.round(unit * 0.6);
  // Headline
  const hx = area.left + pad;
  const hy = horizontal ? area.top + area.height / 2 + unit * 0.35 : area.top + pad + unit;
  parts.push(`<text x="${hx}" y="${hy.toFixed(0)}" font-family="${font}" font-weight="bold" font-size="${unit.toFixed(0)}" fill="${panel && layout === 'split' && !light ? '#111' : ink}">${esc(headline)}</text>`);
  // CTA button
  const bw = Math.round(unit * 0.62 * cta.length + unit * 1.2);
  const bh = Math.round(unit * 1.5);
  const bx = horizontal ? area.left + area.width - bw - pad : area.left + pad;
  const by = horizontal ? area.top + (area.height - bh) / 2 : Math.min(area.top + area.height - bh - pad, hy + unit * 0.9);
  parts.push(
    `<rect x="${bx}" y="${by.toFixed(0)}" width="${bw}" height="${bh}" rx="${Math.round(bh / 2)}" fill="${accent}"/>`,
    `<text x="${bx + bw / 2}" y="${(by + bh * 0.68).toFixed(0)}" text-anchor="middle" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(unit * 0.8)}" fill="#fff">${esc(cta)}</text>`,
  );
  tf.push(`text "${headline}" cta "${cta}"`);
  // Logo in a corner
  if (rng() < 0.8) {
    const ls = Math.max(10, Math.round(Math.min(W, H) * 0.07));
    const right = rng() < 0.5;
    const lx = right ? W - ls * 5 - ls * 0.5 : ls * 0.5;
    const ly = ls * 0.5;
    parts.push(
      `<circle cx="${lx + ls / 2}" cy="${ly + ls / 2}" r="${ls / 2}" fill="${accent}" stroke="#fff" stroke-width="${Math.max(1, ls / 12).toFixed(1)}"/>`,
      `<text x="${lx + ls * 1.2}" y="${ly + ls * 0.8}" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(ls * 0.8)}" fill="${ink}">${esc(brandName)}</text>`,
    );
    tf.push(`logo ${brandName}`);
  }
  // Badge
  if (rng() < 0.25) {
    const r = Math.max(10, Math.round(Math.min(W, H) * 0.1));
    const cx = W - r * 1.3;
    const cy = H > 2 * r * 3 ? r * 2.6 : H / 2;
    parts.push(
      `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${brand}" stroke="${accent}" stroke-width="${Math.max(1, r / 8).toFixed(1)}"/>`,
      `<text x="${cx}" y="${cy + r * 0.25}" text-anchor="middle" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(r * 0.7)}" fill="#fff">${esc(BADGES[Math.floor(rng() * BADGES.length)]!)}</text>`,
    );
    tf.push('badge');
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
}

// ---------------------------------------------------------------------------------------------------
// Helpers


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

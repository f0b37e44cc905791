/**
 * A second tie evaluation set ("family B"), written apart from ./dataset.ts and the demo's renderer so
 * that nothing tuned on family A (the calibration, the auto-tie rule, every constant) is reported on
 * the data it was fitted to. It shares only the source photos (./sources.ts: Debian packages, nothing
 * fetched when they are present) and differs in everything else:
 *
 * - masters are overlapping tiles of one photo (4-8 per photo, 40-75 % of each side, placed at random):
 *   siblings share much of their pixels, so they are hard negatives;
 * - a few photos give no master at all: ~10 % of the ads come from them and have no true master
 *   (any auto-tie of one is wrong);
 * - formats are drawn at a random aspect ratio between 8:1 and 1:4 (log-uniform), not from a list;
 * - layouts: cover crop, zoom into a small part of the master, the photo split across 2-4 panels with
 *   gutters, framed (border and keyline), inset beside a colour block; optionally collages of 2-3
 *   masters (one tile each, their boxes recorded);
 * - colour: as is, greyscale, duotone, hue-shifted, or re-graded; sometimes mirrored;
 * - text blocks, a button and a logo drawn over it, then JPEG/WebP/PNG at varied quality.
 *
 * An ad's region of its master is chosen so that no sibling tile holds more than 80 % of it: the
 * truth stays unambiguous while the siblings stay close.
 *
 * Deterministic for a seed; cached by every input in the tie data directory (never in git).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { mulberry32 } from '@afterglow/core';
import type { Rect } from '@afterglow/inference';
import { defaultTieDataDir } from './dataset.js';
import { findSourcePhotos, SHORT_PACKAGES, type SourcePhoto } from './sources.js';

/** Bump when the output changes: cached sets are keyed by it. */
export const HELDOUT_GENERATOR_VERSION = 1;

export interface HeldoutOptions {
  masters: number;
  /** Ads with one master or none (collages come on top). */
  ads: number;
  seed?: number;
  /** Default: SHORT_PACKAGES (the photos CI installs). */
  packages?: readonly string[];
  cacheDir?: string;
  /** Share of ads cut from photos that gave no master (default 0.1). */
  noMasterShare?: number;
  /** Collage ads of 2-3 masters, beside the others (default 0). */
  collages?: number;
  concurrency?: number;
  log?: (msg: string) => void;
}

export interface HeldoutMaster {
  file: string;
  width: number;
  height: number;
  /** The source photo and the tile of it (photo pixels) this master is. */
  source: string;
  tile: Rect;
}

/** Aspect classes of the breakdown, by width / height. */
export const ASPECT_CLASSES = [
  { name: 'wide 8:1-3:1', min: 3, max: Infinity },
  { name: 'landscape 3:1-1.2:1', min: 1.2, max: 3 },
  { name: 'square 1.2:1-1:1.2', min: 1 / 1.2, max: 1.2 },
  { name: 'portrait 1:1.2-1:2', min: 0.5, max: 1 / 1.2 },
  { name: 'tall 1:2-1:4', min: 0, max: 0.5 },
] as const;

export function aspectClass(width: number, height: number): string {
  const r = width / height;
  return ASPECT_CLASSES.find((c) => r >= c.min && r < c.max)!.name;
}

export interface HeldoutAd {
  file: string;
  /** The true master; null when the ad's photo gave no master; for a collage, its first master. */
  master: string | null;
  /** Every master in the ad with its box in ad pixels [x, y, w, h] (empty for a no-master ad). */
  masters: Array<{ master: string; box: [number, number, number, number] }>;
  /** `<w>x<h>` (drawn, not from a list). */
  format: string;
  aspect: string;
  width: number;
  height: number;
  layout: Layout;
  colour: ColourTreatment;
  transforms: string[];
}

export type Layout = 'cover' | 'zoom' | 'panels' | 'framed' | 'inset' | 'collage';
export type ColourTreatment = 'as-is' | 'greyscale' | 'duotone' | 'hue-shift' | 'regraded';

export interface HeldoutDataset {
  dir: string;
  mastersDir: string;
  adsDir: string;
  masters: HeldoutMaster[];
  ads: HeldoutAd[];
  /** Ads with exactly one master -> that master (no-master ads and collages are not in it). */
  truth: Map<string, string>;
  /** Ads whose photo gave no master. */
  noMaster: Set<string>;
  generatedInS: number;
}

export async function generateHeldoutDataset(options: HeldoutOptions): Promise<HeldoutDataset> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 1;
  const packages = options.packages ?? SHORT_PACKAGES;
  const sources = findSourcePhotos(packages);
  if (sources.length < 4) throw new Error(`${sources.length} source photos in ${packages.join(', ')}; at least 4 needed (install the packages)`);
  const noMasterShare = options.noMasterShare ?? 0.1;
  const collages = options.collages ?? 0;
  const key = createHash('sha256')
    .update(JSON.stringify({ v: HELDOUT_GENERATOR_VERSION, m: options.masters, a: options.ads, seed, nm: noMasterShare, c: collages, src: sources.map((s) => [s.id, statSync(s.path).size]) }))
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(options.cacheDir ?? defaultTieDataDir(), `heldout-${options.masters}m-${options.ads}a-${collages}c-s${seed}-${key}`);
  if (existsSync(path.join(dir, '.complete'))) return { ...readHeldout(dir), generatedInS: 0 };
  const t0 = performance.now();
  log(`generating family B: ${options.masters} masters, ${options.ads} ads, ${collages} collages from ${sources.length} photos -> ${dir}`);
  const work = `${dir}.tmp-${process.pid}`;
  try {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(path.join(work, 'masters'), { recursive: true });
    mkdirSync(path.join(work, 'ads'), { recursive: true });
    await build(work, sources, { ...options, seed, noMasterShare, collages });
    writeFileSync(path.join(work, '.complete'), '');
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const generatedInS = (performance.now() - t0) / 1000;
  log(`generated in ${generatedInS.toFixed(1)} s`);
  return { ...readHeldout(dir), generatedInS };
}

function readHeldout(dir: string): Omit<HeldoutDataset, 'generatedInS'> {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { masters: HeldoutMaster[]; ads: HeldoutAd[] };
  return {
    dir,
    mastersDir: path.join(dir, 'masters'),
    adsDir: path.join(dir, 'ads'),
    masters: manifest.masters,
    ads: manifest.ads,
    truth: new Map(manifest.ads.filter((a) => a.master !== null && a.layout !== 'collage').map((a) => [a.file, a.master!])),
    noMaster: new Set(manifest.ads.filter((a) => a.master === null).map((a) => a.file)),
  };
}

// ---------------------------------------------------------------------------------------------------

interface Photo {
  src: SourcePhoto;
  /** Decoded RGB, long side at most PHOTO_MAX_SIDE. */
  raw: Buffer;
  width: number;
  height: number;
}

interface Tile {
  photo: number;
  rect: Rect;
  file: string;
}

const PHOTO_MAX_SIDE = 2400;
const MASTER_MAX_SIDE = 1600;
/** A sibling may hold at most this share of an ad's region (else the truth would be ambiguous). */
const MAX_SIBLING_COVER = 0.8;

async function build(work: string, sources: SourcePhoto[], o: HeldoutOptions & { seed: number; noMasterShare: number; collages: number }): Promise<void> {
  const rng = mulberry32(o.seed * 7919 + 17);
  const photos: Photo[] = [];
  for (const src of sources) {
    const meta = await sharp(src.path, { limitInputPixels: false }).metadata();
    if (meta.hasAlpha) {
      const { channels } = await sharp(src.path, { limitInputPixels: false }).stats();
      if ((channels[3]?.mean ?? 255) < 0.9 * 255) continue; // a transparent overlay, not a photo
    }
    const { data, info } = await sharp(src.path, { limitInputPixels: false })
      .autoOrient()
      .resize(PHOTO_MAX_SIDE, PHOTO_MAX_SIDE, { fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    photos.push({ src, raw: data, width: info.width, height: info.height });
  }
  // Photos that give no master: about one in eight, at least one.
  const order = shuffle(photos.map((_, i) => i), rng);
  const spare = o.noMasterShare > 0 ? Math.max(1, Math.round(photos.length / 8)) : 0;
  const orphanPhotos = order.slice(0, spare);
  const masterPhotos = order.slice(spare);
  if (masterPhotos.length === 0) throw new Error('too few photos for masters');

  // Tiles: spread the masters over the photos, 4-8 per photo where there are enough masters.
  const tiles: Tile[] = [];
  const per = o.masters / masterPhotos.length;
  let made = 0;
  masterPhotos.forEach((pi, k) => {
    const want = Math.round((k + 1) * per) - Math.round(k * per);
    const p = photos[pi]!;
    for (let t = 0; t < want; t++) {
      const fw = 0.4 + rng() * 0.35;
      const fh = want === 1 ? 1 : 0.4 + rng() * 0.35;
      const w = Math.max(64, Math.round(p.width * (want === 1 ? 1 : fw)));
      const h = Math.max(64, Math.round(p.height * fh));
      tiles.push({ photo: pi, rect: { left: Math.floor(rng() * (p.width - w + 1)), top: Math.floor(rng() * (p.height - h + 1)), width: Math.min(w, p.width), height: Math.min(h, p.height) }, file: '' });
      made++;
    }
  });
  if (made !== o.masters) throw new Error(`planned ${made} masters, wanted ${o.masters}`);
  shuffle(tiles.map((_, i) => i), rng).forEach((ti, n) => {
    const t = tiles[ti]!;
    t.file = `b${String(n + 1).padStart(4, '0')}-${photos[t.photo]!.src.slug}.jpg`;
  });
  const masters: HeldoutMaster[] = [];
  for (const t of tiles) {
    const p = photos[t.photo]!;
    const long = Math.min(MASTER_MAX_SIDE, Math.max(t.rect.width, t.rect.height));
    const buf = await sharp(p.raw, { raw: { width: p.width, height: p.height, channels: 3 } })
      .extract(t.rect)
      .resize(long, long, { fit: 'inside' })
      .jpeg({ quality: 92 })
      .toBuffer();
    writeFileSync(path.join(work, 'masters', t.file), buf);
    const meta = await sharp(buf).metadata();
    masters.push({ file: t.file, width: meta.width ?? 0, height: meta.height ?? 0, source: p.src.id, tile: t.rect });
  }

  // Ads: specs first (every random draw here, in order), then rendering in parallel with per-ad rngs.
  const used = shuffle(tiles.map((_, i) => i), rng).slice(0, Math.max(1, Math.round(tiles.length * 0.7)));
  const specs: Array<{ kind: 'single' | 'orphan' | 'collage'; tiles: number[]; photo: number; seed: number }> = [];
  for (let a = 0; a < o.ads; a++) {
    if (orphanPhotos.length > 0 && rng() < o.noMasterShare) specs.push({ kind: 'orphan', tiles: [], photo: orphanPhotos[Math.floor(rng() * orphanPhotos.length)]!, seed: next32(rng) });
    else {
      const ti = a < used.length ? used[a]! : used[Math.floor(rng() * used.length)]!;
      specs.push({ kind: 'single', tiles: [ti], photo: tiles[ti]!.photo, seed: next32(rng) });
    }
  }
  for (let c = 0; c < o.collages; c++) {
    const n = rng() < 0.6 ? 2 : 3;
    const picked = new Set<number>();
    while (picked.size < n) picked.add(used[Math.floor(rng() * used.length)]!);
    specs.push({ kind: 'collage', tiles: [...picked], photo: -1, seed: next32(rng) });
  }
  const ads: HeldoutAd[] = new Array(specs.length);
  await forEachLimit(specs.map((s, i) => ({ ...s, i })), o.concurrency ?? 3, async (s) => {
    const r = mulberry32(s.seed);
    const rendered =
      s.kind === 'collage'
        ? await renderCollage(s.tiles.map((ti) => ({ photo: photos[tiles[ti]!.photo]!, tile: tiles[ti]!, siblings: siblingsOf(tiles, ti) })), r)
        : await renderSingle(photos[s.photo]!, s.kind === 'single' ? tiles[s.tiles[0]!]!.rect : undefined, s.kind === 'single' ? siblingsOf(tiles, s.tiles[0]!) : [], r);
    const file = `ad${String(s.i + 1).padStart(4, '0')}-${rendered.width}x${rendered.height}-${rendered.layout}.${rendered.ext}`;
    writeFileSync(path.join(work, 'ads', file), rendered.bytes);
    ads[s.i] = {
      file,
      master: s.kind === 'orphan' ? null : tiles[s.tiles[0]!]!.file,
      masters: s.kind === 'orphan' ? [] : s.tiles.map((ti, k) => ({ master: tiles[ti]!.file, box: rendered.boxes[k]! })),
      format: `${rendered.width}x${rendered.height}`,
      aspect: aspectClass(rendered.width, rendered.height),
      width: rendered.width,
      height: rendered.height,
      layout: rendered.layout,
      colour: rendered.colour,
      transforms: rendered.transforms,
    };
  });
  const manifest = {
    generator: { family: 'B (heldout)', version: HELDOUT_GENERATOR_VERSION, seed: o.seed, masters: o.masters, ads: o.ads, collages: o.collages },
    photos: photos.map((p, i) => ({ id: p.src.id, path: p.src.path, license: p.src.license, copyright: p.src.copyright, noMaster: orphanPhotos.includes(i) })),
    masters,
    ads,
  };
  writeFileSync(path.join(work, 'manifest.json'), JSON.stringify(manifest, null, 1));
}

function siblingsOf(tiles: readonly Tile[], ti: number): Rect[] {
  const t = tiles[ti]!;
  return tiles.filter((s, i) => i !== ti && s.photo === t.photo).map((s) => s.rect);
}

// ---------------------------------------------------------------------------------------------------
// Rendering

interface Rendered {
  bytes: Buffer;
  ext: 'jpg' | 'webp' | 'png';
  width: number;
  height: number;
  layout: Layout;
  colour: ColourTreatment;
  transforms: string[];
  /** Per master, its box in the ad. */
  boxes: Array<[number, number, number, number]>;
}

/** A random format: aspect log-uniform in [1:4, 8:1], long side 300-1400 px, short side at least 50. */
function drawFormat(rng: () => number): { width: number; height: number } {
  const ratio = Math.exp(Math.log(0.25) + rng() * (Math.log(8) - Math.log(0.25)));
  const long = 300 + Math.round(rng() * 1100);
  let width = ratio >= 1 ? long : Math.round(long * ratio);
  let height = ratio >= 1 ? Math.round(long / ratio) : long;
  if (Math.min(width, height) < 50) {
    const s = 50 / Math.min(width, height);
    width = Math.round(width * s);
    height = Math.round(height * s);
  }
  return { width, height };
}

/**
 * A region of `within` (photo pixels) with aspect `aspect`, covering `areaShare` of the largest such
 * region, that no sibling holds more than MAX_SIBLING_COVER of. Falls back to the largest region.
 */
function pickRegion(within: Rect, aspect: number, areaShare: [number, number], siblings: readonly Rect[], rng: () => number): Rect {
  const maxW = Math.min(within.width, within.height * aspect);
  for (let attempt = 0; attempt < 40; attempt++) {
    const share = areaShare[0] + rng() * (areaShare[1] - areaShare[0]);
    const w = Math.max(8, maxW * Math.sqrt(share));
    const h = w / aspect;
    const r = { left: within.left + Math.round(rng() * (within.width - w)), top: within.top + Math.round(rng() * (within.height - h)), width: Math.round(w), height: Math.round(h) };
    if (siblings.every((s) => overlap(r, s) <= MAX_SIBLING_COVER * r.width * r.height)) return r;
  }
  const w = maxW;
  const h = w / aspect;
  return { left: within.left + Math.round((within.width - w) / 2), top: within.top + Math.round((within.height - h) / 2), width: Math.round(w), height: Math.round(h) };
}

function overlap(a: Rect, b: Rect): number {
  const w = Math.min(a.left + a.width, b.left + b.width) - Math.max(a.left, b.left);
  const h = Math.min(a.top + a.height, b.top + b.height) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

/** The photo's pixels in `region`, resized to w x h and treated (colour, mirror): raw RGB. */
async function photoPatch(p: Photo, region: Rect, w: number, h: number, colour: ColourTreatment, mirror: boolean, rng: () => number, notes: string[]): Promise<Buffer> {
  const clamp = (r: Rect): Rect => {
    const left = Math.max(0, Math.min(p.width - 1, r.left));
    const top = Math.max(0, Math.min(p.height - 1, r.top));
    return { left, top, width: Math.max(1, Math.min(p.width - left, r.width)), height: Math.max(1, Math.min(p.height - top, r.height)) };
  };
  let img = sharp(p.raw, { raw: { width: p.width, height: p.height, channels: 3 } }).extract(clamp(region)).resize(Math.max(1, w), Math.max(1, h), { fit: 'fill' });
  if (mirror) img = img.flop();
  if (colour === 'hue-shift') {
    const hue = Math.round(40 + rng() * 280);
    img = img.modulate({ hue, saturation: 0.8 + rng() * 0.6 });
    notes.push(`hue +${hue}`);
  }
  if (colour === 'regraded') {
    const b = 0.8 + rng() * 0.4;
    const s = 0.5 + rng() * 0.9;
    img = img.modulate({ brightness: b, saturation: s }).linear(0.85 + rng() * 0.3, (rng() - 0.5) * 30);
    notes.push(`brightness ${b.toFixed(2)} saturation ${s.toFixed(2)}`);
  }
  let buf = await img.removeAlpha().toColourspace('srgb').raw().toBuffer();
  if (colour === 'greyscale') {
    // By hand: sharp's greyscale output has one channel, the layers here are RGB.
    for (let i = 0; i < buf.length; i += 3) buf[i] = buf[i + 1] = buf[i + 2] = Math.round(0.299 * buf[i]! + 0.587 * buf[i + 1]! + 0.114 * buf[i + 2]!);
  }
  if (colour === 'duotone') {
    // Luminance mapped between a dark and a light ink.
    const dark = [rng() * 90, rng() * 90, rng() * 90];
    const light = [165 + rng() * 90, 165 + rng() * 90, 165 + rng() * 90];
    const out = Buffer.alloc(buf.length);
    for (let i = 0; i < buf.length; i += 3) {
      const y = (0.299 * buf[i]! + 0.587 * buf[i + 1]! + 0.114 * buf[i + 2]!) / 255;
      for (let c = 0; c < 3; c++) out[i + c] = Math.round(dark[c]! + (light[c]! - dark[c]!) * y);
    }
    buf = out;
    notes.push(`duotone rgb(${dark.map(Math.round).join(',')})-rgb(${light.map(Math.round).join(',')})`);
  }
  return buf;
}

function drawColour(rng: () => number): ColourTreatment {
  const r = rng();
  return r < 0.4 ? 'as-is' : r < 0.55 ? 'greyscale' : r < 0.7 ? 'duotone' : r < 0.85 ? 'hue-shift' : 'regraded';
}

function inkColour(rng: () => number): string {
  const h = Math.round(rng() * 360);
  return `hsl(${h},${Math.round(30 + rng() * 60)}%,${Math.round(15 + rng() * 70)}%)`;
}

/** One ad of one photo: from `tile` (its master), or from anywhere in a photo with no master. */
async function renderSingle(p: Photo, tile: Rect | undefined, siblings: readonly Rect[], rng: () => number): Promise<Rendered> {
  const { width: W, height: H } = drawFormat(rng);
  const within = tile ?? { left: 0, top: 0, width: p.width, height: p.height };
  const colour = drawColour(rng);
  const mirror = rng() < 0.15;
  const notes: string[] = [`${W}x${H}`, colour];
  if (mirror) notes.push('mirrored');
  const lr = rng();
  const layout: Layout = lr < 0.3 ? 'cover' : lr < 0.48 ? 'zoom' : lr < 0.66 ? 'panels' : lr < 0.83 ? 'framed' : 'inset';
  const bg = inkColour(rng);
  const layers: OverlayOptions[] = [];
  let box: [number, number, number, number];
  if (layout === 'cover' || layout === 'zoom') {
    const region = pickRegion(within, W / H, layout === 'zoom' ? [0.06, 0.3] : [0.55, 1], siblings, rng);
    notes.push(`${layout} ${((100 * region.width * region.height) / (within.width * within.height)).toFixed(0)} % of the master`);
    layers.push({ input: await photoPatch(p, region, W, H, colour, mirror, rng, notes), raw: { width: W, height: H, channels: 3 }, left: 0, top: 0 });
    box = [0, 0, W, H];
  } else if (layout === 'framed') {
    const t = Math.max(3, Math.round(Math.min(W, H) * (0.03 + rng() * 0.09)));
    const iw = W - 2 * t;
    const ih = H - 2 * t;
    const region = pickRegion(within, iw / ih, [0.45, 1], siblings, rng);
    layers.push({ input: await photoPatch(p, region, iw, ih, colour, mirror, rng, notes), raw: { width: iw, height: ih, channels: 3 }, left: t, top: t });
    const line = Math.max(1, Math.round(t / 4));
    layers.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect x="${t - line}" y="${t - line}" width="${iw + 2 * line}" height="${ih + 2 * line}" fill="none" stroke="${inkColour(rng)}" stroke-width="${line}"/></svg>`), left: 0, top: 0 });
    notes.push(`frame ${t}px`);
    box = [t, t, iw, ih];
  } else if (layout === 'panels') {
    // The photo cut into n slices along the ad's long side, gutters between them, slices nudged.
    const n = 2 + Math.floor(rng() * 3);
    const along = W >= H ? 'x' : 'y';
    const long = along === 'x' ? W : H;
    const gutter = Math.max(2, Math.round(long * (0.015 + rng() * 0.035)));
    const margin = Math.round(Math.min(W, H) * rng() * 0.06);
    const pw = along === 'x' ? W - gutter * (n - 1) - 2 * margin : W - 2 * margin;
    const ph = along === 'y' ? H - gutter * (n - 1) - 2 * margin : H - 2 * margin;
    const region = pickRegion(within, pw / ph, [0.5, 1], siblings, rng);
    const patch = await photoPatch(p, region, pw, ph, colour, mirror, rng, notes);
    const slice = (along === 'x' ? pw : ph) / n;
    for (let k = 0; k < n; k++) {
      const a = Math.round(k * slice);
      const b = Math.round((k + 1) * slice);
      const rect = along === 'x' ? { left: a, top: 0, width: b - a, height: ph } : { left: 0, top: a, width: pw, height: b - a };
      const piece = await sharp(patch, { raw: { width: pw, height: ph, channels: 3 } }).extract(rect).raw().toBuffer();
      const nudge = Math.round((rng() - 0.5) * margin);
      layers.push({
        input: piece,
        raw: { width: rect.width, height: rect.height, channels: 3 },
        left: along === 'x' ? margin + a + k * gutter : Math.max(0, margin + nudge),
        top: along === 'y' ? margin + a + k * gutter : Math.max(0, margin + nudge),
      });
    }
    notes.push(`${n} panels, gutter ${gutter}px`);
    box = [margin, margin, W - 2 * margin, H - 2 * margin];
  } else {
    // Inset: the photo on one side, a colour block with the copy on the other.
    const share = 0.5 + rng() * 0.25;
    const horizontal = W >= H;
    const iw = horizontal ? Math.round(W * share) : W;
    const ih = horizontal ? H : Math.round(H * share);
    const first = rng() < 0.5;
    const region = pickRegion(within, iw / ih, [0.5, 1], siblings, rng);
    const left = horizontal && !first ? W - iw : 0;
    const top = !horizontal && !first ? H - ih : 0;
    layers.push({ input: await photoPatch(p, region, iw, ih, colour, mirror, rng, notes), raw: { width: iw, height: ih, channels: 3 }, left, top });
    notes.push(`inset ${(share * 100).toFixed(0)} %`);
    box = [left, top, iw, ih];
  }
  return finish(W, H, bg, layers, layout, colour, notes, [box], rng);
}

/** A collage: 2-3 masters in a row or column (one region of each), with gutters. */
async function renderCollage(parts: Array<{ photo: Photo; tile: Tile; siblings: Rect[] }>, rng: () => number): Promise<Rendered> {
  let { width: W, height: H } = drawFormat(rng);
  // Collages need room: no thinner than 3:1 either way.
  if (W / H > 3) H = Math.round(W / 3);
  if (H / W > 3) W = Math.round(H / 3);
  const n = parts.length;
  const along = W >= H ? 'x' : 'y';
  const gutter = Math.max(3, Math.round(Math.max(W, H) * 0.02));
  const long = (along === 'x' ? W : H) - gutter * (n + 1);
  const colour: ColourTreatment = rng() < 0.7 ? 'as-is' : drawColour(rng);
  const notes: string[] = [`${W}x${H}`, `collage of ${n}`, colour];
  const layers: OverlayOptions[] = [];
  const boxes: Array<[number, number, number, number]> = [];
  const weights = parts.map(() => 0.8 + rng() * 0.4);
  const total = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.floor((long * w) / total));
  sizes[n - 1] = long - sizes.slice(0, -1).reduce((a, b) => a + b, 0);
  let at = gutter;
  for (let k = 0; k < n; k++) {
    const size = sizes[k]!;
    const pw = along === 'x' ? size : W - 2 * gutter;
    const ph = along === 'y' ? size : H - 2 * gutter;
    const { photo, tile, siblings } = parts[k]!;
    const region = pickRegion(tile.rect, pw / ph, [0.4, 1], siblings, rng);
    layers.push({ input: await photoPatch(photo, region, pw, ph, colour, false, rng, notes), raw: { width: pw, height: ph, channels: 3 }, left: along === 'x' ? at : gutter, top: along === 'y' ? at : gutter });
    boxes.push(along === 'x' ? [at, gutter, pw, ph] : [gutter, at, pw, ph]);
    at += size + gutter;
  }
  return finish(W, H, inkColour(rng), layers, 'collage', colour, notes, boxes, rng);
}

const COPY = ['Only this week', 'Into the wild', 'Quiet luxury', 'Made for mornings', 'Your next trip', 'Back in stock', 'Less, but better', 'Open late'];
const BUTTONS = ['Buy', 'See more', 'Order', 'Start free', 'Visit'];

/** Copy, a button and a logo over the picture, then encoding. */
async function finish(W: number, H: number, bg: string, layers: OverlayOptions[], layout: Layout, colour: ColourTreatment, notes: string[], boxes: Rendered['boxes'], rng: () => number): Promise<Rendered> {
  const unit = Math.max(10, Math.round(Math.min(W, H) * (0.08 + rng() * 0.08)));
  const svg: string[] = [];
  const copy = COPY[Math.floor(rng() * COPY.length)]!;
  const tx = Math.round(rng() * W * 0.4);
  const ty = Math.round(unit + rng() * Math.max(1, H - 2 * unit));
  if (rng() < 0.5) svg.push(`<rect x="${tx - unit / 3}" y="${ty - unit}" width="${(copy.length * unit * 0.6).toFixed(0)}" height="${(unit * 1.35).toFixed(0)}" fill="${inkColour(rng)}" fill-opacity="0.75"/>`);
  svg.push(`<text x="${tx}" y="${ty}" font-family="DejaVu Serif" font-style="italic" font-size="${unit}" fill="${rng() < 0.5 ? '#fff' : '#111'}">${copy}</text>`);
  if (rng() < 0.7) {
    const bw = unit * 4;
    const bh = unit * 1.3;
    const bx = Math.round(W - bw - unit * (0.3 + rng()));
    const by = Math.round(H - bh - unit * (0.3 + rng()));
    svg.push(`<rect x="${bx}" y="${by}" rx="${(bh / 2).toFixed(0)}" width="${bw}" height="${bh.toFixed(0)}" fill="${inkColour(rng)}"/>`);
    svg.push(`<text x="${bx + bw / 2}" y="${(by + bh * 0.7).toFixed(0)}" text-anchor="middle" font-family="DejaVu Sans" font-size="${Math.round(unit * 0.75)}" fill="#fff">${BUTTONS[Math.floor(rng() * BUTTONS.length)]!}</text>`);
  }
  if (rng() < 0.5) {
    const r = Math.round(unit * 0.6);
    svg.push(`<circle cx="${W - r * 2}" cy="${r * 2}" r="${r}" fill="${inkColour(rng)}" stroke="#fff" stroke-width="2"/>`);
  }
  layers.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${svg.join('')}</svg>`), left: 0, top: 0 });
  let img = sharp({ create: { width: W, height: H, channels: 3, background: bg } }).composite(layers);
  // Flatten the composite before encoding (sharp applies composite last otherwise).
  const flat = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  img = sharp(flat.data, { raw: { width: flat.info.width, height: flat.info.height, channels: flat.info.channels as 3 } });
  const e = rng();
  let bytes: Buffer;
  let ext: Rendered['ext'];
  if (e < 0.6) {
    const q = Math.round(50 + rng() * 42);
    bytes = await img.jpeg({ quality: q }).toBuffer();
    ext = 'jpg';
    notes.push(`jpeg q${q}`);
  } else if (e < 0.85) {
    const q = Math.round(55 + rng() * 35);
    bytes = await img.webp({ quality: q }).toBuffer();
    ext = 'webp';
    notes.push(`webp q${q}`);
  } else {
    bytes = await img.png().toBuffer();
    ext = 'png';
    notes.push('png');
  }
  return { bytes, ext, width: W, height: H, layout, colour, transforms: notes, boxes };
}

// ---------------------------------------------------------------------------------------------------

function next32(rng: () => number): number {
  return Math.floor(rng() * 2 ** 32);
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

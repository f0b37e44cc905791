/**
 * ANVIL element edits without a diffusion model (issue 5, "Attribution"): variants of an asset built
 * from its analysis (the subject mask, the OCR boxes, the person mask when there is one), each tagged
 * with the element it changes and the edit, to be re-featurized and re-predicted:
 * attribution = predicted(variant) - predicted(original).
 *
 *   subject    recolor:<colour>  hue/saturation/lightness moved to a named colour inside the subject mask
 *   subject    remove            subject inpainted from its surroundings
 *   text       remove            OCR boxes inpainted from their surroundings
 *   background blur              everything outside the subject blurred
 *   background swap:<colour>     everything outside the subject replaced by a plain backdrop
 *   people     remove            person mask inpainted (only when a person mask exists)
 *   frame      crop_subject      cropped to the subject (same aspect ratio), scaled back to size
 *   image      brightness:<f>    brightness multiplied by f
 *   cell       occlude:<r>,<c>   one grid cell greyed out (occlusion maps)
 *
 * Variants are decoded RGB images at the analysis resolution, with the analysis carried over where
 * the edit moves masks/boxes predictably (`variant.analysis`), so a caller may skip re-segmentation.
 */
import sharp from 'sharp';
import { NAMED_RGB, COLOR_NAMES } from '../features/colour.js';
import { maskAt, rectsMask } from '../features/mask.js';
import { decodeImage, resolveLimits } from '../models/image.js';
import type { ImageLimits } from '../models/types.js';
import type { AssetAnalysis, ColorName, Mask, RawImage, Rect } from '../features/types.js';
import { blend, blurred, grow, harden, inpaint, recolour, rgbImage, sharpOf, typicalThickness } from './ops.js';

export type EditElement = 'subject' | 'text' | 'background' | 'people' | 'frame' | 'image' | 'cell';

export type EditSpec =
  | { element: 'subject'; edit: 'recolor'; color: ColorName }
  | { element: 'subject'; edit: 'remove' }
  | { element: 'text'; edit: 'remove' }
  | { element: 'background'; edit: 'blur'; sigma?: number }
  | { element: 'background'; edit: 'swap'; color: ColorName }
  | { element: 'people'; edit: 'remove' }
  | { element: 'frame'; edit: 'crop_subject'; margin?: number }
  | { element: 'image'; edit: 'brightness'; factor: number }
  | { element: 'cell'; edit: 'occlude'; row: number; col: number; rows: number; cols: number };

export interface Variant {
  element: EditElement;
  /** Stable edit label within the element, e.g. 'recolor:red', 'remove', 'brightness:0.7', 'occlude:1,2'. */
  edit: string;
  /** `${element}:${edit}`. */
  label: string;
  spec: EditSpec;
  /** RGB pixels, analysis resolution. */
  image: RawImage;
  /** Analysis of the variant where predictable from the original's (masks/boxes moved with the edit). */
  analysis: AssetAnalysis;
}

export function editLabel(spec: EditSpec): { element: EditElement; edit: string; label: string } {
  let edit: string;
  switch (spec.edit) {
    case 'recolor':
      edit = `recolor:${spec.color}`;
      break;
    case 'swap':
      edit = `swap:${spec.color}`;
      break;
    case 'brightness':
      edit = `brightness:${spec.factor}`;
      break;
    case 'occlude':
      edit = `occlude:${spec.row},${spec.col}`;
      break;
    default:
      edit = spec.edit;
  }
  return { element: spec.element, edit, label: `${spec.element}:${edit}` };
}

/** Subject recolours tried by default (named colours a campaign manager would ask about). */
export const DEFAULT_RECOLORS: readonly ColorName[] = Object.freeze(['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'white', 'silver', 'black'] as const);

export interface DefaultEditOptions {
  recolors?: readonly ColorName[];
  brightness?: readonly number[];
  backdrops?: readonly ColorName[];
}

/** The edits that apply to an asset given its analysis (no subject -> no subject/background edits, etc.). */
export function defaultEditSpecs(analysis: AssetAnalysis, options: DefaultEditOptions = {}): EditSpec[] {
  const specs: EditSpec[] = [];
  const hasSubject = analysis.subjectBox !== null && subjectShare(analysis) >= 0.02;
  if (hasSubject) {
    for (const color of options.recolors ?? DEFAULT_RECOLORS) specs.push({ element: 'subject', edit: 'recolor', color });
    specs.push({ element: 'subject', edit: 'remove' });
    specs.push({ element: 'background', edit: 'blur' });
    for (const color of options.backdrops ?? (['white', 'black'] as const)) specs.push({ element: 'background', edit: 'swap', color });
    const b = analysis.subjectBox!;
    if ((b.width * b.height) / (analysis.width * analysis.height) < 0.8) specs.push({ element: 'frame', edit: 'crop_subject' });
  }
  if (analysis.textBoxes.length > 0) specs.push({ element: 'text', edit: 'remove' });
  if (analysis.personMask) specs.push({ element: 'people', edit: 'remove' });
  for (const factor of options.brightness ?? [0.7, 1.3]) specs.push({ element: 'image', edit: 'brightness', factor });
  return specs;
}

/** Occlusion-map edits: one per cell of a rows x cols grid. */
export function occlusionSpecs(rows: number, cols: number): EditSpec[] {
  const out: EditSpec[] = [];
  for (let row = 0; row < rows; row++) for (let col = 0; col < cols; col++) out.push({ element: 'cell', edit: 'occlude', row, col, rows, cols });
  return out;
}

/** The rectangle of one grid cell in a w x h image. */
export function cellRect(row: number, col: number, rows: number, cols: number, w: number, h: number): Rect {
  const left = Math.round((col * w) / cols);
  const top = Math.round((row * h) / rows);
  return { left, top, width: Math.round(((col + 1) * w) / cols) - left, height: Math.round(((row + 1) * h) / rows) - top };
}

function subjectShare(a: AssetAnalysis): number {
  let s = 0;
  for (let i = 0; i < a.subjectMask.data.length; i++) s += a.subjectMask.data[i]!;
  return a.subjectMask.data.length ? s / (255 * a.subjectMask.data.length) : 0;
}

/**
 * The image an analysis was made on, decoded from the asset's bytes (same limits and size as the
 * featurizer: longer side at most max(analysis.width, analysis.height)).
 */
export async function decodeForEdits(bytes: Uint8Array, analysis: Pick<AssetAnalysis, 'width' | 'height'>, limits?: Partial<ImageLimits>): Promise<RawImage> {
  const raw = await decodeImage(bytes, resolveLimits(limits), { maxSide: Math.max(analysis.width, analysis.height) });
  if (raw.width === analysis.width && raw.height === analysis.height) return raw;
  const buf = await sharpOf(raw).resize(analysis.width, analysis.height, { fit: 'fill' }).raw().toBuffer();
  return rgbImage(buf, analysis.width, analysis.height);
}

async function toRgb(image: RawImage, w: number, h: number): Promise<RawImage> {
  if (image.channels === 3 && image.width === w && image.height === h) return image;
  const buf = await sharpOf(image).flatten({ background: { r: 255, g: 255, b: 255 } }).removeAlpha().resize(w, h, { fit: 'fill' }).toColourspace('srgb').raw().toBuffer();
  return rgbImage(buf, w, h);
}

/** Hardened full-size alphas per mask (the edits of one asset share them). */
const alphaCache = new WeakMap<Mask, { w: number; h: number; alpha: Promise<Uint8Array> }>();

function alphaOf(mask: Mask, w: number, h: number): Promise<Uint8Array> {
  const hit = alphaCache.get(mask);
  if (hit && hit.w === w && hit.h === h) return hit.alpha;
  const alpha = maskAt(mask, w, h).then((m) => harden(m));
  alphaCache.set(mask, { w, h, alpha });
  return alpha;
}

function emptyMask(m: Mask): Mask {
  return { width: m.width, height: m.height, data: new Uint8Array(m.data.length) };
}

/** Applies one edit; null when it does not apply to this asset (e.g. no text to remove). */
export async function applyEdit(image: RawImage, analysis: AssetAnalysis, spec: EditSpec): Promise<Variant | null> {
  const w = analysis.width;
  const h = analysis.height;
  const img = await toRgb(image, w, h);
  const tag = editLabel(spec);
  const done = (out: RawImage, a: AssetAnalysis = analysis): Variant => ({ ...tag, spec, image: out, analysis: a });
  switch (spec.edit) {
    case 'recolor': {
      if (!analysis.subjectBox) return null;
      const alpha = await alphaOf(analysis.subjectMask, w, h);
      return done(recolour(img, alpha, NAMED_RGB[spec.color]));
    }
    case 'remove': {
      if (spec.element === 'text') {
        if (analysis.textBoxes.length === 0) return null;
        const pad = Math.max(2, Math.round(typicalThickness(analysis.textBoxes) * 0.15));
        const rects = analysis.textBoxes.map((b) => grow(b, pad, w, h));
        const hole = rectsMask(rects, w, h).data;
        const out = await inpaint(img, hole, Math.max(3, typicalThickness(rects) * 0.5));
        return done(out, { ...analysis, textBoxes: [] });
      }
      const mask = spec.element === 'people' ? analysis.personMask : analysis.subjectBox ? analysis.subjectMask : undefined;
      if (!mask) return null;
      const soft = await alphaOf(mask, w, h);
      // Dilate a little (blur + low threshold) so the object's rim goes too.
      const grown = await sharp(soft, { raw: { width: w, height: h, channels: 1 } }).blur(Math.max(1, Math.min(w, h) / 150)).extractChannel(0).raw().toBuffer();
      const hole = new Uint8Array(w * h);
      let holed = 0;
      for (let i = 0; i < hole.length; i++) {
        if (grown[i]! > 40) {
          hole[i] = 255;
          holed++;
        }
      }
      // Nothing to remove, or an object filling the frame (nothing left to fill it from).
      if (holed === 0 || holed > 0.6 * hole.length) return null;
      const out = await inpaint(img, hole, Math.max(4, Math.min(w, h) / 20));
      const a: AssetAnalysis = spec.element === 'people'
        ? { ...analysis, personMask: emptyMask(mask), faces: [] }
        : { ...analysis, subjectMask: emptyMask(mask), subjectBox: null };
      return done(out, a);
    }
    case 'blur': {
      if (!analysis.subjectBox) return null;
      const alpha = await alphaOf(analysis.subjectMask, w, h);
      const bg = await blurred(img, spec.sigma ?? Math.max(2, Math.max(w, h) / 60));
      return done(blend(img, bg, alpha, 0));
    }
    case 'swap': {
      if (!analysis.subjectBox) return null;
      const alpha = await alphaOf(analysis.subjectMask, w, h);
      const [r, g, b] = NAMED_RGB[spec.color];
      // A plain backdrop with a soft vertical falloff (studio sweep), not a flat fill.
      const bgData = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) {
        const f = 1.06 - 0.12 * (y / Math.max(1, h - 1));
        const row = [Math.min(255, Math.round(r * f)), Math.min(255, Math.round(g * f)), Math.min(255, Math.round(b * f))];
        for (let x = 0; x < w; x++) bgData.set(row, 3 * (y * w + x));
      }
      return done(blend(img, rgbImage(bgData, w, h), alpha, 0));
    }
    case 'crop_subject': {
      const box = analysis.subjectBox;
      if (!box) return null;
      const margin = spec.margin ?? 0.08;
      const aspect = w / h;
      let cw = box.width * (1 + 2 * margin);
      let ch = box.height * (1 + 2 * margin);
      if (cw / ch < aspect) cw = ch * aspect;
      else ch = cw / aspect;
      cw = Math.min(w, cw);
      ch = Math.min(h, ch);
      const cx = box.left + box.width / 2;
      const cy = box.top + box.height / 2;
      const crop: Rect = {
        left: Math.round(Math.max(0, Math.min(w - cw, cx - cw / 2))),
        top: Math.round(Math.max(0, Math.min(h - ch, cy - ch / 2))),
        width: Math.max(1, Math.round(cw)),
        height: Math.max(1, Math.round(ch)),
      };
      crop.width = Math.min(crop.width, w - crop.left);
      crop.height = Math.min(crop.height, h - crop.top);
      if (crop.width >= w - 1 && crop.height >= h - 1) return null;
      const buf = await sharpOf(img).extract(crop).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
      const sx = w / crop.width;
      const sy = h / crop.height;
      // Move the analysis with the crop: mask cropped and rescaled, boxes transformed and clipped.
      const full = await maskAt(analysis.subjectMask, w, h);
      const mbuf = await sharp(full, { raw: { width: w, height: h, channels: 1 } }).extract(crop).resize(analysis.subjectMask.width, analysis.subjectMask.height, { fit: 'fill' }).extractChannel(0).raw().toBuffer();
      const subjectMask: Mask = { width: analysis.subjectMask.width, height: analysis.subjectMask.height, data: new Uint8Array(mbuf.buffer, mbuf.byteOffset, mbuf.byteLength) };
      const move = <R extends Rect>(r: R): R | null => {
        const left = Math.max(0, (r.left - crop.left) * sx);
        const top = Math.max(0, (r.top - crop.top) * sy);
        const right = Math.min(w, (r.left + r.width - crop.left) * sx);
        const bottom = Math.min(h, (r.top + r.height - crop.top) * sy);
        return right - left >= 2 && bottom - top >= 2 ? { ...r, left, top, width: right - left, height: bottom - top } : null;
      };
      const a: AssetAnalysis = {
        ...analysis,
        subjectMask,
        subjectBox: move(box),
        textBoxes: analysis.textBoxes.map(move).filter((b): b is NonNullable<typeof b> => b !== null),
        ...(analysis.faces ? { faces: analysis.faces.map(move).filter((b): b is NonNullable<typeof b> => b !== null) } : {}),
      };
      if (analysis.personMask) {
        const p = await maskAt(analysis.personMask, w, h);
        const pb = await sharp(p, { raw: { width: w, height: h, channels: 1 } }).extract(crop).resize(analysis.personMask.width, analysis.personMask.height, { fit: 'fill' }).extractChannel(0).raw().toBuffer();
        a.personMask = { width: analysis.personMask.width, height: analysis.personMask.height, data: new Uint8Array(pb.buffer, pb.byteOffset, pb.byteLength) };
      }
      return done(rgbImage(buf, w, h), a);
    }
    case 'brightness': {
      if (!(spec.factor > 0)) return null;
      const buf = await sharpOf(img).modulate({ brightness: spec.factor }).raw().toBuffer();
      return done(rgbImage(buf, w, h));
    }
    case 'occlude': {
      const r = cellRect(spec.row, spec.col, spec.rows, spec.cols, w, h);
      const out = new Uint8Array(img.data);
      for (let y = r.top; y < r.top + r.height; y++) out.fill(128, 3 * (y * w + r.left), 3 * (y * w + r.left + r.width));
      return done(rgbImage(out, w, h));
    }
  }
}

export interface GenerateOptions {
  /** Edits applied at once (each is a few sharp pipelines on libuv's pool). Default 4. */
  concurrency?: number;
}

/** Applies the edits (batched, `concurrency` at a time); edits that do not apply are left out. */
export async function generateVariants(image: RawImage, analysis: AssetAnalysis, specs: readonly EditSpec[], options: GenerateOptions = {}): Promise<Variant[]> {
  const out: Variant[] = [];
  for await (const batch of variantBatches(image, analysis, specs, options.concurrency ?? 4)) out.push(...batch);
  return out;
}

/** The variants in batches of `batchSize` (streaming: a batch can be featurized while the next is built). */
export async function* variantBatches(image: RawImage, analysis: AssetAnalysis, specs: readonly EditSpec[], batchSize = 8): AsyncGenerator<Variant[]> {
  const img = await toRgb(image, analysis.width, analysis.height);
  for (let i = 0; i < specs.length; i += Math.max(1, batchSize)) {
    const batch = await Promise.all(specs.slice(i, i + Math.max(1, batchSize)).map((s) => applyEdit(img, analysis, s)));
    const ok = batch.filter((v): v is Variant => v !== null);
    if (ok.length) yield ok;
  }
}

/** Occlusion variants for a rows x cols grid (default 4 x 4). */
export function occlusionGrid(image: RawImage, analysis: AssetAnalysis, grid: { rows?: number; cols?: number } = {}): Promise<Variant[]> {
  return generateVariants(image, analysis, occlusionSpecs(grid.rows ?? 4, grid.cols ?? 4));
}

/** Encodes a variant (e.g. to store or show it): PNG by default. */
export async function encodeVariant(v: Variant, format: 'png' | 'jpeg' | 'webp' = 'png'): Promise<Buffer> {
  const s = sharpOf(v.image);
  return format === 'png' ? s.png({ compressionLevel: 6 }).toBuffer() : format === 'jpeg' ? s.jpeg({ quality: 90 }).toBuffer() : s.webp({ quality: 90 }).toBuffer();
}

export { COLOR_NAMES };

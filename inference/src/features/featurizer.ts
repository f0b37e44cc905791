/**
 * `createFeaturizer`: per image, the interpretable features of ./schema.ts plus the words of its
 * text overlay, the mobilenet_v2 embedding and the masks/boxes the edits need.
 *
 * Per image: content key -> analysis cache -> probe (hostile images refused before any full decode)
 * -> one decode at `analysisMaxSide` -> in parallel: OCR (PP-OCRv4 det + rec), subject segmentation
 * (ISNet), the embedding (the shared embedder), colour statistics (on a <= 192 px copy). Model runs
 * happen in worker threads (../models/tensor-pool.ts), never on the caller's event loop.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { AfterglowConfig } from '@afterglow/core';
import { createEmbedder } from '../models/embedder.js';
import { ensureFeatureModels, featureModelPath, loadFeatureManifest } from '../models/feature-models.js';
import { decodeImage, probeImage, resolveLimits } from '../models/image.js';
import { Limiter } from '../models/limiter.js';
import { TensorPool } from '../models/tensor-pool.js';
import { ImageRejectedError, ModelError, type Embedder, type ImageLimits } from '../models/types.js';
import { colourStats, COLOR_NAMES, dominantColors } from './colour.js';
import { maskAt, maskBox, maskCentroid, maskShare, rectsMask, runSegment, type SegmentModel } from './mask.js';
import { runOcr, wordsOf, type OcrModels } from './ocr.js';
import { runFaces, runPerson, type PeopleModels } from './people.js';
import type { AssetAnalysis, AssetFeatures, AssetMeta, FeatureInput, FeaturizeOptions, Featurizer, FeaturizerOptions, RawImage, TextBox } from './types.js';

const COLOUR_SIDE = 192;

const stderrLog = (msg: string) => process.stderr.write(`[afterglow/features] ${msg}\n`);

interface Resolved {
  modelsDir: string;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  workers: number;
  intraOpThreads: number;
  analysisMaxSide: number;
  ocr: boolean;
  people: boolean;
  embedding: boolean;
  cacheEntries: number;
  buildIfMissing: boolean;
  limits: ImageLimits;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

async function resolve(o: FeaturizerOptions & { limits?: Partial<ImageLimits> }): Promise<Resolved> {
  const need = o.modelsDir === undefined || o.executionProvider === undefined || o.workers === undefined || o.intraOpThreads === undefined || o.limits === undefined;
  // Left-out options take the settings' defaults (no variable read: the composition root passes its config).
  let cfg: Pick<AfterglowConfig, 'inference' | 'images'> | undefined;
  if (need) {
    const { defaultConfig } = await import('@afterglow/core');
    cfg = defaultConfig();
  }
  const workers = Math.max(1, o.workers ?? cfg!.inference.workers);
  const cores = os.availableParallelism();
  const intra = o.intraOpThreads ?? cfg!.inference.intraOpThreads;
  return {
    modelsDir: path.resolve(o.modelsDir ?? cfg!.inference.modelsDir),
    executionProvider: o.executionProvider ?? cfg!.inference.executionProvider,
    workers,
    intraOpThreads: intra > 0 ? intra : Math.max(1, Math.floor(cores / workers)),
    analysisMaxSide: Math.max(64, o.analysisMaxSide ?? 1024),
    ocr: o.ocr ?? true,
    people: o.people ?? true,
    embedding: o.embedding ?? true,
    cacheEntries: Math.max(0, o.cacheEntries ?? 256),
    buildIfMissing: o.buildIfMissing ?? true,
    limits: resolveLimits({ ...(cfg?.images ?? {}), ...(o.limits ?? {}) }),
    log: o.log ?? stderrLog,
  };
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Content key of an input: sha256 of the encoded bytes, or the caller's key, or a hash of the pixels. */
export function featureKey(input: FeatureInput): string {
  if (input instanceof Uint8Array) return sha256(input);
  const r = input.raw;
  return input.key ?? `raw:${r.width}x${r.height}x${r.channels}:${sha256(r.data)}`;
}

/** RGB pixels of an image downscaled so its longer side is at most `side` (and the mask at that size). */
async function small(raw: RawImage, side: number): Promise<{ rgb: Uint8Array; w: number; h: number }> {
  const s = Math.min(1, side / Math.max(raw.width, raw.height));
  const w = Math.max(1, Math.round(raw.width * s));
  const h = Math.max(1, Math.round(raw.height * s));
  const buf = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
    .removeAlpha()
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return { rgb: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), w, h };
}

/** Union area of rectangles as a share of a w x h frame. */
function rectsShare(rects: readonly TextBox[], w: number, h: number): number {
  if (rects.length === 0) return 0;
  // Measured on a coarse grid (<= 256 px side): exact enough, no polygon clipping.
  const s = Math.min(1, 256 / Math.max(w, h));
  const gw = Math.max(1, Math.round(w * s));
  const gh = Math.max(1, Math.round(h * s));
  const m = rectsMask(rects.map((r) => ({ left: r.left * s, top: r.top * s, width: r.width * s, height: r.height * s })), gw, gh);
  return maskShare(m);
}

/** The named features of one analysed image. Pure given its pixels and analysis. */
export async function measure(raw: RawImage, analysis: AssetAnalysis, source: { width: number; height: number }): Promise<{ named: Record<string, number>; words: string[]; dominant: AssetFeatures['dominantColors'] }> {
  const named: Record<string, number> = {};
  const aspect = source.width / source.height;
  named['image.aspect'] = aspect;
  named['image.log_aspect'] = Math.log(aspect);
  named['image.log_pixels'] = Math.log(source.width * source.height);
  named['format.square'] = aspect >= 0.8 && aspect <= 1.25 ? 1 : 0;
  named['format.landscape'] = aspect > 1.25 && aspect < 3 ? 1 : 0;
  named['format.portrait'] = aspect > 1 / 3 && aspect < 0.8 ? 1 : 0;
  named['format.banner'] = aspect >= 3 || aspect <= 1 / 3 ? 1 : 0;

  const { rgb, w, h } = await small(raw, COLOUR_SIDE);
  const all = colourStats(rgb);
  named['color.brightness'] = all.brightness;
  named['color.contrast'] = all.contrast;
  named['color.colourfulness'] = all.colourfulness;
  named['color.saturation'] = all.saturation;
  for (const c of COLOR_NAMES) named[`color.share.${c}`] = all.shares[c];
  const dominant = dominantColors(rgb, 5);
  const top = dominant[0];
  named['color.dominant.L'] = top?.lab[0] ?? 0;
  named['color.dominant.a'] = top?.lab[1] ?? 0;
  named['color.dominant.b'] = top?.lab[2] ?? 0;
  named['color.dominant.share'] = top?.share ?? 0;

  const sm = await maskAt(analysis.subjectMask, w, h);
  const inv = new Uint8Array(sm.length);
  for (let i = 0; i < sm.length; i++) inv[i] = 255 - sm[i]!;
  const share = maskShare(analysis.subjectMask);
  const subj = colourStats(rgb, sm);
  const bg = colourStats(rgb, inv);
  const [cx, cy] = maskCentroid(analysis.subjectMask);
  const box = analysis.subjectBox;
  named['subject.present'] = share >= 0.02 ? 1 : 0;
  named['subject.share'] = share;
  named['subject.box_share'] = box ? (box.width * box.height) / (analysis.width * analysis.height) : 0;
  named['subject.centroid_x'] = cx;
  named['subject.centroid_y'] = cy;
  const rad = (subj.hue * Math.PI) / 180;
  named['subject.hue_sin'] = subj.hueStrength > 0 ? Math.sin(rad) * subj.hueStrength : 0;
  named['subject.hue_cos'] = subj.hueStrength > 0 ? Math.cos(rad) * subj.hueStrength : 0;
  named['subject.hue_strength'] = subj.hueStrength;
  named['subject.saturation'] = subj.saturation;
  named['subject.brightness'] = subj.brightness;
  named['subject.colourfulness'] = subj.colourfulness;
  for (const c of COLOR_NAMES) named[`subject.color.${c}`] = subj.shares[c];
  named['background.brightness'] = bg.brightness;
  named['background.saturation'] = bg.saturation;
  named['background.colourfulness'] = bg.colourfulness;

  const faces = analysis.faces ?? [];
  named['people.present'] = faces.length > 0 ? 1 : 0;
  named['people.faces'] = faces.length;
  named['people.face_share'] = faces.length ? Math.max(...faces.map((f) => f.width * f.height)) / (analysis.width * analysis.height) : 0;
  named['people.share'] = faces.length && analysis.personMask ? maskShare(analysis.personMask) : 0;

  const words = wordsOf(analysis.textBoxes);
  const read = analysis.textBoxes.filter((b) => b.text !== '');
  named['text.present'] = analysis.textBoxes.length > 0 ? 1 : 0;
  named['text.area'] = rectsShare(analysis.textBoxes, analysis.width, analysis.height);
  named['text.lines'] = analysis.textBoxes.length;
  named['text.words'] = words.length;
  named['text.chars'] = read.reduce((s, b) => s + b.text.replace(/\s/g, '').length, 0);
  for (const [k, v] of Object.entries(named)) if (!Number.isFinite(v)) named[k] = 0;
  return { named, words, dominant };
}

function cloneFeatures(f: AssetFeatures, meta: AssetMeta, hit: boolean): AssetFeatures {
  return {
    ...f,
    named: { ...f.named },
    words: [...f.words],
    embedding: f.embedding.slice(),
    meta: { ...meta },
    timings: hit ? Object.fromEntries(Object.keys(f.timings).map((k) => [k, 0])) : { ...f.timings },
  };
}

export async function createFeaturizer(options: FeaturizerOptions & { limits?: Partial<ImageLimits> } = {}): Promise<Featurizer> {
  const o = await resolve(options);
  const manifest = loadFeatureManifest();
  const pool = new TensorPool({ workers: o.workers, executionProvider: o.executionProvider, intraOpThreads: o.intraOpThreads, log: o.log });
  const ownEmbedder = o.embedding && !options.embedder;
  const embedderP: Promise<Embedder | undefined> = !o.embedding
    ? Promise.resolve(undefined)
    : options.embedder
      ? Promise.resolve(options.embedder)
      : createEmbedder({ modelsDir: o.modelsDir, executionProvider: o.executionProvider, workers: o.workers, intraOpThreads: o.intraOpThreads, limits: o.limits, log: o.log, buildIfMissing: o.buildIfMissing });
  let ready: Promise<{ ocr: OcrModels; seg: SegmentModel; people: PeopleModels }> | undefined;
  const models = () => {
    ready ??= (async () => {
      await ensureFeatureModels(o.modelsDir, { buildIfMissing: o.buildIfMissing, log: o.log });
      const keysFile = path.join(o.modelsDir, Object.values(manifest.ocr_rec.extraFiles ?? {})[0] ?? 'ppocr_keys_v1.txt');
      const keys = readFileSync(keysFile, 'utf8').split('\n');
      if (keys.at(-1) === '') keys.pop();
      return {
        ocr: { pool, detPath: featureModelPath(o.modelsDir, 'ocr_det', manifest), recPath: featureModelPath(o.modelsDir, 'ocr_rec', manifest), keys },
        seg: { pool, path: featureModelPath(o.modelsDir, 'isnet', manifest), resolution: manifest.isnet.resolution ?? 1024 },
        people: { pool, facePath: featureModelPath(o.modelsDir, 'face', manifest), personPath: featureModelPath(o.modelsDir, 'person', manifest) },
      };
    })();
    ready.catch(() => {
      ready = undefined;
    });
    return ready;
  };
  const cache = new Map<string, AssetFeatures>();
  const inflight = new Map<string, Promise<AssetFeatures>>();
  // Images between decode and result at once (memory): a few per worker.
  const window = new Limiter(Math.max(2, o.workers * 3));
  let closed = false;

  const compute = async (input: FeatureInput, key: string, given: AssetAnalysis | undefined): Promise<AssetFeatures> => {
    const timings: Record<string, number> = {};
    let t = performance.now();
    let raw: RawImage;
    let source: { width: number; height: number };
    if (input instanceof Uint8Array) {
      const probed = await probeImage(input, o.limits);
      source = { width: probed.width, height: probed.height };
      raw = await decodeImage(input, o.limits, { maxSide: o.analysisMaxSide });
    } else {
      const r = input.raw;
      if (!(r.width > 0 && r.height > 0) || ![1, 3, 4].includes(r.channels) || r.data.byteLength !== r.width * r.height * r.channels) {
        throw new ImageRejectedError('corrupt', `raw image ${r.width}x${r.height}x${r.channels} does not match ${r.data.byteLength} bytes`);
      }
      if (r.width * r.height > o.limits.maxPixels) throw new ImageRejectedError('too_many_pixels', `raw image ${r.width}x${r.height} is over the pixel limit`);
      source = { width: r.width, height: r.height };
      raw = r;
      if (r.channels !== 3 || Math.max(r.width, r.height) > o.analysisMaxSide) {
        const s = Math.min(1, o.analysisMaxSide / Math.max(r.width, r.height));
        const { data, info } = await sharp(r.data, { raw: { width: r.width, height: r.height, channels: r.channels } })
          .flatten({ background: { r: 255, g: 255, b: 255 } })
          .removeAlpha()
          .resize(Math.max(1, Math.round(r.width * s)), Math.max(1, Math.round(r.height * s)), { fit: 'fill', kernel: 'lanczos3' })
          .toColourspace('srgb')
          .raw()
          .toBuffer({ resolveWithObject: true });
        raw = { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
      }
    }
    timings.decode = performance.now() - t;
    const m = await models();
    const embedder = await embedderP;
    const scaleGiven = (a: AssetAnalysis): AssetAnalysis => {
      if (a.width === raw.width && a.height === raw.height) return a;
      const sx = raw.width / a.width;
      const sy = raw.height / a.height;
      const sr = <R extends { left: number; top: number; width: number; height: number }>(b: R): R => ({ ...b, left: b.left * sx, top: b.top * sy, width: b.width * sx, height: b.height * sy });
      return { ...a, width: raw.width, height: raw.height, subjectBox: a.subjectBox ? sr(a.subjectBox) : null, textBoxes: a.textBoxes.map(sr), ...(a.faces ? { faces: a.faces.map(sr) } : {}) };
    };
    const [ocr, mask, embedding, people] = await Promise.all([
      given
        ? Promise.resolve(scaleGiven(given).textBoxes)
        : o.ocr
          ? (async () => {
              const r = await runOcr(m.ocr, raw);
              timings.ocr = r.detMs + r.recMs;
              return r.boxes;
            })()
          : Promise.resolve([] as TextBox[]),
      given
        ? Promise.resolve(given.subjectMask)
        : (async () => {
            const t0 = performance.now();
            const r = await runSegment(m.seg, raw);
            timings.segment = performance.now() - t0;
            return r;
          })(),
      embedder
        ? (async () => {
            const t0 = performance.now();
            const [e] = await embedder.embed([{ raw, key: `features:${o.analysisMaxSide}:${key}` }], 'mobilenet_v2');
            timings.embed = performance.now() - t0;
            return e!;
          })()
        : Promise.resolve(new Float32Array(0)),
      given
        ? Promise.resolve(given.faces ? { faces: scaleGiven(given).faces!, personMask: given.personMask } : undefined)
        : o.people
          ? (async () => {
              const t0 = performance.now();
              const faces = await runFaces(m.people, raw);
              // the person mask only where a face says there is a person
              const personMask = faces.length ? await runPerson(m.people, raw) : undefined;
              timings.people = performance.now() - t0;
              return { faces, personMask };
            })()
          : Promise.resolve(undefined),
    ]);
    const analysis: AssetAnalysis = {
      width: raw.width,
      height: raw.height,
      subjectMask: mask,
      subjectBox: maskBox(mask, raw.width, raw.height),
      textBoxes: ocr,
      ...(people ? { faces: people.faces } : {}),
      ...(people?.personMask ? { personMask: people.personMask } : {}),
    };
    t = performance.now();
    const { named, words, dominant } = await (options.measure ?? measure)(raw, analysis, source);
    timings.colour = performance.now() - t;
    return { key, named, words, embedding, dominantColors: dominant, meta: {}, analysis, timings };
  };

  const featurize = async (input: FeatureInput, opts: FeaturizeOptions = {}): Promise<AssetFeatures> => {
    if (closed) throw new ModelError('featurizer is closed');
    const key = featureKey(input);
    const meta = opts.meta ?? {};
    const useCache = o.cacheEntries > 0 && !opts.noCache && !opts.analysis;
    if (useCache) {
      const hit = cache.get(key);
      if (hit) {
        cache.delete(key);
        cache.set(key, hit);
        return cloneFeatures(hit, meta, true);
      }
      const running = inflight.get(key);
      if (running) return cloneFeatures(await running, meta, true);
    }
    const work = window.run(() => compute(input, key, opts.analysis));
    if (!useCache) return cloneFeatures(await work, meta, false);
    inflight.set(key, work);
    try {
      const f = await work;
      cache.set(key, f);
      while (cache.size > o.cacheEntries) cache.delete(cache.keys().next().value!);
      return cloneFeatures(f, meta, false);
    } finally {
      inflight.delete(key);
    }
  };

  return {
    featurize,
    async featurizeSettled(inputs, opts = {}) {
      return Promise.all(
        inputs.map((input) =>
          featurize(input, opts).then(
            (features) => ({ ok: true as const, features }),
            (error: unknown) => ({ ok: false as const, error: error instanceof Error ? error : new Error(String(error)) }),
          ),
        ),
      );
    },
    modelStats() {
      return Object.fromEntries([...pool.msByModel].map(([k, v]) => [k, { ...v }]));
    },
    get executionProvider() {
      return pool.executionProvider;
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.close();
      if (ownEmbedder) await (await embedderP)?.close();
    },
  };
}

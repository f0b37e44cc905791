/**
 * What prediction and attribution need from the featurizer (../features, helper F), behind one small
 * port with two implementations chosen by config (PREDICT_FEATURES):
 *
 * - `full`: the featurizer proper: ISNet subject mask, PP-OCR text boxes and words, mobilenet_v2
 *   embedding, measurements (`createFeaturizer`). Variants are measured with the original's
 *   analysis carried over (no re-segmentation), the embedding recomputed on the edited pixels; all
 *   measurements (the original's too) in the AnvilPool's worker thread.
 * - `light`: no models: the subject mask is a centred ellipse (a stand-in for saliency), no text,
 *   no embedding; the same measurements (`measure`). Used by the boosting test, benchmarks' fast
 *   path, and deployments without the feature models.
 *
 * The model's feature vector is the featurizer's schema (`buildFeatureSchema` / `toVector`, built on
 * the training set) with the embedding replaced by a fixed Gaussian random projection to
 * `embeddingProjection` dims (Johnson-Lindenstrauss: distances roughly kept; 1280 raw dims would make
 * the trees ~40x slower to fit and, on a few hundred assets, mostly fit noise).
 */
import { createHash } from 'node:crypto';
import { mulberry32 } from '@afterglow/core';
import { buildFeatureSchema, createFeaturizer, schemaColumns, toVector, type AssetAnalysis, type AssetMeta, type FeatureSchema as FSchema, type Mask } from '../features/index.js';
import { decodeForEdits, type EditSpec } from '../edits/index.js';
import { createEmbedder } from '../models/embedder.js';
import { AnvilPool } from './anvil-pool.js';
import { decodeImage, probeImage, resolveLimits } from '../models/image.js';
import type { EmbedderOptions, RawImage } from '../models/types.js';

/** What is stored per asset (asset_features) and what vectors are built from. */
export interface StoredFeatures {
  named: Record<string, number>;
  words: string[];
  embedding: Float32Array;
  meta: AssetMeta;
}

export interface Analysed {
  /** Pixels at the analysis resolution (what the edits work on). */
  image: RawImage;
  analysis: AssetAnalysis;
  source: { width: number; height: number };
  features: StoredFeatures;
}

export type FeatureProviderKind = 'full' | 'light';

export interface MeasuredEdit {
  element: string;
  edit: string;
  features: StoredFeatures;
}

export interface FeatureProvider {
  readonly kind: FeatureProviderKind;
  analyse(bytes: Uint8Array, meta?: AssetMeta): Promise<Analysed>;
  /**
   * Applies the edits to an analysed image and measures each variant (its analysis carried over):
   * pixel work in worker threads, embeddings (full) in the embedder's. Edits that do not apply to
   * the image (no text to remove...) are left out.
   */
  measureVariants(original: Analysed, specs: readonly EditSpec[]): Promise<MeasuredEdit[]>;
  close(): Promise<void>;
}

/** A centred elliptical subject mask (semi-axes 32 % x 36 % of the frame, soft edge). */
export function centreEllipse(width: number, height: number): Mask {
  const data = new Uint8Array(width * height);
  const ax = 0.32 * width;
  const ay = 0.36 * height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = Math.hypot((x + 0.5 - width / 2) / ax, (y + 0.5 - height / 2) / ay);
      data[y * width + x] = d <= 0.9 ? 255 : d >= 1.1 ? 0 : Math.round((255 * (1.1 - d)) / 0.2);
    }
  }
  return { width, height, data };
}

export function lightAnalysis(width: number, height: number): AssetAnalysis {
  const ax = Math.round(0.32 * 1.1 * width);
  const ay = Math.round(0.36 * 1.1 * height);
  return {
    width,
    height,
    subjectMask: centreEllipse(width, height),
    subjectBox: { left: Math.max(0, Math.round(width / 2) - ax), top: Math.max(0, Math.round(height / 2) - ay), width: Math.min(width, 2 * ax), height: Math.min(height, 2 * ay) },
    textBoxes: [],
  };
}

export function lightFeatureProvider(options: { maxSide?: number; workers?: number } = {}): FeatureProvider {
  const maxSide = options.maxSide ?? 384;
  const limits = resolveLimits();
  const pool = new AnvilPool(options.workers ?? 1);
  return {
    kind: 'light',
    async analyse(bytes, meta = {}) {
      const probed = await probeImage(bytes, limits);
      const image = await decodeImage(bytes, limits, { maxSide });
      const analysis = lightAnalysis(image.width, image.height);
      const source = { width: probed.width, height: probed.height };
      const m = await pool.measure(image, analysis, source);
      return { image, analysis, source, features: { named: m.named, words: m.words, embedding: new Float32Array(0), meta: { ...meta } } };
    },
    async measureVariants(original, specs) {
      const vs = await pool.variants(original.image, original.analysis, original.source, specs, false);
      return vs.map((v) => ({ element: v.element, edit: v.edit, features: { named: v.named, words: v.words, embedding: new Float32Array(0), meta: { ...original.features.meta } } }));
    },
    close: () => pool.close(),
  };
}

export async function fullFeatureProvider(
  options: Parameters<typeof createFeaturizer>[0] & Pick<EmbedderOptions, 'batchSize' | 'cacheMaxBytes'> & { anvilWorkers?: number } = {},
): Promise<FeatureProvider> {
  const { modelsDir, executionProvider, workers, intraOpThreads, batchSize, cacheMaxBytes, limits, log } = options;
  const embedder = await createEmbedder({ modelsDir, executionProvider, workers, intraOpThreads, batchSize, cacheMaxBytes, limits, log });
  const pool = new AnvilPool(options.anvilWorkers ?? 1);
  // The original's measurements run in the pool's worker thread too, not on the caller's event loop.
  const fz = await createFeaturizer({ ...options, embedder, measure: (raw, analysis, source) => pool.measure(raw, analysis, source) });
  return {
    kind: 'full',
    async analyse(bytes, meta = {}) {
      const f = await fz.featurize(bytes, { meta });
      const image = await decodeForEdits(bytes, f.analysis);
      const px = f.named['image.log_pixels'] !== undefined ? Math.exp(f.named['image.log_pixels']) : image.width * image.height;
      const aspect = f.named['image.aspect'] ?? image.width / image.height;
      const source = { width: Math.round(Math.sqrt(px * aspect)), height: Math.round(Math.sqrt(px / aspect)) };
      return { image, analysis: f.analysis, source, features: { named: f.named, words: f.words, embedding: f.embedding, meta: f.meta } };
    },
    async measureVariants(original, specs) {
      const vs = await pool.variants(original.image, original.analysis, original.source, specs, true);
      const emb = vs.length ? await embedder.embed(vs.map((v) => ({ raw: v.image! })), 'mobilenet_v2', { noCache: true }) : [];
      return vs.map((v, i) => ({ element: v.element, edit: v.edit, features: { named: v.named, words: v.words, embedding: emb[i]!, meta: { ...original.features.meta } } }));
    },
    async close() {
      await pool.close();
      await fz.close();
      await embedder.close();
    },
  };
}

/** The layout a model was trained on: the featurizer's schema (without raw embedding) + the projection. */
export interface VectorSchema {
  id: string;
  base: FSchema;
  /** Embedding projected to this many dims (0 = embedding unused). */
  projection: { dims: number; seed: number; from: number };
  columns: string[];
}

export function buildVectorSchema(rows: readonly StoredFeatures[], options: { embeddingProjection?: number; seed?: number; maxWords?: number } = {}): VectorSchema {
  const base = buildFeatureSchema(rows, { embedding: false, maxWords: options.maxWords ?? 32 });
  const from = Math.max(0, ...rows.map((r) => r.embedding.length));
  const dims = from > 0 ? (options.embeddingProjection ?? 32) : 0;
  const columns = [...schemaColumns(base), ...Array.from({ length: dims }, (_, i) => `emb.proj.${i}`)];
  const id = `v1-${createHash('sha256').update(JSON.stringify({ columns, seed: options.seed ?? 1, from })).digest('hex').slice(0, 12)}`;
  return { id, base, projection: { dims, seed: options.seed ?? 1, from }, columns };
}

const projections = new Map<string, Float32Array>();
function projectionMatrix(p: VectorSchema['projection']): Float32Array {
  const key = `${p.dims}:${p.seed}:${p.from}`;
  let m = projections.get(key);
  if (!m) {
    const rng = mulberry32(p.seed);
    m = new Float32Array(p.dims * p.from);
    const scale = 1 / Math.sqrt(p.dims);
    for (let i = 0; i < m.length; i++) m[i] = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng()) * scale;
    projections.set(key, m);
  }
  return m;
}

export function vectorOf(f: StoredFeatures, schema: VectorSchema): Float32Array {
  const base = toVector({ ...f, embedding: new Float32Array(0) }, schema.base);
  const { dims, from } = schema.projection;
  if (dims === 0) return base;
  const out = new Float32Array(base.length + dims);
  out.set(base);
  if (f.embedding.length !== from) {
    out.fill(Number.NaN, base.length);
    return out;
  }
  const m = projectionMatrix(schema.projection);
  for (let d = 0; d < dims; d++) {
    let s = 0;
    for (let j = 0; j < from; j++) s += m[d * from + j]! * f.embedding[j]!;
    out[base.length + d] = s;
  }
  return out;
}

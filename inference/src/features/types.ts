/**
 * The public contract of the featurizer (`@afterglow/inference` features): what one asset's analysis
 * and features look like, for the prediction model, ANVIL attribution (../edits) and the workers.
 * Kept stable: add, never change. Feature names are listed in ./names.ts.
 */
import type { InferenceSettings } from '@afterglow/core';
import type { RawImage, Rect } from '../models/types.js';

export type { RawImage, Rect };

/** Campaign metadata passed in with an asset (not measured from pixels); categorical. */
export interface AssetMeta {
  channel?: string;
  placement?: string;
  region?: string;
  campaign?: string;
}

/** The categorical metadata fields, in schema order. */
export const META_FIELDS = Object.freeze(['channel', 'placement', 'region', 'campaign'] as const);
export type MetaField = (typeof META_FIELDS)[number];

/** A single-channel probability map (0..255 = 0..1) at its own resolution; scale to the image with `maskAt`. */
export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

/** One detected line of text (OCR), in pixels of the analysed image. */
export interface TextBox extends Rect {
  /** Recognised text of the line (lines read with confidence under 0.5 are dropped). */
  text: string;
  /** Mean detection probability inside the box. */
  detScore: number;
  /** Mean per-character recognition confidence (0 when no text). */
  recScore: number;
}

/** A named colour bucket (see ./colour.ts `COLOR_NAMES`). */
export type ColorName = 'red' | 'orange' | 'yellow' | 'green' | 'cyan' | 'blue' | 'purple' | 'pink' | 'brown' | 'white' | 'silver' | 'grey' | 'black';

export interface DominantColor {
  /** sRGB 0..255. */
  rgb: [number, number, number];
  /** CIE L*a*b* (D65). */
  lab: [number, number, number];
  /** Share of the frame's pixels in this cluster, 0..1. */
  share: number;
  name: ColorName;
}

/**
 * What the models found in one image: the masks and boxes the edits are built from. Coordinates are
 * in the analysed image (`width` x `height`: the decoded image, downscaled so its longer side is at
 * most the featurizer's `analysisMaxSide`).
 */
export interface AssetAnalysis {
  width: number;
  height: number;
  /** Salient subject (foreground) probability (ISNet). */
  subjectMask: Mask;
  /** Bounding box of the subject (mask >= 0.5), or null when there is no subject. */
  subjectBox: Rect | null;
  /** OCR text lines. */
  textBoxes: TextBox[];
  /**
   * Person probability (selfie segmentation), present only when at least one face was found (the
   * segmenter alone calls any large foreground a person); the `people` edits use it.
   */
  personMask?: Mask;
  /** Faces found (BlazeFace), best first; undefined when the people models were not run. */
  faces?: (Rect & { score: number })[];
}

/** Features of one asset. */
export interface AssetFeatures {
  /** Content key: sha256 of the encoded bytes (or the caller's key / the raw pixels' hash). */
  key: string;
  /** Interpretable measurements under stable names (./names.ts), all finite numbers. */
  named: Record<string, number>;
  /** Words of the text overlay, lower-cased, in reading order (duplicates kept). */
  words: string[];
  /** Image embedding (mobilenet_v2, 1280-d, L2-normalized), the tie engine's model. */
  embedding: Float32Array;
  /** Dominant colours (k-means in Lab), largest first. */
  dominantColors: DominantColor[];
  /** The metadata passed in (copied). */
  meta: AssetMeta;
  analysis: AssetAnalysis;
  /** Milliseconds per stage for this image (decode, ocr, segment, embed, colour); 0 for cache hits. */
  timings: Record<string, number>;
}

/** What `featurize` accepts: encoded bytes (checked before decode) or decoded pixels (e.g. an edit variant). */
export type FeatureInput = Uint8Array | { raw: RawImage; key?: string };

/**
 * A feature-vector layout a trained model was fitted on. Built from training data by
 * `buildFeatureSchema`, stored with the model, and applied by `toVector`: columns are
 * `named` (in this order; missing -> NaN), then one-hot metadata (`meta.<field>=<value>`; unseen
 * values -> all zero), then bag-of-words indicators (`word=<w>`), then `embeddingDims` embedding
 * components (`emb.<i>`).
 */
export interface FeatureSchema {
  version: 1;
  named: string[];
  meta: { field: MetaField; values: string[] }[];
  words: string[];
  embeddingDims: number;
}

/** The inference settings (config.inference: models, provider, worker threads) plus the featurizer's own; left-out settings take their defaults. */
export interface FeaturizerOptions extends Partial<Pick<InferenceSettings, 'modelsDir' | 'executionProvider' | 'workers' | 'intraOpThreads'>> {
  /** Longer side of the analysed image (default 1024). */
  analysisMaxSide?: number;
  /** Run OCR (default true). */
  ocr?: boolean;
  /** Run face detection + person segmentation (default true). */
  people?: boolean;
  /** Compute the embedding (default true). When false, `embedding` is empty. */
  embedding?: boolean;
  /** Analyses kept in memory by content key (default 256; 0 = none). */
  cacheEntries?: number;
  /** Build missing models on first use (default true). */
  buildIfMissing?: boolean;
  /**
   * Where the measurements (colour statistics, k-means dominant colours, mask statistics: plain
   * JavaScript pixel loops) run; default `measure` on the calling thread. The scoring workers pass
   * a worker-thread pool's (inference/src/predict/anvil-pool.ts) so their event loop stays free.
   */
  measure?: (raw: RawImage, analysis: AssetAnalysis, source: { width: number; height: number }) => Promise<{ named: Record<string, number>; words: string[]; dominant: AssetFeatures['dominantColors'] }>;
  /** Reuse an existing embedder (it is not closed by the featurizer). */
  embedder?: import('../models/types.js').Embedder;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface FeaturizeOptions {
  meta?: AssetMeta;
  /** Skip the analysis cache. */
  noCache?: boolean;
  /**
   * Reuse these masks and boxes instead of running segmentation and OCR (e.g. a variant whose edit
   * moved them predictably). Measurements are still taken from the pixels.
   */
  analysis?: AssetAnalysis;
}

export interface Featurizer {
  featurize(input: FeatureInput, options?: FeaturizeOptions): Promise<AssetFeatures>;
  /** Many at once; one bad image does not fail the rest. */
  featurizeSettled(inputs: readonly FeatureInput[], options?: FeaturizeOptions): Promise<({ ok: true; features: AssetFeatures } | { ok: false; error: Error })[]>;
  /** Per-model run counts and milliseconds (worker time) since creation. */
  modelStats(): Record<string, { runs: number; ms: number; items: number }>;
  readonly executionProvider: 'cpu' | 'cuda' | undefined;
  close(): Promise<void>;
}

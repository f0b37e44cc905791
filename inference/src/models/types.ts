/**
 * The public contract of the image models in `@afterglow/inference` — the embedder the tie engine
 * calls, the perceptual hash baseline, and the typed errors. Kept stable: add, never change.
 *
 * Import from `@afterglow/inference` (re-exported by src/index.ts) or from this module directly.
 */
import type { InferenceSettings } from '@afterglow/core';

/** The embedding models this package can build and run (see inference/models.manifest.json). */
export type EmbeddingModelId = 'mobilenet_v2' | 'inception_v3';

/** Embedding width per model: the global-average-pooled last feature map. */
export const EMBEDDING_DIMS: Readonly<Record<EmbeddingModelId, number>> = Object.freeze({
  mobilenet_v2: 1280,
  inception_v3: 2048,
});

/** A rectangle in source pixels (after EXIF orientation is applied). */
export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Decoded pixels, e.g. one decode shared by several crops. 8-bit, row-major, interleaved. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA; alpha is flattened onto white). */
  channels: 1 | 3 | 4;
}

/**
 * What `embed` accepts for one image:
 * - encoded bytes (JPEG, PNG, WebP, GIF, AVIF, TIFF): checked (magic, byte and pixel limits) before decode;
 * - `{ bytes, crop }`: a region of encoded bytes (crop in source pixels, clamped to the image);
 * - `{ raw, crop? }`: already decoded pixels (e.g. from `decodeImage`), optionally a region of them.
 */
export type EmbedInput =
  | Uint8Array
  | { bytes: Uint8Array; crop?: Rect; mirror?: boolean }
  | {
      raw: RawImage;
      crop?: Rect;
      /** Mirror left-right after cropping (e.g. to match ads that flipped their photo). */
      mirror?: boolean;
      /**
       * Identity of these pixels for the embedding cache, e.g. `${sha256 of the encoded bytes}:${decode options}`;
       * without it the raw pixels are hashed (a few ms for a large image).
       */
      key?: string;
    };

/**
 * How an image (or crop) is brought to the model's square input:
 * - 'fill': stretch to the input size (the models' training preprocessing; keeps all content);
 * - 'cover': scale to cover, then centre-crop;
 * - 'contain': scale to fit, pad with white.
 */
export type ResizeFit = 'fill' | 'cover' | 'contain';

/**
 * Which output of the model: 'embedding' (the pooled last feature map, the default) or 'descriptor'
 * (an instance-retrieval descriptor from earlier, ImageNet-only layers, for models whose manifest entry
 * declares one; see inference/models.manifest.json). Both come unit-norm.
 */
export type EmbeddingOutput = 'embedding' | 'descriptor';

export interface EmbedOptions {
  /** Skip the content-hash cache for this call (neither read nor written). */
  noCache?: boolean;
  /** Default 'embedding'. */
  output?: EmbeddingOutput;
  /** Default: the model's manifest preprocessing ('fill'). */
  fit?: ResizeFit;
}

export interface Embedder {
  /** Embedding width per model. */
  readonly dims: Readonly<Record<EmbeddingModelId, number>>;
  /** Execution provider actually in use ('cuda' or 'cpu'), known after the first model is loaded. */
  readonly executionProvider: 'cuda' | 'cpu' | undefined;
  /**
   * One embedding (length `dims[model]`, unit L2 norm) per input, in input order: the model's pooled
   * features, power-normalized (signed square root) then L2-normalized, so cosine similarity is a dot
   * product and euclidean distance is sqrt(2 - 2 cos). Batched and run in worker threads: the calling
   * thread's event loop is never blocked by inference. Treat the arrays as yours (they are copies).
   * Rejects with `ImageRejectedError` if any input is not an acceptable image (the whole call fails;
   * use `embedSettled` to get per-input outcomes).
   */
  embed(images: readonly EmbedInput[], model: EmbeddingModelId, options?: EmbedOptions): Promise<Float32Array[]>;
  /** As `embed`, but each input succeeds or fails on its own. */
  embedSettled(
    images: readonly EmbedInput[],
    model: EmbeddingModelId,
    options?: EmbedOptions,
  ): Promise<Array<{ ok: true; embedding: Float32Array } | { ok: false; error: Error }>>;
  /** Cache statistics (content-hash cache of embeddings). */
  cacheStats(): { entries: number; hits: number; misses: number };
  /** Inference batches run and images in them (mean batch = images / batches). */
  inferenceStats(): { batches: number; images: number };
  /** Stops the worker threads and releases the sessions. Idempotent. */
  close(): Promise<void>;
}

/** Options of `createEmbedder`: the inference settings (config.inference); a field left out takes its default (`defaultConfig()`). */
export interface EmbedderOptions extends Partial<Pick<InferenceSettings, 'modelsDir' | 'executionProvider' | 'batchSize' | 'workers' | 'intraOpThreads'>> {
  /** Image limits, checked from the header before any full decode. */
  limits?: Partial<ImageLimits>;
  /** Bytes of embeddings kept in the content-hash cache (0 disables it). */
  cacheMaxBytes?: number;
  /** Pluggable cache; default an in-memory LRU bounded by `cacheMaxBytes`. */
  cache?: EmbeddingCache;
  /** Build missing models on first use (default true). */
  buildIfMissing?: boolean;
  /** Receives one-line diagnostics (execution provider chosen, model builds). Default: lines on stderr; pass `() => {}` to silence. */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface ImageLimits {
  /** Max encoded size in bytes. */
  maxBytes: number;
  /** Max width * height (sharp's limitInputPixels). */
  maxPixels: number;
  /** Max width or height. */
  maxSide: number;
  /** Min width and height (default 32, DEFAULT_IMAGE_LIMITS). */
  minSide?: number;
}

/** Embedding cache keyed by `${model}:${fit}:${sha256(image bytes [+ crop])}`. */
export interface EmbeddingCache {
  get(key: string): Float32Array | undefined;
  set(key: string, value: Float32Array): void;
  readonly size: number;
}

/** Why an image was refused. */
export type ImageRejectReason =
  | 'too_many_bytes'
  | 'empty'
  | 'unknown_format'
  | 'unsupported_format'
  | 'too_many_pixels'
  | 'too_large_side'
  | 'too_small'
  | 'trailing_data'
  | 'truncated'
  | 'corrupt'
  | 'bad_crop';

/*
 * The errors mirror core's AfterglowError shape (a stable `code` safe to show a client) without
 * importing @afterglow/core, which loads its adapters: this module is also loaded in worker threads.
 */

/** Thrown (or returned by `embedSettled`) for an image refused before or during decode; `reason` says why. */
export class ImageRejectedError extends Error {
  readonly code = 'image_rejected' as const;
  constructor(
    readonly reason: ImageRejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'ImageRejectedError';
  }
}

/** A model could not be built, verified or loaded. */
export class ModelError extends Error {
  readonly code = 'model_unavailable' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelError';
  }
}

/**
 * `createEmbedder`: image embeddings (MobileNetV2 1280-d, InceptionV3 2048-d, L2-normalized) on
 * onnxruntime-node in worker threads. See ./types.ts for the contract.
 *
 * Per image: cache key (sha256 of the bytes or pixels, crop, fit, model) -> in-memory LRU -> sharp
 * probe + decode + resize on libuv's pool (never the event loop) -> the model's blur, stacked with
 * other callers' images (./blur-batch.ts) -> queued for the worker pool, which batches across
 * concurrent callers. At most `workers * batchSize * 2` images are between decode and
 * result at once, so a call with 100k images streams instead of decoding everything up front.
 */
import { createHash } from 'node:crypto';
import type { AfterglowConfig } from '@afterglow/core';
import os from 'node:os';
import { BlurBatcher } from './blur-batch.js';
import { LruEmbeddingCache } from './cache.js';
import { ensureModel } from './ensure.js';
import { preprocess, resolveLimits } from './image.js';
import { Limiter } from './limiter.js';
import { loadManifest, runtimeSpec, isModelId, type ModelRuntimeSpec } from './manifest.js';
import { OrtPool, type PoolModel } from './pool.js';
import {
  EMBEDDING_DIMS,
  ImageRejectedError,
  ModelError,
  type EmbedInput,
  type EmbedOptions,
  type Embedder,
  type EmbedderOptions,
  type EmbeddingCache,
  type EmbeddingModelId,
  type EmbeddingOutput,
  type ImageLimits,
} from './types.js';

export * from './types.js';

interface ResolvedOptions {
  modelsDir: string;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  batchSize: number;
  workers: number;
  intraOpThreads: number;
  limits: ImageLimits;
  cache: EmbeddingCache | undefined;
  buildIfMissing: boolean;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

const stderrLog = (msg: string) => process.stderr.write(`[afterglow/inference] ${msg}\n`);

/** Options the caller leaves out take the settings' defaults (`defaultConfig()`: no variable read; the composition root passes its config). */
async function resolveOptions(o: EmbedderOptions): Promise<ResolvedOptions> {
  const needConfig = o.modelsDir === undefined || o.executionProvider === undefined || o.batchSize === undefined || o.workers === undefined ||
    o.intraOpThreads === undefined || o.cacheMaxBytes === undefined || o.limits === undefined;
  let cfg: Pick<AfterglowConfig, 'inference' | 'images'> | undefined;
  if (needConfig) {
    const { defaultConfig } = await import('@afterglow/core');
    cfg = defaultConfig();
  }
  const workers = o.workers ?? cfg!.inference.workers;
  const cores = os.availableParallelism();
  const intra = o.intraOpThreads ?? cfg!.inference.intraOpThreads;
  const cacheMaxBytes = o.cacheMaxBytes ?? cfg!.inference.embedCacheBytes;
  return {
    modelsDir: o.modelsDir ?? cfg!.inference.modelsDir,
    executionProvider: o.executionProvider ?? cfg!.inference.executionProvider,
    batchSize: Math.max(1, o.batchSize ?? cfg!.inference.batchSize),
    workers: Math.max(1, workers),
    intraOpThreads: intra > 0 ? intra : Math.max(1, Math.floor(cores / Math.max(1, workers))),
    limits: resolveLimits({ ...(cfg?.images ?? {}), ...(o.limits ?? {}) }),
    cache: o.cache ?? (cacheMaxBytes > 0 ? new LruEmbeddingCache(cacheMaxBytes) : undefined),
    buildIfMissing: o.buildIfMissing ?? true,
    log: o.log ?? stderrLog,
  };
}

/** Cache key of one input: what it is (content hash, crop), how it is fitted, and by which model. */
export function embedCacheKey(input: EmbedInput, model: EmbeddingModelId, fit: string, output: EmbeddingOutput = 'embedding'): string {
  let ident: string;
  let crop: { left: number; top: number; width: number; height: number } | undefined;
  const mirror = !(input instanceof Uint8Array) && input.mirror ? '~m' : '';
  if (input instanceof Uint8Array) ident = sha256(input);
  else if ('bytes' in input) {
    ident = sha256(input.bytes);
    crop = input.crop;
  } else {
    ident = input.key !== undefined ? `k:${input.key}` : `raw:${input.raw.width}x${input.raw.height}x${input.raw.channels}:${sha256(input.raw.data)}`;
    crop = input.crop;
  }
  const c = crop ? `@${crop.left},${crop.top},${crop.width},${crop.height}` : '';
  return `${model}${output === 'embedding' ? '' : `#${output}`}:${fit}:${ident}${c}${mirror}`;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function createEmbedder(options: EmbedderOptions = {}): Promise<Embedder> {
  const o = await resolveOptions(options);
  const manifest = loadManifest();
  const pool = new OrtPool({ workers: o.workers, batchSize: o.batchSize, executionProvider: o.executionProvider, intraOpThreads: o.intraOpThreads, log: o.log });
  const models = new Map<EmbeddingModelId, Promise<PoolModel & { spec: ModelRuntimeSpec }>>();
  const inflight = new Map<string, Promise<Float32Array>>();
  // Bounded work between decode and result (memory), and sharp pipelines at once (libuv pool).
  const window = new Limiter(o.workers * o.batchSize * 2);
  const decoders = new Limiter(Math.max(2, Number(process.env.UV_THREADPOOL_SIZE) || 4));
  const blurs = new BlurBatcher(2);
  let hits = 0;
  let misses = 0;
  let closed = false;

  const model = (id: EmbeddingModelId) => {
    let m = models.get(id);
    if (!m) {
      m = (async () => {
        const spec = runtimeSpec(id, manifest);
        const path = await ensureModel(o.modelsDir, id, { buildIfMissing: o.buildIfMissing, log: o.log });
        return { id, path, inputName: spec.inputName, outputName: spec.outputName, inputSize: spec.inputSize, dims: spec.dims, power: spec.power, spec };
      })();
      models.set(id, m);
      m.catch(() => models.delete(id));
    }
    return m;
  };

  /** The pool's view of one output of a model: the descriptor runs as its own queue (own batches). */
  const descriptorModels = new Map<EmbeddingModelId, PoolModel & { spec: ModelRuntimeSpec }>();
  const output = (m: PoolModel & { spec: ModelRuntimeSpec }, which: EmbeddingOutput): PoolModel & { spec: ModelRuntimeSpec } => {
    if (which === 'embedding') return m;
    const d = m.spec.descriptor;
    if (!d) throw new ModelError(`model ${m.spec.id} has no descriptor output (see inference/models.manifest.json)`);
    let dm = descriptorModels.get(m.spec.id);
    if (!dm) {
      // The graph already pooled, power-normalized and L2-normalized each layer: power 1 = L2 of the concatenation.
      dm = { ...m, id: `${m.spec.id}#descriptor`, outputName: d.outputName, dims: d.dims, power: 1 };
      descriptorModels.set(m.spec.id, dm);
    }
    return dm;
  };

  const embedOne = async (input: EmbedInput, id: EmbeddingModelId, opts: EmbedOptions): Promise<Float32Array> => {
    const m = output(await model(id), opts.output ?? 'embedding');
    const fit = opts.fit ?? m.spec.fit;
    const useCache = o.cache !== undefined && !opts.noCache;
    const key = useCache ? embedCacheKey(input, id, fit, opts.output) : undefined;
    if (key !== undefined) {
      const hit = o.cache!.get(key);
      if (hit) {
        hits++;
        return hit.slice();
      }
      const running = inflight.get(key);
      if (running) {
        hits++;
        return (await running).slice();
      }
    }
    misses++;
    const work = window.run(async () => {
      const [w, h] = m.spec.inputSize;
      const resized = await decoders.run(() => preprocess(input, { size: [w, h], fit, kernel: m.spec.kernel, blurSigma: 0 }, o.limits));
      // Same bytes as blurring inside the resize pipeline (sharp needs sigma >= 0.3), a third of the time.
      const pixels = m.spec.blurSigma >= 0.3 ? await blurs.blur(resized, w, h, 3, m.spec.blurSigma) : resized;
      return pool.run(m, pixels);
    });
    if (key === undefined) return work;
    inflight.set(key, work);
    try {
      const v = await work;
      o.cache!.set(key, v);
      return v.slice();
    } finally {
      inflight.delete(key);
    }
  };

  const embedSettled: Embedder['embedSettled'] = async (images, id, opts = {}) => {
    if (closed) throw new ModelError('embedder is closed');
    if (!isModelId(id)) throw new ModelError(`unknown model ${JSON.stringify(id)}; expected one of mobilenet_v2, inception_v3`);
    output(await model(id), opts.output ?? 'embedding'); // model problems fail the call, not each image
    return Promise.all(
      images.map((img) =>
        embedOne(img, id, opts).then(
          (embedding) => ({ ok: true as const, embedding }),
          (error: unknown) => ({ ok: false as const, error: error instanceof Error ? error : new Error(String(error)) }),
        ),
      ),
    );
  };

  return {
    dims: EMBEDDING_DIMS,
    get executionProvider() {
      return pool.executionProvider;
    },
    embedSettled,
    async embed(images, id, opts = {}) {
      const settled = await embedSettled(images, id, opts);
      const bad = settled.findIndex((s) => !s.ok);
      if (bad >= 0) {
        const { error } = settled[bad] as { ok: false; error: Error };
        if (images.length === 1) throw error;
        // A new error (the original may be shared with other callers of the same image).
        const msg = `image ${bad}: ${error.message}`;
        throw error instanceof ImageRejectedError ? new ImageRejectedError(error.reason, msg) : new ModelError(msg, { cause: error });
      }
      return settled.map((s) => (s as { ok: true; embedding: Float32Array }).embedding);
    },
    cacheStats: () => ({ entries: o.cache?.size ?? 0, hits, misses }),
    inferenceStats: () => ({ batches: pool.batches, images: pool.images }),
    async close() {
      if (closed) return;
      closed = true;
      await pool.close();
    },
  };
}

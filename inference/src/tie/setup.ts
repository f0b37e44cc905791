/**
 * The embedder and tie engine settings from the configuration (INFERENCE_*, IMAGE_*, TIE_*), shared by
 * the inference role's asset services (../asset-services.ts) and `afterglow tie` (./cli.ts), whose
 * options override some of them.
 */
import type { AfterglowConfig } from '@afterglow/core';
import { createEmbedder } from '../models/embedder.js';
import type { EmbeddingModelId, Embedder } from '../models/types.js';
import { DiskEmbeddingCache, DiskFeatureCache } from './cache.js';
import type { TieEngineOptions } from './engine.js';

type TieConfig = Pick<AfterglowConfig, 'inference' | 'images' | 'tie'>;

/** An embedder per config.inference, caching embeddings on disk in `cacheDir` when given. */
export function createConfiguredEmbedder(
  config: Pick<AfterglowConfig, 'inference' | 'images'>,
  o: { cacheDir: string | undefined; log: (msg: string, fields?: Record<string, unknown>) => void },
): Promise<Embedder> {
  return createEmbedder({
    modelsDir: config.inference.modelsDir,
    executionProvider: config.inference.executionProvider,
    batchSize: config.inference.batchSize,
    workers: config.inference.workers,
    intraOpThreads: config.inference.intraOpThreads,
    limits: config.images,
    cacheMaxBytes: config.inference.embedCacheBytes,
    ...(o.cacheDir ? { cache: new DiskEmbeddingCache(o.cacheDir) } : {}),
    log: o.log,
  });
}

/** Tie engine options per config.tie (each override replaces its TIE_* setting), keypoints cached in `cacheDir` when given. */
export function configuredEngineOptions(
  config: TieConfig,
  o: {
    cacheDir: string | undefined;
    model?: EmbeddingModelId | undefined;
    topK?: number | undefined;
    candidates?: number | undefined;
    verifyTop?: number | undefined;
    denseTop?: number | undefined;
    autoTieThreshold?: number | undefined;
    workers?: number | undefined;
  },
): Omit<TieEngineOptions, 'embedder'> {
  const tie = config.tie;
  const threshold = o.autoTieThreshold ?? tie.autoTieThreshold;
  const workers = o.workers ?? tie.verifyWorkers;
  return {
    model: o.model ?? tie.model,
    topK: o.topK ?? tie.topK,
    candidates: o.candidates ?? tie.candidates,
    verifyTop: o.verifyTop ?? tie.verifyTop,
    masterViews: tie.masterViews,
    masterMirror: tie.masterMirror,
    thinStrips: tie.thinStrips,
    denseTop: o.denseTop ?? tie.denseTop,
    // An explicit count (`--dense N`) is checked as asked, whatever the keypoints found.
    ...(o.denseTop !== undefined ? { denseWeakTop: o.denseTop } : {}),
    colourWeight: tie.colourWeight,
    ...(tie.descriptor ? { output: tie.descriptor } : {}),
    whitenDims: tie.whitenDims,
    whitenShrinkage: tie.whitenShrinkage,
    limits: config.images,
    ...(threshold !== undefined ? { autoTieThreshold: threshold } : {}),
    ...(workers > 0 ? { workers } : {}),
    ...(o.cacheDir ? { featureCache: new DiskFeatureCache(o.cacheDir) } : {}),
  };
}

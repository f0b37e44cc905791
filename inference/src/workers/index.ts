/**
 * The inference role's prediction side, composed in one call for cli/src/runtime.ts: feature
 * provider (PREDICT_FEATURES), onnxruntime predictor threads, the scoring engine, the workers
 * (consumers; PREDICT_WORKERS_ENABLED) and the HTTP routes.
 */
import type { FastifyInstance } from 'fastify';
import { availableCores } from '@afterglow/core';
import type { AfterglowConfig, BlobStore, Bus, Logger, Store } from '@afterglow/core';
import { fullFeatureProvider, lightFeatureProvider, type FeatureProvider } from '../predict/featurizer.js';
import { ModelRegistry } from '../predict/registry.js';
import { ModelRepository, PredictionDataRepository } from '../predict/repository.js';
import { AssetRepository } from '../registry/repository.js';
import { ScoreRepository } from './repository.js';
import { ScoringEngine, registryImageSource, type ImageSource } from './engine.js';
import { Predictor } from './predictor.js';
import { registerScoreRoutes } from './routes.js';
import { ScoringWorkers } from './service.js';

export { Predictor, type ModelRef, type PredictorOptions } from './predictor.js';
export { ScoringEngine, registryImageSource, wilson, NotScoredError, type ImageSource, type ScoreRequest, type EngineDeps } from './engine.js';
export { ScoringWorkers, type WorkersDeps } from './service.js';
export { ScoreRepository, type ScoreRow, type OcclusionRow } from './repository.js';
export { registerScoreRoutes, type ScoreRoutesDeps } from './routes.js';

export interface ScoringServices {
  engine: ScoringEngine;
  workers: ScoringWorkers | undefined;
  predictor: Predictor;
  registry: ModelRegistry;
  close(): Promise<void>;
}

/**
 * The configured feature provider, created on first use (the full featurizer starts worker threads
 * and loads models: a process that never scores, e.g. with the workers off, never pays for it).
 */
export function createFeatureProvider(config: AfterglowConfig, log?: (msg: string, fields?: Record<string, unknown>) => void): FeatureProvider {
  if (config.predict.features === 'light') return lightFeatureProvider();
  let inner: Promise<FeatureProvider> | undefined;
  const get = () =>
    (inner ??= fullFeatureProvider({
      modelsDir: config.inference.modelsDir,
      executionProvider: config.inference.executionProvider,
      workers: config.inference.workers,
      intraOpThreads: config.inference.intraOpThreads,
      batchSize: config.inference.batchSize,
      cacheMaxBytes: config.inference.embedCacheBytes,
      limits: config.images,
      log,
    }));
  return {
    kind: 'full',
    analyse: async (bytes, meta) => (await get()).analyse(bytes, meta),
    measureVariants: async (original, specs) => (await get()).measureVariants(original, specs),
    close: async () => {
      const p = await inner?.catch(() => undefined);
      await p?.close();
    },
  };
}

export function createPredictor(config: AfterglowConfig, log?: (msg: string, fields?: Record<string, unknown>) => void): Predictor {
  const cores = availableCores();
  return new Predictor({
    workers: config.predict.workers,
    batchRows: config.predict.batchRows,
    executionProvider: config.inference.executionProvider,
    intraOpThreads: config.inference.intraOpThreads > 0 ? config.inference.intraOpThreads : Math.max(1, Math.floor(cores / 2)),
    log,
  });
}

export async function startScoringServices(
  app: FastifyInstance,
  deps: { config: AfterglowConfig; bus: Bus; store: Store; blobs: BlobStore; log: Logger; images?: ImageSource },
): Promise<ScoringServices> {
  const { config, bus, store, log } = deps;
  const say = (msg: string, fields?: Record<string, unknown>) => log.info(fields ?? {}, msg);
  const registry = new ModelRegistry(new ModelRepository(store), config.predict.modelsDir);
  const predictor = createPredictor(config, say);
  const provider = createFeatureProvider(config, say);
  const engine = new ScoringEngine({
    data: new PredictionDataRepository(store),
    scores: new ScoreRepository(store),
    registry,
    predictor,
    provider,
    images: deps.images ?? registryImageSource(new AssetRepository(store), deps.blobs),
    settings: config.predict,
    log: say,
  });
  const workers = config.predict.workersEnabled ? new ScoringWorkers({ bus, engine, log, settings: config.predict, limits: config.events }) : undefined;
  await registerScoreRoutes(app, { engine, registry, onActivated: (tenant, version) => workers?.modelActivated(tenant, version) });
  await workers?.start();
  return {
    engine,
    workers,
    predictor,
    registry,
    async close() {
      await workers?.stop();
      await predictor.close();
      await provider.close();
    },
  };
}

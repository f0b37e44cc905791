import type { FastifyInstance } from 'fastify';
import type { AfterglowConfig, BlobStore, Bus, Logger, RoleHandle, Store } from '@afterglow/core';
import { startAssetServices, type AssetServices } from './asset-services.js';
import { startScoringServices, type ScoringServices } from './workers/index.js';

export interface InferenceRoleDeps {
  app: FastifyInstance;
  config: AfterglowConfig;
  bus: Bus;
  store: Store;
  /** Asset images (originals and derived), closed by the caller. */
  blobs: BlobStore;
  log: Logger;
}

export interface RunningInference extends RoleHandle {
  readonly assets: AssetServices;
  readonly scoring: ScoringServices;
}

/**
 * The inference role: the asset registry and tie review (inference/src/registry, review), and
 * scores, attribution and models (inference/src/workers), with their routes. Call before listen.
 */
export async function startInference(deps: InferenceRoleDeps): Promise<RunningInference> {
  const { app, config, bus, store, blobs, log } = deps;
  const assets = await startAssetServices(app, { config, bus, store, blobs, log });
  const scoring = await startScoringServices(app, { config, bus, store, blobs, log: log.child({ component: 'scoring' }) });
  return {
    assets,
    scoring,
    ready: {},
    async stop() {
      await scoring.close();
      await assets.close();
    },
  };
}

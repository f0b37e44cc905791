/**
 * The asset registry and the tie review API of the `inference` role, wired in one call from the
 * composition root (cli/src/runtime.ts): blob store and store in, routes out. Lives beside the
 * registry and review folders so that neither imports the other's wiring.
 */
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { TOPICS, assetChangeSchema, type AfterglowConfig, type AssetChange, type BlobStore, type Bus, type BusProducer, type Logger, type Store } from '@afterglow/core';
import type { Embedder } from './models/types.js';
import { AssetRepository } from './registry/repository.js';
import { registerRegistryRoutes } from './registry/routes.js';
import { AssetRegistry } from './registry/service.js';
import { ReviewService } from './review/service.js';
import { registerReviewRoutes } from './review/routes.js';
import { TieTiers } from './review/tiers.js';
import { configuredEngineOptions, createConfiguredEmbedder } from './tie/setup.js';

export interface AssetServicesDeps {
  config: AfterglowConfig;
  bus: Bus;
  store: Store;
  blobs: BlobStore;
  log: Logger;
  /** Default: one created from config.inference (closed with the services). */
  embedder?: Embedder;
}

export interface AssetServices {
  registry: AssetRegistry;
  review: ReviewService;
  tiers: TieTiers;
  close(): Promise<void>;
}

export async function startAssetServices(app: FastifyInstance, deps: AssetServicesDeps): Promise<AssetServices> {
  const { config, log } = deps;
  const tie = config.tie;
  const producer: BusProducer = await deps.bus.producer();
  const repo = new AssetRepository(deps.store);
  const embedder =
    deps.embedder ??
    (await createConfiguredEmbedder(config, { cacheDir: tie.cacheDir, log: (msg, fields) => log.info(fields ?? {}, msg) }));
  const registry = new AssetRegistry({
    repo,
    blobs: deps.blobs,
    producer,
    limits: config.images,
    log,
    decodeConcurrency: config.images.decodeConcurrency,
    decodeQueue: config.images.decodeQueue,
    videos: {
      limits: config.videos,
      decoder: { ffmpegPath: config.videos.ffmpegPath, timeoutMs: config.videos.decodeTimeoutMs, memoryMb: config.videos.decodeMemoryMb, threads: config.videos.decodeThreads },
      concurrency: config.videos.decodeConcurrency,
      queue: config.videos.decodeQueue,
    },
  });
  const review = new ReviewService({ repo, producer, log, propagate: { topN: tie.propagateTopN, minScore: tie.propagateMinScore } });
  const tiers = new TieTiers({
    repo,
    blobs: deps.blobs,
    embedder,
    log,
    rerankDebounceMs: config.assets.rerankDebounceMs,
    onRanked: (tenant, ranked) => review.onRanked(tenant, ranked),
    engine: configuredEngineOptions(config, { cacheDir: tie.cacheDir }),
  });

  await registerRegistryRoutes(app, {
    registry,
    maxBytes: Math.max(config.images.maxBytes, config.videos.maxBytes),
    onRegistered: async (asset) => {
      const t0 = performance.now();
      if (asset.role === 'master') {
        await tiers.addMaster(asset);
        return { tying: { status: 'added', masters: tiers.masterCount(asset.tenant_id), ms: Math.round(performance.now() - t0) } };
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'pending'>((resolve) => {
        timer = setTimeout(() => resolve('pending'), config.assets.tieWaitMs);
      });
      try {
        const r = await Promise.race([tiers.rankAd(asset), timeout]);
        if (r === 'pending') return { tying: { status: 'pending', ms: Math.round(performance.now() - t0) } };
        return {
          tying: {
            status: r.error ? 'failed' : 'ranked',
            ...(r.error ? { error: r.error } : {}),
            masters: r.masters,
            best: r.best_master ? { master_asset_id: r.best_master, score: r.best_score } : null,
            auto_tie: r.auto_tie || null,
            ms: Math.round(performance.now() - t0),
          },
        };
      } catch (err) {
        log.error({ err, asset: asset.asset_id }, 'ranking a registered ad failed');
        return { tying: { status: 'failed', error: (err as Error).message, ms: Math.round(performance.now() - t0) } };
      } finally {
        clearTimeout(timer);
      }
    },
  });
  await registerReviewRoutes(app, { review });
  // Load the tenants' masters in the background: requests that need an engine wait for it.
  void tiers.warm().catch((err) => log.error({ err }, 'warming the tie engines failed'));
  // Masters registered by other inference processes join this one's engines (a group per process).
  const changes = deps.bus.consumer({ groupId: `afterglow-inference-assets-${randomUUID()}`, topics: [TOPICS.assetsChanges], fromBeginning: false, ephemeral: true });
  await changes.run(async (batch) => {
    for (const record of batch.records) {
      let change: AssetChange;
      try {
        change = assetChangeSchema.parse(JSON.parse(record.value.toString('utf8')));
      } catch {
        continue;
      }
      if (change.type !== 'registered' || change.role !== 'master') continue;
      void tiers.noteMaster(change.tenant_id, change.asset_id).catch((err) => log.warn({ err, asset: change.asset_id }, 'adding a master seen on assets.changes failed'));
    }
    const last = batch.records[batch.records.length - 1];
    if (last) await changes.commit([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
  });

  return {
    registry,
    review,
    tiers,
    async close() {
      await changes.stop();
      await tiers.close();
      await producer.close();
      if (!deps.embedder) await embedder.close();
    },
  };
}

import type { FastifyInstance } from 'fastify';
import type { AfterglowConfig, Bus, FanOut, HotState, Logger, Registry, RoleHandle, Store } from '@afterglow/core';
import { LiveAggregator } from './live/aggregator.js';
import { LiveGateway } from './live/gateway.js';
import { LiveKeys } from './live/keys.js';
import { LiveReader } from './live/reader.js';
import { StoreHistorySource } from './live/rebuild.js';
import { RollupRepository, StoreLogRepository } from './live/store-repository.js';
import { registerLiveRoutes } from './live/routes.js';
import { startTriggers } from './triggers/index.js';
import type { ResolveHost } from './triggers/egress.js';

export interface LiveDeps {
  app: FastifyInstance;
  config: AfterglowConfig;
  bus: Bus;
  store: Store;
  hot: HotState;
  fanout: FanOut;
  log: Logger;
  registry?: Registry;
  /**
   * The log the aggregator's applied offsets belong to: they are only meaningful for it (a Kafka
   * namespace, or this process's in-process log, which starts again at 0 every time).
   */
  offsetScope: string;
  /** Resolves webhook hosts for the egress policy (tests play DNS rebinding with it); default: the system resolver. */
  resolveHost?: ResolveHost;
}

export interface RunningLive extends RoleHandle {
  /** Absent when LIVE_AGGREGATE is off. */
  readonly aggregator: LiveAggregator | undefined;
  /** Absent when LIVE_GATEWAY is off. */
  readonly gateway: LiveGateway | undefined;
}

/**
 * The live role: the /v1/live gateway, live REST and triggers on the app (call before it listens),
 * and the aggregator folding engagement.events into hot state.
 */
export async function startLive(deps: LiveDeps): Promise<RunningLive> {
  const { config, app, bus, store, hot, fanout, registry } = deps;
  const settings = config.live;
  const keys = new LiveKeys(settings.keyPrefix);
  const ci = { maxRelWidth: settings.ciMaxRelWidth, maxAbsWidth: settings.ciMaxAbsWidth };
  const log = deps.log;
  const gateway = settings.gateway
    ? new LiveGateway({
        hot,
        fanout,
        keys,
        log,
        lateMs: config.events.liveLateMs,
        ci,
        fatigueFraction: settings.fatigueFraction,
        decayRefitMs: settings.decayRefitMs,
        ...settings.ws,
        flushMs: settings.flushMs,
        registry,
      })
    : undefined;
  let aggregator: LiveAggregator | undefined;
  await registerLiveRoutes(app, {
    gateway,
    reader: new LiveReader(hot, keys, config.events.liveLateMs, ci, settings.fatigueFraction),
    store,
    ci,
    fatigueFraction: settings.fatigueFraction,
    maxLeaderboardAssets: settings.ws.topicMaxAssets,
  });
  const triggers = await startTriggers({
    app,
    config,
    bus,
    store,
    hot,
    fanout,
    keys,
    log,
    registry,
    ...(deps.resolveHost && { resolveHost: deps.resolveHost }),
  });
  if (settings.aggregate) {
    aggregator = new LiveAggregator({
      bus,
      hot,
      fanout,
      log,
      limits: config.events,
      groupId: settings.groupId,
      keys,
      offsetScope: deps.offsetScope,
      flushMs: settings.flushMs,
      publishMs: settings.publishMs,
      maxEntities: settings.maxEntities,
      quotas: { entitiesPerTenant: settings.maxEntitiesPerTenant, assetsPerTenant: settings.maxAssetsPerTenant, campaignsPerTenant: settings.maxCampaignsPerTenant },
      partitions: config.bus.partitions,
      tiesSweepMs: settings.tiesSweepMs,
      registry,
      // Ties, and the last day's windows where hot state lacks them, come back from the store on start.
      history: new StoreHistorySource(new RollupRepository(store), new StoreLogRepository(store)),
      storeGroupId: config.sink.groupId,
    });
    await aggregator.start();
  }
  return {
    aggregator,
    gateway,
    ready: { hot: () => hot.get(`${settings.keyPrefix}:ready`) },
    async stop() {
      await gateway?.close();
      await aggregator?.stop();
      await triggers.stop().catch((err) => log.warn({ err }, 'close failed'));
    },
  };
}

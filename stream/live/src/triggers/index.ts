import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { AfterglowConfig, Bus, BusProducer, FanOut, HotState, Logger, Registry, Store } from '@afterglow/core';
import type { LiveKeys } from '../live/keys.js';
import { LiveReader } from '../live/reader.js';
import { EgressPolicy, type ResolveHost } from './egress.js';
import { TriggerEngine } from './engine.js';
import { StoreCostReach } from './cost-source.js';
import { VideoSource } from '../live/video.js';
import { VideoPlays } from './video-rules.js';
import { registerTriggerRoutes } from './routes.js';
import { Snoozes } from './snooze.js';
import { TriggerStore } from './store.js';

export { TriggerEngine, hintsOf, type TriggerEngineOptions } from './engine.js';
export { StoreCostReach, type CostReachSource } from './cost-source.js';
export { TriggerStore, type TriggerStoreOptions, type StoredRule, type StoredSnooze, type FiringLogEntry, type DeliveryRow, type LinkRow } from './store.js';
export { WebhookDispatcher, type WebhookOptions } from './webhooks.js';
export { EgressPolicy, EgressRefusedError, deniedRange, type EgressSettings, type ResolveHost } from './egress.js';
export { SecretBox, isSealed } from './secrets.js';
export { registerTriggerRoutes, type TriggerRoutesDeps } from './routes.js';
export { Snoozes, latestEnd, type SnoozeCheck } from './snooze.js';
export * as conditions from './evaluate.js';

export interface TriggersDeps {
  app: FastifyInstance;
  config: AfterglowConfig;
  bus: Bus;
  store: Store;
  hot: HotState;
  fanout: FanOut;
  keys: LiveKeys;
  log: Logger;
  registry?: Registry;
  /** Resolves webhook hosts (tests inject one to play DNS rebinding); default: the system resolver. */
  resolveHost?: ResolveHost;
}

export interface RunningTriggers {
  engine: TriggerEngine | undefined;
  stop(): Promise<void>;
}

/**
 * The live role's triggers: the API always (rules can be edited from any live process), the
 * evaluating engine when TRIGGERS_ENABLED is on (the default). Call before the server listens.
 */
export async function startTriggers(deps: TriggersDeps): Promise<RunningTriggers> {
  const { config } = deps;
  const ci = { maxRelWidth: config.live.ciMaxRelWidth, maxAbsWidth: config.live.ciMaxAbsWidth };
  const log = deps.log.child({ component: 'triggers' });
  const store = new TriggerStore(deps.store, { secretKey: config.triggers.secretKey, log });
  // One policy for saving rules and for delivering: the same resolver answers both.
  const egress = new EgressPolicy(config.triggers.webhook.egress, deps.resolveHost);
  const { allowPrivate, allowHosts } = config.triggers.webhook.egress;
  if (allowPrivate) {
    log.warn(
      { allowHosts: allowHosts.length > 0 ? allowHosts : 'any' },
      'TRIGGERS_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach loopback and private addresses (development and tests only)',
    );
  }
  // Snoozes are read by the engine from hot state (any process's writes at once); the store's survive a restart.
  const snoozes = new Snoozes(deps.hot, deps.keys.prefix, store);
  let engine: TriggerEngine | undefined;
  let producer: BusProducer | undefined;
  if (config.triggers.enabled) {
    producer = await deps.bus.producer();
    engine = new TriggerEngine({
      store,
      hot: deps.hot,
      fanout: deps.fanout,
      bus: deps.bus,
      producer,
      keys: deps.keys,
      lateMs: config.events.liveLateMs,
      ci,
      settings: config.triggers,
      refitMs: config.live.decayRefitMs,
      processId: randomUUID(),
      log,
      egress,
      snoozes,
      costs: new StoreCostReach(deps.store, config.triggers.costRefreshMs),
      video: new VideoPlays(new VideoSource(deps.store), config.triggers.costRefreshMs),
      ...(deps.registry ? { registry: deps.registry } : {}),
    });
    // Before the first evaluation: a snooze made before this process started is honoured from the start.
    await snoozes.load();
  }
  await registerTriggerRoutes(deps.app, {
    store,
    engine,
    reader: new LiveReader(deps.hot, deps.keys, config.events.liveLateMs, ci, config.live.fatigueFraction),
    egress,
    snoozes,
  });
  await engine?.start();
  return {
    engine,
    async stop() {
      await engine?.stop();
      await producer?.close();
    },
  };
}

import type { FastifyInstance } from 'fastify';
import { sinkInsertSettings, viewerHashKey, type AfterglowConfig, type Bus, type BusProducer, type HotState, type Logger, type Registry, type RoleHandle, type Store } from '@afterglow/core';
import { HistoryImport } from './backfill.js';
import { startEdge, type RunningEdge } from './edge/server.js';
import { EventIntake } from './intake.js';
import { registerIngestRoutes } from './routes.js';
import { SpendImport } from './spend.js';

export interface IngestRoleDeps {
  app: FastifyInstance;
  config: AfterglowConfig;
  bus: Bus;
  store: Store;
  /** The edge endpoint's per-client sequence numbers; needed when EDGE_ENABLED. */
  hot?: HotState;
  log: Logger;
  registry?: Registry;
}

export interface RunningIngest extends RoleHandle {
  readonly intake: EventIntake;
  readonly edge: RunningEdge | undefined;
}

/**
 * The ingest role: event intake over HTTP and /v1/stream onto the bus, the history and spend
 * imports straight into the store, campaign reads, and (EDGE_ENABLED) the edge endpoint. Call
 * before the server listens; stop after it closed (the producer flushes what intake accepted).
 */
export async function startIngest(deps: IngestRoleDeps): Promise<RunningIngest> {
  const { app, config, store, log, registry } = deps;
  const producer: BusProducer = await deps.bus.producer();
  const viewerKey = viewerHashKey(config.ingest.viewerIdKey, config.auth.pepper);
  if (!viewerKey) log.warn("neither VIEWER_ID_KEY nor AUTH_KEY_PEPPER is set: events' viewer_id is dropped at ingest (no reach or frequency)");
  const intake = new EventIntake({
    producer,
    limits: config.events,
    maxInflightBytes: config.ingest.maxInflightBytes,
    produceTimeoutMs: config.ingest.produceTimeoutMs,
    registry,
    viewerKey,
  });
  await registerIngestRoutes(app, {
    intake,
    store,
    log,
    maxBodyBytes: config.ingest.maxBodyBytes,
    maxEventsPerRequest: config.ingest.maxEventsPerRequest,
    maxBadLines: config.ingest.maxBadLines,
    maxEventBytes: config.ingest.maxEventBytes,
    wsMaxInflightMessages: config.ingest.wsMaxInflightMessages,
    wsMaxTotalInflightBytes: config.ingest.wsMaxTotalInflightBytes,
    wsMaxConnectionsPerTenant: config.ingest.wsMaxConnectionsPerTenant,
    produceTimeoutMs: config.ingest.produceTimeoutMs,
    registry,
    history: new HistoryImport({
      store,
      limits: config.events,
      maxAgeMs: config.ingest.importMaxAgeMs,
      insertSettings: sinkInsertSettings(config.store),
      registry,
      viewerKey,
    }),
    spend: new SpendImport({ store, maxAgeMs: config.ingest.importMaxAgeMs, maxRowsPerRequest: config.ingest.spendMaxRowsPerRequest }),
  });
  let edge: RunningEdge | undefined;
  if (config.edge.enabled) {
    if (!deps.hot) throw new Error('startIngest: the edge endpoint needs a hot state (EDGE_ENABLED)');
    edge = await startEdge({ app, config, bus: deps.bus, hot: deps.hot, intake, log, registry });
  }
  return {
    intake,
    edge,
    ready: {},
    async stop() {
      await edge?.stop();
      await producer.close();
    },
  };
}

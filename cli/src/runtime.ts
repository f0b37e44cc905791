import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import {
  Gauge,
  TOPICS,
  createBus,
  createFanOut,
  createHotState,
  createLogger,
  createMetricsRegistry,
  createStore,
  createBlobStore,
  applySchema,
  probeStore,
  type AfterglowConfig,
  type Bus,
  type FanOut,
  type HotState,
  type Logger,
  type Registry,
  type RoleHandle,
  type Store,
  type ApiKeyStore,
  type TopicBacklog,
} from '@afterglow/core';
import { startIngest, type RunningIngest } from '@afterglow/ingest';
import { startSink, type EventSink, type RunningSink } from '@afterglow/sink';
import { startLive, type LiveAggregator, type LiveGateway, type ResolveHost, type RunningLive } from '@afterglow/live';
import { startDashboard } from '@afterglow/dashboard';
import { createHttpServer, startMetricsServer } from './http.js';
import { DEMO_TENANT } from './demo.js';
import { startDemo, type DemoHandle } from './demo-assets.js';
import { createAuth, createDemoKeys, registerKeyRoutes, registerWhoami } from './auth.js';
import { resolveSecrets, writePrivateFile } from './secrets.js';
import path from 'node:path';

export const ROLES = ['ingest', 'stream', 'live', 'inference', 'dashboard'] as const;
export type RoleName = (typeof ROLES)[number];

export interface StartOptions {
  roles: readonly RoleName[];
  /** Run the demo traffic generator against this process's ingest. */
  demo?: boolean;
  log?: Logger;
  /** Resolves webhook hosts for the egress policy (tests play DNS rebinding with it); default: the system resolver. */
  resolveHost?: ResolveHost;
}

export interface Running {
  config: AfterglowConfig;
  url: string;
  app: FastifyInstance;
  bus: Bus;
  store: Store | undefined;
  sink: EventSink | undefined;
  /** The live role's parts (absent without the role, or when LIVE_AGGREGATE / LIVE_GATEWAY turn one off). */
  live: { aggregator: LiveAggregator | undefined; gateway: LiveGateway | undefined; hot: HotState; fanout: FanOut } | undefined;
  registry: Registry;
  log: Logger;
  /** API keys (absent with AUTH_MODE=off). */
  keys: ApiKeyStore | undefined;
  /** The demo tenant's keys, when the demo runs with keys on. */
  demoKeys: { ingest: string; dashboard: string } | undefined;
  /** The demo (traffic generator, seeded assets and rules) when it runs. */
  demo: DemoHandle | undefined;
  /** Where those keys were written (0600): they never go to the log stream. */
  demoKeysFile: string | undefined;
  /** Prometheus' endpoint on the admin listener (METRICS_PORT); undefined when there is none. */
  metricsUrl: string | undefined;
  /** Graceful: stop intake, drain the sink's batch, close adapters. */
  stop(): Promise<void>;
}

/**
 * The composition root: builds the adapters the config names, wires the requested roles onto them
 * and one HTTP server, and returns a handle to stop it all. `afterglow <role>` and the tests use it.
 */
export async function start(given: AfterglowConfig, options: StartOptions): Promise<Running> {
  const roles = new Set(options.roles);
  const log = options.log ?? createLogger(given.logLevel, { service: 'afterglow', roles: [...roles].join(',') }, given.logFormat);
  // The pepper and the webhook key: configured, or (demo only) generated into the data directory.
  const secrets = resolveSecrets(given, { demo: Boolean(options.demo), live: roles.has('live'), log });
  const config: AfterglowConfig = { ...given, auth: { ...given.auth, pepper: secrets.pepper }, triggers: { ...given.triggers, secretKey: secrets.secretKey } };
  const registry = createMetricsRegistry({ roles: [...roles].join(',') });
  const closers: (() => Promise<unknown>)[] = [];
  const readiness: Record<string, () => Promise<unknown>> = {};

  const bus = await createBus(config.bus, log.child({ component: 'bus' }));
  closers.push(() => bus.close());
  await bus.ensureTopics(Object.values(TOPICS).map((topic) => ({ topic, partitions: config.bus.partitions })));
  readiness.bus = () => bus.endOffsets(TOPICS.events);
  if (bus.backlog) watchBacklog(bus.backlog.bind(bus), registry);

  let store: Store | undefined;
  if (roles.has('ingest') || roles.has('stream') || roles.has('live') || roles.has('inference') || config.auth.mode === 'keys') {
    store = await createStore(config.store);
    closers.push(() => store!.close());
    // The single-node migrations, or their generated cluster variant when CLICKHOUSE_CLUSTER is set.
    const applied = await applySchema(store, config.store.kind === 'clickhouse' ? config.store.cluster : undefined);
    if (applied.length) log.info({ applied }, 'schema migrations applied');
    readiness.store = () => probeStore(store!);
  }

  // One hot state for the process's roles that keep some (rate-limit buckets, the edge's client seqs, the live windows).
  let hot: HotState | undefined;
  const hotState = async (): Promise<HotState> => {
    if (!hot) {
      const created = await createHotState(config.hot);
      hot = created;
      closers.push(() => created.close());
    }
    return hot;
  };

  const auth = await createAuth(config, store, log, hotState);
  closers.push(() => auth.close());
  const app = await createHttpServer({ log, registry, wsMaxPayloadBytes: config.ingest.wsMaxMessageBytes, readiness, auth: auth.options, limits: config.http });
  registerWhoami(app);
  if (auth.keys) registerKeyRoutes(app, auth.keys);

  let ingestRole: RunningIngest | undefined;
  if (roles.has('ingest')) {
    ingestRole = await startIngest({
      app,
      config,
      bus,
      store: store!,
      ...(config.edge.enabled && { hot: await hotState() }),
      log: log.child({ role: 'ingest' }),
      registry,
    });
    Object.assign(readiness, ingestRole.ready);
  }
  if (roles.has('dashboard')) await startDashboard({ app });
  let inferenceRole: RoleHandle | undefined;
  if (roles.has('inference')) {
    // Loaded only where it runs: it brings the ONNX runtime and the image models.
    const { startInference } = await import('@afterglow/inference');
    const blobs = await createBlobStore(config.blob);
    closers.push(() => blobs.close());
    inferenceRole = await startInference({ app, config, bus, store: store!, blobs, log: log.child({ role: 'inference' }) });
    Object.assign(readiness, inferenceRole.ready);
  }

  let sinkRole: RunningSink | undefined;
  if (roles.has('stream')) {
    sinkRole = await startSink({ config, bus, store: store!, log: log.child({ role: 'stream' }), registry });
    Object.assign(readiness, sinkRole.ready);
  }

  let liveRole: RunningLive | undefined;
  let live: Running['live'];
  if (roles.has('live')) {
    const hot = await hotState();
    const fanout = await createFanOut(config.fanout);
    closers.push(() => fanout.close());
    liveRole = await startLive({
      app,
      config,
      bus,
      store: store!,
      hot,
      fanout,
      log: log.child({ role: 'live' }),
      registry,
      // Applied offsets are only meaningful for the log they came from: a Kafka namespace, or
      // this process's in-process log (which starts again at 0 every time).
      offsetScope: config.bus.kind === 'kafka' ? `kafka-${config.bus.namespace ?? 'default'}` : `process-${randomUUID()}`,
      ...(options.resolveHost && { resolveHost: options.resolveHost }),
    });
    Object.assign(readiness, liveRole.ready);
    live = { aggregator: liveRole.aggregator, gateway: liveRole.gateway, hot, fanout };
  }

  await app.listen({ host: config.http.host, port: config.http.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const url = `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`;
  let metricsUrl: string | undefined;
  if (config.metrics) {
    const metrics = await startMetricsServer(registry, config.metrics.host, config.metrics.port, log);
    closers.push(() => metrics.close());
    metricsUrl = `${metrics.url}/metrics`;
  }

  let demo: DemoHandle | undefined;
  let demoKeys: Running['demoKeys'];
  let demoKeysFile: string | undefined;
  if (options.demo && roles.has('ingest')) {
    demoKeys = auth.keys ? await createDemoKeys(auth.keys, DEMO_TENANT) : undefined;
    if (demoKeys) {
      // A file only this user can read, not the log stream (which is shipped and kept).
      demoKeysFile = path.join(config.dataDir, 'demo-keys.json');
      writePrivateFile(
        demoKeysFile,
        `${JSON.stringify(
          {
            tenant: DEMO_TENANT,
            dashboard_url: `${url}/#key=${demoKeys.dashboard}`,
            read_admin_key: demoKeys.dashboard,
            ingest_key: demoKeys.ingest,
            note: 'new keys every start (earlier ones are revoked); more keys: afterglow keys create --url URL --key <read_admin_key> --tenant demo --scopes ingest',
          },
          null,
          2,
        )}\n`,
      );
    }
    // Traffic, plus (in the background) demo masters/ads (inference role) and trigger rules (live role).
    demo = startDemo({
      baseUrl: url,
      log: log.child({ component: 'demo' }),
      dataDir: config.dataDir,
      ...(demoKeys && { ingestHeaders: { authorization: `Bearer ${demoKeys.ingest}` }, adminHeaders: { authorization: `Bearer ${demoKeys.dashboard}` } }),
      assets: roles.has('inference'),
      rules: roles.has('live'),
      ...(roles.has('inference') && config.predict.workersEnabled && { training: { store: store!, predict: config.predict } }),
    });
  }

  let stopped = false;
  const handle: Running = {
    config,
    url,
    app,
    bus,
    store,
    sink: sinkRole?.sink,
    live,
    registry,
    log,
    keys: auth.keys,
    demoKeys,
    demo,
    demoKeysFile,
    metricsUrl,
    async stop() {
      if (stopped) return;
      stopped = true;
      demo?.stop();
      await app.close();
      await ingestRole?.stop();
      await inferenceRole?.stop();
      await sinkRole?.stop();
      await liveRole?.stop();
      for (const close of closers.reverse()) await close().catch((err) => log.warn({ err }, 'close failed'));
    },
  };
  return handle;
}

/** The in-process log's retained bytes per topic and the group furthest behind, as gauges. */
function watchBacklog(backlog: () => TopicBacklog[], registry: Registry): void {
  new Gauge({
    name: 'afterglow_bus_retained_bytes',
    help: 'In-process log: bytes retained per topic until every group commits past them (intake is refused at BUS_MEMORY_MAX_BACKLOG_BYTES)',
    labelNames: ['topic'],
    registers: [registry],
    collect() {
      for (const b of backlog()) this.set({ topic: b.topic }, b.retainedBytes);
    },
  });
  new Gauge({
    name: 'afterglow_bus_laggiest_group_records',
    help: 'In-process log: uncommitted records of the group furthest behind, per topic',
    labelNames: ['topic', 'group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of backlog()) if (b.laggiest) this.set({ topic: b.topic, group: b.laggiest.group }, b.laggiest.records);
    },
  });
}

import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors.js';

/**
 * The one typed configuration of Afterglow, read once from the environment by a composition root
 * (`loadConfig(process.env)`) and passed down. Every setting defaults to the embedded mode: no
 * KAFKA_BROKERS / CLICKHOUSE_URL / REDIS_URL / NATS_URL means in-process adapters.
 */

const csv = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );
const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off', ''])
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);

/** Default TRIGGERS_WEBHOOK_DENY_PORTS: remote shells, mail, RPC/SMB, Docker, etcd, Kubernetes, databases, ClickHouse, caches, brokers. */
export const DEFAULT_DENY_PORTS: readonly number[] = [22, 23, 25, 111, 135, 139, 445, 2375, 2376, 2379, 2380, 3306, 4222, 5432, 6379, 6443, 8123, 9000, 9009, 9092, 9093, 11211, 27017];

/** 32 bytes from 64 hex digits or base64/base64url; undefined otherwise. */
export function parseKey32(s: string): Buffer | undefined {
  const t = s.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  return undefined;
}

function validHostEntry(entry: string): boolean {
  try {
    const u = new URL(`http://${entry}`);
    return u.pathname === '/' && !u.search && !u.hash && !u.username && u.hostname !== '';
  } catch {
    return false;
  }
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** One setting: the environment variable it is read from and its schema (parsing, default, bounds). */
interface Setting<S extends z.ZodType = z.ZodType> {
  readonly env: string;
  readonly schema: S;
}
type SettingTree = { readonly [key: string]: Setting | SettingTree };
/** The parsed shape of a tree of settings: each setting's zod output, nested as declared. */
type Parsed<T> = T extends Setting<infer S> ? z.output<S> : { -readonly [K in keyof T]: Parsed<T[K]> };

const env = <S extends z.ZodType>(name: string, schema: S): Setting<S> => ({ env: name, schema });
const isSetting = (x: Setting | SettingTree): x is Setting => typeof (x as Setting).env === 'string' && (x as Setting).schema instanceof z.ZodType;

/**
 * Every setting, written once: where it lives in the config, the variable it is read from, its schema.
 * The section types below are derived from this tree; loadConfig adds only what depends on several
 * settings (the adapter each port gets, paths under AFTERGLOW_DATA_DIR).
 */
const SETTINGS = {
  http: {
    host: env('HOST', z.string().default('127.0.0.1')),
    port: env('PORT', int(8080, 0, 65535)),
    /** Whole request (headers and body) must arrive within this; 0 = no limit. */
    requestTimeoutMs: env('HTTP_REQUEST_TIMEOUT_MS', int(30_000, 0)),
    /** 0 = no limit. */
    headersTimeoutMs: env('HTTP_HEADERS_TIMEOUT_MS', int(10_000, 0)),
    /** An idle kept-alive connection is closed after this. */
    keepAliveTimeoutMs: env('HTTP_KEEPALIVE_TIMEOUT_MS', int(5_000, 1)),
    /** A socket with no traffic either way is closed after this (above the longest handler wait); WebSockets are exempt. 0 = never. */
    idleTimeoutMs: env('HTTP_IDLE_TIMEOUT_MS', int(120_000, 0)),
    /** Open connections (HTTP and WebSocket) at most; more are refused at accept. 0 = no cap. */
    maxConnections: env('HTTP_MAX_CONNECTIONS', int(10_000, 0)),
  },
  metrics: {
    /** Prometheus /metrics on its own listener (not on PORT); unset = no metrics endpoint. 0 = any free port. */
    port: env('METRICS_PORT', z.coerce.number().int().min(0).max(65535).optional()),
    /** Where that listener binds: loopback unless a scraper on another host needs it (then firewall it). */
    host: env('METRICS_HOST', z.string().default('127.0.0.1')),
  },
  dataDir: env('AFTERGLOW_DATA_DIR', z.string().default('.afterglow-data').transform((dir) => path.resolve(dir))),
  logLevel: env('LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')),
  /** auto: readable lines when stdout is a terminal, JSON otherwise; json / pretty force one. */
  logFormat: env('LOG_FORMAT', z.enum(['auto', 'json', 'pretty']).default('auto')),
  /** Run the built-in demo generator (defaults to on only for the embedded all-in-one mode). */
  demo: env('AFTERGLOW_DEMO', bool.optional()),
  /** Command-line clients (`afterglow keys`, `afterglow assets import`) talking to a running server. */
  client: {
    /** Base URL of that server; undefined = the command's own default. */
    url: env('AFTERGLOW_URL', z.string().optional()),
    apiKey: env('AFTERGLOW_API_KEY', z.string().optional()),
  },

  kafka: {
    brokers: env('KAFKA_BROKERS', csv.optional()),
    clientId: env('KAFKA_CLIENT_ID', z.string().default('afterglow')),
    /** Prefix for every topic and consumer group: several deployments (or test runs) on one cluster. */
    namespace: env('KAFKA_NAMESPACE', z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'must be 1-64 characters of [A-Za-z0-9_-]').optional()),
    partitions: env('KAFKA_TOPIC_PARTITIONS', int(6, 1, 1024)),
    replicationFactor: env('KAFKA_REPLICATION_FACTOR', int(1, 1, 7)),
    /** Managed Kafka: SASL over the broker connections (set with its username and password). */
    saslMechanism: env('KAFKA_SASL_MECHANISM', z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']).optional()),
    saslUsername: env('KAFKA_SASL_USERNAME', z.string().optional()),
    saslPassword: env('KAFKA_SASL_PASSWORD', z.string().optional()),
    /** TLS to the brokers; KAFKA_SSL_CA_FILE (PEM) replaces the system CAs, for a private CA. */
    ssl: env('KAFKA_SSL', bool.optional()),
    sslCaFile: env('KAFKA_SSL_CA_FILE', z.string().optional()),
  },
  memoryBus: { maxBacklogBytes: env('BUS_MEMORY_MAX_BACKLOG_BYTES', int(256 * 1024 * 1024, 1024)) },

  clickhouse: {
    url: env('CLICKHOUSE_URL', z.string().url().optional()),
    user: env('CLICKHOUSE_USER', z.string().default('default')),
    password: env('CLICKHOUSE_PASSWORD', z.string().default('')),
    database: env('CLICKHOUSE_DATABASE', z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier').default('afterglow')),
    /**
     * ClickHouse cluster name (remote_servers): the sink inserts with the cluster's exactly-once settings
     * (CLUSTER_SINK_INSERT_SETTINGS) and the roles apply the generated cluster DDL (core/src/store/cluster.ts).
     */
    cluster: env('CLICKHOUSE_CLUSTER', z.string().regex(/^[A-Za-z0-9_{}.-]+$/, 'must be a cluster name from remote_servers').optional()),
  },
  redisUrl: env('REDIS_URL', z.string().optional()),
  natsServers: env('NATS_URL', csv.optional()),

  ingest: {
    maxBodyBytes: env('INGEST_MAX_BODY_BYTES', int(16 * 1024 * 1024, 1024)),
    maxEventsPerRequest: env('INGEST_MAX_EVENTS_PER_REQUEST', int(100_000, 1)),
    maxInflightBytes: env('INGEST_MAX_INFLIGHT_BYTES', int(64 * 1024 * 1024, 1024)),
    wsMaxMessageBytes: env('INGEST_WS_MAX_MESSAGE_BYTES', int(4 * 1024 * 1024, 1024)),
    wsMaxInflightMessages: env('INGEST_WS_MAX_INFLIGHT_MESSAGES', int(64, 1)),
    produceTimeoutMs: env('INGEST_PRODUCE_TIMEOUT_MS', int(10_000, 100)),
    /** Undecodable NDJSON lines tolerated per request; past it the request is refused whole (400) without parsing the rest. */
    maxBadLines: env('INGEST_MAX_BAD_LINES', int(1_000, 0)),
    /** A JSON element or NDJSON line longer than this is refused unparsed: no valid event is near it. */
    maxEventBytes: env('INGEST_MAX_EVENT_BYTES', int(64 * 1024, 1024)),
    /** WebSocket ingest messages received and not yet acknowledged, across every socket; past it every stream pauses. */
    wsMaxTotalInflightBytes: env('INGEST_WS_MAX_TOTAL_INFLIGHT_BYTES', int(256 * 1024 * 1024, 1024)),
    /** Concurrent /v1/stream sockets of one tenant in this process (all its keys together); 0 = no cap. */
    wsMaxConnectionsPerTenant: env('INGEST_WS_MAX_CONNECTIONS_PER_TENANT', int(500, 0)),
    /**
     * History import (POST /v1/import/events) takes events older than EVENT_LIVE_LATE_MS and at most
     * this old (default three years); newer ones belong to live ingest, whose windows still count them.
     */
    importMaxAgeMs: env('IMPORT_MAX_AGE_MS', int(3 * 365 * 24 * HOUR, 1)),
    /** Spend rows in one POST /v1/import/spend request (the CLI sends at most 50000); past it 413 too_many_rows, nothing validated. */
    spendMaxRowsPerRequest: env('SPEND_MAX_ROWS_PER_REQUEST', int(50_000, 1)),
    /**
     * Key (base64, at least 32 bytes) of the hash that replaces an event's viewer_id at ingest, for
     * reach and frequency. Unset: derived from AUTH_KEY_PEPPER; with neither, viewer ids are dropped.
     */
    viewerIdKey: env(
      'VIEWER_ID_KEY',
      z
        .string()
        .refine((v) => Buffer.from(v, 'base64').length >= 32, 'VIEWER_ID_KEY must be at least 32 bytes, base64')
        .optional(),
    ),
  },

  /** Limits the event validator enforces. */
  events: {
    maxAgeMs: env('EVENT_MAX_AGE_MS', int(7 * 24 * HOUR, 1)),
    maxFutureMs: env('EVENT_MAX_FUTURE_MS', int(5 * MINUTE, 0)),
    liveLateMs: env('EVENT_LIVE_LATE_MS', int(10 * MINUTE, 0)),
    maxAttrsBytes: env('EVENT_MAX_ATTRS_BYTES', int(2048, 0)),
    /**
     * How long after an event a re-sent copy (same tenant_id + event_id) is still recognised and
     * left out of the live views, edge posteriors and trigger inputs (ClickHouse: always).
     */
    dedupWindowMs: env('EVENT_DEDUP_WINDOW_MS', int(5 * MINUTE, 1000)),
  },

  sink: {
    groupId: env('SINK_GROUP_ID', z.string().default('afterglow-sink')),
    /** Flush when this many rows are buffered (per lane)... */
    batchMaxRows: env('SINK_BATCH_MAX_ROWS', int(50_000, 1)),
    /** ...or when the oldest buffered row has waited this long. */
    batchMaxMs: env('SINK_BATCH_MAX_MS', int(1000, 1)),
    /**
     * Independent flush pipelines, partition % lanes. A retry of an event arrives on the same
     * partition (keyed by asset_id); an id re-used for another asset may not, and the lanes claim
     * what they insert. Running them concurrently lets one lane's insert overlap another's dedup query.
     */
    lanes: env('SINK_FLUSH_LANES', int(2, 1, 64)),
  },

  /** Image models (embeddings) on onnxruntime-node; see inference/src/models. */
  inference: {
    /** Built .onnx models (converted from npm packages by `afterglow models`); default `${AFTERGLOW_DATA_DIR}/models`. */
    modelsDir: env('AFTERGLOW_MODELS_DIR', z.string().optional()),
    /** 'auto' tries CUDA and falls back to CPU; 'cuda' fails when the CUDA provider is not installed. */
    executionProvider: env('INFERENCE_EXECUTION_PROVIDER', z.enum(['auto', 'cpu', 'cuda']).default('auto')),
    batchSize: env('INFERENCE_BATCH_SIZE', int(16, 1, 1024)),
    /**
     * onnxruntime worker threads; 0 = one per core, at most 4. Many small images (the tie engine's views)
     * run faster as single-threaded sessions side by side than as one multi-threaded session, whose
     * spinning threads also take CPU from keypoints and decoding (450 x 300 tie set on 2 cores: 68 -> 51 s).
     * With CUDA one worker is enough.
     */
    workers: env('INFERENCE_WORKERS', int(0, 0, 64).transform((n) => (n > 0 ? n : Math.min(4, availableCores())))),
    /** onnxruntime intra-op threads per worker; 0 = available cores / workers. */
    intraOpThreads: env('INFERENCE_INTRA_OP_THREADS', int(0, 0, 256)),
    embedCacheBytes: env('INFERENCE_EMBED_CACHE_BYTES', int(64 * 1024 * 1024, 0)),
  },

  /** Performance prediction (inference/src/predict, attribution, workers): features, target, training, rescoring. */
  predict: {
    features: env('PREDICT_FEATURES', z.enum(['full', 'light']).default('full')),
    /** Trained model files; default `${AFTERGLOW_DATA_DIR}/prediction-models`. */
    modelsDir: env('PREDICT_MODELS_DIR', z.string().optional()),
    horizonMs: env('PREDICT_HORIZON_HOURS', z.coerce.number().positive().default(24).transform((h) => h * HOUR)),
    baselineWindowMs: env('PREDICT_BASELINE_DAYS', z.coerce.number().positive().default(30).transform((d) => d * 24 * HOUR)),
    minImpressions: env('PREDICT_MIN_IMPRESSIONS', int(100, 1)),
    members: env('PREDICT_MEMBERS', int(8, 1, 64)),
    workers: env('PREDICT_WORKERS', int(1, 1, 64)),
    batchRows: env('PREDICT_BATCH_ROWS', int(512, 1, 1_000_000)),
    groupId: env('PREDICT_GROUP_ID', z.string().default('afterglow-inference')),
    /** Rescore an asset when its live engagement rate moved this much (relative) since its last score. */
    rescoreShift: env('PREDICT_RESCORE_SHIFT', z.coerce.number().positive().default(0.2)),
    rescoreCheckMs: env('PREDICT_RESCORE_CHECK_MS', int(2_000, 10)),
    /** Run the scoring workers (consumers) in the inference role (default on). */
    workersEnabled: env('PREDICT_WORKERS_ENABLED', bool.default(true)),
  },

  /** Refuse images over these before decoding them (decompression bombs, oversized uploads): embeddings, asset registry. */
  images: {
    maxBytes: env('IMAGE_MAX_BYTES', int(32 * 1024 * 1024, 1024)),
    maxPixels: env('IMAGE_MAX_PIXELS', int(50_000_000, 1)),
    maxSide: env('IMAGE_MAX_SIDE', int(16_384, 1)),
    /** Shorter side below this is refused (`too_small`): 1-px images crash keypoint extraction and say nothing. */
    minSide: env('IMAGE_MIN_SIDE', int(32, 1)),
    /** Uploads decoded at once (POST /v1/assets); 0 = available cores. More wait in a queue of IMAGE_DECODE_QUEUE, past which 503. */
    decodeConcurrency: env('IMAGE_DECODE_CONCURRENCY', int(0, 0, 256).transform((n) => (n > 0 ? n : availableCores()))),
    decodeQueue: env('IMAGE_DECODE_QUEUE', int(64, 0, 100_000)),
  },

  /**
   * Video uploads (inference/src/video): refused from the container's own tables before any decoder sees
   * them (bytes, container, codec, duration, size, frame rate, frame count), then decoded by ffmpeg in a
   * child process under a wall-clock and address-space limit.
   */
  videos: {
    maxBytes: env('VIDEO_MAX_BYTES', int(128 * 1024 * 1024, 1024)),
    maxDurationS: env('VIDEO_MAX_DURATION_S', z.coerce.number().positive().max(86_400).default(180)),
    maxSide: env('VIDEO_MAX_SIDE', int(4096, 16)),
    maxPixels: env('VIDEO_MAX_PIXELS', int(4096 * 2304, 256)),
    minSide: env('VIDEO_MIN_SIDE', int(32, 1)),
    maxFps: env('VIDEO_MAX_FPS', z.coerce.number().positive().max(1000).default(120)),
    /** Frames in the video track (from its sample table / blocks): a frame-count bomb is a short file that claims millions. Default: 120 fps for the longest duration. */
    maxFrames: env('VIDEO_MAX_FRAMES', int(120 * 180, 1)),
    /** Codecs accepted (the decoder's names): h264, hevc, vp8, vp9, av1. */
    codecs: env('VIDEO_CODECS', csv.pipe(z.array(z.enum(['h264', 'hevc', 'vp8', 'vp9', 'av1'])).min(1)).default(['h264', 'hevc', 'vp8', 'vp9', 'av1'])),
    /** The ffmpeg executable; default: the one shipped by the @ffmpeg-installer/linux-x64 package. */
    ffmpegPath: env('VIDEO_FFMPEG_PATH', z.string().optional()),
    /** Wall-clock limit of one decoder process (killed past it: `decode_timeout`). */
    decodeTimeoutMs: env('VIDEO_DECODE_TIMEOUT_MS', int(120_000, 100)),
    /** Address-space limit of one decoder process (ulimit -v; past it the decoder dies: `decode_failed`). */
    decodeMemoryMb: env('VIDEO_DECODE_MEMORY_MB', int(2048, 64)),
    /** Decoder threads per process (0 = ffmpeg's choice). */
    decodeThreads: env('VIDEO_DECODE_THREADS', int(1, 0, 64)),
    /** Video decodes at once; 0 = half the cores (at least 1). More wait in a queue of VIDEO_DECODE_QUEUE, past which 503. */
    decodeConcurrency: env('VIDEO_DECODE_CONCURRENCY', int(0, 0, 64).transform((n) => (n > 0 ? n : Math.max(1, Math.floor(availableCores() / 2))))),
    decodeQueue: env('VIDEO_DECODE_QUEUE', int(16, 0, 10_000)),
  },

  /** Tying ads to masters (inference/src/tie): Knot-Tie's top-K, top-N and propagation rule, and the engine's knobs. */
  tie: {
    model: env('TIE_MODEL', z.enum(['mobilenet_v2', 'inception_v3']).default('mobilenet_v2')),
    topK: env('TIE_TOP_K', int(500, 1, 100_000)),
    candidates: env('TIE_CANDIDATES', int(20, 1, 1000)),
    /** Candidates per ad verified with keypoints (top this many by cosine and by euclidean distance). */
    verifyTop: env('TIE_VERIFY_TOP', int(5, 0, 1000)),
    /** ORB worker threads; 0 = available cores. */
    verifyWorkers: env('TIE_VERIFY_WORKERS', int(0, 0, 256)),
    /** Views embedded per master: whole | centre (whole + central 70 %) | corners (+ four 60 % corners). */
    masterViews: env('TIE_MASTER_VIEWS', z.enum(['whole', 'centre', 'corners']).default('centre')),
    /** Also embed the whole master mirrored left-right (off: with colour histograms it did not change accuracy; on for tenants whose ads flip a lot). */
    masterMirror: env('TIE_MASTER_MIRROR', bool.default(false)),
    /** Strip views of every master (four wide, one tall) that thin ads (leaderboards, skyscrapers) are also compared with (default on). */
    thinStrips: env('TIE_THIN_STRIPS', bool.default(true)),
    /** Candidates per ad checked densely (the ad's pixels located in each master by normalized cross-correlation); 0 = off. */
    denseTop: env('TIE_DENSE_TOP', int(8, 0, 100)),
    /** Weight of the views' colour histograms beside the CNN descriptor: (cosine + w x colour) / (1 + w); 0 = off. */
    colourWeight: env('TIE_COLOUR_WEIGHT', z.coerce.number().min(0).max(10).default(0.35)),
    /** Model output that describes images for tying: auto (undefined: the manifest's descriptor when the model has one) | descriptor | embedding. */
    descriptor: env(
      'TIE_DESCRIPTOR',
      z
        .enum(['auto', 'descriptor', 'embedding'])
        .default('auto')
        .transform((d) => (d === 'auto' ? undefined : d)),
    ),
    /** PCA-whitening of descriptors (unsupervised, fitted on masters + ads' views) to this many dims; 0 = off. */
    whitenDims: env('TIE_WHITEN_DIMS', int(384, 0, 4096)),
    /** Eigenvalue shrinkage of that whitening, as a fraction of the mean kept eigenvalue (smaller whitens harder). */
    whitenShrinkage: env('TIE_WHITEN_SHRINKAGE', z.coerce.number().min(0).max(10).default(0.03)),
    /** Auto-tie without a human at this calibrated score; undefined: the calibrated threshold (inference/tie.calibration.json). */
    autoTieThreshold: env('TIE_AUTO_TIE_THRESHOLD', z.coerce.number().min(0).max(1).optional()),
    /** A human tie propagates to every ad whose top-N holds the master with score > min. */
    propagateTopN: env('TIE_PROPAGATE_TOP_N', int(5, 1, 1000)),
    propagateMinScore: env('TIE_PROPAGATE_MIN_SCORE', z.coerce.number().min(0).max(1).default(0.6)),
    /** Content-addressed cache of embeddings and keypoints; default `${AFTERGLOW_DATA_DIR}/tie-cache`; `off` (undefined) disables it. */
    cacheDir: env('TIE_CACHE_DIR', z.string().optional()),
  },

  /** Blob store of asset originals and thumbnails (core/src/blob): a local directory (default `${AFTERGLOW_DATA_DIR}/blobs`), or S3 when BLOB_S3_BUCKET is set. */
  blobDir: env('BLOB_DIR', z.string().optional()),
  s3: {
    bucket: env('BLOB_S3_BUCKET', z.string().optional()),
    /** An S3-compatible endpoint (MinIO, Ceph, R2, ...); undefined = AWS S3 of `region`. */
    endpoint: env('BLOB_S3_ENDPOINT', z.string().url().optional()),
    region: env('BLOB_S3_REGION', z.string().default('us-east-1')),
    /** undefined = the SDK's default credential chain (environment, profile, instance role). */
    accessKeyId: env('BLOB_S3_ACCESS_KEY_ID', z.string().optional()),
    secretAccessKey: env('BLOB_S3_SECRET_ACCESS_KEY', z.string().optional()),
    /** Prepended to every object key, e.g. `afterglow/`. */
    prefix: env('BLOB_S3_PREFIX', z.string().default('')),
    /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need; default: on with an endpoint. */
    forcePathStyle: env('BLOB_S3_FORCE_PATH_STYLE', bool.optional()),
  },
  /** Asset registry (inference/src/registry). */
  assets: {
    /** How long POST /v1/assets waits for an ad's candidates before answering `pending`. */
    tieWaitMs: env('ASSETS_TIE_WAIT_MS', int(60_000, 0)),
    /** After masters are added, a tenant's ads are re-ranked once no master arrived for this long. */
    rerankDebounceMs: env('ASSETS_RERANK_DEBOUNCE_MS', int(2_000, 0)),
  },

  /** Live metrics (stream/live/src/live): the aggregator (consumer group on engagement.events), the /v1/live gateway, REST. */
  live: {
    /** Run the aggregator / the gateway in this process (both on by default for the `live` role). */
    aggregate: env('LIVE_AGGREGATE', bool.default(true)),
    gateway: env('LIVE_GATEWAY', bool.default(true)),
    groupId: env('LIVE_GROUP_ID', z.string().default('afterglow-live')),
    /** Prefix of every hot-state key the live role writes. */
    keyPrefix: env('LIVE_KEY_PREFIX', z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_:.-]').default('afterglow:live')),
    /** Hot-state persistence (with the applied offsets) and Kafka commits, at most this often. */
    flushMs: env('LIVE_FLUSH_MS', int(500, 10, 60_000)),
    /** Changed entities are published to the fan-out at most this often. */
    publishMs: env('LIVE_PUBLISH_MS', int(25, 1, 10_000)),
    /** Entities (assets, campaign/master partials) held in aggregator memory; clean ones beyond it are evicted. */
    maxEntities: env('LIVE_MAX_ENTITIES', int(20_000, 100)),
    /** Of those, one tenant holds at most this many; past it (or past maxEntities) the largest tenant's go first. */
    maxEntitiesPerTenant: env('LIVE_MAX_ENTITIES_PER_TENANT', int(10_000, 10)),
    /**
     * Distinct assets a tenant may have live (in hot state, active within the last day); events of
     * further assets are stored but not counted live. Split evenly over the events topic's partitions.
     */
    maxAssetsPerTenant: env('LIVE_MAX_ASSETS_PER_TENANT', int(100_000, 1)),
    /** Distinct campaigns a tenant may have live on each partition (a campaign has a share per partition). */
    maxCampaignsPerTenant: env('LIVE_MAX_CAMPAIGNS_PER_TENANT', int(10_000, 1)),
    tiesSweepMs: env('LIVE_TIES_SWEEP_MS', int(60_000, 1_000)),
    ws: {
      maxUpdatesPerSec: env('LIVE_WS_MAX_UPDATES_PER_SEC', int(10, 1, 1000)),
      /** Above this many unsent bytes a client gets coalesced (latest wins) updates instead of each one. */
      coalesceBytes: env('LIVE_WS_COALESCE_BYTES', int(64 * 1024, 1024)),
      /** Above this many unsent bytes a client is disconnected. */
      maxBufferBytes: env('LIVE_WS_MAX_BUFFER_BYTES', int(4 * 1024 * 1024, 4096)),
      /** A client that stays above coalesceBytes this long is disconnected. */
      stallMs: env('LIVE_WS_STALL_MS', int(30_000, 100)),
      maxSubscriptions: env('LIVE_WS_MAX_SUBSCRIPTIONS', int(100, 1)),
      /** Views are recomputed this often even without events (windows slide). */
      refreshMs: env('LIVE_WS_REFRESH_MS', int(5_000, 100)),
      /** Assets a campaign subscription carries at most (the most recently active). */
      topicMaxAssets: env('LIVE_TOPIC_MAX_ASSETS', int(5_000, 1)),
    },
    /** A rate is "not enough data" when its 95% interval is wider than max(absolute, relative x rate). */
    ciMaxRelWidth: env('LIVE_CI_MAX_REL_WIDTH', z.coerce.number().positive().default(0.5)),
    ciMaxAbsWidth: env('LIVE_CI_MAX_ABS_WIDTH', z.coerce.number().nonnegative().default(0.01)),
    fatigueFraction: env('LIVE_FATIGUE_FRACTION', z.coerce.number().gt(0).lt(1).default(0.25)),
    decayRefitMs: env('LIVE_DECAY_REFIT_MS', int(10_000, 100)),
  },

  /** Triggers (stream/live/src/triggers), run by the `live` role: rule evaluation and variant requests; webhooks signed per rule. */
  triggers: {
    enabled: env('TRIGGERS_ENABLED', bool.default(true)),
    /** Consumer groups (assets.scores, assets.ties, assets.changes) are `${groupId}-<topic>`. */
    groupId: env('TRIGGERS_GROUP_ID', z.string().default('afterglow-triggers')),
    evalMs: env('TRIGGERS_EVAL_MS', int(2_000, 50, 3_600_000)),
    rulesRefreshMs: env('TRIGGERS_RULES_REFRESH_MS', int(5_000, 100, 3_600_000)),
    maxAssetsPerCampaign: env('TRIGGERS_MAX_ASSETS_PER_CAMPAIGN', int(500, 1, 100_000)),
    /** Spend and reach (daily figures in the store) that frequency and cost-per-result rules judge on are re-read this often per campaign. */
    costRefreshMs: env('TRIGGERS_COST_REFRESH_MS', int(60_000, 1_000, 24 * HOUR)),
    /** (rule, asset) debounce states and latest scores kept in memory at most. */
    maxTracked: env('TRIGGERS_MAX_TRACKED', int(50_000, 100)),
    /** The same, per tenant: a tenant past it loses its own least recently touched entries. */
    maxTrackedPerTenant: env('TRIGGERS_MAX_TRACKED_PER_TENANT', int(10_000, 10)),
    webhook: {
      timeoutMs: env('TRIGGERS_WEBHOOK_TIMEOUT_MS', int(5_000, 100, 120_000)),
      maxAttempts: env('TRIGGERS_WEBHOOK_MAX_ATTEMPTS', int(8, 1, 100)),
      backoffMs: env('TRIGGERS_WEBHOOK_BACKOFF_MS', int(1_000, 1, 3_600_000)),
      maxBackoffMs: env('TRIGGERS_WEBHOOK_MAX_BACKOFF_MS', int(300_000, 1, 24 * HOUR)),
      queue: env('TRIGGERS_WEBHOOK_QUEUE', int(1_000, 1, 1_000_000)),
      concurrency: env('TRIGGERS_WEBHOOK_CONCURRENCY', int(4, 1, 256)),
      /** Where webhooks may go (stream/live/src/triggers/egress.ts). */
      egress: {
        /** Only these hosts (`host` or `host:port`), when set. */
        allowHosts: env(
          'TRIGGERS_WEBHOOK_ALLOW_HOSTS',
          csv.refine((hosts) => hosts.every(validHostEntry), 'must be a comma-separated list of host or host:port (no scheme, no path)').default(() => []),
        ),
        /** Development and tests only: webhooks may reach loopback/private addresses (the listed hosts only, with an allow-list). */
        allowPrivate: env('TRIGGERS_WEBHOOK_ALLOW_PRIVATE', bool.default(false)),
        /** Ports webhooks never reach (remote shells, mail, Docker, databases, caches, brokers). */
        denyPorts: env(
          'TRIGGERS_WEBHOOK_DENY_PORTS',
          z
            .string()
            .default(DEFAULT_DENY_PORTS.join(','))
            .transform((s, ctx) => {
              const ports = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
              if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) ctx.addIssue({ code: 'custom', message: 'must be a comma-separated list of ports (1-65535)' });
              return ports;
            }),
        ),
      },
    },
    /** AES-256-GCM key (32 bytes, base64 or hex) for webhook secrets at rest; held outside the store. undefined = not configured (the runtime decides). */
    secretKey: env(
      'TRIGGERS_SECRET_KEY',
      z
        .string()
        .transform((s, ctx) => {
          const key = parseKey32(s);
          if (!key) ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, base64 or hex (e.g. `openssl rand -base64 32`)' });
          return key ?? Buffer.alloc(0);
        })
        .optional(),
    ),
  },

  /** Edge clients (ingest/src/edge), served by the `ingest` role on GET /v1/edge: decisions by Thompson sampling, events acked by seq. */
  edge: {
    enabled: env('EDGE_ENABLED', bool.default(true)),
    groupId: env('EDGE_GROUP_ID', z.string().default('afterglow-edge')),
    /** Engagement counts behind a decision decay with this half-life (by event time). */
    halfLifeMs: env('EDGE_HALF_LIFE_MS', int(30 * MINUTE, 1_000)),
    /** Weight (pseudo-impressions) of the assets.scores prediction as the Beta prior. */
    priorStrength: env('EDGE_PRIOR_STRENGTH', z.coerce.number().positive().max(1e6).default(20)),
    /** Placements held in all; past it, the tenant holding the most loses its least recently touched. */
    maxPlacements: env('EDGE_MAX_PLACEMENTS', int(10_000, 1)),
    /** Placements held per tenant (its least recently touched go first), so no tenant evicts another's. */
    maxPlacementsPerTenant: env('EDGE_MAX_PLACEMENTS_PER_TENANT', int(2_000, 1)),
    maxAssetsPerPlacement: env('EDGE_MAX_ASSETS_PER_PLACEMENT', int(64, 1, 10_000)),
    maxSubscriptions: env('EDGE_MAX_SUBSCRIPTIONS', int(100, 1, 100_000)),
    heartbeatMs: env('EDGE_HEARTBEAT_MS', int(15_000, 100)),
    idleTimeoutMs: env('EDGE_IDLE_TIMEOUT_MS', int(60_000, 200)),
    maxBufferBytes: env('EDGE_MAX_BUFFER_BYTES', int(1024 * 1024, 1024)),
    maxInflightMessages: env('EDGE_MAX_INFLIGHT_MESSAGES', int(64, 1)),
    pushMinMs: env('EDGE_PUSH_MIN_MS', int(250, 0)),
    /** A decision is pushed when the best asset changes or a share moves by more than this. */
    pushThreshold: env('EDGE_PUSH_THRESHOLD', z.coerce.number().gt(0).lt(1).default(0.05)),
    /** How long a client's last acked seq, and the API key its client_id is bound to, are remembered. */
    seqTtlMs: env('EDGE_SEQ_TTL_MS', int(24 * HOUR, 1_000)),
    /** An events message whose seq is more than this above the client's last acked seq is refused. */
    maxSeqJump: env('EDGE_MAX_SEQ_JUMP', int(1_000_000, 1)),
  },

  /** API keys, origins and per-key rate limits (core/src/auth). */
  auth: {
    /** `off` trusts the tenant_id a client sends: only behind a gateway that authenticates. */
    mode: env('AUTH_MODE', z.enum(['keys', 'off']).default('keys')),
    /**
     * Keyed-hash secret for stored API key hashes; every process of a deployment must share it. undefined = not configured:
     * the runtime refuses to start with keys on, except the embedded demo, which generates one into its data directory (cli/src/secrets.ts).
     */
    pepper: env('AUTH_KEY_PEPPER', z.string().min(16).optional()),
    /** Each process re-reads changed keys (revocations, rotations) this often. */
    refreshMs: env('AUTH_REFRESH_MS', int(2_000, 100, 60_000)),
    /** Browser origins allowed to open WebSockets besides the server's own (`*` = any). */
    allowedOrigins: env('AUTH_ALLOWED_ORIGINS', csv.default(() => [])),
    /** Per-key limits (token buckets, shared through Redis when REDIS_URL is set); 0 = unlimited. */
    rate: {
      eventsPerSec: env('RATE_EVENTS_PER_SEC', int(50_000, 0)),
      eventsBurst: env('RATE_EVENTS_BURST', int(200_000, 1)),
      bytesPerSec: env('RATE_BYTES_PER_SEC', int(64 * 1024 * 1024, 0)),
      bytesBurst: env('RATE_BYTES_BURST', int(64 * 1024 * 1024, 1)),
      maxConnections: env('RATE_MAX_CONNECTIONS', int(200, 0)),
    },
    /** Failed authentications per client address (a token bucket, per process); past it 429 before any key is checked. perMin 0 = off. */
    failures: {
      perMin: env('AUTH_FAIL_PER_IP_PER_MIN', int(60, 0)),
      burst: env('AUTH_FAIL_BURST', int(30, 1)),
      /** Addresses tracked at most (least recently seen evicted), so a spray of addresses cannot grow memory. */
      maxAddresses: env('AUTH_FAIL_MAX_IPS', int(50_000, 1)),
    },
  },
} as const satisfies SettingTree;

type Settings = Parsed<typeof SETTINGS>;

function settingsOf(tree: SettingTree): Setting[] {
  return Object.values(tree).flatMap((x) => (isSetting(x) ? [x] : settingsOf(x)));
}

/** The flat schema of every variable, so a refusal names the variable an operator sets. */
const envSchema = z.object(Object.fromEntries(settingsOf(SETTINGS).map((s) => [s.env, s.schema])));

function pick(tree: SettingTree, vars: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, x] of Object.entries(tree)) out[key] = isSetting(x) ? vars[x.env] : pick(x, vars);
  return out;
}

export type Env = Record<string, string | undefined>;

/** A section whose optional directory settings are resolved under AFTERGLOW_DATA_DIR. */
type Resolved<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: string };

export type HttpSettings = Settings['http'];
export type EventLimits = Settings['events'];
export type InferenceSettings = Resolved<Settings['inference'], 'modelsDir'>;
export type PredictSettings = Resolved<Settings['predict'], 'modelsDir'>;
export type ImageLimitSettings = Settings['images'];
export type VideoSettings = Settings['videos'];
export type TieSettings = Omit<Settings['tie'], 'cacheDir'> & {
  /** undefined = no persistent cache. */
  cacheDir: string | undefined;
};
export type LiveSettings = Settings['live'];
export type TriggerSettings = Settings['triggers'];
export type EdgeSettings = Settings['edge'];
export type AuthSettings = Omit<Settings['auth'], 'failures'> & {
  /** perMin 0 (or absent) = no budget. */
  failures?: Settings['auth']['failures'];
};
export type ClientSettings = Settings['client'];
export type SinkSettings = Settings['sink'];
export type KafkaSasl = { mechanism: NonNullable<Settings['kafka']['saslMechanism']>; username: string; password: string };

type KafkaConnection = Pick<Settings['kafka'], 'clientId' | 'partitions' | 'replicationFactor' | 'namespace'>;
export type BusSettings =
  | (KafkaConnection & {
      kind: 'kafka';
      brokers: string[];
      sasl?: KafkaSasl | undefined;
      /** TLS on; `ca` (PEM text) when a private CA signs the brokers' certificates. */
      tls?: { ca?: string } | undefined;
    })
  | ({ kind: 'memory' } & Pick<Settings['kafka'], 'partitions'> & Settings['memoryBus']);
export type StoreSettings =
  | ({ kind: 'clickhouse'; url: string } & Omit<Settings['clickhouse'], 'url' | 'cluster'> & Partial<Pick<Settings['clickhouse'], 'cluster'>>)
  | ({ kind: 'chdb'; path: string } & Pick<Settings['clickhouse'], 'database'>);
/** Where asset originals and thumbnails live (core/src/blob), content-addressed by sha256. */
export type BlobSettings =
  | { kind: 'local'; dir: string }
  | ({ kind: 's3'; bucket: string; forcePathStyle: boolean } & Omit<Settings['s3'], 'bucket' | 'forcePathStyle'>);

export interface AfterglowConfig {
  http: HttpSettings;
  /** The admin listener for Prometheus (/metrics only); undefined = none. */
  metrics: { host: string; port: number } | undefined;
  dataDir: Settings['dataDir'];
  logLevel: Settings['logLevel'];
  logFormat: Settings['logFormat'];
  demo: Settings['demo'];
  client: ClientSettings;
  bus: BusSettings;
  store: StoreSettings;
  hot: { kind: 'redis'; url: string } | { kind: 'memory' };
  fanout: { kind: 'nats'; servers: string[] } | { kind: 'memory' };
  ingest: Settings['ingest'];
  events: EventLimits;
  sink: SinkSettings;
  inference: InferenceSettings;
  predict: PredictSettings;
  images: ImageLimitSettings;
  videos: VideoSettings;
  tie: TieSettings;
  blob: BlobSettings;
  assets: Settings['assets'];
  live: LiveSettings;
  triggers: TriggerSettings;
  edge: EdgeSettings;
  auth: AuthSettings;
}

/** SASL and TLS settings of the Kafka connections, checked as a whole (the CA file is read here). */
function kafkaSecurityOf(k: Settings['kafka']): { sasl?: KafkaSasl; tls?: { ca?: string } } {
  const out: { sasl?: KafkaSasl; tls?: { ca?: string } } = {};
  const { saslMechanism: mechanism, saslUsername: username, saslPassword: password } = k;
  if (mechanism) {
    if (username === undefined || password === undefined)
      throw new ConfigError('invalid configuration:\n  KAFKA_SASL_MECHANISM: needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
    out.sasl = { mechanism, username, password };
  } else if (username !== undefined || password !== undefined) {
    throw new ConfigError('invalid configuration:\n  KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: need KAFKA_SASL_MECHANISM');
  }
  if (k.sslCaFile && !k.ssl) throw new ConfigError('invalid configuration:\n  KAFKA_SSL_CA_FILE: needs KAFKA_SSL=1');
  if (k.ssl) {
    out.tls = {};
    if (k.sslCaFile) {
      try {
        out.tls.ca = readFileSync(k.sslCaFile, 'utf8');
      } catch (err) {
        throw new ConfigError(`invalid configuration:\n  KAFKA_SSL_CA_FILE: cannot read ${k.sslCaFile} (${(err as Error).message})`);
      }
    }
  }
  return out;
}

export function loadConfig(env: Env = process.env): AfterglowConfig {
  const parsed = envSchema.safeParse(stripEmpty(env));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const s = pick(SETTINGS, parsed.data) as Settings;
  const { clickhouse: ch, kafka, dataDir } = s;
  if (ch.cluster && !ch.url) throw new ConfigError('invalid configuration:\n  CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL (embedded chDB is a single node)');
  const kafkaSecurity = kafkaSecurityOf(kafka);
  const under = (dir: string | undefined, fallback: string) => path.resolve(dir ?? path.join(dataDir, fallback));
  const { bucket, forcePathStyle, ...s3 } = s.s3;
  return {
    http: s.http,
    metrics: s.metrics.port === undefined ? undefined : { host: s.metrics.host, port: s.metrics.port },
    dataDir,
    logLevel: s.logLevel,
    logFormat: s.logFormat,
    demo: s.demo,
    client: s.client,
    bus:
      kafka.brokers && kafka.brokers.length > 0
        ? {
            kind: 'kafka',
            brokers: kafka.brokers,
            clientId: kafka.clientId,
            partitions: kafka.partitions,
            replicationFactor: kafka.replicationFactor,
            namespace: kafka.namespace,
            ...kafkaSecurity,
          }
        : { kind: 'memory', partitions: kafka.partitions, maxBacklogBytes: s.memoryBus.maxBacklogBytes },
    store: ch.url
      ? { kind: 'clickhouse', url: ch.url, user: ch.user, password: ch.password, database: ch.database, cluster: ch.cluster }
      : { kind: 'chdb', path: path.join(dataDir, 'chdb'), database: ch.database },
    hot: s.redisUrl ? { kind: 'redis', url: s.redisUrl } : { kind: 'memory' },
    fanout: s.natsServers && s.natsServers.length > 0 ? { kind: 'nats', servers: s.natsServers } : { kind: 'memory' },
    ingest: s.ingest,
    events: s.events,
    sink: s.sink,
    inference: { ...s.inference, modelsDir: under(s.inference.modelsDir, 'models') },
    predict: { ...s.predict, modelsDir: under(s.predict.modelsDir, 'prediction-models') },
    images: s.images,
    videos: s.videos,
    tie: { ...s.tie, cacheDir: s.tie.cacheDir === 'off' ? undefined : under(s.tie.cacheDir, 'tie-cache') },
    blob: bucket
      ? { kind: 's3', bucket, ...s3, forcePathStyle: forcePathStyle ?? s3.endpoint !== undefined }
      : { kind: 'local', dir: under(s.blobDir, 'blobs') },
    assets: s.assets,
    live: s.live,
    triggers: s.triggers,
    edge: s.edge,
    auth: s.auth,
  };
}

/** Every setting at its default, no variable read: what a library falls back to for an option its caller left out. */
export function defaultConfig(): AfterglowConfig {
  return loadConfig({});
}

/** An exported empty variable (`FOO=`) means "not set", as operators expect from shell env files. */
function stripEmpty(env: Env): Env {
  const out: Env = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

/** CPU cores this process may run on (libuv: its CPU affinity): what thread and worker defaults scale with. */
export function availableCores(): number {
  return os.availableParallelism();
}

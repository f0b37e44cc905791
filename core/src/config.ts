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

const envSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('127.0.0.1'),
  AFTERGLOW_DATA_DIR: z.string().default('.afterglow-data'),
  /** Prometheus /metrics on its own listener (not on PORT); unset = no metrics endpoint. 0 = any free port. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Where that listener binds: loopback unless a scraper on another host needs it (then firewall it). */
  METRICS_HOST: z.string().default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** auto: readable lines when stdout is a terminal, JSON otherwise; json / pretty force one. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  AFTERGLOW_DEMO: bool.optional(),

  KAFKA_BROKERS: csv.optional(),
  KAFKA_CLIENT_ID: z.string().default('afterglow'),
  /** Prefix for every topic and consumer group: several deployments (or test runs) on one cluster. */
  KAFKA_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'must be 1-64 characters of [A-Za-z0-9_-]')
    .optional(),
  KAFKA_TOPIC_PARTITIONS: int(6, 1, 1024),
  KAFKA_REPLICATION_FACTOR: int(1, 1, 7),
  /** Managed Kafka: SASL over the broker connections (set with its username and password). */
  KAFKA_SASL_MECHANISM: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']).optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  /** TLS to the brokers; KAFKA_SSL_CA_FILE (PEM) replaces the system CAs, for a private CA. */
  KAFKA_SSL: bool.optional(),
  KAFKA_SSL_CA_FILE: z.string().optional(),
  BUS_MEMORY_MAX_BACKLOG_BYTES: int(256 * 1024 * 1024, 1024),

  CLICKHOUSE_URL: z.string().url().optional(),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z.string().default(''),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier')
    .default('afterglow'),
  /**
   * ClickHouse cluster name (remote_servers): the sink inserts with the cluster's exactly-once settings
   * (CLUSTER_SINK_INSERT_SETTINGS) and the roles apply the generated cluster DDL (core/src/store/cluster.ts).
   */
  CLICKHOUSE_CLUSTER: z
    .string()
    .regex(/^[A-Za-z0-9_{}.-]+$/, 'must be a cluster name from remote_servers')
    .optional(),

  REDIS_URL: z.string().optional(),
  NATS_URL: csv.optional(),

  INGEST_MAX_BODY_BYTES: int(16 * 1024 * 1024, 1024),
  INGEST_MAX_EVENTS_PER_REQUEST: int(100_000, 1),
  INGEST_MAX_INFLIGHT_BYTES: int(64 * 1024 * 1024, 1024),
  INGEST_WS_MAX_MESSAGE_BYTES: int(4 * 1024 * 1024, 1024),
  INGEST_WS_MAX_INFLIGHT_MESSAGES: int(64, 1),
  INGEST_PRODUCE_TIMEOUT_MS: int(10_000, 100),
  /** Undecodable NDJSON lines tolerated per request; past it the request is refused whole (400) without parsing the rest. */
  INGEST_MAX_BAD_LINES: int(1_000, 0),
  /** A JSON element or NDJSON line longer than this is refused unparsed: no valid event is near it. */
  INGEST_MAX_EVENT_BYTES: int(64 * 1024, 1024),
  /** WebSocket ingest messages received and not yet acknowledged, across every socket; past it every stream pauses. */
  INGEST_WS_MAX_TOTAL_INFLIGHT_BYTES: int(256 * 1024 * 1024, 1024),
  /** Concurrent /v1/stream sockets of one tenant in this process (all its keys together); 0 = no cap. */
  INGEST_WS_MAX_CONNECTIONS_PER_TENANT: int(500, 0),
  /**
   * History import (POST /v1/import/events) takes events older than EVENT_LIVE_LATE_MS and at most
   * this old (default three years); newer ones belong to live ingest, whose windows still count them.
   */
  IMPORT_MAX_AGE_MS: int(3 * 365 * 24 * HOUR, 1),
  /**
   * Key (base64, at least 32 bytes) of the hash that replaces an event's viewer_id at ingest, for
   * reach and frequency. Unset: derived from AUTH_KEY_PEPPER; with neither, viewer ids are dropped.
   */
  VIEWER_ID_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length >= 32, 'VIEWER_ID_KEY must be at least 32 bytes, base64')
    .optional(),

  EVENT_MAX_AGE_MS: int(7 * 24 * HOUR, 1),
  EVENT_MAX_FUTURE_MS: int(5 * MINUTE, 0),
  EVENT_LIVE_LATE_MS: int(10 * MINUTE, 0),
  EVENT_MAX_ATTRS_BYTES: int(2048, 0),
  EVENT_DEDUP_WINDOW_MS: int(5 * MINUTE, 1000),

  SINK_GROUP_ID: z.string().default('afterglow-sink'),
  SINK_BATCH_MAX_ROWS: int(50_000, 1),
  SINK_BATCH_MAX_MS: int(1000, 1),
  SINK_FLUSH_LANES: int(2, 1, 64),

  /** Built .onnx models (converted from npm packages by `afterglow models`); default `${AFTERGLOW_DATA_DIR}/models`. */
  AFTERGLOW_MODELS_DIR: z.string().optional(),
  /** 'auto' tries CUDA and falls back to CPU; 'cuda' fails when the CUDA provider is not installed. */
  INFERENCE_EXECUTION_PROVIDER: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  INFERENCE_BATCH_SIZE: int(16, 1, 1024),
  /**
   * onnxruntime worker threads; 0 = one per core, at most 4. Many small images (the tie engine's views)
   * run faster as single-threaded sessions side by side than as one multi-threaded session, whose
   * spinning threads also take CPU from keypoints and decoding (450 x 300 tie set on 2 cores: 68 -> 51 s).
   * With CUDA one worker is enough.
   */
  INFERENCE_WORKERS: int(0, 0, 64),
  /** onnxruntime intra-op threads per worker; 0 = available cores / workers. */
  INFERENCE_INTRA_OP_THREADS: int(0, 0, 256),
  INFERENCE_EMBED_CACHE_BYTES: int(64 * 1024 * 1024, 0),
  /** Performance prediction (inference/src/predict, workers): features, target, training, rescoring. */
  PREDICT_FEATURES: z.enum(['full', 'light']).default('full'),
  /** Trained model files; default `${AFTERGLOW_DATA_DIR}/prediction-models`. */
  PREDICT_MODELS_DIR: z.string().optional(),
  PREDICT_HORIZON_HOURS: z.coerce.number().positive().default(24),
  PREDICT_BASELINE_DAYS: z.coerce.number().positive().default(30),
  PREDICT_MIN_IMPRESSIONS: int(100, 1),
  PREDICT_MEMBERS: int(8, 1, 64),
  PREDICT_WORKERS: int(1, 1, 64),
  PREDICT_BATCH_ROWS: int(512, 1, 1_000_000),
  PREDICT_GROUP_ID: z.string().default('afterglow-inference'),
  /** Rescore an asset when its live engagement rate moved this much (relative) since its last score. */
  PREDICT_RESCORE_SHIFT: z.coerce.number().positive().default(0.2),
  PREDICT_RESCORE_CHECK_MS: int(2_000, 10),
  /** Run the scoring workers (consumers) in the inference role (default on). */
  PREDICT_WORKERS_ENABLED: bool.optional(),
  /** Image limits checked from the header before any full decode (embeddings, asset registry). */
  IMAGE_MAX_BYTES: int(32 * 1024 * 1024, 1024),
  IMAGE_MAX_PIXELS: int(50_000_000, 1),
  IMAGE_MAX_SIDE: int(16_384, 1),
  /** Shorter side below this is refused (`too_small`): 1-px images crash keypoint extraction and say nothing. */
  IMAGE_MIN_SIDE: int(32, 1),
  /** Uploads decoded at once (POST /v1/assets); 0 = available cores. More wait in a queue of IMAGE_DECODE_QUEUE, past which 503. */
  IMAGE_DECODE_CONCURRENCY: int(0, 0, 256),
  IMAGE_DECODE_QUEUE: int(64, 0, 100_000),

  /** Tying ads to masters (inference/src/tie): Knot-Tie's top-K, top-N and propagation rule, and the engine's knobs. */
  TIE_MODEL: z.enum(['mobilenet_v2', 'inception_v3']).default('mobilenet_v2'),
  TIE_TOP_K: int(500, 1, 100_000),
  TIE_CANDIDATES: int(20, 1, 1000),
  /** Candidates per ad verified with keypoints (top this many by cosine and by euclidean distance). */
  TIE_VERIFY_TOP: int(5, 0, 1000),
  /** ORB worker threads; 0 = available cores. */
  TIE_VERIFY_WORKERS: int(0, 0, 256),
  /** Views embedded per master: whole | centre (whole + central 70 %) | corners (+ four 60 % corners). */
  TIE_MASTER_VIEWS: z.enum(['whole', 'centre', 'corners']).default('centre'),
  /** Also embed the whole master mirrored left-right (off: with colour histograms it did not change accuracy; on for tenants whose ads flip a lot). */
  TIE_MASTER_MIRROR: bool.optional(),
  /** Strip views of every master (four wide, one tall) that thin ads (leaderboards, skyscrapers) are also compared with (default on). */
  TIE_THIN_STRIPS: bool.optional(),
  /** Candidates per ad checked densely (the ad's pixels located in each master by normalized cross-correlation); 0 = off. */
  TIE_DENSE_TOP: int(8, 0, 100),
  /** Weight of the views' colour histograms beside the CNN descriptor: (cosine + w x colour) / (1 + w); 0 = off. */
  TIE_COLOUR_WEIGHT: z.coerce.number().min(0).max(10).default(0.35),
  /** Model output that describes images for tying: auto (the manifest's descriptor when the model has one) | descriptor | embedding. */
  TIE_DESCRIPTOR: z.enum(['auto', 'descriptor', 'embedding']).default('auto'),
  /** PCA-whitening of descriptors (unsupervised, fitted on masters + ads' views) to this many dims; 0 = off. */
  TIE_WHITEN_DIMS: int(384, 0, 4096),
  /** Eigenvalue shrinkage of that whitening, as a fraction of the mean kept eigenvalue (smaller whitens harder). */
  TIE_WHITEN_SHRINKAGE: z.coerce.number().min(0).max(10).default(0.03),
  /** Auto-tie without a human at this calibrated score; default: the calibrated threshold (inference/tie.calibration.json). */
  TIE_AUTO_TIE_THRESHOLD: z.coerce.number().min(0).max(1).optional(),
  /** A human tie propagates to every ad whose top-N holds the master with score > min. */
  TIE_PROPAGATE_TOP_N: int(5, 1, 1000),
  TIE_PROPAGATE_MIN_SCORE: z.coerce.number().min(0).max(1).default(0.6),
  /** Content-addressed cache of embeddings and keypoints; default `${AFTERGLOW_DATA_DIR}/tie-cache`; `off` disables it. */
  TIE_CACHE_DIR: z.string().optional(),

  /** Blob store of asset originals and thumbnails (core/src/blob): a local directory (default `${AFTERGLOW_DATA_DIR}/blobs`), or S3 when BLOB_S3_BUCKET is set. */
  BLOB_DIR: z.string().optional(),
  BLOB_S3_BUCKET: z.string().optional(),
  /** An S3-compatible endpoint (MinIO, Ceph, R2); unset = AWS S3. */
  BLOB_S3_ENDPOINT: z.string().url().optional(),
  BLOB_S3_REGION: z.string().default('us-east-1'),
  /** Unset = the AWS SDK's default credential chain. */
  BLOB_S3_ACCESS_KEY_ID: z.string().optional(),
  BLOB_S3_SECRET_ACCESS_KEY: z.string().optional(),
  BLOB_S3_PREFIX: z.string().default(''),
  BLOB_S3_FORCE_PATH_STYLE: bool.optional(),
  /** Asset registry (inference/src/registry): how long POST /v1/assets waits for an ad's candidates before answering `pending`. */
  ASSETS_TIE_WAIT_MS: int(60_000, 0),
  /** After masters are added, a tenant's ads are re-ranked once no master arrived for this long. */
  ASSETS_RERANK_DEBOUNCE_MS: int(2_000, 0),

  /** Live metrics (stream/src/live): aggregators, the /v1/live gateway and its REST routes. */
  LIVE_GROUP_ID: z.string().default('afterglow-live'),
  LIVE_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_:.-]')
    .default('afterglow:live'),
  LIVE_AGGREGATE: bool.optional(),
  LIVE_GATEWAY: bool.optional(),
  LIVE_FLUSH_MS: int(500, 10, 60_000),
  LIVE_PUBLISH_MS: int(25, 1, 10_000),
  LIVE_MAX_ENTITIES: int(20_000, 100),
  LIVE_TIES_SWEEP_MS: int(60_000, 1_000),
  LIVE_WS_MAX_UPDATES_PER_SEC: int(10, 1, 1000),
  LIVE_WS_COALESCE_BYTES: int(64 * 1024, 1024),
  LIVE_WS_MAX_BUFFER_BYTES: int(4 * 1024 * 1024, 4096),
  LIVE_WS_STALL_MS: int(30_000, 100),
  LIVE_WS_MAX_SUBSCRIPTIONS: int(100, 1),
  LIVE_WS_REFRESH_MS: int(5_000, 100),
  LIVE_TOPIC_MAX_ASSETS: int(5_000, 1),
  LIVE_CI_MAX_REL_WIDTH: z.coerce.number().positive().default(0.5),
  LIVE_CI_MAX_ABS_WIDTH: z.coerce.number().nonnegative().default(0.01),
  LIVE_FATIGUE_FRACTION: z.coerce.number().gt(0).lt(1).default(0.25),
  LIVE_DECAY_REFIT_MS: int(10_000, 100),

  /** Triggers (stream/src/triggers), run by the `live` role: rule evaluation and variant requests. */
  TRIGGERS_ENABLED: bool.optional(),
  TRIGGERS_GROUP_ID: z.string().default('afterglow-triggers'),
  TRIGGERS_EVAL_MS: int(2_000, 50, 3_600_000),
  TRIGGERS_RULES_REFRESH_MS: int(5_000, 100, 3_600_000),
  TRIGGERS_MAX_ASSETS_PER_CAMPAIGN: int(500, 1, 100_000),
  TRIGGERS_MAX_TRACKED: int(50_000, 100),
  TRIGGERS_WEBHOOK_TIMEOUT_MS: int(5_000, 100, 120_000),
  TRIGGERS_WEBHOOK_MAX_ATTEMPTS: int(8, 1, 100),
  TRIGGERS_WEBHOOK_BACKOFF_MS: int(1_000, 1, 3_600_000),
  TRIGGERS_WEBHOOK_MAX_BACKOFF_MS: int(300_000, 1, 24 * HOUR),
  TRIGGERS_WEBHOOK_QUEUE: int(1_000, 1, 1_000_000),
  TRIGGERS_WEBHOOK_CONCURRENCY: int(4, 1, 256),
  /** Webhook egress policy (stream/src/triggers/egress.ts): only these hosts (`host` or `host:port`), when set. */
  TRIGGERS_WEBHOOK_ALLOW_HOSTS: csv
    .refine((hosts) => hosts.every(validHostEntry), 'must be a comma-separated list of host or host:port (no scheme, no path)')
    .optional(),
  /** Development and tests only: webhooks may reach loopback/private addresses (the listed hosts only, with an allow-list). */
  TRIGGERS_WEBHOOK_ALLOW_PRIVATE: bool.optional(),
  /** Ports webhooks never reach (remote shells, mail, Docker, databases, caches, brokers). */
  TRIGGERS_WEBHOOK_DENY_PORTS: z
    .string()
    .default(DEFAULT_DENY_PORTS.join(','))
    .transform((s, ctx) => {
      const ports = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
      if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) ctx.addIssue({ code: 'custom', message: 'must be a comma-separated list of ports (1-65535)' });
      return ports;
    }),
  /** AES-256-GCM key (32 bytes, base64 or hex) for webhook secrets at rest; held outside the store. */
  TRIGGERS_SECRET_KEY: z
    .string()
    .transform((s, ctx) => {
      const key = parseKey32(s);
      if (!key) ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, base64 or hex (e.g. `openssl rand -base64 32`)' });
      return key ?? Buffer.alloc(0);
    })
    .optional(),

  /** Edge clients (ingest/src/edge), served by the `ingest` role on GET /v1/edge. */
  EDGE_ENABLED: bool.optional(),
  EDGE_GROUP_ID: z.string().default('afterglow-edge'),
  EDGE_HALF_LIFE_MS: int(30 * MINUTE, 1_000),
  EDGE_PRIOR_STRENGTH: z.coerce.number().positive().max(1e6).default(20),
  EDGE_MAX_PLACEMENTS: int(10_000, 1),
  EDGE_MAX_PLACEMENTS_PER_TENANT: int(2_000, 1),
  EDGE_MAX_ASSETS_PER_PLACEMENT: int(64, 1, 10_000),
  EDGE_MAX_SUBSCRIPTIONS: int(100, 1, 100_000),
  EDGE_HEARTBEAT_MS: int(15_000, 100),
  EDGE_IDLE_TIMEOUT_MS: int(60_000, 200),
  EDGE_MAX_BUFFER_BYTES: int(1024 * 1024, 1024),
  EDGE_MAX_INFLIGHT_MESSAGES: int(64, 1),
  EDGE_PUSH_MIN_MS: int(250, 0),
  EDGE_PUSH_THRESHOLD: z.coerce.number().gt(0).lt(1).default(0.05),
  EDGE_SEQ_TTL_MS: int(24 * HOUR, 1_000),
  EDGE_MAX_SEQ_JUMP: int(1_000_000, 1),

  /** API keys (core/src/auth, issue 8). `off` trusts the tenant_id a client sends: only behind a gateway that authenticates. */
  AUTH_MODE: z.enum(['keys', 'off']).default('keys'),
  /** Keyed-hash secret for stored API key hashes; every process of a deployment must share it. Required with keys on, outside the demo. */
  AUTH_KEY_PEPPER: z.string().min(16).optional(),
  /** Each process re-reads changed keys (revocations, rotations) this often. */
  AUTH_REFRESH_MS: int(2_000, 100, 60_000),
  /** Browser origins allowed to open WebSockets besides the server's own (`*` = any). */
  AUTH_ALLOWED_ORIGINS: csv.optional(),
  /** Per-key limits (token buckets, shared through Redis when REDIS_URL is set); 0 = unlimited. */
  RATE_EVENTS_PER_SEC: int(50_000, 0),
  RATE_EVENTS_BURST: int(200_000, 1),
  RATE_BYTES_PER_SEC: int(64 * 1024 * 1024, 0),
  RATE_BYTES_BURST: int(64 * 1024 * 1024, 1),
  RATE_MAX_CONNECTIONS: int(200, 0),
  /** Failed authentications per client address (a token bucket, per process); past it 429 before any key is checked. 0 = off. */
  AUTH_FAIL_PER_IP_PER_MIN: int(60, 0),
  AUTH_FAIL_BURST: int(30, 1),
  /** Addresses tracked at most (least recently seen evicted), so a spray of addresses cannot grow memory. */
  AUTH_FAIL_MAX_IPS: int(50_000, 1),

  /** HTTP server: whole request (headers and body) must arrive within this; 0 = no limit. */
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 0),
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 0),
  /** An idle kept-alive connection is closed after this. */
  HTTP_KEEPALIVE_TIMEOUT_MS: int(5_000, 1),
  /** A socket with no traffic either way is closed after this (above the longest handler wait); WebSockets are exempt. 0 = never. */
  HTTP_IDLE_TIMEOUT_MS: int(120_000, 0),
  /** Open connections (HTTP and WebSocket) at most; more are refused at accept. 0 = no cap. */
  HTTP_MAX_CONNECTIONS: int(10_000, 0),
});

export type Env = Record<string, string | undefined>;

export interface AfterglowConfig {
  http: HttpSettings;
  /** The admin listener for Prometheus (/metrics only); undefined = none. */
  metrics: { host: string; port: number } | undefined;
  dataDir: string;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  logFormat: z.infer<typeof envSchema>['LOG_FORMAT'];
  /** Run the built-in demo generator (defaults to on only for the embedded all-in-one mode). */
  demo: boolean | undefined;
  bus:
    | {
        kind: 'kafka';
        brokers: string[];
        clientId: string;
        partitions: number;
        replicationFactor: number;
        namespace: string | undefined;
        sasl?: KafkaSasl | undefined;
        /** TLS on; `ca` (PEM text) when a private CA signs the brokers' certificates. */
        tls?: { ca?: string } | undefined;
      }
    | { kind: 'memory'; partitions: number; maxBacklogBytes: number };
  store:
    | { kind: 'clickhouse'; url: string; user: string; password: string; database: string; cluster?: string | undefined }
    | { kind: 'chdb'; path: string; database: string };
  hot: { kind: 'redis'; url: string } | { kind: 'memory' };
  fanout: { kind: 'nats'; servers: string[] } | { kind: 'memory' };
  ingest: {
    maxBodyBytes: number;
    maxEventsPerRequest: number;
    maxInflightBytes: number;
    wsMaxMessageBytes: number;
    wsMaxInflightMessages: number;
    produceTimeoutMs: number;
    maxBadLines: number;
    maxEventBytes: number;
    wsMaxTotalInflightBytes: number;
    /** 0 = no cap. */
    wsMaxConnectionsPerTenant: number;
    importMaxAgeMs: number;
    viewerIdKey: string | undefined;
  };
  events: EventLimits;
  sink: { groupId: string; batchMaxRows: number; batchMaxMs: number; lanes: number };
  inference: InferenceSettings;
  predict: PredictSettings;
  images: ImageLimitSettings;
  tie: TieSettings;
  blob: BlobSettings;
  assets: { tieWaitMs: number; rerankDebounceMs: number };
  live: LiveSettings;
  triggers: TriggerSettings;
  edge: EdgeSettings;
  auth: AuthSettings;
}

/** The HTTP server's listener: timeouts against slow clients and a connection cap (0 = off where noted). */
export interface HttpSettings {
  host: string;
  port: number;
  /** 0 = no limit. */
  requestTimeoutMs: number;
  /** 0 = no limit. */
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** 0 = never. */
  idleTimeoutMs: number;
  /** 0 = no cap. */
  maxConnections: number;
}

/** Performance prediction and attribution (inference/src/predict, attribution, workers). */
export interface PredictSettings {
  features: 'full' | 'light';
  modelsDir: string;
  horizonMs: number;
  baselineWindowMs: number;
  minImpressions: number;
  members: number;
  workers: number;
  batchRows: number;
  groupId: string;
  rescoreShift: number;
  rescoreCheckMs: number;
  workersEnabled: boolean;
}

/** API keys, origins and per-key rate limits (core/src/auth). */
export interface AuthSettings {
  mode: 'keys' | 'off';
  /**
   * undefined = not configured: the runtime refuses to start with keys on, except the embedded demo,
   * which generates one into its data directory (cli/src/secrets.ts).
   */
  pepper: string | undefined;
  refreshMs: number;
  allowedOrigins: string[];
  rate: {
    /** 0 = unlimited. */
    eventsPerSec: number;
    eventsBurst: number;
    bytesPerSec: number;
    bytesBurst: number;
    maxConnections: number;
  };
  /** Failed authentications per client address; perMin 0 (or absent) = no budget. */
  failures?: { perMin: number; burst: number; maxAddresses: number };
}

/** Triggers (stream/src/triggers): evaluated in the `live` role; webhooks signed per rule. */
export interface TriggerSettings {
  enabled: boolean;
  /** Consumer groups (assets.scores, assets.ties, assets.changes) are `${groupId}-<topic>`. */
  groupId: string;
  evalMs: number;
  rulesRefreshMs: number;
  maxAssetsPerCampaign: number;
  /** (rule, asset) debounce states and latest scores kept in memory at most. */
  maxTracked: number;
  webhook: {
    timeoutMs: number;
    maxAttempts: number;
    backoffMs: number;
    maxBackoffMs: number;
    queue: number;
    concurrency: number;
    /** Where webhooks may go (stream/src/triggers/egress.ts). */
    egress: { allowHosts: string[]; allowPrivate: boolean; denyPorts: number[] };
  };
  /** AES-256-GCM key for webhook secrets at rest; undefined = not configured (the runtime decides). */
  secretKey: Buffer | undefined;
}

/** The edge protocol (ingest/src/edge): decisions by Thompson sampling, events acked by seq. */
export interface EdgeSettings {
  enabled: boolean;
  groupId: string;
  /** Engagement counts behind a decision decay with this half-life (by event time). */
  halfLifeMs: number;
  /** Weight (pseudo-impressions) of the assets.scores prediction as the Beta prior. */
  priorStrength: number;
  /** Placements held in all; past it, the tenant holding the most loses its least recently touched. */
  maxPlacements: number;
  /** Placements held per tenant (its least recently touched go first), so no tenant evicts another's. */
  maxPlacementsPerTenant: number;
  maxAssetsPerPlacement: number;
  maxSubscriptions: number;
  heartbeatMs: number;
  idleTimeoutMs: number;
  maxBufferBytes: number;
  maxInflightMessages: number;
  pushMinMs: number;
  /** A decision is pushed when the best asset changes or a share moves by more than this. */
  pushThreshold: number;
  /** How long a client's last acked seq, and the API key its client_id is bound to, are remembered. */
  seqTtlMs: number;
  /** An events message whose seq is more than this above the client's last acked seq is refused. */
  maxSeqJump: number;
}

/** Live metrics: the aggregator (consumer group on engagement.events), the /v1/live gateway, REST. */
export interface LiveSettings {
  /** Run the aggregator / the gateway in this process (both on by default for the `live` role). */
  aggregate: boolean;
  gateway: boolean;
  groupId: string;
  /** Prefix of every hot-state key the live role writes. */
  keyPrefix: string;
  /** Hot-state persistence (with the applied offsets) and Kafka commits, at most this often. */
  flushMs: number;
  /** Changed entities are published to the fan-out at most this often. */
  publishMs: number;
  /** Entities (assets, campaign/master partials) held in aggregator memory; clean ones beyond it are evicted. */
  maxEntities: number;
  tiesSweepMs: number;
  ws: {
    maxUpdatesPerSec: number;
    /** Above this many unsent bytes a client gets coalesced (latest wins) updates instead of each one. */
    coalesceBytes: number;
    /** Above this many unsent bytes a client is disconnected. */
    maxBufferBytes: number;
    /** A client that stays above coalesceBytes this long is disconnected. */
    stallMs: number;
    maxSubscriptions: number;
    /** Views are recomputed this often even without events (windows slide). */
    refreshMs: number;
    /** Assets a campaign subscription carries at most (the most recently active). */
    topicMaxAssets: number;
  };
  /** A rate is "not enough data" when its 95% interval is wider than max(absolute, relative x rate). */
  ciMaxRelWidth: number;
  ciMaxAbsWidth: number;
  fatigueFraction: number;
  decayRefitMs: number;
}

/** Image models (embeddings) on onnxruntime-node; see inference/src/models. */
export interface InferenceSettings {
  modelsDir: string;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  batchSize: number;
  workers: number;
  /** 0 = available cores / workers. */
  intraOpThreads: number;
  embedCacheBytes: number;
}

/** Where asset originals and thumbnails live (core/src/blob), content-addressed by sha256. */
export type BlobSettings =
  | { kind: 'local'; dir: string }
  | {
      kind: 's3';
      bucket: string;
      /** An S3-compatible endpoint (MinIO, Ceph, R2, ...); undefined = AWS S3 of `region`. */
      endpoint: string | undefined;
      region: string;
      /** undefined = the SDK's default credential chain (environment, profile, instance role). */
      accessKeyId: string | undefined;
      secretAccessKey: string | undefined;
      /** Prepended to every object key, e.g. `afterglow/`. */
      prefix: string;
      /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
      forcePathStyle: boolean;
    };

/** Tying ads to masters (inference/src/tie). */
export interface TieSettings {
  model: 'mobilenet_v2' | 'inception_v3';
  topK: number;
  candidates: number;
  verifyTop: number;
  /** 0 = available cores. */
  verifyWorkers: number;
  masterViews: 'whole' | 'centre' | 'corners';
  /** The whole master is also embedded mirrored. */
  masterMirror: boolean;
  /** Masters also get strip views for thin ads. */
  thinStrips: boolean;
  /** Candidates per ad checked densely (0 = off). */
  denseTop: number;
  /** Colour histogram weight in the similarity (0 = off). */
  colourWeight: number;
  /** undefined = the model's manifest descriptor when it has one, else its embedding. */
  descriptor: 'descriptor' | 'embedding' | undefined;
  /** 0 = no whitening. */
  whitenDims: number;
  whitenShrinkage: number;
  /** undefined = the calibrated threshold. */
  autoTieThreshold: number | undefined;
  propagateTopN: number;
  propagateMinScore: number;
  /** undefined = no persistent cache. */
  cacheDir: string | undefined;
}

/** Refuse images over these before decoding them (decompression bombs, oversized uploads). */
export interface ImageLimitSettings {
  maxBytes: number;
  maxPixels: number;
  maxSide: number;
  /** Min width and height. */
  minSide: number;
  /** Uploads decoded at once, and how many may wait (past it 503). */
  decodeConcurrency: number;
  decodeQueue: number;
}

export interface KafkaSasl {
  mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';
  username: string;
  password: string;
}

/** Limits the event validator enforces; kept separate so tests and tools can build one without env. */
export interface EventLimits {
  maxAgeMs: number;
  maxFutureMs: number;
  liveLateMs: number;
  maxAttrsBytes: number;
  /**
   * How long after an event a re-sent copy (same tenant_id + event_id) is still recognised and
   * left out of the live views, edge posteriors and trigger inputs (ClickHouse: always).
   */
  dedupWindowMs: number;
}

/** SASL and TLS settings of the Kafka connections, checked as a whole (the CA file is read here). */
function kafkaSecurityOf(e: z.infer<typeof envSchema>): { sasl?: KafkaSasl; tls?: { ca?: string } } {
  const out: { sasl?: KafkaSasl; tls?: { ca?: string } } = {};
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = e;
  if (mechanism) {
    if (username === undefined || password === undefined)
      throw new ConfigError('invalid configuration:\n  KAFKA_SASL_MECHANISM: needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
    out.sasl = { mechanism, username, password };
  } else if (username !== undefined || password !== undefined) {
    throw new ConfigError('invalid configuration:\n  KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: need KAFKA_SASL_MECHANISM');
  }
  if (e.KAFKA_SSL_CA_FILE && !e.KAFKA_SSL) throw new ConfigError('invalid configuration:\n  KAFKA_SSL_CA_FILE: needs KAFKA_SSL=1');
  if (e.KAFKA_SSL) {
    out.tls = {};
    if (e.KAFKA_SSL_CA_FILE) {
      try {
        out.tls.ca = readFileSync(e.KAFKA_SSL_CA_FILE, 'utf8');
      } catch (err) {
        throw new ConfigError(`invalid configuration:\n  KAFKA_SSL_CA_FILE: cannot read ${e.KAFKA_SSL_CA_FILE} (${(err as Error).message})`);
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
  const e = parsed.data;
  if (e.CLICKHOUSE_CLUSTER && !e.CLICKHOUSE_URL)
    throw new ConfigError('invalid configuration:\n  CLICKHOUSE_CLUSTER: needs CLICKHOUSE_URL (embedded chDB is a single node)');
  const dataDir = path.resolve(e.AFTERGLOW_DATA_DIR);
  const kafkaSecurity = kafkaSecurityOf(e);
  return {
    http: {
      host: e.HOST,
      port: e.PORT,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEPALIVE_TIMEOUT_MS,
      idleTimeoutMs: e.HTTP_IDLE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    metrics: e.METRICS_PORT === undefined ? undefined : { host: e.METRICS_HOST, port: e.METRICS_PORT },
    dataDir,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    demo: e.AFTERGLOW_DEMO,
    bus:
      e.KAFKA_BROKERS && e.KAFKA_BROKERS.length > 0
        ? {
            kind: 'kafka',
            brokers: e.KAFKA_BROKERS,
            clientId: e.KAFKA_CLIENT_ID,
            partitions: e.KAFKA_TOPIC_PARTITIONS,
            replicationFactor: e.KAFKA_REPLICATION_FACTOR,
            namespace: e.KAFKA_NAMESPACE,
            ...kafkaSecurity,
          }
        : { kind: 'memory', partitions: e.KAFKA_TOPIC_PARTITIONS, maxBacklogBytes: e.BUS_MEMORY_MAX_BACKLOG_BYTES },
    store: e.CLICKHOUSE_URL
      ? {
          kind: 'clickhouse',
          url: e.CLICKHOUSE_URL,
          user: e.CLICKHOUSE_USER,
          password: e.CLICKHOUSE_PASSWORD,
          database: e.CLICKHOUSE_DATABASE,
          cluster: e.CLICKHOUSE_CLUSTER,
        }
      : { kind: 'chdb', path: path.join(dataDir, 'chdb'), database: e.CLICKHOUSE_DATABASE },
    hot: e.REDIS_URL ? { kind: 'redis', url: e.REDIS_URL } : { kind: 'memory' },
    fanout: e.NATS_URL && e.NATS_URL.length > 0 ? { kind: 'nats', servers: e.NATS_URL } : { kind: 'memory' },
    ingest: {
      maxBodyBytes: e.INGEST_MAX_BODY_BYTES,
      maxEventsPerRequest: e.INGEST_MAX_EVENTS_PER_REQUEST,
      maxInflightBytes: e.INGEST_MAX_INFLIGHT_BYTES,
      wsMaxMessageBytes: e.INGEST_WS_MAX_MESSAGE_BYTES,
      wsMaxInflightMessages: e.INGEST_WS_MAX_INFLIGHT_MESSAGES,
      produceTimeoutMs: e.INGEST_PRODUCE_TIMEOUT_MS,
      maxBadLines: e.INGEST_MAX_BAD_LINES,
      maxEventBytes: e.INGEST_MAX_EVENT_BYTES,
      wsMaxTotalInflightBytes: e.INGEST_WS_MAX_TOTAL_INFLIGHT_BYTES,
      wsMaxConnectionsPerTenant: e.INGEST_WS_MAX_CONNECTIONS_PER_TENANT,
      importMaxAgeMs: e.IMPORT_MAX_AGE_MS,
      viewerIdKey: e.VIEWER_ID_KEY,
    },
    events: {
      maxAgeMs: e.EVENT_MAX_AGE_MS,
      maxFutureMs: e.EVENT_MAX_FUTURE_MS,
      liveLateMs: e.EVENT_LIVE_LATE_MS,
      maxAttrsBytes: e.EVENT_MAX_ATTRS_BYTES,
      dedupWindowMs: e.EVENT_DEDUP_WINDOW_MS,
    },
    sink: {
      groupId: e.SINK_GROUP_ID,
      batchMaxRows: e.SINK_BATCH_MAX_ROWS,
      batchMaxMs: e.SINK_BATCH_MAX_MS,
      lanes: e.SINK_FLUSH_LANES,
    },
    inference: {
      modelsDir: path.resolve(e.AFTERGLOW_MODELS_DIR ?? path.join(dataDir, 'models')),
      executionProvider: e.INFERENCE_EXECUTION_PROVIDER,
      batchSize: e.INFERENCE_BATCH_SIZE,
      workers: e.INFERENCE_WORKERS > 0 ? e.INFERENCE_WORKERS : Math.min(4, availableCores()),
      intraOpThreads: e.INFERENCE_INTRA_OP_THREADS,
      embedCacheBytes: e.INFERENCE_EMBED_CACHE_BYTES,
    },
    predict: {
      features: e.PREDICT_FEATURES,
      modelsDir: path.resolve(e.PREDICT_MODELS_DIR ?? path.join(dataDir, 'prediction-models')),
      horizonMs: e.PREDICT_HORIZON_HOURS * 3_600_000,
      baselineWindowMs: e.PREDICT_BASELINE_DAYS * 86_400_000,
      minImpressions: e.PREDICT_MIN_IMPRESSIONS,
      members: e.PREDICT_MEMBERS,
      workers: e.PREDICT_WORKERS,
      batchRows: e.PREDICT_BATCH_ROWS,
      groupId: e.PREDICT_GROUP_ID,
      rescoreShift: e.PREDICT_RESCORE_SHIFT,
      rescoreCheckMs: e.PREDICT_RESCORE_CHECK_MS,
      workersEnabled: e.PREDICT_WORKERS_ENABLED ?? true,
    },
    images: {
      maxBytes: e.IMAGE_MAX_BYTES,
      maxPixels: e.IMAGE_MAX_PIXELS,
      maxSide: e.IMAGE_MAX_SIDE,
      minSide: e.IMAGE_MIN_SIDE,
      decodeConcurrency: e.IMAGE_DECODE_CONCURRENCY > 0 ? e.IMAGE_DECODE_CONCURRENCY : availableCores(),
      decodeQueue: e.IMAGE_DECODE_QUEUE,
    },
    tie: {
      model: e.TIE_MODEL,
      topK: e.TIE_TOP_K,
      candidates: e.TIE_CANDIDATES,
      verifyTop: e.TIE_VERIFY_TOP,
      verifyWorkers: e.TIE_VERIFY_WORKERS,
      masterViews: e.TIE_MASTER_VIEWS,
      masterMirror: e.TIE_MASTER_MIRROR ?? false,
      thinStrips: e.TIE_THIN_STRIPS ?? true,
      denseTop: e.TIE_DENSE_TOP,
      colourWeight: e.TIE_COLOUR_WEIGHT,
      descriptor: e.TIE_DESCRIPTOR === 'auto' ? undefined : e.TIE_DESCRIPTOR,
      whitenDims: e.TIE_WHITEN_DIMS,
      whitenShrinkage: e.TIE_WHITEN_SHRINKAGE,
      autoTieThreshold: e.TIE_AUTO_TIE_THRESHOLD,
      propagateTopN: e.TIE_PROPAGATE_TOP_N,
      propagateMinScore: e.TIE_PROPAGATE_MIN_SCORE,
      cacheDir: e.TIE_CACHE_DIR === 'off' ? undefined : path.resolve(e.TIE_CACHE_DIR ?? path.join(dataDir, 'tie-cache')),
    },
    blob: e.BLOB_S3_BUCKET
      ? {
          kind: 's3',
          bucket: e.BLOB_S3_BUCKET,
          endpoint: e.BLOB_S3_ENDPOINT,
          region: e.BLOB_S3_REGION,
          accessKeyId: e.BLOB_S3_ACCESS_KEY_ID,
          secretAccessKey: e.BLOB_S3_SECRET_ACCESS_KEY,
          prefix: e.BLOB_S3_PREFIX,
          forcePathStyle: e.BLOB_S3_FORCE_PATH_STYLE ?? e.BLOB_S3_ENDPOINT !== undefined,
        }
      : { kind: 'local', dir: path.resolve(e.BLOB_DIR ?? path.join(dataDir, 'blobs')) },
    assets: { tieWaitMs: e.ASSETS_TIE_WAIT_MS, rerankDebounceMs: e.ASSETS_RERANK_DEBOUNCE_MS },
    live: {
      aggregate: e.LIVE_AGGREGATE ?? true,
      gateway: e.LIVE_GATEWAY ?? true,
      groupId: e.LIVE_GROUP_ID,
      keyPrefix: e.LIVE_KEY_PREFIX,
      flushMs: e.LIVE_FLUSH_MS,
      publishMs: e.LIVE_PUBLISH_MS,
      maxEntities: e.LIVE_MAX_ENTITIES,
      tiesSweepMs: e.LIVE_TIES_SWEEP_MS,
      ws: {
        maxUpdatesPerSec: e.LIVE_WS_MAX_UPDATES_PER_SEC,
        coalesceBytes: e.LIVE_WS_COALESCE_BYTES,
        maxBufferBytes: e.LIVE_WS_MAX_BUFFER_BYTES,
        stallMs: e.LIVE_WS_STALL_MS,
        maxSubscriptions: e.LIVE_WS_MAX_SUBSCRIPTIONS,
        refreshMs: e.LIVE_WS_REFRESH_MS,
        topicMaxAssets: e.LIVE_TOPIC_MAX_ASSETS,
      },
      ciMaxRelWidth: e.LIVE_CI_MAX_REL_WIDTH,
      ciMaxAbsWidth: e.LIVE_CI_MAX_ABS_WIDTH,
      fatigueFraction: e.LIVE_FATIGUE_FRACTION,
      decayRefitMs: e.LIVE_DECAY_REFIT_MS,
    },
    triggers: {
      enabled: e.TRIGGERS_ENABLED ?? true,
      groupId: e.TRIGGERS_GROUP_ID,
      evalMs: e.TRIGGERS_EVAL_MS,
      rulesRefreshMs: e.TRIGGERS_RULES_REFRESH_MS,
      maxAssetsPerCampaign: e.TRIGGERS_MAX_ASSETS_PER_CAMPAIGN,
      maxTracked: e.TRIGGERS_MAX_TRACKED,
      webhook: {
        timeoutMs: e.TRIGGERS_WEBHOOK_TIMEOUT_MS,
        maxAttempts: e.TRIGGERS_WEBHOOK_MAX_ATTEMPTS,
        backoffMs: e.TRIGGERS_WEBHOOK_BACKOFF_MS,
        maxBackoffMs: e.TRIGGERS_WEBHOOK_MAX_BACKOFF_MS,
        queue: e.TRIGGERS_WEBHOOK_QUEUE,
        concurrency: e.TRIGGERS_WEBHOOK_CONCURRENCY,
        egress: {
          allowHosts: e.TRIGGERS_WEBHOOK_ALLOW_HOSTS ?? [],
          allowPrivate: e.TRIGGERS_WEBHOOK_ALLOW_PRIVATE ?? false,
          denyPorts: e.TRIGGERS_WEBHOOK_DENY_PORTS,
        },
      },
      secretKey: e.TRIGGERS_SECRET_KEY,
    },
    edge: {
      enabled: e.EDGE_ENABLED ?? true,
      groupId: e.EDGE_GROUP_ID,
      halfLifeMs: e.EDGE_HALF_LIFE_MS,
      priorStrength: e.EDGE_PRIOR_STRENGTH,
      maxPlacements: e.EDGE_MAX_PLACEMENTS,
      maxPlacementsPerTenant: e.EDGE_MAX_PLACEMENTS_PER_TENANT,
      maxAssetsPerPlacement: e.EDGE_MAX_ASSETS_PER_PLACEMENT,
      maxSubscriptions: e.EDGE_MAX_SUBSCRIPTIONS,
      heartbeatMs: e.EDGE_HEARTBEAT_MS,
      idleTimeoutMs: e.EDGE_IDLE_TIMEOUT_MS,
      maxBufferBytes: e.EDGE_MAX_BUFFER_BYTES,
      maxInflightMessages: e.EDGE_MAX_INFLIGHT_MESSAGES,
      pushMinMs: e.EDGE_PUSH_MIN_MS,
      pushThreshold: e.EDGE_PUSH_THRESHOLD,
      seqTtlMs: e.EDGE_SEQ_TTL_MS,
      maxSeqJump: e.EDGE_MAX_SEQ_JUMP,
    },
    auth: {
      mode: e.AUTH_MODE,
      pepper: e.AUTH_KEY_PEPPER,
      refreshMs: e.AUTH_REFRESH_MS,
      allowedOrigins: e.AUTH_ALLOWED_ORIGINS ?? [],
      rate: {
        eventsPerSec: e.RATE_EVENTS_PER_SEC,
        eventsBurst: e.RATE_EVENTS_BURST,
        bytesPerSec: e.RATE_BYTES_PER_SEC,
        bytesBurst: e.RATE_BYTES_BURST,
        maxConnections: e.RATE_MAX_CONNECTIONS,
      },
      failures: { perMin: e.AUTH_FAIL_PER_IP_PER_MIN, burst: e.AUTH_FAIL_BURST, maxAddresses: e.AUTH_FAIL_MAX_IPS },
    },
  };
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

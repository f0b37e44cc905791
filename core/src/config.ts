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

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const envSchema = z.object({
  PORT: int(8080, 0, 65535),
  HOST: z.string().default('127.0.0.1'),
  AFTERGLOW_DATA_DIR: z.string().default('.afterglow-data'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
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
  BUS_MEMORY_MAX_BACKLOG_BYTES: int(256 * 1024 * 1024, 1024),

  CLICKHOUSE_URL: z.string().url().optional(),
  CLICKHOUSE_USER: z.string().default('default'),
  CLICKHOUSE_PASSWORD: z.string().default(''),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a plain identifier')
    .default('afterglow'),

  REDIS_URL: z.string().optional(),
  NATS_URL: csv.optional(),

  INGEST_MAX_BODY_BYTES: int(16 * 1024 * 1024, 1024),
  INGEST_MAX_EVENTS_PER_REQUEST: int(100_000, 1),
  INGEST_MAX_INFLIGHT_BYTES: int(64 * 1024 * 1024, 1024),
  INGEST_WS_MAX_MESSAGE_BYTES: int(4 * 1024 * 1024, 1024),
  INGEST_WS_MAX_INFLIGHT_MESSAGES: int(64, 1),
  INGEST_PRODUCE_TIMEOUT_MS: int(10_000, 100),

  EVENT_MAX_AGE_MS: int(7 * 24 * HOUR, 1),
  EVENT_MAX_FUTURE_MS: int(5 * MINUTE, 0),
  EVENT_LIVE_LATE_MS: int(10 * MINUTE, 0),
  EVENT_MAX_ATTRS_BYTES: int(2048, 0),

  SINK_GROUP_ID: z.string().default('afterglow-sink'),
  SINK_BATCH_MAX_ROWS: int(50_000, 1),
  SINK_BATCH_MAX_MS: int(1000, 1),
  SINK_FLUSH_LANES: int(2, 1, 64),
});

export type Env = Record<string, string | undefined>;

export interface AfterglowConfig {
  http: { host: string; port: number };
  dataDir: string;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  /** Run the built-in demo generator (defaults to on only for the embedded all-in-one mode). */
  demo: boolean | undefined;
  bus:
    | { kind: 'kafka'; brokers: string[]; clientId: string; partitions: number; replicationFactor: number; namespace: string | undefined }
    | { kind: 'memory'; partitions: number; maxBacklogBytes: number };
  store:
    | { kind: 'clickhouse'; url: string; user: string; password: string; database: string }
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
  };
  events: EventLimits;
  sink: { groupId: string; batchMaxRows: number; batchMaxMs: number; lanes: number };
}

/** Limits the event validator enforces; kept separate so tests and tools can build one without env. */
export interface EventLimits {
  maxAgeMs: number;
  maxFutureMs: number;
  liveLateMs: number;
  maxAttrsBytes: number;
}

export function loadConfig(env: Env = process.env): AfterglowConfig {
  const parsed = envSchema.safeParse(stripEmpty(env));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.AFTERGLOW_DATA_DIR);
  return {
    http: { host: e.HOST, port: e.PORT },
    dataDir,
    logLevel: e.LOG_LEVEL,
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
          }
        : { kind: 'memory', partitions: e.KAFKA_TOPIC_PARTITIONS, maxBacklogBytes: e.BUS_MEMORY_MAX_BACKLOG_BYTES },
    store: e.CLICKHOUSE_URL
      ? {
          kind: 'clickhouse',
          url: e.CLICKHOUSE_URL,
          user: e.CLICKHOUSE_USER,
          password: e.CLICKHOUSE_PASSWORD,
          database: e.CLICKHOUSE_DATABASE,
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
    },
    events: {
      maxAgeMs: e.EVENT_MAX_AGE_MS,
      maxFutureMs: e.EVENT_MAX_FUTURE_MS,
      liveLateMs: e.EVENT_LIVE_LATE_MS,
      maxAttrsBytes: e.EVENT_MAX_ATTRS_BYTES,
    },
    sink: {
      groupId: e.SINK_GROUP_ID,
      batchMaxRows: e.SINK_BATCH_MAX_ROWS,
      batchMaxMs: e.SINK_BATCH_MAX_MS,
      lanes: e.SINK_FLUSH_LANES,
    },
  };
}

/** An exported empty variable (`FOO=`) means "not set", as operators expect from shell env files. */
function stripEmpty(env: Env): Env {
  const out: Env = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

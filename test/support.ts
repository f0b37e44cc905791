import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { EVENT_KINDS, SCOPES, TOPICS, loadConfig, ulid, type AfterglowConfig, type Scope, type EngagementEvent, type EventKind, type Env } from '@afterglow/core';
import { createApiClient, type ApiClient } from '@afterglow/core/api';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { eventually, underCI, uniqueName } from '@afterglow/testkit/services';
import { start, type RoleName, type Running, type StartOptions } from 'afterglow';

/** Cross-role test helpers: a whole Afterglow in this process, and traffic with known answers. */

export interface TestApp {
  running: Running;
  dataDir: string;
  /**
   * Headers that authenticate as `tenant` with `scopes` (API keys, issue 8). Every cross-role test
   * sends its HTTP and WebSocket requests with these (or through `request`), so auth can be on.
   */
  authHeaders(tenant: string, scopes?: readonly Scope[]): Promise<Record<string, string>>;
  /** fetch(`${url}${path}`) as `tenant` with every scope unless told otherwise. */
  request(tenant: string, path: string, init?: RequestInit & { scopes?: readonly Scope[] }): Promise<Response>;
  /** The typed client (@afterglow/core/api) as `tenant` with every scope unless told otherwise. */
  api(tenant: string, scopes?: readonly Scope[]): ApiClient;
  close(): Promise<void>;
}

/**
 * Outside the demo the pepper and the webhook key are required: one of each per test process, so
 * apps a test restarts on the same data dir (or runs side by side) share them, as a deployment does.
 */
const TEST_PEPPER = randomBytes(24).toString('base64url');
const TEST_SECRET_KEY = randomBytes(32).toString('base64');

export async function startApp(env: Env, roles: RoleName[] = ['ingest', 'stream'], options: Pick<StartOptions, 'resolveHost'> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-test-'));
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    AFTERGLOW_DATA_DIR: dataDir,
    AFTERGLOW_DEMO: '0',
    SINK_BATCH_MAX_MS: '200',
    // The scoring workers featurize every registered asset (ISNet, OCR): off unless a test asks (test/scoring-workers.test.ts).
    PREDICT_WORKERS_ENABLED: '0',
    AUTH_KEY_PEPPER: TEST_PEPPER,
    TRIGGERS_SECRET_KEY: TEST_SECRET_KEY,
    // Prometheus' admin listener on a free port (running.metricsUrl).
    METRICS_PORT: '0',
    ...env,
  });
  const running = await start(config, { roles, demo: false, ...options });
  // The one place tests get credentials: a key per (tenant, scopes), made on first use.
  const made = new Map<string, Promise<string>>();
  const authHeaders = async (tenant: string, scopes: readonly Scope[] = SCOPES): Promise<Record<string, string>> => {
    const keys = running.keys;
    if (!keys) return {};
    const id = `${tenant}\u0000${[...scopes].sort().join(',')}`;
    let key = made.get(id);
    if (!key) {
      key = keys.create({ tenantId: tenant, scopes, name: 'test' }).then((k) => k.key);
      made.set(id, key);
    }
    return { authorization: `Bearer ${await key}` };
  };
  const app: TestApp = {
    running,
    dataDir,
    authHeaders,
    async request(tenant, requestPath, init = {}) {
      const { scopes, ...rest } = init;
      const headers = { ...(await authHeaders(tenant, scopes)), ...Object.fromEntries(new Headers(rest.headers).entries()) };
      return fetch(`${running.url}${requestPath}`, { ...rest, headers });
    },
    api(tenant, scopes) {
      return createApiClient({ baseUrl: running.url, fetch: async (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...(await authHeaders(tenant, scopes)) } }) });
    },
    async close() {
      APPS.delete(running.url);
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  APPS.set(running.url, app);
  return app;
}

/** Running test apps by base URL, so helpers given only a URL can authenticate. */
const APPS = new Map<string, TestApp>();

/** A tenant for requests that name none (bad bodies, metrics). */
export const ANY_TENANT = 'test-anyone';

/** Auth headers for `tenant` on the test app at `baseUrl` ({} for a server not started by startApp, or with auth off). */
export async function headersFor(baseUrl: string, tenant: string, scopes?: readonly Scope[]): Promise<Record<string, string>> {
  const app = APPS.get(new URL(baseUrl).origin);
  return app ? app.authHeaders(tenant, scopes) : {};
}

/**
 * fetch() with the credentials of the tenant the URL names (`tenant_id=` in the query, else the
 * `tenant` option, else ANY_TENANT) on the test app it points at. For tests written with plain fetch.
 */
export async function authFetch(url: string, init: RequestInit & { tenant?: string; scopes?: readonly Scope[] } = {}): Promise<Response> {
  const { tenant, scopes, ...rest } = init;
  const u = new URL(url);
  const who = u.searchParams.get('tenant_id') ?? tenant ?? ANY_TENANT;
  const headers = { ...(await headersFor(u.origin, who, scopes)), ...Object.fromEntries(new Headers(rest.headers).entries()) };
  return fetch(url, { ...rest, headers });
}

/** The tenant a batch is for: the first event that names one. */
function tenantOf(events: unknown[]): string {
  for (const e of events) {
    const t = (e as { tenant_id?: unknown } | null)?.tenant_id;
    if (typeof t === 'string') return t;
  }
  return ANY_TENANT;
}

export type Counts = Record<EventKind, number>;

export function zeroCounts(): Counts {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Counts;
}

/** `n` valid events spread over campaigns and assets, with the exact per-campaign counts to expect. */
export function makeEvents(n: number, tenant: string, campaigns: string[], assetsPerCampaign = 10) {
  const events: EngagementEvent[] = [];
  const expected = new Map<string, Counts>(campaigns.map((c) => [c, zeroCounts()]));
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const campaign = campaigns[i % campaigns.length]!;
    const kind = EVENT_KINDS[(i * 7 + Math.floor(i / 3)) % EVENT_KINDS.length]!;
    events.push({
      event_id: ulid(now),
      tenant_id: tenant,
      campaign_id: campaign,
      asset_id: `${campaign}-asset-${i % assetsPerCampaign}`,
      kind,
      value: kind === 'dwell' ? 1500 : 1,
      occurred_at: now - (i % 120_000),
      received_at: 0,
      region: 'eu-west',
    });
    expected.get(campaign)![kind]++;
  }
  return { events, expected };
}

export async function postEvents(baseUrl: string, events: unknown[], options: { ndjson?: boolean; gzip?: boolean } = {}) {
  let body: Buffer = Buffer.from(options.ndjson ? events.map((e) => JSON.stringify(e)).join('\n') : JSON.stringify(events));
  const headers: Record<string, string> = { 'content-type': options.ndjson ? 'application/x-ndjson' : 'application/json' };
  if (options.gzip) {
    body = gzipSync(body);
    headers['content-encoding'] = 'gzip';
  }
  Object.assign(headers, await headersFor(baseUrl, tenantOf(events), ['ingest']));
  const res = await fetch(`${baseUrl}/v1/events`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as { accepted: number; rejected: number; rejections: { index: number; reason: string; field?: string }[] } };
}

/** Post in chunks, alternating JSON / gzip NDJSON so both decoders carry real load. */
export async function postAll(baseUrl: string, events: unknown[], chunk = 2500): Promise<number> {
  let accepted = 0;
  for (let i = 0; i < events.length; i += chunk) {
    const r = await postEvents(baseUrl, events.slice(i, i + chunk), { ndjson: (i / chunk) % 2 === 1, gzip: (i / chunk) % 2 === 1 });
    if (r.status !== 202) throw new Error(`post failed: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    accepted += r.body.accepted;
  }
  return accepted;
}

export async function fetchTotals(baseUrl: string, tenant: string, campaign: string, source: 'rollup' | 'raw' = 'rollup') {
  const res = await authFetch(`${baseUrl}/v1/campaigns/${encodeURIComponent(campaign)}/totals?tenant_id=${encodeURIComponent(tenant)}&source=${source}`);
  if (!res.ok) throw new Error(`totals: ${res.status} ${await res.text()}`);
  return (await res.json()) as { counts: Counts; total: number; late: number };
}

/** Resolves once the sink group has committed everything written to engagement.events. */
export async function waitForSinkDrained(running: Running, timeoutMs = 60_000): Promise<void> {
  const { bus, config } = running;
  await eventually(
    async () => {
      const [ends, committed] = await Promise.all([bus.endOffsets(TOPICS.events), bus.committedOffsets(config.sink.groupId, TOPICS.events)]);
      const at = new Map(committed.map((c) => [c.partition, BigInt(c.offset)]));
      const behind = ends.filter((e) => BigInt(e.offset) > 0n && (at.get(e.partition) ?? -1n) < BigInt(e.offset));
      return behind.length === 0 ? true : undefined;
    },
    timeoutMs,
    200,
  );
}

/**
 * The environment of a scenario on real Kafka + Redis + NATS (deploy/local), with a fresh Kafka
 * namespace; undefined (the scenario skips) when the services are not configured, an error under CI.
 */
/**
 * Waits until the trigger engine of `running` has finished `n` more evaluation passes than now (the
 * count of its evaluation histogram on the metrics listener): every rule has been evaluated since.
 */
export async function morePasses(running: Running, n: number): Promise<void> {
  const passes = async (): Promise<number> => {
    const m = /^afterglow_trigger_evaluation_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(await (await fetch(running.metricsUrl!)).text());
    if (!m) throw new Error('the trigger evaluation histogram is not exported');
    return Number(m[1]);
  };
  const from = await passes();
  await eventually(async () => ((await passes()) >= from + n ? true : undefined), 30_000);
}

export function realServicesEnv(): Env | undefined {
  const vars = ['KAFKA_BROKERS', 'REDIS_URL', 'NATS_URL'] as const;
  const missing = vars.filter((v) => !process.env[v]);
  // Locally the scenario skips (its caller's `if (!app) return t.skip(...)` goes through requireOrSkip); CI must have them.
  if (missing.length > 0 && underCI()) throw new Error(`${missing.join(', ')} not set: CI must start the local services (deploy/local/up.sh)`);
  if (missing.length > 0) return undefined;
  return { KAFKA_BROKERS: process.env.KAFKA_BROKERS!, KAFKA_NAMESPACE: uniqueName('test'), REDIS_URL: process.env.REDIS_URL!, NATS_URL: process.env.NATS_URL! };
}

export function configOf(app: TestApp): AfterglowConfig {
  return app.running.config;
}

export type OpenApiOperation = {
  responses: Record<string, { content?: Record<string, { schema?: Record<string, unknown> }> }>;
  'x-afterglow-scope': string;
};
export type OpenApiDocument = { paths: Record<string, Record<string, OpenApiOperation>>; components: { schemas: Record<string, unknown> } };

/**
 * Checks answers against the running server's own OpenAPI document (the routes' response schemas):
 * `check` throws when a JSON answer the document describes is off its schema; `fetch` is a fetch that
 * checks every answer it gets (give it to the typed client); `checked` names the operations checked.
 */
export async function answerChecker(baseUrl: string) {
  const spec = (await (await fetch(`${baseUrl}/v1/openapi.json`)).json()) as OpenApiDocument;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const checked = new Set<string>();
  const templateOf = (method: string, pathname: string) =>
    Object.keys(spec.paths).find((p) => spec.paths[p]![method] && new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(pathname));
  const check = (method: string, pathname: string, status: number, body: unknown): void => {
    const m = method.toLowerCase();
    const template = templateOf(m, pathname);
    const schema = template ? spec.paths[template]![m]!.responses[String(status)]?.content?.['application/json']?.schema : undefined;
    if (status < 200 || status > 299 || !schema) return;
    const validate = ajv.compile(schema);
    if (!validate(body)) {
      throw new Error(`${method.toUpperCase()} ${pathname} answered off its schema: ${describeSchemaErrors(validate.errors)}\n${JSON.stringify(body).slice(0, 600)}`);
    }
    checked.add(`${method.toUpperCase()} ${template}`);
  };
  const checkedFetch = async (input: Parameters<typeof fetch>[0], init?: RequestInit): Promise<Response> => {
    const res = await fetch(input, init);
    if (res.ok && (res.headers.get('content-type') ?? '').startsWith('application/json')) check(init?.method ?? 'GET', new URL(String(input)).pathname, res.status, await res.clone().json());
    return res;
  };
  return { spec, ajv, check, fetch: checkedFetch, checked };
}

export function describeSchemaErrors(errors: { instancePath: string; message?: string; params: unknown }[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('; ');
}

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { EVENT_KINDS, SCOPES, TOPICS, loadConfig, ulid, type AfterglowConfig, type Scope, type EngagementEvent, type EventKind, type Env } from '@afterglow/core';
import { eventually } from '@afterglow/core/testing';
import { start, type RoleName, type Running } from 'afterglow';

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
  close(): Promise<void>;
}

export async function startApp(env: Env, roles: RoleName[] = ['ingest', 'stream']): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-test-'));
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    AFTERGLOW_DATA_DIR: dataDir,
    AFTERGLOW_DEMO: '0',
    SINK_BATCH_MAX_MS: '200',
    ...env,
  });
  const running = await start(config, { roles, demo: false });
  // Until API keys land every request is anonymous; this is the one place tests get credentials.
  const authHeaders = async (_tenant: string, _scopes: readonly Scope[] = SCOPES): Promise<Record<string, string>> => ({});
  return {
    running,
    dataDir,
    authHeaders,
    async request(tenant, requestPath, init = {}) {
      const { scopes, ...rest } = init;
      const headers = { ...(await authHeaders(tenant, scopes)), ...Object.fromEntries(new Headers(rest.headers).entries()) };
      return fetch(`${running.url}${requestPath}`, { ...rest, headers });
    },
    async close() {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
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
  const res = await fetch(`${baseUrl}/v1/campaigns/${encodeURIComponent(campaign)}/totals?tenant_id=${encodeURIComponent(tenant)}&source=${source}`);
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

export function configOf(app: TestApp): AfterglowConfig {
  return app.running.config;
}

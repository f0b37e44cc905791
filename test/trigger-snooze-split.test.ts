/**
 * Snoozes with split roles on real Kafka + Redis + NATS + ClickHouse over HTTP (deploy/local): one
 * process serves the triggers API and evaluates nothing (TRIGGERS_ENABLED=0), another evaluates. A
 * snooze and an un-snooze made through the first are honoured by the second at once: the engine reads
 * them from the shared hot state, not from its own memory.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ulid, type EngagementEvent, type Scope } from '@afterglow/core';
import { eventually, skipOption, uniqueName } from '@afterglow/testkit/services';
import { morePasses, postAll, realServicesEnv, startApp, waitForSinkDrained, type TestApp } from './support.js';

const services = realServicesEnv();
const clickhouse = process.env.CLICKHOUSE_URL;
if (services && !clickhouse && process.env.CI) throw new Error('CLICKHOUSE_URL is not set: CI must start the local services (deploy/local/up.sh)');
const missing = !services || !clickhouse ? 'KAFKA_BROKERS / REDIS_URL / NATS_URL / CLICKHOUSE_URL not set (source deploy/local/env.sh)' : false;

const tenant = uniqueName('split');
const campaign = uniqueName('spike');
let apiApp: TestApp | undefined;
let engineApp: TestApp | undefined;

before(async () => {
  // not-a-skip: without the services the test below is skipped by skipOption (which throws under CI).
  if (missing) return;
  const shared = {
    ...services!,
    CLICKHOUSE_URL: clickhouse!,
    CLICKHOUSE_DATABASE: uniqueName('test').replace(/-/g, '_'),
    SINK_GROUP_ID: uniqueName('sink'),
    LIVE_GROUP_ID: uniqueName('live'),
    LIVE_KEY_PREFIX: uniqueName('live'),
    LIVE_FLUSH_MS: '200',
    TRIGGERS_GROUP_ID: uniqueName('trig'),
    TRIGGERS_EVAL_MS: '250',
    TRIGGERS_RULES_REFRESH_MS: '500',
  };
  // The evaluator first (it applies the schema), then the API-only process beside it.
  engineApp = await startApp(shared, ['ingest', 'stream', 'live']);
  apiApp = await startApp({ ...shared, TRIGGERS_ENABLED: '0' }, ['live']);
});
after(async () => {
  // One after the other, as an operator stops them: the second stops while its consumers rebalance
  // to take the first one's partitions, which must not hold its shutdown.
  await apiApp?.close();
  await engineApp?.close();
});

function spike(asset: string): EngagementEvent[] {
  const now = Date.now();
  const ev = (kind: EngagementEvent['kind'], at: number): EngagementEvent => ({ event_id: ulid(at), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: 1, occurred_at: at, received_at: 0 });
  const events: EngagementEvent[] = [];
  for (let m = 1; m <= 14; m++) for (let i = 0; i < 20; i++) events.push(ev(i < 5 ? 'share' : 'impression', now - m * 60_000 - i * 1_000));
  for (let i = 0; i < 100; i++) events.push(ev('share', now - i * 200), ev('impression', now - i * 200));
  return events;
}

test('a snooze made on the API process stops the engine process from firing; un-snoozed there, it fires', { skip: skipOption(missing), timeout: 180_000 }, async () => {
  const api = apiApp!;
  const engine = engineApp!;
  const call = async (app: TestApp, method: string, p: string, body?: unknown, scopes?: readonly Scope[]) => {
    const res = await app.request(tenant, p, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}), ...(scopes ? { scopes } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const log = async () => ((await call(api, 'GET', `/v1/triggers/log?tenant_id=${tenant}&campaign_id=${campaign}`)).body.firings as { rule_id: string }[]).map((f) => f.rule_id);

  for (const id of ['open', 'snoozed']) {
    const r = await call(api, 'PUT', `/v1/triggers/rules/${id}`, { tenant_id: tenant, campaign_id: campaign, kind: 'velocity_spike', params: { factor: 3, min_per_min: 20, min_impressions: 0, debounce_evals: 1 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  assert.equal((await call(api, 'PUT', '/v1/triggers/rules/snoozed/snooze', { tenant_id: tenant, for_ms: 3_600_000 })).status, 200);

  const events = spike('viral');
  assert.equal(await postAll(engine.running.url, events, 2000), events.length);
  await waitForSinkDrained(engine.running);
  await eventually(async () => ((await log()).includes('open') ? true : undefined), 60_000);
  await morePasses(engine.running, 2);
  assert.deepEqual(await log(), ['open'], 'the engine process honoured the snooze made on the API process');

  assert.equal((await call(api, 'DELETE', `/v1/triggers/rules/snoozed/snooze?tenant_id=${tenant}`)).status, 200);
  await eventually(async () => ((await log()).includes('snoozed') ? true : undefined), 30_000);
});

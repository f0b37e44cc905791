/**
 * Snoozing rules and acknowledging firings through the real server on the embedded adapters: the
 * API's validation (coded errors), scopes and tenant isolation (another tenant's rule or firing reads
 * as absent: 404), and the behaviour: two identical rules see the same spike, the snoozed one neither
 * fires nor calls its webhook while the other does; un-snoozed, it fires. A firing acknowledged shows
 * who and when in the log. Then the server restarts on the same data: the snooze is still honoured.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, ulid, type EngagementEvent, type Scope } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { start, type Running } from 'afterglow';
import { morePasses, postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

const TRIGGER_ENV = {
  KAFKA_BROKERS: '',
  REDIS_URL: '',
  NATS_URL: '',
  SINK_GROUP_ID: uniqueName('sink'),
  LIVE_GROUP_ID: uniqueName('live'),
  LIVE_KEY_PREFIX: uniqueName('live'),
  LIVE_FLUSH_MS: '200',
  TRIGGERS_GROUP_ID: uniqueName('trig'),
  TRIGGERS_EVAL_MS: '250',
  TRIGGERS_RULES_REFRESH_MS: '500',
  TRIGGERS_WEBHOOK_BACKOFF_MS: '50',
  TRIGGERS_WEBHOOK_MAX_ATTEMPTS: '2',
};

type Json = Record<string, unknown>;
type Call = (method: string, p: string, body?: unknown, scopes?: readonly Scope[]) => Promise<{ status: number; body: Json }>;

function caller(request: (p: string, init: RequestInit & { scopes?: readonly Scope[] }) => Promise<Response>): Call {
  return async (method, p, body, scopes) => {
    const res = await request(p, {
      method,
      ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
      ...(scopes ? { scopes } : {}),
    });
    return { status: res.status, body: (await res.json()) as Json };
  };
}

/** Events that make a velocity_spike rule on `campaign` hold: quiet minutes, then a burst of shares. */
function spikeEvents(tenant: string, campaign: string): EngagementEvent[] {
  const now = Date.now();
  const asset = `${campaign}-viral`;
  const ev = (kind: EngagementEvent['kind'], at: number): EngagementEvent => ({ event_id: ulid(at), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: 1, occurred_at: at, received_at: 0 });
  const events: EngagementEvent[] = [];
  for (let m = 1; m <= 14; m++) for (let i = 0; i < 20; i++) events.push(ev(i < 5 ? 'share' : 'impression', now - m * 60_000 - i * 1_000));
  for (let i = 0; i < 100; i++) events.push(ev('share', now - i * 200), ev('impression', now - i * 200));
  return events;
}

const SPIKE_RULE = { kind: 'velocity_spike', params: { factor: 3, min_per_min: 20, min_impressions: 0, debounce_evals: 1 } };

interface Firing {
  firing_id: string;
  rule_id: string;
  acknowledged: { by: string; key_id: string | null; at: number; note: string | null } | null;
  deliveries: { target: string; status: string }[];
}

/** Waits until the engine has finished two more passes than now: every rule has been evaluated since. */
const twoMorePasses = (running: Running): Promise<void> => morePasses(running, 2);

async function firingsOf(call: Call, tenant: string, campaign: string): Promise<Firing[]> {
  const r = await call('GET', `/v1/triggers/log?tenant_id=${tenant}&campaign_id=${campaign}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.firings as Firing[];
}

describe('trigger snoozes and acknowledgements over the API', () => {
  let app: TestApp;
  let receiver: Server;
  const hits: string[] = [];
  const tenantA = uniqueName('tenant-a');
  const tenantB = uniqueName('tenant-b');
  let asA: Call;
  let asB: Call;

  before(async () => {
    receiver = createServer((req, res) => {
      hits.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const port = (receiver.address() as AddressInfo).port;
    app = await startApp({ ...TRIGGER_ENV, TRIGGERS_WEBHOOK_ALLOW_HOSTS: `127.0.0.1:${port}`, TRIGGERS_WEBHOOK_ALLOW_PRIVATE: '1' }, ['ingest', 'stream', 'live']);
    asA = caller((p, init) => app.request(tenantA, p, init));
    asB = caller((p, init) => app.request(tenantB, p, init));
  });
  after(async () => {
    await app?.close();
    receiver?.close();
  });

  test('validation: bad snoozes and acks get 400 with a stable code; an unknown rule or firing is 404; read keys may not change anything', async () => {
    assert.equal((await asA('PUT', '/v1/triggers/rules/valid', { tenant_id: tenantA, ...SPIKE_RULE, enabled: false })).status, 200);
    const now = Date.now();
    const bad: [unknown, string][] = [
      [{}, 'exactly one of until'],
      [{ until: now + 60_000, for_ms: 60_000 }, 'exactly one of until'],
      [{ until: now - 1 }, 'in the future'],
      [{ for_ms: 0 }, 'for_ms'],
      [{ for_ms: -5 }, 'for_ms'],
      [{ for_ms: 1.5 }, 'for_ms'],
      [{ for_ms: 91 * 86_400_000 }, 'for_ms'],
      [{ until: now + 91 * 86_400_000 }, 'at most 90 days'],
      [{ for_ms: 60_000, asset_id: 'a', campaign_id: 'c' }, 'not both'],
      [{ for_ms: 60_000, asset_id: '../etc' }, 'asset_id'],
      [{ for_ms: 60_000, note: 'x'.repeat(501) }, 'note'],
      [{ for_ms: 60_000, surprise: true }, 'surprise'],
      [{ for_ms: '60000' }, 'for_ms'],
      [[1, 2], 'snooze'],
    ];
    for (const [body, words] of bad) {
      const r = await asA('PUT', '/v1/triggers/rules/valid/snooze', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error, 'invalid_snooze', JSON.stringify(body));
      assert.match(String(r.body.message), new RegExp(words), JSON.stringify(body));
    }
    const missing = await asA('PUT', '/v1/triggers/rules/no-such-rule/snooze', { for_ms: 60_000 });
    assert.deepEqual([missing.status, missing.body.error], [404, 'not_found']);
    const unsnoozeNothing = await asA('DELETE', '/v1/triggers/rules/valid/snooze');
    assert.deepEqual([unsnoozeNothing.status, unsnoozeNothing.body.error], [404, 'not_found']);
    const readOnly = await asA('PUT', '/v1/triggers/rules/valid/snooze', { for_ms: 60_000 }, ['read']);
    assert.deepEqual([readOnly.status, readOnly.body.error], [403, 'scope_forbidden']);
    const ackNothing = await asA('POST', `/v1/triggers/firings/${ulid()}/ack`, {});
    assert.deepEqual([ackNothing.status, ackNothing.body.error], [404, 'not_found']);
    const badAck = await asA('POST', `/v1/triggers/firings/${ulid()}/ack`, { by: 'x'.repeat(129) });
    assert.deepEqual([badAck.status, badAck.body.error], [400, 'invalid_ack']);
    // A snooze that is taken shows on the rule, and replaces the earlier one of the same target.
    const ok = await asA('PUT', '/v1/triggers/rules/valid/snooze', { for_ms: 3_600_000, note: 'campaign paused' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal((await asA('PUT', '/v1/triggers/rules/valid/snooze', { for_ms: 7_200_000 })).status, 200);
    assert.equal((await asA('PUT', '/v1/triggers/rules/valid/snooze', { for_ms: 600_000, asset_id: 'ad-1' })).status, 200);
    const listed = await asA('GET', `/v1/triggers/rules?tenant_id=${tenantA}`);
    const rule = (listed.body.rules as { rule_id: string; snoozes: { asset_id: string | null; until: number; note: string | null }[] }[]).find((r) => r.rule_id === 'valid')!;
    assert.equal(rule.snoozes.length, 2);
    const whole = rule.snoozes.find((s) => s.asset_id === null)!;
    assert.ok(whole.until > now + 7_000_000 && whole.note === null, JSON.stringify(whole));
    // A read key sees them.
    assert.equal((await asA('GET', `/v1/triggers/rules?tenant_id=${tenantA}`, undefined, ['read'])).status, 200);
    // Un-snooze one target; the other stays.
    assert.equal((await asA('DELETE', '/v1/triggers/rules/valid/snooze?asset_id=ad-1')).status, 200);
    const after1 = await asA('GET', `/v1/triggers/rules?tenant_id=${tenantA}`);
    assert.deepEqual((after1.body.rules as { rule_id: string; snoozes: unknown[] }[]).find((r) => r.rule_id === 'valid')!.snoozes.length, 1);
    // Deleting the rule ends its snoozes: one made again with its id starts unsnoozed.
    assert.equal((await asA('DELETE', `/v1/triggers/rules/valid?tenant_id=${tenantA}`)).status, 200);
    assert.equal((await asA('PUT', '/v1/triggers/rules/valid', { tenant_id: tenantA, ...SPIKE_RULE, enabled: false })).status, 200);
    const again = await asA('GET', `/v1/triggers/rules?tenant_id=${tenantA}`);
    assert.deepEqual((again.body.rules as { rule_id: string; snoozes: unknown[] }[]).find((r) => r.rule_id === 'valid')!.snoozes, []);
  });

  test('a snoozed rule neither fires nor calls its webhook while its twin does; acknowledged firings say who; tenant B cannot touch any of it', async () => {
    const campaign = uniqueName('spike');
    const port = (receiver.address() as AddressInfo).port;
    const rule = (id: string) => ({ tenant_id: tenantA, campaign_id: campaign, ...SPIKE_RULE, webhook_url: `http://127.0.0.1:${port}/${id}` });
    for (const id of ['open', 'snoozed']) {
      const r = await asA('PUT', `/v1/triggers/rules/${campaign}-${id}`, rule(id));
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const snoozed = await asA('PUT', `/v1/triggers/rules/${campaign}-snoozed/snooze`, { for_ms: 3_600_000 });
    assert.equal(snoozed.status, 200, JSON.stringify(snoozed.body));

    // Tenant B: A's rule does not exist for it (404), naming A's tenant is forbidden (403).
    for (const [method, p, body] of [
      ['PUT', `/v1/triggers/rules/${campaign}-open/snooze`, { for_ms: 60_000 }],
      ['DELETE', `/v1/triggers/rules/${campaign}-snoozed/snooze`, undefined],
    ] as const) {
      const r = await asB(method, p, body);
      assert.deepEqual([r.status, r.body.error], [404, 'not_found'], `${method} ${p}`);
    }
    const claimed = await asB('PUT', `/v1/triggers/rules/${campaign}-open/snooze`, { tenant_id: tenantA, for_ms: 60_000 });
    assert.deepEqual([claimed.status, claimed.body.error], [403, 'tenant_forbidden']);

    const events = spikeEvents(tenantA, campaign);
    assert.equal(await postAll(app.running.url, events, 2000), events.length);
    await waitForSinkDrained(app.running);
    // The open twin fires and its webhook is delivered: the snoozed one saw the same evaluations.
    const fired = await eventually(async () => {
      const f = await firingsOf(asA, tenantA, campaign);
      return f.some((x) => x.deliveries.some((d) => d.status === 'delivered')) ? f : undefined;
    }, 60_000);
    await twoMorePasses(app.running);
    assert.deepEqual(
      (await firingsOf(asA, tenantA, campaign)).map((f) => f.rule_id),
      [`${campaign}-open`],
    );
    assert.deepEqual(hits, ['/open'], 'the snoozed rule called no webhook');
    const firing = fired[0]!;
    assert.equal(firing.acknowledged, null);

    // B cannot acknowledge A's firing, nor read it.
    const bAck = await asB('POST', `/v1/triggers/firings/${firing.firing_id}/ack`, { note: 'mine now' });
    assert.deepEqual([bAck.status, bAck.body.error], [404, 'not_found']);
    assert.deepEqual(await firingsOf(asB, tenantB, campaign), []);
    // Read keys may not acknowledge.
    assert.equal((await asA('POST', `/v1/triggers/firings/${firing.firing_id}/ack`, {}, ['read'])).status, 403);
    const ack = await asA('POST', `/v1/triggers/firings/${firing.firing_id}/ack`, { by: 'Dana', note: 'new variant briefed' });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    const twice = await asA('POST', `/v1/triggers/firings/${firing.firing_id}/ack`, { by: 'Sam' });
    assert.deepEqual([twice.status, twice.body.error], [409, 'already_acknowledged']);
    const [logged] = await firingsOf(asA, tenantA, campaign);
    assert.equal(logged!.acknowledged?.by, 'Dana');
    assert.equal(logged!.acknowledged?.note, 'new variant briefed');
    assert.match(String(logged!.acknowledged?.key_id), /^k[0-9a-f]{16}$/);

    // Un-snoozed while the spike still holds: the snoozed twin fires now.
    assert.equal((await asA('DELETE', `/v1/triggers/rules/${campaign}-snoozed/snooze?tenant_id=${tenantA}`)).status, 200);
    const both = await eventually(async () => {
      const f = await firingsOf(asA, tenantA, campaign);
      return f.some((x) => x.rule_id === `${campaign}-snoozed`) ? f : undefined;
    }, 30_000);
    assert.equal(both.length, 2);
  });
});

test('a snooze survives a restart: after it the snoozed rule still does not fire while its twin does', { timeout: 180_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-snooze-restart-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const boot = () =>
    start(loadConfig({ PORT: '0', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', AFTERGLOW_DATA_DIR: dataDir, AFTERGLOW_DEMO: '0', SINK_BATCH_MAX_MS: '200', PREDICT_WORKERS_ENABLED: '0', AUTH_MODE: 'off', METRICS_PORT: '0', ...TRIGGER_ENV }), {
      roles: ['ingest', 'stream', 'live'],
      demo: false,
    });
  const tenant = uniqueName('tenant');
  const campaign = uniqueName('restart');
  let running: Running = await boot();
  t.after(() => running.stop());
  const call = caller((p, init) => fetch(`${running.url}${p}`, init));
  for (const id of ['open', 'snoozed']) assert.equal((await call('PUT', `/v1/triggers/rules/${campaign}-${id}`, { tenant_id: tenant, campaign_id: campaign, ...SPIKE_RULE })).status, 200);
  assert.equal((await call('PUT', `/v1/triggers/rules/${campaign}-snoozed/snooze`, { tenant_id: tenant, for_ms: 3_600_000, campaign_id: campaign })).status, 200);

  await running.stop();
  running = await boot();
  // The memory hot state started empty: the snooze came back from the store.
  const listed = await call('GET', `/v1/triggers/rules?tenant_id=${tenant}`);
  const snoozes = (listed.body.rules as { rule_id: string; snoozes: { campaign_id: string | null }[] }[]).find((r) => r.rule_id === `${campaign}-snoozed`)!.snoozes;
  assert.deepEqual(
    snoozes.map((s) => s.campaign_id),
    [campaign],
  );
  const events = spikeEvents(tenant, campaign);
  assert.equal(await postAll(running.url, events, 2000), events.length);
  await waitForSinkDrained(running);
  await eventually(async () => ((await firingsOf(call, tenant, campaign)).length > 0 ? true : undefined), 60_000);
  // The twin fired; two more full passes and the snoozed rule has still not.
  await twoMorePasses(running);
  assert.deepEqual(
    (await firingsOf(call, tenant, campaign)).map((f) => f.rule_id),
    [`${campaign}-open`],
  );
});

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  SUBJECTS,
  TOPICS,
  WEBHOOK_HEADERS,
  createLogger,
  ulid,
  variantRequestSchema,
  verifyWebhook,
  type EngagementEvent,
  type Env,
  type AssetScore,
  type TieDecision,
  type VariantRequest,
} from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { LiveKeys, TriggerEngine, TriggerStore } from '@afterglow/live';
import { createApiClient } from '@afterglow/core/api';
import { answerChecker, postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Triggers end to end: a synthetic creative whose engagement decays is posted through the real
 * pipeline (HTTP -> bus -> live aggregator -> hot state); the fatigue rule fires exactly once although
 * two evaluators run (the app's and a second engine on the same hot state); the variant request
 * arrives once on the bus topic and once on the fan-out; its webhook reaches a receiver that fails
 * twice, with a valid signature; and a new variant tied to the same master closes the loop.
 */
export function triggerScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  let receiver: Server | undefined;
  const received: { body: string; headers: IncomingMessage['headers']; status: number }[] = [];
  const cleanup: (() => Promise<unknown>)[] = [];
  const tenant = uniqueName('tenant');
  const secret = 'a-test-secret-of-32-characters!!';

  before(async () => {
    const e = env();
    if (!e) return; // not-a-skip: env() is undefined only where the tests then skipOrFail (realServicesEnv throws under CI)
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        // Fails the first two deliveries: the third attempt must still bring it.
        const status = received.length < 2 ? 503 : 204;
        received.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers, status });
        res.statusCode = status;
        res.end();
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    app = await startApp(
      {
        SINK_GROUP_ID: uniqueName('sink'),
        LIVE_GROUP_ID: uniqueName('live'),
        LIVE_KEY_PREFIX: uniqueName('live'),
        LIVE_FLUSH_MS: '200',
        TRIGGERS_GROUP_ID: uniqueName('trig'),
        TRIGGERS_EVAL_MS: '250',
        TRIGGERS_RULES_REFRESH_MS: '500',
        TRIGGERS_WEBHOOK_BACKOFF_MS: '50',
        TRIGGERS_WEBHOOK_MAX_ATTEMPTS: '5',
        LIVE_DECAY_REFIT_MS: '1000',
        // The receiver is on loopback: an explicit opt-in for exactly its host and port.
        TRIGGERS_WEBHOOK_ALLOW_HOSTS: `127.0.0.1:${(receiver.address() as AddressInfo).port}`,
        TRIGGERS_WEBHOOK_ALLOW_PRIVATE: '1',
        ...e,
      },
      ['ingest', 'stream', 'live'],
    );
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
    await app?.close();
    receiver?.close();
  });

  test(`${label}: a decaying creative fires once; webhook signed and retried; the loop closes`, async (t) => {
    if (!app || !receiver) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const running = app.running;
    const live = running.live!;
    const campaign = uniqueName('c');
    const fading = `${campaign}-fading`;
    const steady = `${campaign}-steady`;
    const master = `${campaign}-master`;
    const variant = `${campaign}-variant`;
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

    // A second evaluator on the same hot state / store: it must never fire what the app's engine fired.
    const config = running.config;
    const producer = await running.bus.producer();
    cleanup.push(() => producer.close());
    const second = new TriggerEngine({
      // The app's webhook key: the rule's secret is stored sealed.
      store: new TriggerStore(running.store!, { secretKey: config.triggers.secretKey }),
      hot: live.hot,
      fanout: live.fanout,
      bus: running.bus,
      producer,
      keys: new LiveKeys(config.live.keyPrefix),
      lateMs: config.events.liveLateMs,
      ci: { maxRelWidth: config.live.ciMaxRelWidth, maxAbsWidth: config.live.ciMaxAbsWidth },
      settings: { ...config.triggers, groupId: uniqueName('trig2') },
      refitMs: config.live.decayRefitMs,
      processId: 'second',
      log: createLogger('warn', { service: 'second-engine' }),
    });

    // Everything a firing is sent on, counted from the start.
    const onFanout: VariantRequest[] = [];
    const sub = live.fanout.subscribe(SUBJECTS.variantRequests(tenant), (data) => onFanout.push(JSON.parse(Buffer.from(data).toString('utf8')) as VariantRequest));
    cleanup.push(async () => sub.unsubscribe());
    const onTopic: VariantRequest[] = [];
    const consumer = running.bus.consumer({ groupId: uniqueName('variants'), topics: [TOPICS.variantRequests], fromBeginning: true });
    await consumer.run(async (batch) => {
      for (const r of batch.records) onTopic.push(JSON.parse(r.value.toString('utf8')) as VariantRequest);
    });
    cleanup.push(() => consumer.stop());

    // The fading ad is tied to a master first, so its firing names the master.
    const tie = (ad: string, at: number): TieDecision => ({ action: 'tie', tenant_id: tenant, ad_asset_id: ad, target_asset_id: master, auto: false, decided_by: 'test', decided_at: at });
    await producer.send(TOPICS.assetsTies, [{ key: fading, value: Buffer.from(JSON.stringify(tie(fading, Date.now()))) }]);
    // The model's latest score of the fading creative: its attribution becomes the request's hints.
    const score: AssetScore = {
      tenant_id: tenant,
      asset_id: fading,
      campaign_id: campaign,
      model_version: 'test-1',
      predicted: 0.1,
      flag: 'under',
      attribution: [
        { element: 'subject_colour', edit: 'recolour:silver', delta: 0.08, ci_low: 0.05, ci_high: 0.11, n: 24 },
        { element: 'background', edit: 'blur_background', delta: -0.03, ci_low: -0.05, ci_high: -0.01, n: 24 },
      ],
      reason: 'registered',
      scored_at: Date.now(),
    };
    // Sent once the engine reads assets.scores: the in-process log drops a record every subscribed
    // group has committed past, so a group that joins later (unlike on Kafka) would not see it.
    await second.start();
    cleanup.push(() => second.stop());
    await producer.send(TOPICS.assetsScores, [{ key: fading, value: Buffer.from(JSON.stringify(score)) }]);

    // Nine minutes of a creative whose engagement halves every ~1.4 minutes, next to a steady one.
    const now = Date.now();
    const events: EngagementEvent[] = [];
    const ev = (asset: string, kind: EngagementEvent['kind'], time: number): EngagementEvent => {
      const at = Math.round(time);
      return {
      event_id: ulid(at),
      tenant_id: tenant,
      campaign_id: campaign,
      asset_id: asset,
      kind,
      value: 1,
      occurred_at: at,
      received_at: 0,
      };
    };
    const span = 9 * 60_000;
    const start = now - span;
    for (let m = 0; m < 9; m++) {
      const clicks = Math.round(120 * Math.exp(-0.5 * m));
      for (let i = 0; i < clicks; i++) events.push(ev(fading, 'click', start + m * 60_000 + ((i + 0.5) * 60_000) / clicks));
    }
    for (let j = 0; j < 9 * 60; j++) {
      const at = start + j * 1_000;
      events.push(ev(fading, 'impression', at), ev(fading, 'impression', at), ev(steady, 'impression', at), ev(steady, 'impression', at));
      if (j % 3 === 0) events.push(ev(steady, 'click', at));
    }
    assert.equal(await postAll(running.url, events, 2000), events.length);
    // The rule starts once the live state holds the whole backfill: a creative whose latest minutes
    // have not arrived yet looks faded, and fatigue would rightly say so.
    for (const [asset, impressions] of [[fading, 1080], [steady, 1080]] as const) {
      await eventually(async () => {
        const res = await app!.request(tenant, `/v1/assets/${asset}/metrics?tenant_id=${tenant}`);
        if (res.status !== 200) return undefined;
        const m = (await res.json()) as { windows: Record<string, { counts: Record<string, number> }> };
        return m.windows['24h']!.counts.impression === impressions ? true : undefined;
      }, 30_000);
    }
    await eventually(() => second.scoreOf(tenant, fading), 20_000);
    const put = await app.request(tenant, `/v1/triggers/rules/fade-${campaign}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        tenant_id: tenant,
        campaign_id: campaign,
        kind: 'fatigue',
        params: { fraction: 0.5, min_events: 30, debounce_evals: 2 },
        cooldown_ms: 3_600_000,
        webhook_url: hookUrl,
        webhook_secret: secret,
      }),
    });
    assert.equal(put.status, 200, await put.clone().text());
    const { rule } = (await put.json()) as { rule: Record<string, unknown> };
    assert.equal(rule.webhook_secret_set, true);
    assert.equal(rule.webhook_secret, undefined, 'the secret never comes back');
    const bad = await app.request(tenant, `/v1/triggers/rules/bad-${campaign}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: tenant, kind: 'fatigue', params: { fraction: 2 } }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /params\.fraction/);


    // The webhook: two failures, then delivered, signed over `${t}.${body}`.
    await eventually(() => (received.length >= 3 ? true : undefined), 60_000, 100);
    const delivered = received[2]!;
    assert.equal(delivered.status, 204);
    assert.ok(verifyWebhook(secret, String(delivered.headers[WEBHOOK_HEADERS.signature]), delivered.body), 'signature verifies');
    assert.ok(!verifyWebhook('another-secret-of-32-characters!', String(delivered.headers[WEBHOOK_HEADERS.signature]), delivered.body), 'and not with another secret');
    assert.ok(!verifyWebhook(secret, String(delivered.headers[WEBHOOK_HEADERS.signature]), `${delivered.body} `), 'and not for another body');
    const request = variantRequestSchema.parse(JSON.parse(delivered.body));
    assert.equal(request.kind, 'fatigue');
    assert.equal(request.asset_id, fading);
    assert.equal(request.master_asset_id, master);
    assert.equal(request.campaign_id, campaign);
    assert.equal(request.numbers.status, 'ok');
    assert.ok(Number(request.numbers.of_peak) < 0.5, `below half its fitted peak: ${JSON.stringify(request.numbers)}`);
    assert.ok(Number(request.numbers.half_life_ms) > 30_000 && Number(request.numbers.half_life_ms) < 180_000, `half-life about 83 s: ${request.numbers.half_life_ms}`);
    assert.match(request.reason, /fitted peak/);
    assert.deepEqual(request.hints, ['subject colour silver +8% ± 3%'], 'hints from the latest assets.scores');
    assert.equal(request.model_version, 'test-1');
    for (const r of received) assert.equal(JSON.parse(r.body).request_id, request.request_id, 'retries carry the same request');

    // Once: more evaluations (both engines, every 250 ms) add nothing anywhere.
    await eventually(() => (onTopic.length >= 1 && onFanout.length >= 1 ? true : undefined), 30_000);
    const evaluated = second.totals.evaluations;
    await eventually(() => (second.totals.evaluations >= evaluated + 8 ? true : undefined), 30_000);
    assert.equal(received.length, 3, 'no second delivery');
    assert.deepEqual(onTopic.map((r) => r.request_id), [request.request_id], 'one record on creative.variant-requests');
    assert.deepEqual(onFanout.map((r) => r.request_id), [request.request_id], 'one message on the fan-out');
    // Whichever evaluator claimed it first fired; the other one saw the same condition and stood down.
    assert.ok(second.totals.fired + second.totals.suppressed >= 1, 'the second evaluator saw the condition too');
    assert.ok(second.totals.fired <= 1);

    // The typed client, every answer checked against the document (the firing's detail has no data in the contract test).
    const checker = await answerChecker(running.url);
    const api = createApiClient({ baseUrl: running.url, apiKey: (await app.authHeaders(tenant)).authorization?.replace(/^Bearer /, ''), fetch: checker.fetch });
    const log = async () => (await api.triggersLog({ query: { tenant_id: tenant, campaign_id: campaign } })).firings;
    const firings = await eventually(async () => {
      const f = await log();
      return f.length === 1 && f[0]!.deliveries[0]?.status === 'delivered' ? f : undefined;
    }, 20_000);
    assert.equal(firings[0]!.asset_id, fading, 'the steady creative did not fire');
    assert.deepEqual(firings[0]!.deliveries.map((d) => [d.status, d.attempts]), [['delivered', 3]]);

    // Closing the loop: a new variant registered and tied to the same master.
    const at = Date.now();
    await producer.send(TOPICS.assetsChanges, [
      { key: variant, value: Buffer.from(JSON.stringify({ type: 'registered', tenant_id: tenant, asset_id: variant, role: 'ad', campaign_id: campaign, at })) },
    ]);
    await producer.send(TOPICS.assetsTies, [{ key: variant, value: Buffer.from(JSON.stringify(tie(variant, at + 1))) }]);
    const closed = await eventually(async () => {
      const f = await log();
      return f[0]!.replaced_by.length === 1 ? f[0]! : undefined;
    }, 30_000);
    assert.equal(closed.replaced_by[0]!.asset_id, variant);
    const body = await api.triggerFiring({ path: { firing_id: closed.firing_id }, query: { tenant_id: tenant } });
    assert.ok(checker.checked.has('GET /v1/triggers/firings/{firing_id}'), 'the firing detail was checked against its documented schema');
    assert.equal(body.replaced.asset_id, fading);
    assert.equal(body.firing.master_now, master);
    // The log names the master the creative counted for when it fired, and the one it counts for now.
    assert.deepEqual([closed.master_asset_id, closed.master_now], [master, master]);
    await producer.send(TOPICS.assetsTies, [{ key: fading, value: Buffer.from(JSON.stringify({ ...tie(fading, Date.now()), action: 'untie' })) }]);
    const untied = await eventually(async () => {
      const f = (await log())[0]!;
      return f.master_now === null ? f : undefined;
    }, 20_000);
    assert.equal(untied.master_asset_id, master, 'the firing keeps the master it fired under');
    assert.ok(body.replaced.metrics, 'the replaced creative has live metrics');
    assert.deepEqual(body.variants.map((v) => v.asset_id), [variant]);

    // Rules API: list, delete.
    const rules = (await (await app.request(tenant, `/v1/triggers/rules?tenant_id=${tenant}`)).json()) as { rules: { rule_id: string }[] };
    assert.deepEqual(rules.rules.map((r) => r.rule_id), [`fade-${campaign}`]);
    const del = await app.request(tenant, `/v1/triggers/rules/fade-${campaign}?tenant_id=${tenant}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    const after = (await (await app.request(tenant, `/v1/triggers/rules?tenant_id=${tenant}`)).json()) as { rules: unknown[] };
    assert.equal(after.rules.length, 0);
  });

  test(`${label}: a tenant-wide rule finds the tenant's campaigns and fires on a velocity spike`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const running = app.running;
    const other = uniqueName('tenant');
    const campaign = uniqueName('c');
    const viral = `${campaign}-viral`;
    const now = Date.now();
    const events: EngagementEvent[] = [];
    const ev = (kind: EngagementEvent['kind'], at: number): EngagementEvent => ({ event_id: ulid(at), tenant_id: other, campaign_id: campaign, asset_id: viral, kind, value: 1, occurred_at: at, received_at: 0 });
    // Fourteen quiet minutes (5 shares a minute), then 100 in the last 20 seconds.
    for (let m = 1; m <= 14; m++) for (let i = 0; i < 20; i++) events.push(ev(i < 5 ? 'share' : 'impression', now - m * 60_000 - i * 1_000));
    for (let i = 0; i < 100; i++) events.push(ev('share', now - i * 200), ev('impression', now - i * 200));
    assert.equal(await postAll(running.url, events, 2000), events.length);
    await waitForSinkDrained(running);
    const put = await app.request(other, '/v1/triggers/rules/spikes', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: other, kind: 'velocity_spike', params: { factor: 3, min_per_min: 20, min_impressions: 0 } }),
    });
    assert.equal(put.status, 200, await put.clone().text());
    assert.equal(((await put.json()) as { rule: { campaign_id: unknown } }).rule.campaign_id, null);
    const firing = await eventually(async () => {
      const res = await app!.request(other, `/v1/triggers/log?tenant_id=${other}`);
      const f = ((await res.json()) as { firings: { kind: string; asset_id: string; campaign_id: string; numbers: Record<string, number> }[] }).firings;
      return f.length > 0 ? f : undefined;
    }, 30_000);
    assert.equal(firing.length, 1);
    assert.deepEqual([firing[0]!.kind, firing[0]!.asset_id, firing[0]!.campaign_id], ['velocity_spike', viral, campaign]);
    assert.ok(firing[0]!.numbers.ratio! >= 3, JSON.stringify(firing[0]!.numbers));
  });
}

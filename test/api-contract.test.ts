import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type EngagementEvent, ulid } from '@afterglow/core';
import { API_ROUTES, type ApiClient, ApiError, createApiClient } from '@afterglow/core/api';
import { assetForm, ensureTestModels, noiseImage, testModelsDir } from '@afterglow/testkit/inference';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { ROLES, runKeysCommand } from 'afterglow';
import { answerChecker, describeSchemaErrors, type OpenApiDocument, type OpenApiOperation, startApp, type TestApp, waitForSinkDrained } from './support.js';

/**
 * The REST contract against a running server (every role in this process, embedded adapters):
 *   - every operation of /v1/openapi.json documents a 2xx JSON schema, but the few listed in
 *     NO_JSON_ANSWER (bytes) with the reason, and the dashboard's files (WebSocket endpoints are not operations);
 *   - every documented GET answers, for a key with its scope and data this test made, a body its
 *     documented schema accepts (a field a handler adds without the schema, or a type that drifts,
 *     fails here); the routes this setup cannot give data are listed in NO_DATA_HERE with the reason,
 *     and must answer the documented `{error, message}` instead;
 *   - the shared route table (@afterglow/core/api, which the typed client calls) names only
 *     documented operations, with the same success statuses.
 * Setup and the writes go through the typed client, whose every answer is checked against the document too.
 */

const T = uniqueName('contract');
const CAMPAIGN = 'c-contract';
const AD = 'ad-contract';
const MASTER = 'master-contract';
const RULE = 'rule-contract';

/** Documented API operations with no JSON success answer, and why. */
const NO_JSON_ANSWER: Record<string, string> = {
  'GET /v1/assets/{id}/image': 'the image bytes',
  'GET /v1/assets/{id}/original': 'the uploaded bytes, by range too',
  'GET /v1/assets/{id}/thumbnail': 'webp bytes',
  'GET /v1/assets/{id}/poster': 'webp bytes',
  'GET /v1/assets/{id}/storyboard': 'webp bytes',
  'GET /v1/assets/{id}/keyframes/{shot}/{k}': 'jpeg bytes',
};
/** The dashboard's files (its page, scripts, icons: every path outside the API's) are not JSON either. */
const isDashboardFile = (path: string) => !path.startsWith('/v1/') && path !== '/healthz' && path !== '/readyz';

/** Documented GETs this setup has no data for, and where their answers are checked against the document instead. */
const NO_DATA_HERE: Record<string, string> = {
  'GET /v1/assets/{id}/score': 'scoring workers are off here: test/scoring-workers.test.ts checks it',
  'GET /v1/assets/{id}/occlusion': 'no model is trained here: test/scoring-workers.test.ts checks it',
  'GET /v1/assets/{id}/video': 'no video registered here: inference/src/registry/video-registry.test.ts checks it',
  'GET /v1/triggers/firings/{firing_id}': 'no rule fires here: test/triggers.ts (embedded and Kafka) checks it',
};

/** Path parameters by route: the asset, master or campaign this test made. */
function pathParams(path: string): Record<string, string> {
  return {
    campaignId: CAMPAIGN,
    id: path.startsWith('/v1/masters/') ? MASTER : path.startsWith('/v1/campaigns/') ? CAMPAIGN : AD,
    rule_id: RULE,
    firing_id: 'f-none',
    version: 'v-none',
    shot: '0',
    k: '0',
    '*': 'x',
  };
}

const day = new Date().toISOString().slice(0, 10);
const hourAgo = () => String(Date.now() - 3_600_000);
/** Queries a route needs beyond tenant_id; several for routes with two kinds of answer (live state, or history). */
const QUERIES: Record<string, Array<() => Record<string, string>>> = {
  '/v1/compare': [() => ({ ids: `${AD},${MASTER}` })],
  '/v1/campaigns/{campaignId}/breakdown': [() => ({ by: 'region' })],
  '/v1/assets/{id}/metrics': [() => ({}), () => ({ from: hourAgo(), step: '5m' })],
  '/v1/assets/{id}/decay': [() => ({}), () => ({ from: hourAgo(), step: '1m' })],
  '/v1/campaigns/{id}/leaderboard': [() => ({}), () => ({ from: hourAgo() })],
  '/v1/campaigns/{campaignId}/costs': [() => ({ from: day, to: day })],
  '/v1/assets/{id}/costs': [() => ({ from: day, to: day })],
};


let app: TestApp;
let api: ApiClient;
let spec: OpenApiDocument;
let checker: Awaited<ReturnType<typeof answerChecker>>;

before(async () => {
  ensureTestModels(['mobilenet_v2']);
  app = await startApp({ AFTERGLOW_MODELS_DIR: testModelsDir(), TIE_MODEL: 'mobilenet_v2', LIVE_FLUSH_MS: '100' }, [...ROLES]);
  const key = (await app.authHeaders(T, ['ingest', 'read', 'admin'])).authorization!.replace(/^Bearer /, '');
  checker = await answerChecker(app.running.url);
  spec = checker.spec;
  // Every answer the typed client gets in this file is checked against its documented schema (what it wrote as well as what it read).
  api = createApiClient({ baseUrl: app.running.url, apiKey: key, fetch: checker.fetch });
});

after(async () => {
  await app?.close();
});

function successSchema(op: OpenApiOperation): { status: string; schema: Record<string, unknown> } | undefined {
  for (const [status, r] of Object.entries(op.responses)) {
    const schema = r.content?.['application/json']?.schema;
    // 2XX is openapi.ts's stand-in for a route that declares no success answer: not a schema.
    if (status.startsWith('2') && status !== '2XX' && schema) return { status, schema };
  }
  return undefined;
}

const operations = () => Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })));

describe('the REST contract', () => {
  test('set up through the typed client: a master and an ad tied to it, events, spend, a rule', async () => {
    for (const [id, role, seed] of [
      [MASTER, 'master', 11],
      [AD, 'ad', 12],
    ] as const) {
      const form = assetForm({ tenant_id: T, role, asset_id: id, ...(role === 'ad' ? { campaign_id: CAMPAIGN } : {}) }, { filename: `${id}.jpg`, bytes: await noiseImage(160, 120, 'jpeg', seed) });
      const registered = await api.registerAsset({ body: form });
      assert.equal(registered.asset.asset_id, id);
    }
    const tie = await api.decideTie({ body: { tenant_id: T, ad_asset_id: AD, action: 'tie', target_asset_id: MASTER, decided_by: 'contract-test' } });
    assert.equal(tie.decision.target_asset_id, MASTER);
    const now = Date.now();
    const events: EngagementEvent[] = Array.from({ length: 200 }, (_, i) => ({
      event_id: ulid(now),
      tenant_id: T,
      campaign_id: CAMPAIGN,
      asset_id: i % 4 === 0 ? MASTER : AD,
      kind: i % 10 === 0 ? 'click' : 'impression',
      value: 1,
      occurred_at: now - i * 1000,
      received_at: 0,
      region: i % 2 ? 'eu-west' : 'us-east',
      viewer_id: `viewer-${i % 50}`,
    }));
    const posted = await api.postEvents({ body: events });
    assert.equal(posted.accepted, events.length, JSON.stringify(posted.rejections.slice(0, 3)));
    const spend = await api.importSpend({ body: [{ tenant_id: T, campaign_id: CAMPAIGN, asset_id: AD, date: day, spend: 12.5 }] });
    assert.equal(spend.written, 1);
    const rule = await api.putTriggerRule({ path: { rule_id: RULE }, body: { tenant_id: T, kind: 'fatigue', campaign_id: CAMPAIGN } });
    assert.equal(rule.rule.rule_id, RULE);
    await api.snoozeTriggerRule({ path: { rule_id: RULE }, body: { tenant_id: T, for_ms: 60_000, asset_id: AD } });
    for (const write of ['POST /v1/assets', 'POST /v1/ties', 'POST /v1/events', 'POST /v1/import/spend', 'PUT /v1/triggers/rules/{rule_id}', 'PUT /v1/triggers/rules/{rule_id}/snooze']) {
      assert.ok(checker.checked.has(write), `${write}: its answer was checked against the document`);
    }
    await waitForSinkDrained(app.running);
    // The live role has counted the ad (its metrics answer from hot state).
    await eventually(async () => ((await api.assetMetrics({ path: { id: AD }, query: { tenant_id: T } }).catch(() => undefined)) ? true : undefined), 30_000, 100);
  });

  test('every documented operation has a 2xx JSON schema, but those listed with a reason', () => {
    const missing = operations()
      .filter(({ path, method, op }) => !successSchema(op) && !(`${method} ${path}` in NO_JSON_ANSWER) && !isDashboardFile(path))
      .map(({ path, method }) => `${method} ${path}`);
    assert.deepEqual(missing, [], `operations documented without a success schema: ${missing.join(', ')}`);
    const documented = new Set(operations().map(({ path, method }) => `${method} ${path}`));
    const stale = Object.keys(NO_JSON_ANSWER).filter((k) => !documented.has(k));
    assert.deepEqual(stale, [], 'NO_JSON_ANSWER lists operations the document does not have');
  });

  test('the shared route table (the typed client) names documented operations with their success statuses', () => {
    for (const [name, r] of Object.entries(API_ROUTES)) {
      const op = spec.paths[r.path.replace(/:([A-Za-z_]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      assert.ok(op, `${name}: ${r.method} ${r.path} is not in the document`);
      const statuses = Object.keys(op.responses).filter((s) => s.startsWith('2') && op.responses[s]!.content);
      assert.deepEqual(statuses.sort(), Object.keys(r.responses).sort(), `${name}: documented success statuses`);
    }
  });

  test('every documented GET answers as documented', async (t) => {
    const { ajv } = checker;
    ajv.addSchema({ $id: 'openapi', components: spec.components });
    const errorSchema = ajv.compile({ $ref: 'openapi#/components/schemas/Error' });
    const headers = await app.authHeaders(T, ['ingest', 'read', 'admin']);
    let checked = 0;
    for (const { path, method, op } of operations()) {
      const success = successSchema(op);
      if (method !== 'GET' || !success) continue;
      const validate = ajv.compile(success.schema);
      const params = pathParams(path);
      const url = path.replace(/\{([^}]+)\}/g, (_m, name: string) => encodeURIComponent(params[name]!));
      for (const extra of QUERIES[path] ?? [() => ({})]) {
        const query = new URLSearchParams({ ...(op['x-afterglow-scope'] === 'public' ? {} : { tenant_id: T }), ...extra() });
        const res = await fetch(`${app.running.url}${url}?${query}`, { headers });
        const body = (await res.json()) as unknown;
        const what = `GET ${path}?${query}`;
        if (`GET ${path}` in NO_DATA_HERE) {
          assert.ok(res.status >= 400 && String(res.status) in op.responses, `${what}: ${res.status} is not documented`);
          assert.ok(errorSchema(body), `${what}: the error body is not {error, message}: ${JSON.stringify(body).slice(0, 300)}`);
          continue;
        }
        assert.equal(String(res.status), success.status, `${what}: ${JSON.stringify(body).slice(0, 300)}`);
        assert.ok(validate(body), `${what} answered off its schema: ${describeSchemaErrors(validate.errors)}\n${JSON.stringify(body).slice(0, 600)}`);
        checked++;
      }
    }
    assert.ok(checked >= 30, `only ${checked} answers checked`);
    t.diagnostic(`${checked} answers checked against their schemas; no data here for: ${Object.keys(NO_DATA_HERE).join(', ')}`);
  });

  test('the writes answer as documented: un-snooze, delete a rule, a dry-run import, a key created, rotated, revoked', async () => {
    const unsnoozed = await api.unsnoozeTriggerRule({ path: { rule_id: RULE }, query: { tenant_id: T, asset_id: AD } });
    assert.deepEqual(unsnoozed.unsnoozed, { rule_id: RULE, asset_id: AD, campaign_id: null });
    assert.equal((await api.deleteTriggerRule({ path: { rule_id: RULE }, query: { tenant_id: T } })).deleted, RULE);
    const event = { event_id: ulid(), tenant_id: T, campaign_id: CAMPAIGN, asset_id: AD, kind: 'view', value: 1, occurred_at: Date.now() - 86_400_000, received_at: 0 };
    const dry = await api.importEvents({ body: [event], query: { dry_run: true } });
    assert.deepEqual([dry.dry_run, dry.received, dry.inserted], [true, 1, 0]);
    const created = await api.createKey({ body: { tenant_id: T, scopes: ['read'], name: 'contract' } });
    const rotated = await api.rotateKey({ path: { id: created.info.key_id }, body: { tenant_id: T, grace_ms: 0 } });
    assert.equal(rotated.previous.key_id, created.info.key_id);
    assert.equal((await api.revokeKey({ path: { id: rotated.info.key_id }, query: { tenant_id: T } })).info.status, 'revoked');
    for (const write of ['DELETE /v1/triggers/rules/{rule_id}/snooze', 'DELETE /v1/triggers/rules/{rule_id}', 'POST /v1/import/events', 'POST /v1/keys', 'POST /v1/keys/{id}/rotate', 'DELETE /v1/keys/{id}']) {
      assert.ok(checker.checked.has(write), `${write}: its answer was checked against the document`);
    }
  });

  test('the typed client throws ApiError with the stable code', async () => {
    await assert.rejects(
      () => api.getAsset({ path: { id: 'no-such-asset' }, query: { tenant_id: T } }),
      (err: unknown) => err instanceof ApiError && err.status === 404 && err.code === 'not_found',
    );
    const outsider = createApiClient({ baseUrl: app.running.url, apiKey: (await app.authHeaders(T, ['ingest'])).authorization!.replace(/^Bearer /, '') });
    await assert.rejects(
      () => outsider.listCampaigns({ query: { tenant_id: T } }),
      (err: unknown) => err instanceof ApiError && err.status === 403 && err.code === 'scope_forbidden',
    );
  });

  test('afterglow keys --url manages keys through the typed client, errors by their stable code', async () => {
    const admin = (await app.authHeaders(T, ['admin'])).authorization!.replace(/^Bearer /, '');
    const lines: string[] = [];
    const errors: string[] = [];
    const { log, error } = console;
    console.log = (...a: unknown[]) => void lines.push(a.join(' '));
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    const run = async (...argv: string[]) => {
      lines.length = 0;
      const code = await runKeysCommand([...argv, '--tenant', T, '--url', app.running.url, '--key', admin, '--json']);
      return { code, out: (code === 0 ? JSON.parse(lines.join('\n')) : {}) as Record<string, unknown> };
    };
    try {
      const created = await run('create', '--scopes', 'read', '--name', 'contract-cli');
      assert.equal(created.code, 0);
      const { key, info } = created.out as { key: string; info: { key_id: string; tenant_id: string } };
      assert.equal(info.tenant_id, T);
      const me = await createApiClient({ baseUrl: app.running.url, apiKey: key }).whoami();
      assert.deepEqual([me.tenant_id, me.key_id, me.scopes], [T, info.key_id, ['read']]);
      const listed = (await run('list')).out as { keys: { key_id: string }[] };
      assert.ok(listed.keys.some((k) => k.key_id === info.key_id));
      const revoked = (await run('revoke', '--id', info.key_id)).out as { info: { status: string } };
      assert.equal(revoked.info.status, 'revoked');
      assert.equal((await run('revoke', '--id', 'k0000000000000000')).code, 1);
      assert.match(errors.join('\n'), /^afterglow keys: 404 not_found: /m);
    } finally {
      Object.assign(console, { log, error });
    }
  });
});

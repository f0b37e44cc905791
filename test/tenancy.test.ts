import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { WebSocket } from 'ws';
import { SCOPES, createLogger, type Scope } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { ROLES, installAuth, registeredRoutes, type RouteEntry } from 'afterglow';
import { makeEvents, postEvents, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Tenancy, table-driven (issue 8): every route and WebSocket endpoint a full Afterglow registers
 * (collected by the auth module's onRoute hook, so routes added later are covered without editing
 * this file) is called
 *   - with no key                         -> 401
 *   - with tenant A's key claiming B      -> refused (403 tenant_forbidden; events: each rejected)
 *   - with B's key lacking the scope      -> 403 scope_forbidden
 *   - with B's key and the scope          -> neither 401 nor 403
 * and every route must declare a scope.
 */

const VICTIM = uniqueName('victim');
const INTRUDER = uniqueName('intruder');
const PARAM = 'probe-1';
/** A tiny valid PNG (1x1), for upload routes. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

let app: TestApp;
let routes: RouteEntry[];
/** The process's own OpenAPI document: every answer below must be one it documents. */
let spec: { paths: Record<string, Record<string, { responses: Record<string, unknown>; 'x-afterglow-scope': string }>> };

before(async () => {
  app = await startApp({}, [...ROLES]);
  routes = registeredRoutes(app.running.app).filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS');
  spec = (await (await fetch(`${app.running.url}/v1/openapi.json`)).json()) as typeof spec;
});

/** The route's operation in the OpenAPI document (undefined for the document's own routes). */
function operationOf(route: RouteEntry) {
  const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}').replace(/\*$/, '{*}');
  return spec.paths[path]?.[route.method.toLowerCase()];
}

/**
 * Not operations in the document: its own routes (the JSON and the /docs page's files), and
 * WebSocket endpoints, which OpenAPI cannot describe (README does).
 */
function selfDescribing(route: RouteEntry): boolean {
  return route.websocket === true || route.url === '/v1/openapi.json' || route.url === '/docs' || route.url.startsWith('/docs/');
}

function assertDocumented(route: RouteEntry, status: number, who: string): void {
  const op = operationOf(route);
  if (!op) return;
  assert.ok(String(status) in op.responses || `${Math.floor(status / 100)}XX` in op.responses, `${route.method} ${route.url} (${who}) answered ${status}, documented: ${Object.keys(op.responses).join(', ')}`);
}
after(async () => {
  await app?.close();
});

/** Routes whose body is events, each naming its tenant: live ingest and the history import. */
const EVENT_ROUTES = ['/v1/events', '/v1/import/events'];

function pathOf(route: RouteEntry): string {
  return route.url.replace(/:[A-Za-z_]+/g, PARAM).replace(/\*$/, 'x');
}

function otherScope(scope: Scope): Scope {
  return scope === 'read' ? 'ingest' : 'read';
}

/** HTTP call as `who` (undefined = no key) with `scopes`, claiming `claimed` as tenant in the query and body. */
async function call(route: RouteEntry, who: string | undefined, scopes: readonly Scope[], claimed: string, multipart = false): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = who ? await app.authHeaders(who, scopes) : {};
  // Events name their tenant inside (each is checked); every other route claims it in the query too.
  const events = EVENT_ROUTES.includes(route.url);
  const url = `${app.running.url}${pathOf(route)}${events ? '' : `?tenant_id=${encodeURIComponent(claimed)}`}`;
  let body: string | FormData | undefined;
  if (route.method !== 'GET' && route.method !== 'DELETE') {
    if (events) {
      body = JSON.stringify(makeEvents(3, claimed, ['c']).events);
      headers['content-type'] = 'application/json';
    } else if (multipart) {
      const form = new FormData();
      for (const [k, v] of Object.entries({ tenant_id: claimed, role: 'master', name: 'probe', channel: 'web', campaign_id: 'c', ad_asset_id: PARAM, action: 'tie' })) form.append(k, v);
      form.append('image', new Blob([PNG], { type: 'image/png' }), 'probe.png');
      body = form;
    } else {
      body = JSON.stringify({ tenant_id: claimed, rule_id: PARAM, ad_asset_id: PARAM, action: 'tie', decided_by: 'probe', scopes: ['read'] });
      headers['content-type'] = 'application/json';
    }
  }
  const res = await fetch(url, { method: route.method, headers, ...(body !== undefined && { body }) });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON (static files, images).
  }
  return { status: res.status, body: parsed };
}

/** WebSocket upgrade as `who`: the HTTP status it was refused with, or 101 when it opened. */
async function upgrade(route: RouteEntry, who: string | undefined, scopes: readonly Scope[], claimed: string, extra: Record<string, string> = {}): Promise<number> {
  const headers = { ...(who ? await app.authHeaders(who, scopes) : {}), ...extra };
  const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}${pathOf(route)}?tenant_id=${encodeURIComponent(claimed)}`, { headers });
  return new Promise<number>((resolve) => {
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', () => resolve(-1));
  });
}

test('the route table is complete: every route declares a valid scope, and the known endpoints are in it', () => {
  const valid = [...SCOPES, 'public'];
  const missing = routes.filter((r) => r.scope === undefined || !valid.includes(r.scope));
  assert.deepEqual(missing.map((r) => `${r.method} ${r.url}`), [], 'routes without an access scope');
  const names = new Set(routes.map((r) => `${r.method} ${r.url}`));
  for (const known of ['POST /v1/events', 'GET /v1/stream', 'GET /v1/live', 'GET /v1/campaigns', 'GET /v1/keys', 'POST /v1/keys', 'GET /healthz', 'GET /']) {
    assert.ok(names.has(known), `${known} is registered`);
  }
  console.log(`tenancy: ${routes.length} routes (${routes.filter((r) => r.websocket).length} WebSocket) walked: ${[...names].join(', ')}`);
});

test('the OpenAPI document (public) lists every route with its scope, security and error answers', async () => {
  const res = await fetch(`${app.running.url}/v1/openapi.json`);
  assert.equal(res.status, 200);
  assert.equal((spec as unknown as { openapi: string }).openapi, '3.1.0');
  const undocumented = routes.filter((r) => !selfDescribing(r) && !operationOf(r)).map((r) => `${r.method} ${r.url}`);
  assert.deepEqual(undocumented, [], 'routes missing from the document');
  for (const r of routes.filter((x) => !selfDescribing(x))) {
    const op = operationOf(r)!;
    assert.equal(op['x-afterglow-scope'], r.scope, `${r.method} ${r.url} scope`);
    if (r.scope !== 'public') for (const code of ['401', '403']) assert.ok(code in op.responses, `${r.method} ${r.url} documents ${code}`);
  }
  const events = spec.paths['/v1/events']!.post as unknown as { requestBody?: { content: Record<string, unknown> } };
  assert.deepEqual(Object.keys(events.requestBody?.content ?? {}).sort(), ['application/json', 'application/x-ndjson', 'text/plain']);
  const docs = await fetch(`${app.running.url}/docs/`);
  assert.equal(docs.status, 200);
  assert.match(await docs.text(), /swagger-ui/i);
});

test('a route that declares no scope is refused (fail closed)', async () => {
  const f = Fastify();
  installAuth(f, { settings: app.running.config.auth, keys: app.running.keys, limiter: undefined, log: createLogger('silent') });
  f.get('/naked', async () => ({ secret: true }));
  f.get('/open', { config: { scope: 'public' } }, async () => ({ ok: true }));
  f.get('/echo', { config: { scope: 'read' } }, async (req) => ({ url: req.raw.url, query: req.query }));
  f.setErrorHandler((err: Error & { status?: number; code?: string }, _req, reply) => reply.code(err.status ?? 500).send({ error: err.code }));
  const naked = await f.inject({ url: '/naked', headers: await app.authHeaders(VICTIM) });
  assert.equal(naked.statusCode, 403);
  assert.equal(naked.json().error, 'route_unprotected');
  assert.equal((await f.inject({ url: '/open' })).statusCode, 200);
  assert.equal(registeredRoutes(f).find((r) => r.url === '/naked')?.scope, undefined);
  // access_token is cut from the URL before anything (a handler, a log line) sees it.
  const key = (await app.authHeaders(VICTIM, ['read'])).authorization!.slice('Bearer '.length);
  const echo = await f.inject({ url: `/echo?a=1&access_token=${encodeURIComponent(key)}`, headers: { upgrade: 'websocket', connection: 'upgrade' } });
  assert.equal(echo.statusCode, 200);
  assert.ok(!echo.body.includes(key.split('.')[1]!), echo.body);
  assert.deepEqual(echo.json(), { url: '/echo?a=1&access_token=REDACTED', query: { a: '1', tenant_id: VICTIM } });
  await f.close();
});

describe('every route, table-driven', () => {
  test('public routes answer without a key; keyed routes refuse no key (401), a foreign tenant and a wrong scope (403), and accept the right key', async () => {
    const table: string[] = [];
    for (const route of routes) {
      const name = `${route.method} ${route.url}`;
      if (route.scope === 'public') {
        if (route.websocket) continue;
        const r = await call(route, undefined, [], VICTIM);
        assert.ok(r.status !== 401 && r.status !== 403, `${name} is public but answered ${r.status}`);
        assertDocumented(route, r.status, 'public');
        table.push(`${name}: public ${r.status}`);
        continue;
      }
      const scope = route.scope as Scope;
      if (route.websocket) {
        assert.equal(await upgrade(route, undefined, [], VICTIM), 401, `${name} without a key`);
        assert.equal(await upgrade(route, INTRUDER, [scope], VICTIM), 403, `${name} with a foreign key`);
        assert.equal(await upgrade(route, VICTIM, [otherScope(scope)], VICTIM), 403, `${name} without the ${scope} scope`);
        // A browser page of another site (cross-site WebSocket hijacking), with a valid key.
        assert.equal(await upgrade(route, VICTIM, [scope], VICTIM, { origin: 'https://evil.example' }), 403, `${name} from a foreign origin`);
        const own = await upgrade(route, VICTIM, [scope], VICTIM, { origin: app.running.url });
        assert.ok(own !== 401 && own !== 403 && own !== -1, `${name} with the right key answered ${own}`);
        table.push(`${name}: ws ${scope} ok=${own}`);
        continue;
      }
      const none = await call(route, undefined, [], VICTIM);
      assert.equal(none.status, 401, `${name} without a key answered ${none.status}`);
      assertDocumented(route, none.status, 'no key');
      assert.equal(none.body.error, 'unauthorized');

      let foreign = await call(route, INTRUDER, [scope], VICTIM);
      if (foreign.status === 415) foreign = await call(route, INTRUDER, [scope], VICTIM, true);
      if (EVENT_ROUTES.includes(route.url)) {
        // Events are checked one by one: all three name the victim, so all are rejected.
        assert.equal(foreign.status, 422, `${name} with a foreign key`);
        const reasons = (foreign.body.rejections as { reason: string }[]).map((x) => x.reason);
        assert.deepEqual(reasons, ['tenant_forbidden', 'tenant_forbidden', 'tenant_forbidden']);
      } else {
        assert.equal(foreign.status, 403, `${name} with a foreign key answered ${foreign.status} ${JSON.stringify(foreign.body).slice(0, 200)}`);
        assert.equal(foreign.body.error, 'tenant_forbidden');
      }

      assertDocumented(route, foreign.status, 'foreign key');
      const wrong = await call(route, VICTIM, [otherScope(scope)], VICTIM);
      assert.equal(wrong.status, 403, `${name} without the ${scope} scope`);
      assert.equal(wrong.body.error, 'scope_forbidden');

      let right = await call(route, VICTIM, [scope], VICTIM);
      if (right.status === 415) right = await call(route, VICTIM, [scope], VICTIM, true);
      assert.ok(right.status !== 401 && right.status !== 403, `${name} with the right key answered ${right.status} ${JSON.stringify(right.body).slice(0, 200)}`);
      assert.ok(right.status < 500 || right.status === 501 || right.status === 503, `${name} with the right key failed: ${right.status} ${JSON.stringify(right.body).slice(0, 200)}`);
      assertDocumented(route, right.status, 'right key');
      table.push(`${name}: ${scope} ok=${right.status}`);
    }
    console.log(`tenancy table:\n  ${table.join('\n  ')}`);
  });
});

test('data never crosses: the victim\'s campaigns and totals are invisible to another tenant\'s key', async () => {
  const campaign = uniqueName('secret-campaign');
  const { events } = makeEvents(50, VICTIM, [campaign]);
  assert.equal((await postEvents(app.running.url, events)).status, 202);
  await waitForSinkDrained(app.running);
  const own = await app.request(VICTIM, `/v1/campaigns`);
  assert.ok(JSON.stringify(await own.json()).includes(campaign));
  // Without a tenant_id the intruder's key reads its own tenant: nothing of the victim's.
  const theirs = await app.request(INTRUDER, `/v1/campaigns`);
  assert.equal(theirs.status, 200);
  assert.ok(!JSON.stringify(await theirs.json()).includes(campaign));
  const totals = await app.request(INTRUDER, `/v1/campaigns/${campaign}/totals`);
  assert.equal(((await totals.json()) as { total: number }).total, 0);
});

test('a stream from one tenant\'s key: events of another tenant are rejected one by one, its own accepted', async () => {
  const headers = await app.authHeaders(INTRUDER, ['ingest']);
  const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const mixed = [...makeEvents(2, INTRUDER, ['c']).events, ...makeEvents(2, VICTIM, ['c']).events];
  const ack = new Promise<{ accepted: number; rejections: { index: number; reason: string }[] }>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
  ws.send(JSON.stringify({ seq: 1, events: mixed }));
  const a = await ack;
  ws.close();
  assert.equal(a.accepted, 2);
  assert.deepEqual(a.rejections.map((r) => [r.index, r.reason]), [[2, 'tenant_forbidden'], [3, 'tenant_forbidden']]);
});

test('live subscriptions stay in the key\'s tenant: the intruder subscribing to the victim\'s campaign sees none of it', async () => {
  const campaign = uniqueName('live-secret');
  const { events } = makeEvents(40, VICTIM, [campaign], 4);
  assert.equal((await postEvents(app.running.url, events)).status, 202);
  const snapshot = async (who: string): Promise<unknown[]> => {
    const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/live`, { headers: await app.authHeaders(who, ['read']) });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const snap = new Promise<{ entities: unknown[] }>((resolve) =>
      ws.on('message', (d) => {
        const m = JSON.parse(String(d)) as { type?: string; entities: unknown[] };
        if (m.type === 'snapshot') resolve(m);
      }),
    );
    ws.send(JSON.stringify({ op: 'subscribe', campaign }));
    const m = await snap;
    ws.close();
    return m.entities;
  };
  // The victim sees its assets (so the check below could fail) ...
  await eventually(async () => ((await snapshot(VICTIM)).length >= 4 ? true : undefined), 30_000, 200);
  // ... the intruder, naming the same campaign, gets its own (empty) tenant's.
  assert.ok(!JSON.stringify(await snapshot(INTRUDER)).includes(`${campaign}-asset`));
});

test('an edge key limited to placements: other placements are rejected per event', async () => {
  const { key } = await app.running.keys!.create({ tenantId: VICTIM, scopes: ['ingest'], placements: ['lobby'] });
  const events = makeEvents(2, VICTIM, ['c']).events.map((e, i) => ({ ...e, placement: i === 0 ? 'lobby' : 'elsewhere' }));
  const res = await fetch(`${app.running.url}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(events) });
  const body = (await res.json()) as { accepted: number; rejections: { index: number; reason: string }[] };
  assert.equal(body.accepted, 1);
  assert.deepEqual(body.rejections.map((r) => [r.index, r.reason]), [[1, 'placement_forbidden']]);
});

test('keys: x-api-key and access_token (WebSocket only) work; revoked and rotated-out keys are refused; admin routes stay in the tenant', async () => {
  const admin = await app.authHeaders(VICTIM, ['admin']);
  const created = await fetch(`${app.running.url}/v1/keys`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ scopes: ['read'], name: 'probe' }) });
  assert.equal(created.status, 201);
  const { key, info } = (await created.json()) as { key: string; info: { key_id: string; tenant_id: string } };
  assert.equal(info.tenant_id, VICTIM);
  assert.equal((await fetch(`${app.running.url}/v1/campaigns`, { headers: { 'x-api-key': key } })).status, 200);
  // access_token is for WebSocket upgrades (browsers cannot set their headers), not for plain HTTP.
  assert.equal((await fetch(`${app.running.url}/v1/campaigns?access_token=${key}`)).status, 401);
  const live = routes.find((r) => r.url === '/v1/live')!;
  const viaQuery = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/live?tenant_id=${VICTIM}&access_token=${encodeURIComponent(key)}`);
  assert.equal(await new Promise((resolve) => viaQuery.once('open', () => resolve(101)).once('unexpected-response', (_q, r) => resolve(r.statusCode))), 101);
  viaQuery.close();
  assert.ok(live);
  const whoami = (await (await fetch(`${app.running.url}/v1/whoami`, { headers: { authorization: `Bearer ${key}` } })).json()) as { tenant_id: string; scopes: string[] };
  assert.deepEqual([whoami.tenant_id, whoami.scopes], [VICTIM, ['read']]);

  // The intruder's admin key cannot list, rotate or revoke the victim's keys (they read as missing).
  const intruder = await app.authHeaders(INTRUDER, ['admin']);
  const list = (await (await fetch(`${app.running.url}/v1/keys`, { headers: intruder })).json()) as { keys: { key_id: string }[] };
  assert.ok(!list.keys.some((k) => k.key_id === info.key_id));
  assert.equal((await fetch(`${app.running.url}/v1/keys/${info.key_id}`, { method: 'DELETE', headers: intruder })).status, 404);
  assert.equal((await fetch(`${app.running.url}/v1/keys/${info.key_id}/rotate`, { method: 'POST', headers: { ...intruder, 'content-type': 'application/json' }, body: '{}' })).status, 404);

  // Rotation with no grace, then revocation: refused at once in this process.
  const rotated = await fetch(`${app.running.url}/v1/keys/${info.key_id}/rotate`, { method: 'POST', headers: { ...admin, 'content-type': 'application/json' }, body: JSON.stringify({ grace_ms: 0 }) });
  assert.equal(rotated.status, 200);
  const next = ((await rotated.json()) as { key: string; info: { key_id: string } });
  const refused = await fetch(`${app.running.url}/v1/campaigns`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
  assert.equal((await fetch(`${app.running.url}/v1/campaigns`, { headers: { authorization: `Bearer ${next.key}` } })).status, 200);
  assert.equal((await fetch(`${app.running.url}/v1/keys/${next.info.key_id}`, { method: 'DELETE', headers: admin })).status, 200);
  const gone = await fetch(`${app.running.url}/v1/campaigns`, { headers: { authorization: `Bearer ${next.key}` } });
  assert.equal(gone.status, 401);
  const err = (await gone.json()) as { error: string; message: string; stack?: unknown };
  assert.equal(err.error, 'unauthorized');
  assert.equal(err.stack, undefined);
});

test('AUTH_MODE=off: no key is asked and the claimed tenant is used; browser WebSockets still need an allowed origin', async () => {
  // Last in this file: it shares the first app's store (chDB binds one data dir per process).
  const open = await startApp({ AUTH_MODE: 'off', AUTH_ALLOWED_ORIGINS: 'https://dash.example', AFTERGLOW_DATA_DIR: app.dataDir }, ['ingest']);
  try {
    const res = await fetch(`${open.running.url}/v1/campaigns?tenant_id=${VICTIM}`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { tenant_id: string }).tenant_id, VICTIM);
    assert.equal((await fetch(`${open.running.url}/v1/campaigns`)).status, 400, 'no tenant named, none from a key');
    assert.equal((await fetch(`${open.running.url}/v1/keys`)).status, 404, 'no key administration without keys');
    const stream = routes.find((r) => r.url === '/v1/stream')!;
    const ws = async (origin: string) => {
      const s = new WebSocket(`${open.running.url.replace(/^http/, 'ws')}${pathOf(stream)}`, { headers: { origin } });
      return new Promise<number>((resolve) => {
        s.once('open', () => {
          s.close();
          resolve(101);
        });
        s.once('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0));
      });
    };
    assert.equal(await ws('https://evil.example'), 403);
    assert.equal(await ws('https://dash.example'), 101);
    assert.equal(await ws(open.running.url), 101);
  } finally {
    await open.close();
  }
});

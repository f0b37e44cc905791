import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { WebSocket } from 'ws';
import {
  BackpressureError,
  BadRequestError,
  DedupWindow,
  TOPICS,
  createBus,
  createLogger,
  decodeEvent,
  eventFingerprint,
  payloadDigest,
  setPrincipal,
  ulid,
  type Bus,
  type EngagementEvent,
  type Principal,
  type Store,
} from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { EventIntake } from './intake.js';
import { registerIngestRoutes, type IngestDeps } from './routes.js';

/**
 * POST /v1/events and GET /v1/stream on the in-process bus, without the HTTP layer of the
 * composition root: per-event verdicts with stable codes, partial acceptance, the body and event
 * bounds, the key's tenant and placements, retries that downstream de-duplication recognises, and
 * the per-tenant stream cap. Every expectation is written out from the input, not recomputed.
 */
const NOW = Date.UTC(2026, 2, 10, 9, 30, 0);
const LIMITS = { maxAgeMs: 86_400_000, maxFutureMs: 300_000, liveLateMs: 600_000, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };
const BOUNDS = { maxBodyBytes: 16 * 1024, maxEventsPerRequest: 5, maxBadLines: 2, maxEventBytes: 1024 };

interface Harness {
  app: FastifyInstance;
  bus: Bus;
  /** 'METHOD url' -> the scope the route declares. */
  scopes: Map<string, unknown>;
  /** Every event the bus holds on the events topic, decoded, in offset order per partition. */
  onBus(n: number): Promise<EngagementEvent[]>;
}

/** A test-side key: the auth hook of the composition root sets the same principal from a real key. */
const PRINCIPAL_HEADER = 'x-test-principal';

async function harness(t: TestContext, over: Partial<IngestDeps> = {}): Promise<Harness> {
  const bus = await createBus({ kind: 'memory', partitions: 2, maxBacklogBytes: 4 * 1024 * 1024 });
  await bus.ensureTopics([{ topic: TOPICS.events, partitions: 2 }]);
  const producer = await bus.producer();
  const intake = new EventIntake({ producer, limits: LIMITS, maxInflightBytes: 1 << 20, produceTimeoutMs: 5_000, clock: () => NOW });
  const app = Fastify();
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  app.addHook('onRequest', async (req) => {
    const p = req.headers[PRINCIPAL_HEADER];
    if (typeof p === 'string') setPrincipal(req, JSON.parse(p) as Principal);
  });
  // The composition root's mapping of typed errors (cli/src/http.ts): {error: code, message} with the error's status.
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof BackpressureError) return reply.code(429).header('retry-after', Math.ceil(err.retryAfterMs / 1000)).send({ error: err.code, message: err.message });
    if (err instanceof BadRequestError) return reply.code(err.status).send({ error: err.code, message: err.message });
    const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    return reply.code(status).send({ error: String(err.code ?? 'internal').toLowerCase().replace(/^fst_err_/, ''), message: err.message });
  });
  const scopes = new Map<string, unknown>();
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) scopes.set(`${m} ${r.url}`, (r.config as { scope?: string } | undefined)?.scope);
  });
  await registerIngestRoutes(app, {
    intake,
    // The read routes registered beside intake are not called here.
    store: {} as Store,
    log: createLogger('silent'),
    ...BOUNDS,
    wsMaxInflightMessages: 8,
    wsMaxTotalInflightBytes: 1 << 20,
    wsMaxConnectionsPerTenant: 0,
    produceTimeoutMs: 5_000,
    ...over,
  });
  t.after(async () => {
    await app.close();
    await producer.close();
    await bus.close();
  });
  const seen: EngagementEvent[] = [];
  let consuming = false;
  const onBus = async (n: number) => {
    if (!consuming) {
      consuming = true;
      const consumer = bus.consumer({ groupId: 'routes-test', topics: [TOPICS.events], ephemeral: true });
      t.after(() => consumer.stop());
      void consumer.run(async (batch) => {
        for (const r of batch.records) seen.push(decodeEvent(r.value) as EngagementEvent);
      });
    }
    // The end offsets say how many records the bus holds: reading waits for exactly that many.
    const held = (await bus.endOffsets(TOPICS.events)).reduce((s, o) => s + Number(o.offset), 0);
    assert.equal(held, n, `records on ${TOPICS.events}`);
    return eventually(() => (seen.length === n ? seen : undefined), 5_000, 5);
  };
  return { app, bus, scopes, onBus };
}

/** A valid click of tenant acme; `n` makes the event_id distinct and readable. */
const event = (n: number, over: Record<string, unknown> = {}) => ({
  event_id: ulid(NOW - 60_000 + n),
  tenant_id: 'acme',
  campaign_id: 'c1',
  asset_id: `a${n}`,
  kind: 'click',
  value: 1,
  occurred_at: NOW - 60_000,
  ...over,
});

const post = (app: FastifyInstance, payload: string | Buffer, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/v1/events', payload, headers: { 'content-type': 'application/json', ...headers } });

test('POST /v1/events: valid events are accepted and the rest refused one by one with their index and code', async (t) => {
  const h = await harness(t);
  const good = [event(1), event(2, { placement: 'lobby' })];
  const body = [good[0], { ...event(3), kind: 'hover' }, { ...event(4), value: 'x' }, good[1], { ...event(5), event_id: 'not-a-ulid!' }];
  const res = await post(h.app, JSON.stringify(body));
  assert.equal(res.statusCode, 202);
  const r = res.json() as { accepted: number; rejected: number; rejections: { index: number; reason: string; field?: string }[] };
  assert.equal(r.accepted, 2);
  assert.equal(r.rejected, 3);
  assert.deepEqual(r.rejections.map((x) => [x.index, x.reason, x.field]), [
    [1, 'unknown_kind', 'kind'],
    [2, 'invalid_field', 'value'],
    [4, 'invalid_event_id', 'event_id'],
  ]);
  const held = await h.onBus(2);
  assert.deepEqual(held.map((e) => e.event_id).sort(), good.map((e) => e.event_id).sort());
  for (const e of held) assert.equal(e.received_at, NOW, 'stamped with the server clock');
});

test('POST /v1/events: nothing valid is 422 with every verdict; an empty array is 202 with nothing sent', async (t) => {
  const h = await harness(t);
  const body = [{ ...event(1), kind: 'hover' }, { ...event(2), occurred_at: NOW + 300_001 }, { ...event(3), campaign_id: undefined }];
  const res = await post(h.app, JSON.stringify(body));
  assert.equal(res.statusCode, 422);
  const r = res.json() as { accepted: number; rejected: number; rejections: { index: number; event_id?: string; reason: string; field?: string }[] };
  assert.deepEqual([r.accepted, r.rejected], [0, 3]);
  assert.deepEqual(r.rejections.map((x) => [x.index, x.event_id, x.reason, x.field]), [
    [0, body[0]!.event_id, 'unknown_kind', 'kind'],
    [1, body[1]!.event_id, 'too_far_in_future', 'occurred_at'],
    [2, body[2]!.event_id, 'missing_field', 'campaign_id'],
  ]);
  const empty = await post(h.app, '[]');
  assert.equal(empty.statusCode, 202);
  assert.deepEqual(empty.json(), { accepted: 0, rejected: 0, rejections: [] });
  await h.onBus(0);
});

test('POST /v1/events: an NDJSON body keeps its good lines when some are not JSON, up to maxBadLines', async (t) => {
  const h = await harness(t);
  const a = event(1);
  const b = event(2);
  const lines = [JSON.stringify(a), '{"broken":', JSON.stringify(b), 'plain words'].join('\n');
  const res = await post(h.app, lines, { 'content-type': 'application/x-ndjson' });
  assert.equal(res.statusCode, 202);
  const r = res.json() as { accepted: number; rejections: { index: number; reason: string }[] };
  assert.equal(r.accepted, 2);
  assert.deepEqual(r.rejections.map((x) => [x.index, x.reason]), [
    [1, 'undecodable'],
    [3, 'undecodable'],
  ]);
  assert.deepEqual((await h.onBus(2)).map((e) => e.event_id).sort(), [a.event_id, b.event_id].sort());
  // One bad line more than maxBadLines (2): the whole body is refused, nothing is produced.
  const worse = await post(h.app, ['x', 'y', 'z', JSON.stringify(event(3))].join('\n'), { 'content-type': 'application/x-ndjson' });
  assert.equal(worse.statusCode, 400);
  assert.equal(worse.json().error, 'too_many_bad_lines');
  await h.onBus(2);
});

test('POST /v1/events: bodies and events over their bounds are refused with a stable code, before anything is produced', async (t) => {
  const h = await harness(t);
  const cases: [string, string | Buffer, Record<string, string>, number, string][] = [
    ['6 events, the limit is 5', JSON.stringify([1, 2, 3, 4, 5, 6].map((n) => event(n))), {}, 413, 'too_many_events'],
    ['6 NDJSON lines', [1, 2, 3, 4, 5, 6].map((n) => JSON.stringify(event(n))).join('\n'), { 'content-type': 'application/x-ndjson' }, 413, 'too_many_events'],
    ['one element over maxEventBytes (1024)', JSON.stringify([event(1, { attrs: { pad: 'p'.repeat(1100) } })]), {}, 413, 'event_too_large'],
    ['a body over maxBodyBytes (16 KiB)', JSON.stringify(event(1, { attrs: { pad: 'p'.repeat(17 * 1024) } })), {}, 413, 'ctp_body_too_large'],
    ['gzip that inflates past maxBodyBytes', gzipSync(Buffer.alloc(64 * 1024, 0x20)), { 'content-encoding': 'gzip' }, 413, 'ctp_body_too_large'],
    ['a body that says gzip and is not', Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' }, 400, 'invalid_encoding'],
    ['an unknown content-encoding', JSON.stringify([event(1)]), { 'content-encoding': 'zstd-ish' }, 415, 'unsupported_encoding'],
    ['a content-type that is not JSON', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ['JSON cut short', '[{"event_id":', {}, 400, 'invalid_json'],
    ['a JSON value that is not events', '"hello"', {}, 400, 'invalid_body'],
  ];
  for (const [what, payload, headers, status, code] of cases) {
    const res = await post(h.app, payload, headers);
    assert.deepEqual([res.statusCode, res.json().error], [status, code], what);
  }
  await h.onBus(0);
  // Exactly at the bounds: 5 events, each under maxEventBytes, are all taken.
  const five = [1, 2, 3, 4, 5].map((n) => event(n));
  const ok = await post(h.app, gzipSync(JSON.stringify(five)), { 'content-encoding': 'gzip' });
  assert.deepEqual([ok.statusCode, ok.json().accepted], [202, 5]);
  await h.onBus(5);
});

test("POST /v1/events: a key's events must be its tenant's and its placements'; the route needs the ingest scope", async (t) => {
  const h = await harness(t);
  // The scope each route asks the auth hook for (the hook refuses a key without it).
  assert.deepEqual(Object.fromEntries(['POST /v1/events', 'GET /v1/stream', 'GET /v1/campaigns'].map((r) => [r, h.scopes.get(r)])), {
    'POST /v1/events': 'ingest',
    'GET /v1/stream': 'ingest',
    'GET /v1/campaigns': 'read',
  });

  const key: Principal = { tenantId: 'acme', keyId: 'k1', scopes: ['ingest'], placements: ['lobby'] };
  const body = [event(1, { placement: 'lobby' }), event(2, { tenant_id: 'globex', placement: 'lobby' }), event(3, { placement: 'street' }), event(4)];
  const res = await post(h.app, JSON.stringify(body), { [PRINCIPAL_HEADER]: JSON.stringify(key) });
  assert.equal(res.statusCode, 202);
  assert.deepEqual(res.json().rejections.map((x: { index: number; reason: string; event_id: string }) => [x.index, x.reason, x.event_id]), [
    [1, 'tenant_forbidden', body[1]!.event_id],
    [2, 'placement_forbidden', body[2]!.event_id],
    [3, 'placement_forbidden', body[3]!.event_id],
  ]);
  assert.deepEqual((await h.onBus(1)).map((e) => e.event_id), [body[0]!.event_id]);
  // All of another tenant's: 422, nothing produced.
  const foreign = await post(h.app, JSON.stringify([event(5, { tenant_id: 'globex' })]), { [PRINCIPAL_HEADER]: JSON.stringify({ ...key, placements: undefined }) });
  assert.deepEqual([foreign.statusCode, foreign.json().rejections[0].reason], [422, 'tenant_forbidden']);
  await h.onBus(1);
});

test('POST /v1/events: a retried request answers the same and produces copies that de-duplication recognises as retries', async (t) => {
  const h = await harness(t);
  const body = JSON.stringify([event(1), event(2), { ...event(3), kind: 'hover' }]);
  const first = await post(h.app, body);
  const retry = await post(h.app, body);
  assert.deepEqual([first.statusCode, retry.statusCode], [202, 202]);
  assert.deepEqual(retry.json(), first.json());
  const held = await h.onBus(4);
  // Downstream (the sink and the live aggregators) drops a copy with the same tenant, id and content.
  const window = new DedupWindow(LIMITS.dedupWindowMs, 60_000, false);
  const verdicts = held.map((e) => {
    const fp = eventFingerprint(e.tenant_id, e.event_id);
    const v = window.verdict(fp, payloadDigest(e));
    window.add(fp, payloadDigest(e), e.received_at);
    return v;
  });
  assert.deepEqual(verdicts.sort(), ['new', 'new', 'retry', 'retry']);
  // The same id with other content is not a retry.
  const changed = held[0]!;
  assert.equal(window.verdict(eventFingerprint(changed.tenant_id, changed.event_id), payloadDigest({ ...changed, value: 2 })), 'conflict');
});

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

interface Stream {
  ws: WebSocket;
  replies: Record<string, unknown>[];
}

async function openStream(url: string, principal?: Principal): Promise<Stream> {
  const ws = new WebSocket(`${url}/v1/stream`, { headers: principal ? { [PRINCIPAL_HEADER]: JSON.stringify(principal) } : {} });
  const replies: Record<string, unknown>[] = [];
  ws.on('message', (d) => replies.push(JSON.parse(String(d)) as Record<string, unknown>));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
  return { ws, replies };
}

test('GET /v1/stream: messages are acked by seq in order; refusals name the seq and a stable code; a resent seq is acked again', async (t) => {
  const h = await harness(t);
  const url = await listen(h.app);
  const s = await openStream(url);
  t.after(() => s.ws.close());
  const e1 = event(1);
  s.ws.send(JSON.stringify({ seq: 7, events: [e1, { ...event(2), kind: 'hover' }] }));
  s.ws.send(JSON.stringify({ seq: 8, events: [1, 2, 3, 4, 5, 6].map((n) => event(10 + n)) }));
  s.ws.send('{"seq": 9, "events": [');
  s.ws.send(JSON.stringify({ seq: 7, events: [e1] }));
  await eventually(() => (s.replies.length === 4 ? true : undefined), 5_000, 5);
  assert.deepEqual(s.replies.map((r) => [r.type, r.seq, r.accepted ?? r.code]), [
    ['ack', 7, 1],
    ['error', 8, 'too_many_events'],
    // Not JSON: its seq cannot be read, so the error names none.
    ['error', null, 'undecodable'],
    ['ack', 7, 1],
  ]);
  assert.equal(s.replies[0]!.rejected, 1);
  assert.deepEqual((s.replies[0]!.rejections as { index: number; reason: string }[]).map((r) => [r.index, r.reason]), [[1, 'unknown_kind']]);
  // The resent message is produced again; its copy is the same event (downstream keeps one).
  const held = await h.onBus(2);
  assert.deepEqual(held.map((e) => e.event_id), [e1.event_id, e1.event_id]);
});

test('GET /v1/stream: a tenant past its concurrent-stream cap is refused 429 before the upgrade; a closed stream frees its place', async (t) => {
  const h = await harness(t, { wsMaxConnectionsPerTenant: 2 });
  const url = await listen(h.app);
  const acme: Principal = { tenantId: 'acme', keyId: 'k1', scopes: ['ingest'] };
  const a = await openStream(url, acme);
  const b = await openStream(url, acme);
  await assert.rejects(openStream(url, acme), (err: { status?: number }) => err.status === 429);
  // Another tenant has its own count.
  const other = await openStream(url, { tenantId: 'globex', keyId: 'k2', scopes: ['ingest'] });
  other.ws.close();
  a.ws.close();
  const c = await eventually(() => openStream(url, acme), 5_000, 20);
  b.ws.close();
  c.ws.close();
});

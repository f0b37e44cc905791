import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { pack, unpack } from 'msgpackr';
import { WebSocket } from 'ws';
import {
  MemoryHotState,
  TOPICS,
  createBus,
  createHotState,
  createLogger,
  decodeEvent,
  defaultConfig,
  setPrincipal,
  ulid,
  type AfterglowConfig,
  type Bus,
  type EdgeSettings,
  type EngagementEvent,
  type Principal,
} from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { EventIntake } from '../intake.js';
import { PlacementPosteriors } from './posterior.js';
import { EDGE_CLOSE } from './protocol.js';
import { EdgeHub, startEdge, type RunningEdge } from './server.js';

/**
 * GET /v1/edge on the in-process bus and hot state: the hello handshake and who may use a
 * client_id, events acked by seq (duplicates and the seq window), malformed frames, per-client
 * limits, and decisions (pushed on subscribe and on change, answered to `decide`). The
 * expected values are written out from the input.
 */
const SETTINGS: Partial<EdgeSettings> = { maxSeqJump: 5, maxSubscriptions: 2, pushMinMs: 10, heartbeatMs: 60_000, idleTimeoutMs: 120_000 };
const PRINCIPAL_HEADER = 'x-test-principal';
const ACME: Principal = { tenantId: 'acme', keyId: 'key-a', scopes: ['ingest'] };

interface Harness {
  url: string;
  bus: Bus;
  edge: RunningEdge;
  /** Events on the bus (exactly `n` of them), decoded. */
  onBus(n: number): Promise<EngagementEvent[]>;
}

async function fastify(t: TestContext): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(websocket);
  // A test-side key: the composition root's auth hook sets the same principal from a real key.
  app.addHook('onRequest', async (req) => {
    const p = req.headers[PRINCIPAL_HEADER];
    if (typeof p === 'string') setPrincipal(req, JSON.parse(p) as Principal);
  });
  t.after(() => app.close());
  return app;
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function harness(t: TestContext): Promise<Harness> {
  const base = defaultConfig();
  const config: AfterglowConfig = {
    ...base,
    hot: { kind: 'memory' },
    edge: { ...base.edge, ...SETTINGS, groupId: 'edge-unit' },
    ingest: { ...base.ingest, maxEventsPerRequest: 3, produceTimeoutMs: 5_000 },
  };
  const bus = await createBus({ kind: 'memory', partitions: 2, maxBacklogBytes: 4 * 1024 * 1024 });
  await bus.ensureTopics([TOPICS.events, TOPICS.assetsScores].map((topic) => ({ topic, partitions: 2 })));
  const producer = await bus.producer();
  const intake = new EventIntake({ producer, limits: config.events, maxInflightBytes: 1 << 20, produceTimeoutMs: 5_000 });
  const app = await fastify(t);
  const hot = await createHotState(config.hot);
  const edge = await startEdge({ app, config, bus, hot, intake, log: createLogger('silent') });
  const url = await listen(app);
  t.after(async () => {
    await edge.stop();
    await hot.close();
    await producer.close();
    await bus.close();
  });
  const seen: EngagementEvent[] = [];
  const reader = bus.consumer({ groupId: 'edge-unit-reader', topics: [TOPICS.events], ephemeral: true });
  t.after(() => reader.stop());
  void reader.run(async (b) => {
    for (const r of b.records) seen.push(decodeEvent(r.value) as EngagementEvent);
  });
  const onBus = async (n: number) => {
    const held = (await bus.endOffsets(TOPICS.events)).reduce((s, o) => s + Number(o.offset), 0);
    assert.equal(held, n, `records on ${TOPICS.events}`);
    return eventually(() => (seen.length === n ? seen : undefined), 5_000, 5);
  };
  return { url, bus, edge, onBus };
}

interface Conn {
  ws: WebSocket;
  got: Record<string, unknown>[];
  closed: Promise<number>;
  /** Sends a message (JSON, or MessagePack when `binary`) and waits for the `n`th reply in all. */
  ask(message: unknown, n?: number): Promise<Record<string, unknown>>;
  /** The `n`th reply (1-based) once it came. */
  nth(n: number): Promise<Record<string, unknown>>;
}

async function connect(url: string, principal: Principal | null = ACME, query = '', binary = false): Promise<Conn> {
  const ws = new WebSocket(`${url}/v1/edge${query}`, { headers: principal ? { [PRINCIPAL_HEADER]: JSON.stringify(principal) } : {} });
  const got: Record<string, unknown>[] = [];
  ws.on('message', (d, isBinary) => got.push((isBinary ? unpack(d as Buffer) : JSON.parse(String(d))) as Record<string, unknown>));
  ws.on('error', () => undefined);
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await Promise.race([new Promise((r) => ws.once('open', r)), closed]);
  const nth = (n: number) => eventually(() => got[n - 1], 5_000, 5);
  return {
    ws,
    got,
    closed,
    nth,
    ask(message, n = got.length + 1) {
      ws.send(binary ? pack(message) : JSON.stringify(message));
      return nth(n);
    },
  };
}

const event = (n: number, over: Record<string, unknown> = {}) => ({
  event_id: ulid(),
  campaign_id: 'c1',
  asset_id: `a${n}`,
  placement: 'hall',
  kind: 'impression',
  value: 1,
  occurred_at: Date.now() - 1_000,
  ...over,
});

test('edge handshake: the tenant comes from the key; hello first, with a valid client_id; the welcome states the limits', async (t) => {
  const h = await harness(t);
  const anonymous = await connect(h.url, null);
  assert.deepEqual([(await anonymous.nth(1)).code, await anonymous.closed], ['tenant_required', EDGE_CLOSE.unauthorized]);
  const other = await connect(h.url, ACME, '?tenant_id=globex');
  assert.deepEqual([(await other.nth(1)).code, await other.closed], ['tenant_forbidden', EDGE_CLOSE.forbidden]);

  const rude = await connect(h.url);
  assert.equal((await rude.ask({ type: 'decide', placement: 'hall' })).code, 'hello_required');
  assert.equal(await rude.closed, EDGE_CLOSE.protocol);
  const badId = await connect(h.url);
  assert.equal((await badId.ask({ type: 'hello', client_id: '-starts-with-a-dash' })).code, 'invalid_client_id');
  assert.equal(await badId.closed, EDGE_CLOSE.protocol);

  const c = await connect(h.url);
  t.after(() => c.ws.close());
  const base = defaultConfig().edge;
  assert.deepEqual(await c.ask({ type: 'hello', client_id: 'screen-1' }), {
    type: 'welcome',
    client_id: 'screen-1',
    tenant_id: 'acme',
    last_seq: 0,
    max_seq_jump: 5,
    heartbeat_ms: 60_000,
    idle_timeout_ms: 120_000,
    max_inflight: base.maxInflightMessages,
  });
  // A hello in MessagePack is answered in MessagePack.
  const packed = await connect(h.url, ACME, '', true);
  t.after(() => packed.ws.close());
  assert.deepEqual(await packed.ask({ type: 'hello', client_id: 'screen-2' }), { ...(await c.nth(1)), client_id: 'screen-2' });
  assert.deepEqual(await packed.ask({ type: 'ping', t: 42 }), { type: 'pong', t: 42 });
});

test('edge handshake: a client_id belongs to the key that first used it; the same key replaces its older connection, which keeps its seq', async (t) => {
  const h = await harness(t);
  const first = await connect(h.url);
  await first.ask({ type: 'hello', client_id: 'kiosk' });
  assert.deepEqual(await first.ask({ type: 'events', seq: 1, events: [event(1)] }), { type: 'ack', seq: 1, accepted: 1, rejected: 0 });

  const thief = await connect(h.url, { ...ACME, keyId: 'key-b' });
  assert.equal((await thief.ask({ type: 'hello', client_id: 'kiosk' })).code, 'client_id_taken');
  assert.equal(await thief.closed, EDGE_CLOSE.forbidden);
  // The owner's connection was not touched.
  assert.deepEqual(await first.ask({ type: 'ping' }), { type: 'pong' });

  const again = await connect(h.url);
  t.after(() => again.ws.close());
  assert.equal((await again.ask({ type: 'hello', client_id: 'kiosk' })).last_seq, 1);
  assert.equal(await first.closed, EDGE_CLOSE.replaced);
  // Another tenant's client with the same id is another client.
  const globex = await connect(h.url, { tenantId: 'globex', keyId: 'key-g', scopes: ['ingest'] });
  t.after(() => globex.ws.close());
  assert.deepEqual([(await globex.ask({ type: 'hello', client_id: 'kiosk' })).last_seq], [0]);
});

test('edge events: acked by seq; a resent seq is a duplicate produced once; a seq past the window changes nothing', async (t) => {
  const h = await harness(t);
  const c = await connect(h.url);
  t.after(() => c.ws.close());
  await c.ask({ type: 'hello', client_id: 'dev-1' });
  const e1 = event(1);
  assert.deepEqual(await c.ask({ type: 'events', seq: 1, events: [e1] }), { type: 'ack', seq: 1, accepted: 1, rejected: 0 });
  assert.deepEqual(await c.ask({ type: 'events', seq: 1, events: [e1] }), { type: 'ack', seq: 1, accepted: 0, rejected: 0, duplicate: true });
  // maxSeqJump 5: from last seq 1, 7 is out of the window and 6 is in.
  const refused = await c.ask({ type: 'events', seq: 7, events: [event(7)] });
  assert.deepEqual([refused.code, refused.seq, refused.retryable], ['seq_out_of_window', 7, false]);
  const e6 = event(6, { tenant_id: 'globex' });
  const e6b = event(6, { kind: 'click', edge_node: 'elsewhere' });
  const six = await c.ask({ type: 'events', seq: 6, events: [e6, e6b] });
  assert.deepEqual([six.type, six.seq, six.accepted, six.rejected], ['ack', 6, 1, 1]);
  assert.deepEqual((six.rejections as { index: number; reason: string }[]).map((r) => [r.index, r.reason]), [[0, 'tenant_forbidden']]);
  // Events default to the connection's tenant and take the client_id as edge_node unless they name one.
  const held = await h.onBus(2);
  assert.deepEqual(
    held.map((e) => [e.event_id, e.tenant_id, e.edge_node]).sort(),
    [
      [e1.event_id, 'acme', 'dev-1'],
      [e6b.event_id, 'acme', 'elsewhere'],
    ].sort(),
  );
});

test('edge frames: malformed ones get a stable code and leave the session usable; per-message and per-connection limits hold', async (t) => {
  const h = await harness(t);
  const c = await connect(h.url);
  t.after(() => c.ws.close());
  await c.ask({ type: 'hello', client_id: 'dev-2' });
  const cases: [unknown, Record<string, unknown>][] = [
    ['{"type":', { code: 'undecodable', retryable: false }],
    [[1, 2], { code: 'undecodable', retryable: false }],
    [{ type: 'dance' }, { code: 'unknown_type', retryable: false }],
    [{ type: 'events', seq: 0, events: [] }, { code: 'invalid_seq', seq: null }],
    [{ type: 'events', seq: 1.5, events: [] }, { code: 'invalid_seq', seq: null }],
    [{ type: 'events', seq: '2', events: [] }, { code: 'invalid_seq', seq: null }],
    [{ type: 'events', seq: 1, events: 'none' }, { code: 'invalid_events', seq: 1, retryable: false }],
    // maxEventsPerRequest is 3.
    [{ type: 'events', seq: 1, events: [1, 2, 3, 4].map((n) => event(n)) }, { code: 'too_many_events', seq: 1, retryable: false }],
    [{ type: 'subscribe', placement: 'bad placement!' }, { code: 'invalid_placement' }],
  ];
  for (const [message, expected] of cases) {
    c.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    const reply = await c.nth(c.got.length + 1);
    assert.equal(reply.type, 'error', JSON.stringify(message));
    for (const [k, v] of Object.entries(expected)) assert.deepEqual(reply[k], v, `${JSON.stringify(message)}: ${k}`);
  }
  // Nothing was produced, and seq 1 is still free.
  assert.deepEqual(await c.ask({ type: 'events', seq: 1, events: [event(1)] }), { type: 'ack', seq: 1, accepted: 1, rejected: 0 });
  await h.onBus(1);
  // maxSubscriptions is 2 per connection: a third placement is refused, a repeated one is not.
  assert.equal((await c.ask({ type: 'subscribe', placement: 'p1' })).type, 'decision');
  assert.equal((await c.ask({ type: 'subscribe', placement: 'p2' })).type, 'decision');
  assert.equal((await c.ask({ type: 'subscribe', placement: 'p3' })).code, 'too_many_subscriptions');
  assert.equal((await c.ask({ type: 'subscribe', placement: 'p1' })).type, 'decision');
  // A placement key may use its placements only.
  const screen = await connect(h.url, { ...ACME, keyId: 'key-s', placements: ['lobby'] });
  t.after(() => screen.ws.close());
  await screen.ask({ type: 'hello', client_id: 'screen-9' });
  assert.equal((await screen.ask({ type: 'decide', placement: 'hall' })).code, 'placement_forbidden');
  // No state for the placement yet: no asset to show; the request's id is echoed.
  const { at, ...decision } = await screen.ask({ type: 'decide', placement: 'lobby', id: 3 });
  assert.deepEqual(decision, { type: 'decision', placement: 'lobby', asset_id: null, id: 3 });
  assert.equal(typeof at, 'number');
});

test('edge decisions: the prior on subscribe, the better asset pushed once counts change, and answered to decide', async (t) => {
  const h = await harness(t);
  const c = await connect(h.url);
  t.after(() => c.ws.close());
  await c.ask({ type: 'hello', client_id: 'sign-1' });
  const first = await c.ask({ type: 'subscribe', placement: 'foyer', assets: ['x', 'y', 'not an id'] });
  // No counts: both at the pooled prior (0 + 1) / (0 + 2) = 0.5.
  assert.deepEqual([first.placement, first.means], ['foyer', { x: 0.5, y: 0.5 }]);
  assert.deepEqual(Object.keys(first.shares as object).sort(), ['x', 'y']);
  // x: 30 clicks in 100 impressions; y: none in 100.
  const now = Date.now();
  for (let i = 0; i < 100; i++) {
    h.edge.posteriors.add('acme', 'foyer', 'x', 'impression', now);
    h.edge.posteriors.add('acme', 'foyer', 'y', 'impression', now);
    if (i < 30) h.edge.posteriors.add('acme', 'foyer', 'x', 'click', now);
  }
  const pushed = await c.nth(3);
  // Pooled rate m = (30 + 1) / (200 + 2); prior strength S = 20: mean = (m S + e) / (S + i).
  const m = 31 / 202;
  const S = defaultConfig().edge.priorStrength;
  assert.equal(S, 20);
  const means = pushed.means as Record<string, number>;
  assert.equal(pushed.asset_id, 'x');
  assert.ok(Math.abs(means.x! - (m * S + 30) / (S + 100)) < 1e-3, `x ${means.x}`);
  assert.ok(Math.abs(means.y! - (m * S) / (S + 100)) < 1e-3, `y ${means.y}`);
  // Beta(33.1, 86.9) against Beta(3.1, 116.9): y's draw beats x's with probability far below 1e-6.
  const decided = await c.ask({ type: 'decide', placement: 'foyer', id: 'q-1' });
  assert.deepEqual([decided.type, decided.placement, decided.asset_id, decided.id], ['decision', 'foyer', 'x', 'q-1']);
  // Unsubscribed: no more pushes. A placement still subscribed changes in the same push round (due
  // placements are pushed in the order they changed): its decision arrives with none for foyer before it.
  const sentinel = await c.ask({ type: 'subscribe', placement: 'hall', assets: ['s1', 's2'] });
  assert.equal(sentinel.placement, 'hall');
  c.ws.send(JSON.stringify({ type: 'unsubscribe', placement: 'foyer' }));
  await c.ask({ type: 'ping', t: 1 });
  const before = c.got.length;
  for (let i = 0; i < 100; i++) {
    h.edge.posteriors.add('acme', 'foyer', 'y', 'click', now);
    h.edge.posteriors.add('acme', 'hall', 's1', 'impression', now);
    h.edge.posteriors.add('acme', 'hall', 's2', 'impression', now);
    if (i < 30) h.edge.posteriors.add('acme', 'hall', 's2', 'click', now);
  }
  const next = await c.nth(before + 1);
  assert.deepEqual([next.type, next.placement, next.asset_id], ['decision', 'hall', 's2']);
});

test('edge idle timeout: a connection silent past idleTimeoutMs by the hub clock is closed as idle; one that talks is kept', async (t) => {
  let now = 1_000_000;
  const bus = await createBus({ kind: 'memory', partitions: 1, maxBacklogBytes: 1024 * 1024 });
  await bus.ensureTopics([{ topic: TOPICS.events, partitions: 1 }]);
  const producer = await bus.producer();
  const hot = new MemoryHotState();
  const settings: EdgeSettings = { ...defaultConfig().edge, heartbeatMs: 50, idleTimeoutMs: 1_000 };
  const hub = new EdgeHub({
    intake: new EventIntake({ producer, limits: defaultConfig().events, maxInflightBytes: 1 << 20, produceTimeoutMs: 1_000 }),
    hot,
    posteriors: new PlacementPosteriors(settings),
    settings,
    keyPrefix: 'unit:edge',
    produceTimeoutMs: 1_000,
    maxEventsPerMessage: 10,
    log: createLogger('silent'),
    clock: () => now,
  });
  const app = await fastify(t);
  app.get('/v1/edge', { websocket: true }, (socket) => {
    hub.accept(socket, 'acme', undefined, { tenantId: 'acme' }, undefined);
  });
  const url = await listen(app);
  t.after(async () => {
    await hub.close();
    await hot.close();
    await producer.close();
    await bus.close();
  });
  const quiet = await connect(url);
  const chatty = await connect(url);
  t.after(() => chatty.ws.close());
  await quiet.ask({ type: 'hello', client_id: 'quiet' });
  await chatty.ask({ type: 'hello', client_id: 'chatty' });
  // 600 ms of hub time: both are within the timeout; the chatty one speaks at 600.
  now += 600;
  await chatty.ask({ type: 'ping', t: 1 });
  // 1,001 ms after the quiet one's hello: past its timeout, 401 after the chatty one's ping.
  now += 401;
  assert.equal(await quiet.closed, EDGE_CLOSE.idle);
  assert.deepEqual(await chatty.ask({ type: 'ping', t: 2 }), { type: 'pong', t: 2 });
  assert.equal(hub.sessions.size, 1);
});

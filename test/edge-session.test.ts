import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { ulid } from '@afterglow/core';
import { EDGE_CLOSE, EDGE_ERROR, EdgeClient } from '@afterglow/ingest';
import { startApp, type TestApp } from './support.js';

/**
 * The edge session's rules, on the embedded adapters: hello first, idle connections closed,
 * placement keys confined to their placements, no connection without a key (when keys are on),
 * seqs within the window, and the reference client renumbering after the server forgot it.
 */
let app: TestApp | undefined;
const tenant = uniqueName('tenant');

before(async () => {
  app = await startApp({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '', EDGE_GROUP_ID: uniqueName('edge'), EDGE_IDLE_TIMEOUT_MS: '600', EDGE_HEARTBEAT_MS: '200', EDGE_SEQ_TTL_MS: '1000', EDGE_MAX_SEQ_JUMP: '5' }, ['ingest']);
});
after(async () => {
  await app?.close();
});

interface Conn {
  ws: WebSocket;
  messages: Record<string, unknown>[];
  closed: Promise<number>;
}

async function open(headers: Record<string, string>): Promise<Conn> {
  const ws = new WebSocket(`${app!.running.url.replace(/^http/, 'ws')}/v1/edge?tenant_id=${tenant}`, { headers });
  const messages: Record<string, unknown>[] = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  ws.on('error', () => undefined);
  await Promise.race([new Promise((r) => ws.once('open', r)), closed]);
  return { ws, messages, closed };
}

test('edge: hello comes first; a silent connection is closed as idle', async () => {
  const headers = await app!.authHeaders(tenant, ['ingest']);
  const rude = await open(headers);
  rude.ws.send(JSON.stringify({ type: 'subscribe', placement: 'p' }));
  assert.equal(await rude.closed, EDGE_CLOSE.protocol);
  assert.equal(rude.messages[0]!.code, 'hello_required');

  const quiet = await open(headers);
  quiet.ws.send(JSON.stringify({ type: 'hello', client_id: 'quiet-1' }));
  await eventually(() => (quiet.messages[0]?.type === 'welcome' ? true : undefined));
  assert.equal(await quiet.closed, EDGE_CLOSE.idle);
});

test('edge: a placement key is confined to its placements', async () => {
  const keys = app!.running.keys;
  assert.ok(keys, 'the test app runs with API keys (AUTH_MODE=keys)');
  const { key } = await keys.create({ tenantId: tenant, scopes: ['ingest'], placements: ['lobby'], name: 'screen' });
  const c = await open({ authorization: `Bearer ${key}` });
  c.ws.send(JSON.stringify({ type: 'hello', client_id: 'screen-1' }));
  c.ws.send(JSON.stringify({ type: 'subscribe', placement: 'lobby', assets: ['x', 'y'] }));
  c.ws.send(JSON.stringify({ type: 'subscribe', placement: 'elsewhere' }));
  await eventually(() => (c.messages.length >= 3 ? true : undefined));
  assert.deepEqual(c.messages.map((m) => m.type), ['welcome', 'decision', 'error']);
  assert.equal(c.messages[1]!.placement, 'lobby');
  assert.equal(c.messages[2]!.code, 'placement_forbidden');
  c.ws.close();

  const anonymous = await open({});
  const code = await anonymous.closed;
  assert.ok(code !== 1000, `refused without a key (${code})`);
});

test('edge: a seq beyond the window is refused; the reference client renumbers once the server forgot it', async () => {
  const headers = await app!.authHeaders(tenant, ['ingest']);
  const c = new EdgeClient({ url: app!.running.url, clientId: uniqueName('dev'), tenantId: tenant, headers, pingMs: 100, reconnectDelayMs: 50 });
  const events = () => [{ event_id: ulid(), campaign_id: 'c', asset_id: 'a', placement: 'p', kind: 'impression', value: 1, occurred_at: Date.now() }];
  await c.connect();
  for (let i = 1; i <= 8; i++) assert.equal((await c.send(events())).seq, i);
  c.close();

  // A raw client one past the window is refused; the next seq in it is taken.
  const raw = await open(headers);
  raw.ws.send(JSON.stringify({ type: 'hello', client_id: 'raw-1' }));
  raw.ws.send(JSON.stringify({ type: 'events', seq: 7, events: events() }));
  raw.ws.send(JSON.stringify({ type: 'events', seq: 5, events: events() }));
  await eventually(() => (raw.messages.length >= 3 ? true : undefined));
  assert.deepEqual(raw.messages.slice(1).map((m) => [m.type, m.seq, m.code]), [['error', 7, EDGE_ERROR.seqOutOfWindow], ['ack', 5, undefined]]);
  raw.ws.close();

  // The seq TTL passes: the server answers last_seq 0, and the client's next seq (9) is out of the
  // window of 5; what it holds unacked was never produced, so it goes again from seq 1.
  await new Promise((r) => setTimeout(r, 1_300));
  const pending = c.send(events());
  await c.connect();
  assert.equal(c.lastSeqFromServer, 0);
  const ack = await pending;
  assert.deepEqual({ seq: ack.seq, accepted: ack.accepted, duplicate: ack.duplicate }, { seq: 1, accepted: 1, duplicate: undefined });
  assert.equal((await c.send(events())).seq, 2);
  c.close();
});

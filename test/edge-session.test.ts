import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { eventually, uniqueName } from '@afterglow/core/testing';
import { EDGE_CLOSE } from '@afterglow/ingest';
import { startApp, type TestApp } from './support.js';

/**
 * The edge session's rules, on the embedded adapters: hello first, idle connections closed,
 * placement keys confined to their placements, no connection without a key (when keys are on).
 */
let app: TestApp | undefined;
const tenant = uniqueName('tenant');

before(async () => {
  app = await startApp({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '', EDGE_GROUP_ID: uniqueName('edge'), EDGE_IDLE_TIMEOUT_MS: '600', EDGE_HEARTBEAT_MS: '200' }, ['ingest']);
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

test('edge: a placement key is confined to its placements', async (t) => {
  const keys = app!.running.keys;
  if (!keys) return t.skip('API keys are off');
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

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { pack, unpack } from 'msgpackr';
import { WebSocket } from 'ws';
import { uniqueName } from '@afterglow/testkit/services';
import { ANY_TENANT, authFetch, fetchTotals, headersFor, makeEvents, postEvents, startApp, waitForSinkDrained, type TestApp } from './support.js';

/** Ingest at its edges, on the embedded adapters: WebSocket stream, size limits, backpressure. */

let app: TestApp;
before(async () => {
  app = await startApp({ INGEST_MAX_BODY_BYTES: String(2 * 1024 * 1024), INGEST_WS_MAX_MESSAGE_BYTES: String(256 * 1024) });
});
after(async () => {
  await app.close();
});

async function openStream(url: string, tenant = ANY_TENANT): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/stream`, { headers: await headersFor(url, tenant, ['ingest']) });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('WebSocket stream: JSON and MessagePack messages are acked in order by seq, and counted', async () => {
  const tenant = uniqueName('ws');
  const campaign = uniqueName('c');
  const { events, expected } = makeEvents(600, tenant, [campaign]);
  const ws = await openStream(app.running.url, tenant);
  const acks: { type: string; seq: number; accepted?: number; rejected?: number; code?: string }[] = [];
  ws.on('message', (data, isBinary) => acks.push(isBinary ? unpack(data as Buffer) : JSON.parse(String(data))));
  for (let i = 0; i < 6; i++) {
    const message = { seq: 100 + i, events: events.slice(i * 100, (i + 1) * 100) };
    if (i % 2) ws.send(pack(message));
    else ws.send(JSON.stringify(message));
  }
  ws.send(JSON.stringify({ seq: 200, events: [{ ...events[0], kind: 'nope' }] }));
  ws.send('this is not json');
  await new Promise<void>((resolve) => {
    const check = () => (acks.length >= 8 ? resolve() : setTimeout(check, 20));
    check();
  });
  ws.close();
  assert.deepEqual(acks.map((a) => a.seq), [100, 101, 102, 103, 104, 105, 200, null]);
  assert.deepEqual(acks.slice(0, 6).map((a) => [a.type, a.accepted]), Array(6).fill(['ack', 100]));
  assert.equal(acks[6]!.rejected, 1);
  assert.deepEqual([acks[7]!.type, acks[7]!.code], ['error', 'undecodable']);
  await waitForSinkDrained(app.running);
  assert.deepEqual((await fetchTotals(app.running.url, tenant, campaign)).counts, expected.get(campaign));
});

test('an oversized WebSocket message closes that socket only', async () => {
  const ws = await openStream(app.running.url);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(Buffer.alloc(300 * 1024, 0x20));
  assert.equal(await closed, 1009, 'message too big');
  const other = await openStream(app.running.url);
  other.close();
});

test('bodies over the limit are refused with 413, also when they only grow once decompressed', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 0x20);
  const res = await authFetch(`${app.running.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
  assert.equal(res.status, 413);
  // A gzip bomb: 50 MiB of spaces in ~50 KiB on the wire.
  const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 0x20));
  assert.ok(bomb.length < 100 * 1024);
  const r2 = await authFetch(`${app.running.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    body: bomb,
  });
  assert.equal(r2.status, 413);
  const r3 = await authFetch(`${app.running.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'compress' },
    body: '[]',
  });
  assert.equal(r3.status, 415);
  // The server is still fine.
  const ok = await postEvents(app.running.url, makeEvents(3, uniqueName('t'), ['c']).events);
  assert.equal(ok.status, 202);
});

test('a bus that falls behind slows clients with 429 + Retry-After instead of buffering', async () => {
  // Ingest alone (no sink consuming) on a bus that holds at most 256 KiB unconsumed.
  // chDB binds one data directory per process, so this second app shares the first one's.
  const small = await startApp(
    { BUS_MEMORY_MAX_BACKLOG_BYTES: String(256 * 1024), SINK_GROUP_ID: uniqueName('g'), AFTERGLOW_DATA_DIR: app.dataDir },
    ['ingest', 'stream'],
  );
  try {
    // Stop the sink so nothing drains the log; its group still pins retention.
    await small.running.sink!.stop();
    const tenant = uniqueName('bp');
    let refused: Response | undefined;
    let accepted = 0;
    for (let i = 0; i < 50 && !refused; i++) {
      const { events } = makeEvents(500, tenant, ['c']);
      const res = await authFetch(`${small.running.url}/v1/events`, { tenant, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
      if (res.status === 202) accepted += ((await res.json()) as { accepted: number }).accepted;
      else refused = res;
    }
    assert.ok(refused, 'the intake refused once the bus backlog was full');
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.ok(accepted > 0 && accepted < 25_000, `accepted ${accepted} before refusing`);
  } finally {
    await small.close();
  }
});

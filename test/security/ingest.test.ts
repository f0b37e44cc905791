import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { unpack } from 'msgpackr';
import { WebSocket } from 'ws';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import { makeEvents, startApp, type TestApp } from '../support.js';

/**
 * Ingest under hostile bodies, against the real server in this process: each request does bounded
 * work before it is refused, and other clients are served meanwhile. Bounds here are loose hang
 * guards for a busy 2-core machine; bench/ingest-hostile.ts prints the precise event-loop figures.
 */

const CAP = 1_000;
let app: TestApp;
before(async () => {
  app = await startApp(
    {
      INGEST_MAX_EVENTS_PER_REQUEST: String(CAP),
      INGEST_MAX_BAD_LINES: '100',
      // Decompressed bytes count against the key: 4 MiB burst, 1 MiB/s.
      RATE_BYTES_BURST: String(4 * 2 ** 20),
      RATE_BYTES_PER_SEC: String(2 ** 20),
      RATE_EVENTS_PER_SEC: '0',
    },
    ['ingest'],
  );
});
after(async () => {
  await app?.close();
});

interface Answer {
  status: number;
  body: { error?: string; message?: string; accepted?: number };
  ms: number;
}

async function post(tenant: string, body: Buffer, type: string, gzip = false): Promise<Answer> {
  const t0 = performance.now();
  const res = await app.request(tenant, '/v1/events', {
    method: 'POST',
    scopes: ['ingest'],
    headers: { 'content-type': type, ...(gzip && { 'content-encoding': 'gzip' }) },
    body: gzip ? gzipSync(body) : body,
  });
  return { status: res.status, body: (await res.json()) as Answer['body'], ms: performance.now() - t0 };
}

/**
 * Runs `attack` while another client polls /v1/whoami; returns the attack's answer, the slowest
 * whoami and the longest event-loop stall seen meanwhile (the server runs in this process).
 */
async function whileServing<T>(attack: () => Promise<T>): Promise<{ result: T; slowestWhoamiMs: number; maxLoopDelayMs: number; polls: number }> {
  const headers = await app.authHeaders(uniqueName('bystander'), ['read']);
  let done = false;
  let slowest = 0;
  let polls = 0;
  const poller = (async () => {
    while (!done) {
      const t0 = performance.now();
      const res = await fetch(`${app.running.url}/v1/whoami`, { headers });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      slowest = Math.max(slowest, performance.now() - t0);
      polls++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  try {
    const result = await attack();
    return { result, slowestWhoamiMs: slowest, maxLoopDelayMs: loop.max / 1e6, polls };
  } finally {
    loop.disable();
    done = true;
    await poller;
  }
}

test('a 2 KB gzip body of a million undecodable lines is refused at the event cap, before parsing; others are served meanwhile', async () => {
  const bomb = gzipSync(Buffer.from('x\n'.repeat(1_000_000)));
  assert.ok(bomb.length < 8 * 1024, `${bomb.length} bytes on the wire`);
  const tenant = uniqueName('bomb');
  const { result, slowestWhoamiMs, maxLoopDelayMs } = await whileServing(async () => {
    const t0 = performance.now();
    const res = await app.request(tenant, '/v1/events', {
      method: 'POST',
      scopes: ['ingest'],
      headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
      body: bomb,
    });
    return { status: res.status, body: (await res.json()) as Answer['body'], ms: performance.now() - t0 };
  });
  console.log(
    `gzip bomb of 1M bad lines (${bomb.length} bytes): ${result.status} in ${result.ms.toFixed(0)} ms; ` +
      `longest event-loop stall meanwhile ${maxLoopDelayMs.toFixed(0)} ms, slowest concurrent /v1/whoami ${slowestWhoamiMs.toFixed(0)} ms`,
  );
  assert.equal(result.status, 413);
  assert.equal(result.body.error, 'too_many_events');
  // The scan's refusal (found while counting lines), not the parser's count of a fully parsed body.
  assert.match(result.body.message!, new RegExp(`more than ${CAP} events`));
  assert.ok(result.ms < 1_000, `answered in ${result.ms.toFixed(0)} ms`);
  assert.ok(slowestWhoamiMs < 1_000, `a concurrent /v1/whoami took ${slowestWhoamiMs.toFixed(0)} ms`);
  assert.ok(maxLoopDelayMs < 1_000, `the event loop stalled ${maxLoopDelayMs.toFixed(0)} ms`);
});

test('more events than the cap: refused from the count (JSON arrays too), without parsing', async () => {
  const tenant = uniqueName('cap');
  const lines = Buffer.from(makeEvents(CAP + 1, tenant, ['c']).events.map((e) => JSON.stringify(e)).join('\n'));
  const ndjson = await post(tenant, lines, 'application/x-ndjson');
  assert.deepEqual([ndjson.status, ndjson.body.error], [413, 'too_many_events']);
  assert.match(ndjson.body.message!, /more than 1000 events/);
  // Elements are counted at the array's top level only: nested arrays and commas in strings are not events.
  const nested = `[${Array.from({ length: CAP + 1 }, () => '{"a":[1,2,3],"s":"x,y]"}').join(',')}]`;
  const json = await post(tenant, Buffer.from(nested), 'application/json');
  assert.deepEqual([json.status, json.body.error], [413, 'too_many_events']);
  const atCap = `[${Array.from({ length: CAP }, () => '{"a":[1,2,3],"s":"x,y]"}').join(',')}]`;
  const ok = await post(tenant, Buffer.from(atCap), 'application/json');
  assert.equal(ok.status, 422, 'at the cap the body is parsed (and its events refused one by one)');
});

test('undecodable lines under the cap: refused whole past INGEST_MAX_BAD_LINES, naming the first bad line', async () => {
  const tenant = uniqueName('bad');
  const good = JSON.stringify(makeEvents(1, tenant, ['c']).events[0]);
  const body = Buffer.from(`${good}\n${'{nope\n'.repeat(500)}`);
  const r = await post(tenant, body, 'application/x-ndjson', true);
  assert.deepEqual([r.status, r.body.error], [400, 'too_many_bad_lines']);
  assert.match(r.body.message!, /the first is line 2: line is not valid JSON/);
  // A few bad lines are still refused one by one, and the good ones kept.
  const few = await post(tenant, Buffer.from(`${good}\n{nope\n\n`), 'application/x-ndjson');
  assert.equal(few.status, 202);
  assert.equal(few.body.accepted, 1);
});

test('a thousand invalid events get every rejection back, the answer serialized in slices', async () => {
  const tenant = uniqueName('many');
  const r = await post(tenant, Buffer.from('{}\n'.repeat(CAP)), 'application/x-ndjson', true);
  assert.equal(r.status, 422);
  const body = r.body as { accepted: number; rejected: number; rejections: { index: number; reason: string }[] };
  assert.deepEqual([body.accepted, body.rejected, body.rejections.length], [0, CAP, CAP]);
  assert.deepEqual(body.rejections.map((x) => x.index), Array.from({ length: CAP }, (_, i) => i));
});

test('one line longer than any event is refused unbuffered (413 event_too_large)', async () => {
  const tenant = uniqueName('long');
  const r = await post(tenant, Buffer.from(`{"a":"${'x'.repeat(2 * 2 ** 20)}"}\n`), 'application/x-ndjson', true);
  assert.deepEqual([r.status, r.body.error], [413, 'event_too_large']);
});

test('decompressed bytes are charged to the key: a small gzip body that inflates past the budget gets 429', async () => {
  const tenant = uniqueName('inflate');
  // 3 MiB of whitespace in an array: a valid, empty batch, a few KB on the wire.
  const big = Buffer.from(`[${' '.repeat(3 * 2 ** 20)}]`);
  const first = await post(tenant, big, 'application/json', true);
  assert.equal(first.status, 202);
  const second = await post(tenant, big, 'application/json', true);
  assert.deepEqual([second.status, second.body.error], [429, 'rate_limited']);
});

test('a large legitimate body is parsed in slices: other requests are served while it is', async () => {
  const tenant = uniqueName('large');
  const big = await startApp({ AFTERGLOW_DATA_DIR: app.dataDir, RATE_EVENTS_PER_SEC: '0', RATE_BYTES_PER_SEC: '0' }, ['ingest']);
  try {
    const body = JSON.stringify(makeEvents(50_000, tenant, ['c']).events);
    const headers = { ...(await big.authHeaders(tenant, ['ingest'])), 'content-type': 'application/json' };
    const bystander = await big.authHeaders(uniqueName('bystander'), ['read']);
    let slowest = 0;
    let done = false;
    const poller = (async () => {
      while (!done) {
        const t0 = performance.now();
        await (await fetch(`${big.running.url}/v1/whoami`, { headers: bystander })).arrayBuffer();
        slowest = Math.max(slowest, performance.now() - t0);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const res = await fetch(`${big.running.url}/v1/events`, { method: 'POST', headers, body });
    done = true;
    await poller;
    assert.equal(res.status, 202);
    assert.equal(((await res.json()) as { accepted: number }).accepted, 50_000);
    assert.ok(slowest < 1_000, `a concurrent /v1/whoami took ${slowest.toFixed(0)} ms`);
  } finally {
    await big.close();
  }
});

test('a WebSocket message of a million tiny elements is refused from the count, before parsing', async () => {
  const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers: await app.authHeaders(uniqueName('wsbomb'), ['ingest']) });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  try {
    const message = `{"seq":1,"events":[${'{},'.repeat(1_300_000)}{}]}`;
    assert.ok(message.length < 4 * 2 ** 20);
    const { result, maxLoopDelayMs, slowestWhoamiMs } = await whileServing(async () => {
      const t0 = performance.now();
      const reply = new Promise<{ type: string; seq: number; code: string; message: string }>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
      ws.send(message);
      return { reply: await reply, ms: performance.now() - t0 };
    });
    console.log(`WebSocket message of 1.3M {} elements: ${result.reply.code} in ${result.ms.toFixed(0)} ms; longest event-loop stall meanwhile ${maxLoopDelayMs.toFixed(0)} ms`);
    assert.deepEqual([result.reply.type, result.reply.seq, result.reply.code], ['error', 1, 'too_many_events']);
    // The scan's refusal, not the count of a parsed message.
    assert.match(result.reply.message, new RegExp(`more than ${CAP} events`));
    assert.ok(maxLoopDelayMs < 1_000 && slowestWhoamiMs < 1_000, `stall ${maxLoopDelayMs.toFixed(0)} ms, whoami ${slowestWhoamiMs.toFixed(0)} ms`);
  } finally {
    ws.close();
  }
});

test('a MessagePack message of four million empty maps is refused from its array header, before unpacking', async () => {
  const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers: await app.authHeaders(uniqueName('wsbomb'), ['ingest']) });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  try {
    // {seq: 1, events: [{}, {}, ...]}: 4,000,000 one-byte empty maps.
    const n = 4_000_000;
    const head = Buffer.from([0x82, 0xa3, 0x73, 0x65, 0x71, 0x01, 0xa6, ...Buffer.from('events'), 0xdd, 0, 0, 0, 0]);
    head.writeUInt32BE(n, head.length - 4);
    const message = Buffer.concat([head, Buffer.alloc(n, 0x80)]);
    const { result, maxLoopDelayMs } = await whileServing(async () => {
      const t0 = performance.now();
      const reply = new Promise<{ type: string; seq: number; code: string; message: string }>((resolve) => ws.once('message', (d) => resolve(unpack(d as Buffer))));
      ws.send(message, { binary: true });
      return { reply: await reply, ms: performance.now() - t0 };
    });
    console.log(`MessagePack message of 4M empty maps: ${result.reply.code} in ${result.ms.toFixed(0)} ms; longest event-loop stall meanwhile ${maxLoopDelayMs.toFixed(0)} ms`);
    assert.deepEqual([result.reply.type, result.reply.seq, result.reply.code], ['error', 1, 'too_many_events']);
    assert.match(result.reply.message, new RegExp(`more than ${CAP} events`), 'refused from the header, not after unpacking');
    assert.ok(maxLoopDelayMs < 1_000, `stall ${maxLoopDelayMs.toFixed(0)} ms`);
  } finally {
    ws.close();
  }
});

async function openStream(target: TestApp, headers: Record<string, string>): Promise<{ ws?: WebSocket; status: number }> {
  const ws = new WebSocket(`${target.running.url.replace(/^http/, 'ws')}/v1/stream`, { headers });
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('error', () => resolve({ status: -1 }));
  });
}

test('WebSocket ingest: one process-wide byte budget pauses every stream; a tenant has a connection cap', async () => {
  const budget = 64 * 1024;
  const ws = await startApp(
    {
      AFTERGLOW_DATA_DIR: app.dataDir,
      INGEST_WS_MAX_TOTAL_INFLIGHT_BYTES: String(budget),
      INGEST_WS_MAX_CONNECTIONS_PER_TENANT: '3',
      // Messages wait on the key's events/s, so they pile up unless reading pauses.
      RATE_EVENTS_PER_SEC: '400',
      RATE_EVENTS_BURST: '400',
      RATE_MAX_CONNECTIONS: '0',
    },
    ['ingest'],
  );
  try {
    const tenant = uniqueName('wsb');
    const keys = [await ws.authHeaders(tenant, ['ingest']), await ws.authHeaders(tenant, ['ingest', 'read']), await ws.authHeaders(tenant, ['ingest', 'admin'])];
    const sockets = await Promise.all(keys.map((k) => openStream(ws, k)));
    assert.deepEqual(sockets.map((s) => s.status), [101, 101, 101]);
    const fourth = await openStream(ws, await ws.authHeaders(tenant, ['ingest', 'read', 'admin']));
    assert.equal(fourth.status, 429, 'a fourth stream of the tenant is refused at the upgrade');
    assert.equal((await openStream(ws, await ws.authHeaders(uniqueName('wsb-other'), ['ingest']))).status, 101, 'other tenants are not affected');

    // Each socket sends 12 messages of 100 events (~25 KB each): 900 KB offered against a 64 KiB budget.
    const acks = [0, 0, 0];
    let maxInflight = 0;
    const sample = setInterval(() => {
      void ws.running.registry.getSingleMetric('afterglow_ingest_ws_inflight_bytes')?.get().then((m) => (maxInflight = Math.max(maxInflight, m.values[0]?.value ?? 0)));
    }, 20);
    sockets.forEach((s, i) => {
      s.ws!.on('message', (d) => {
        if ((JSON.parse(String(d)) as { type: string }).type === 'ack') acks[i]!++;
      });
      for (let seq = 1; seq <= 12; seq++) s.ws!.send(JSON.stringify({ seq, events: makeEvents(100, tenant, ['c']).events }));
    });
    await eventually(() => (acks.every((a) => a === 12) ? true : undefined), 60_000, 50);
    clearInterval(sample);
    const message = JSON.stringify({ seq: 1, events: makeEvents(100, tenant, ['c']).events }).length;
    // Over the budget each socket can hold at most what it had already read: one message each, plus what ws had buffered.
    assert.ok(maxInflight <= budget + 3 * 2 * message, `in flight peaked at ${maxInflight} bytes (budget ${budget})`);
    for (const s of sockets) s.ws!.close();
    // A closed stream frees its tenant slot.
    await eventually(async () => {
      const again = await openStream(ws, keys[0]!);
      again.ws?.close();
      return again.status === 101 ? true : undefined;
    }, 10_000, 100);
  } finally {
    await ws.close();
  }
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { brotliCompressSync, crc32, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { WebSocket } from 'ws';
import { REJECT_REASONS, ulid } from '@afterglow/core';
import { EDGE_CLOSE, EDGE_ERROR, EdgeClient } from '@afterglow/ingest';
import { uniqueName } from '@afterglow/testkit/services';
import { registeredRoutes } from 'afterglow';
import { startApp, type TestApp } from './support.js';

/**
 * Property-based fuzzing of the hostile-input surfaces (issue 8), with fast-check, seeded:
 *   POST /v1/events   malformed JSON / NDJSON, wrong types, oversized fields and attrs, deep
 *                     nesting, unicode (lone surrogates included), compression garbage and bombs;
 *                     NDJSON shapes (blank lines, CRLF, BOM, huge lines, deep nesting, non-UTF-8
 *                     bytes, too many lines or bad lines) checked against a model of the answer
 *   /v1/stream (WS)   random text and binary frames, wrong MessagePack, oversized frames
 *   /v1/live (WS)     random frames, unknown ops, hostile topic names, oversized frames
 *   /v1/edge (WS)     random and malformed hellos (another key's client_id included), seqs that are
 *                     negative, fractional, huge, strings, beyond the window; hostile events and
 *                     placements; oversized frames; a well-behaved client alongside stays unaffected
 *   POST /v1/assets   random bytes, truncated PNGs, polyglots, pixel and deflate bombs
 * Every payload must get a reason-coded refusal (or be accepted when it is valid), or a clean
 * close of the socket; the server must stay up and answer, and the heap must come back down.
 * FUZZ_RUNS (default 500 per target; images a third of it) and FUZZ_SEED pick the run; bench/fuzz.ts runs it longer.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_122);
const TENANT = uniqueName('fuzz');
const MAX_BODY = 64 * 1024;
const MAX_WS = 16 * 1024;
const MAX_EVENT = 8 * 1024;
const MAX_BAD_LINES = 20;
const MAX_EVENTS = 500;
const REASONS = new Set<string>(REJECT_REASONS);
const CODE = /^[a-z0-9_]{2,64}$/;

let app: TestApp;
let headers: Record<string, string>;
let admin: Record<string, string>;
const tried: Record<string, number> = {};
const outcomes: Record<string, Record<string, number>> = {};
/** Record an outcome; `payload` false for extra answers to one payload (not another payload tried). */
const count = (target: string, outcome: string, payload = true) => {
  if (payload) tried[target] = (tried[target] ?? 0) + 1;
  const o = (outcomes[target] ??= {});
  o[outcome] = (o[outcome] ?? 0) + 1;
};

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
let heapBefore = 0;

before(async () => {
  app = await startApp(
    {
      INGEST_MAX_BODY_BYTES: String(MAX_BODY),
      INGEST_WS_MAX_MESSAGE_BYTES: String(MAX_WS),
      INGEST_MAX_EVENTS_PER_REQUEST: '500',
      INGEST_MAX_EVENT_BYTES: String(MAX_EVENT),
      INGEST_MAX_BAD_LINES: String(MAX_BAD_LINES),
      IMAGE_MAX_BYTES: String(MAX_BODY),
      IMAGE_MAX_PIXELS: '4000000',
      IMAGE_MAX_SIDE: '4096',
      RATE_EVENTS_PER_SEC: '0',
      RATE_BYTES_PER_SEC: '0',
      RATE_MAX_CONNECTIONS: '0',
    },
    ['ingest', 'live', 'inference'],
  );
  headers = await app.authHeaders(TENANT, ['ingest', 'read']);
  admin = await app.authHeaders(TENANT, ['admin']);
  heapBefore = heap();
});

after(async () => {
  const heapAfter = heap();
  console.log(
    `fuzz (seed ${SEED}, ${RUNS} runs per target): payloads tried ${JSON.stringify(tried)}; ` +
      `heap ${(heapBefore / 2 ** 20).toFixed(1)} MiB -> ${(heapAfter / 2 ** 20).toFixed(1)} MiB\n  outcomes ${JSON.stringify(outcomes)}`,
  );
  await app?.close();
});

async function healthy(): Promise<void> {
  const res = await fetch(`${app.running.url}/healthz`);
  assert.equal(res.status, 200);
}

/** A refusal the client can act on: a code, a message, nothing internal. */
function assertSafeError(body: Record<string, unknown>, where: string): void {
  assert.equal(typeof body.error, 'string', `${where}: no error code in ${JSON.stringify(body).slice(0, 200)}`);
  assert.match(body.error as string, CODE, where);
  assert.equal(typeof body.message, 'string', where);
  assert.equal(body.stack, undefined, where);
  assert.doesNotMatch(body.message as string, /\n\s+at |node_modules|\/work\//, `${where}: message leaks internals`);
}

// ---- payloads ---------------------------------------------------------------------------------

const validEvent = () => ({
  event_id: ulid(),
  tenant_id: TENANT,
  campaign_id: 'fuzz-c',
  asset_id: 'fuzz-a',
  kind: 'impression',
  value: 1,
  occurred_at: Date.now(),
  received_at: 0,
});

const FIELDS = ['event_id', 'tenant_id', 'campaign_id', 'asset_id', 'kind', 'value', 'occurred_at', 'received_at', 'channel', 'placement', 'region', 'device', 'edge_node', 'attrs'];

const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 32 }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', '\udfff\ud800', '__proto__', 'constructor', '../../etc/passwd', '<script>alert(1)</script>', "'; DROP TABLE events_raw; --", '%00', '\u202e', 'a'.repeat(300)),
  fc.integer({ min: 1, max: 200_000 }).map((n) => 'x'.repeat(n)),
);
const hostileValue = fc.oneof(hostileString, fc.jsonValue({ maxDepth: 3 }), fc.double(), fc.constantFrom(-1, 0, 1e308, -1e308, 2 ** 53 + 1, null, true, [], {}));

/** A valid event with some fields replaced by hostile values (or removed), sometimes another tenant's. */
const mutatedEvent = fc
  .record({
    edits: fc.array(fc.tuple(fc.constantFrom(...FIELDS, 'extra', '__proto__'), fc.option(hostileValue, { nil: undefined })), { maxLength: 4 }),
    attrs: fc.option(fc.dictionary(hostileString, fc.oneof(hostileString, fc.double(), fc.boolean()), { maxKeys: 40 }), { nil: undefined }),
    foreign: fc.boolean(),
  })
  .map(({ edits, attrs, foreign }) => {
    const e: Record<string, unknown> = validEvent();
    if (foreign) e.tenant_id = 'someone-else';
    if (attrs) e.attrs = attrs;
    for (const [field, value] of edits) {
      if (value === undefined) delete e[field];
      else Object.defineProperty(e, field, { value, enumerable: true, configurable: true, writable: true });
    }
    return e;
  });

const deepNesting = fc.tuple(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) => {
  const close = open === '[' ? ']' : '}';
  return `[${open.repeat(n)}1${close.repeat(n)}]`.slice(0, MAX_BODY + 10);
});

interface Body {
  kind: string;
  bytes: Buffer;
  contentType: string | undefined;
  encoding: string | undefined;
}

const rawBody = fc.oneof(
  fc.array(mutatedEvent, { maxLength: 30 }).map((events) => ({ kind: 'json-events', text: JSON.stringify(events), ndjson: false })),
  fc.array(fc.oneof(mutatedEvent.map((e) => JSON.stringify(e)), hostileString), { maxLength: 30 }).map((lines) => ({ kind: 'ndjson', text: lines.join('\n'), ndjson: true })),
  mutatedEvent.map((e) => ({ kind: 'json-one', text: JSON.stringify(e), ndjson: false })),
  fc.jsonValue({ maxDepth: 6 }).map((v) => ({ kind: 'json-any', text: JSON.stringify(v) ?? 'null', ndjson: false })),
  deepNesting.map((text) => ({ kind: 'deep', text, ndjson: false })),
  fc.string({ unit: 'binary', maxLength: 2000 }).map((text) => ({ kind: 'text', text, ndjson: false })),
  fc.integer({ min: 1, max: 4 }).map((k) => ({ kind: 'oversized', text: `[${JSON.stringify(validEvent())}${' '.repeat(MAX_BODY * k)}]`, ndjson: false })),
);

const body: fc.Arbitrary<Body> = fc
  .record({
    raw: rawBody,
    bytes: fc.uint8Array({ maxLength: 4096 }),
    useBytes: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
    // Mostly bodies the decoders must read (the right type, plain or compressed); the rest probe the edges.
    encoding: fc.oneof(
      { weight: 6, arbitrary: fc.constant(undefined) },
      { weight: 4, arbitrary: fc.constantFrom('identity', 'gzip', 'deflate', 'br', 'gzip-garbage', 'gzip-truncated', 'gzip-bomb', 'compress', 'GZIP, br') },
    ),
    contentType: fc.oneof(
      { weight: 8, arbitrary: fc.constant('json') },
      { weight: 2, arbitrary: fc.constantFrom(undefined, 'application/json', 'application/x-ndjson', 'application/jsonl', 'text/plain', 'application/json; charset=latin1', 'multipart/form-data; boundary=x', '\u0000') },
    ),
  })
  .map(({ raw, bytes, useBytes, encoding, contentType }) => {
    let payload = useBytes ? Buffer.from(bytes) : Buffer.from(raw.text);
    let enc: string | undefined = encoding;
    if (encoding === 'gzip') payload = gzipSync(payload);
    else if (encoding === 'deflate') payload = deflateSync(payload);
    else if (encoding === 'br') payload = brotliCompressSync(payload);
    else if (encoding === 'gzip-garbage') enc = 'gzip';
    else if (encoding === 'gzip-truncated') {
      payload = gzipSync(payload).subarray(0, Math.max(1, payload.length >> 1));
      enc = 'gzip';
    } else if (encoding === 'gzip-bomb') {
      payload = gzipSync(Buffer.alloc(MAX_BODY * 64, 0x20));
      enc = 'gzip';
    }
    const type = contentType === 'json' ? (raw.ndjson ? 'application/x-ndjson' : 'application/json') : contentType;
    return { kind: `${useBytes ? 'bytes' : raw.kind}/${encoding ?? 'plain'}`, bytes: payload, contentType: type, encoding: enc };
  });

// ---- targets ----------------------------------------------------------------------------------

test('POST /v1/events: every hostile body is accepted per event or refused with a reason; the server stays up', async () => {
  await fc.assert(
    fc.asyncProperty(body, async (b) => {
      const h: Record<string, string> = { ...headers };
      if (b.contentType !== undefined) h['content-type'] = b.contentType.replaceAll('\u0000', '');
      if (b.encoding !== undefined) h['content-encoding'] = b.encoding;
      const res = await fetch(`${app.running.url}/v1/events`, { method: 'POST', headers: h, body: b.bytes });
      const text = await res.text();
      const json = JSON.parse(text) as Record<string, unknown>;
      count('events', String(res.status));
      assert.ok([202, 400, 413, 415, 422].includes(res.status), `${b.kind}: status ${res.status} ${text.slice(0, 300)}`);
      if (res.status === 202 || res.status === 422) {
        const r = json as { accepted: number; rejected: number; rejections: { reason: string; message: string }[] };
        assert.equal(r.rejected, r.rejections.length);
        for (const x of r.rejections) {
          assert.ok(REASONS.has(x.reason), `unknown reason ${x.reason}`);
          assert.equal(typeof x.message, 'string');
        }
      } else assertSafeError(json, b.kind);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  await healthy();
});

// ---- NDJSON shapes ---------------------------------------------------------------------------

type Line = { kind: string; bytes: Buffer };
const line: fc.Arbitrary<Line> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null).map(() => ({ kind: 'event', bytes: Buffer.from(JSON.stringify(validEvent())) })) },
  { weight: 2, arbitrary: fc.constantFrom('', ' ', '\t', '\r', ' \t \r', '\u000b').map((b) => ({ kind: 'blank', bytes: Buffer.from(b) })) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ kind: 'bytes', bytes: Buffer.from(b.map((x) => (x === 0x0a ? 0xff : x))) })) },
  { weight: 1, arbitrary: fc.constantFrom([0xc3, 0x28], [0xff, 0xfe, 0x7b, 0x7d], [0xed, 0xa0, 0x80], [0xf0, 0x28, 0x8c, 0xbc]).map((b) => ({ kind: 'non-utf8', bytes: Buffer.from([0x22, ...b, 0x22]) })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 1_500 }).map((n) => ({ kind: 'nested', bytes: Buffer.from(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`) })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3_000 }).map((n) => ({ kind: 'nested-open', bytes: Buffer.from('['.repeat(n)) })) },
  { weight: 1, arbitrary: fc.constantFrom('{}', '[]', '1', 'null', '"x"', '{"tenant_id":1}').map((b) => ({ kind: 'json-not-event', bytes: Buffer.from(b) })) },
);
/** One line around the longest an event may be (most runs have none, so the other checks get their turn). */
const hugeLine = fc.integer({ min: MAX_EVENT - 64, max: MAX_EVENT * 3 }).map((n) => ({ kind: 'huge', bytes: Buffer.from(`{"attrs":"${'x'.repeat(n)}"}`) }));

const ndjsonShape = fc.record({
  lines: fc.oneof(
    { weight: 8, arbitrary: fc.array(line, { maxLength: 40 }) },
    // Around the event cap and the bad-line cap, in small lines (the body limit is not what refuses them).
    { weight: 1, arbitrary: fc.array(fc.constantFrom('{}', '', '1', 'x', '{').map((b): Line => ({ kind: 'small', bytes: Buffer.from(b) })), { minLength: 560, maxLength: 720 }) },
    { weight: 1, arbitrary: fc.array(fc.oneof(line, fc.constant<Line>({ kind: 'bad', bytes: Buffer.from('{nope') })), { minLength: 15, maxLength: 60 }) },
  ),
  crlf: fc.array(fc.boolean(), { minLength: 720, maxLength: 720 }),
  bom: fc.boolean(),
  trailingNewline: fc.boolean(),
  gzip: fc.boolean(),
  huge: fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.tuple(fc.nat(), hugeLine) }),
});

/** The line as the server sees it: leading [ \t\r\v\f] skipped, up to (not including) the newline. */
function served(bytes: Buffer): Buffer | undefined {
  let i = 0;
  while (i < bytes.length && [0x20, 0x09, 0x0d, 0x0b, 0x0c].includes(bytes[i]!)) i++;
  return i === bytes.length ? undefined : bytes.subarray(i);
}

test('POST /v1/events NDJSON shapes: the answer matches a model of the body; no good line is lost', async () => {
  await fc.assert(
    fc.asyncProperty(ndjsonShape, async (shape) => {
      if (shape.huge) shape.lines.splice(shape.huge[0] % (shape.lines.length + 1), 0, shape.huge[1]);
      const parts: Buffer[] = shape.bom ? [Buffer.from([0xef, 0xbb, 0xbf])] : [];
      shape.lines.forEach((l, i) => {
        parts.push(l.bytes);
        if (i < shape.lines.length - 1 || shape.trailingNewline) parts.push(Buffer.from(shape.crlf[i] ? '\r\n' : '\n'));
      });
      const raw = Buffer.concat(parts);
      // The model: which lines count, which parse, which are events.
      let events = 0;
      let bad = 0;
      let counted = 0;
      let longest = 0;
      shape.lines.forEach((l, i) => {
        const cr = i < shape.lines.length - 1 || shape.trailingNewline ? (shape.crlf[i] ? 1 : 0) : 0;
        const seen = served(cr ? Buffer.concat([l.bytes, Buffer.from('\r')]) : l.bytes);
        if (!seen) return;
        counted++;
        longest = Math.max(longest, seen.length);
        if (l.kind === 'event') events++;
        try {
          JSON.parse(seen.toString('utf8'));
        } catch {
          bad++;
        }
      });
      const h: Record<string, string> = { ...headers, 'content-type': 'application/x-ndjson' };
      if (shape.gzip) h['content-encoding'] = 'gzip';
      const res = await fetch(`${app.running.url}/v1/events`, { method: 'POST', headers: h, body: shape.gzip ? gzipSync(raw) : raw });
      const json = (await res.json()) as { error?: string; message?: string; accepted: number; rejected: number; rejections: { reason: string }[] };
      count('ndjson', `${res.status}${json.error ? `:${json.error}` : ''}`);
      const where = `${shape.lines.map((l) => l.kind).join(',').slice(0, 300)} -> ${res.status} ${JSON.stringify(json).slice(0, 300)}`;
      if (raw.length > MAX_BODY || longest > MAX_EVENT || counted > MAX_EVENTS) {
        assert.equal(res.status, 413, where);
        assertSafeError(json as unknown as Record<string, unknown>, where);
        if (raw.length <= MAX_BODY && longest <= MAX_EVENT) assert.equal(json.error, 'too_many_events', where);
        return;
      }
      if (bad > MAX_BAD_LINES) {
        assert.deepEqual([res.status, json.error], [400, 'too_many_bad_lines'], where);
        return;
      }
      assert.equal(res.status, events > 0 || counted === 0 ? 202 : 422, where);
      assert.equal(json.accepted, events, `every event line is accepted: ${where}`);
      assert.equal(json.rejected, counted - events, where);
      assert.equal(json.rejections.filter((r) => r.reason === 'undecodable').length, bad, where);
      for (const r of json.rejections) assert.ok(REASONS.has(r.reason), r.reason);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  await healthy();
});

/** A WebSocket whose messages and close can be awaited one at a time. */
class Socket {
  readonly inbox: { data: Buffer; binary: boolean }[] = [];
  closeCode: number | undefined;
  private wake: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      this.inbox.push({ data: data as Buffer, binary });
      this.wake?.();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.wake?.();
    });
    ws.on('error', () => undefined);
  }

  static async open(path: string, h: Record<string, string>): Promise<Socket> {
    const ws = new WebSocket(`${app.running.url.replace(/^http/, 'ws')}${path}`, { headers: h, maxPayload: 64 * 1024 * 1024 });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new Socket(ws);
  }

  /** The next message, or undefined once the socket has closed. */
  async next(timeoutMs = 30_000): Promise<{ data: Buffer; binary: boolean } | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.inbox.shift();
      if (m) return m;
      if (this.closeCode !== undefined) return undefined;
      if (Date.now() > deadline) throw new Error('no answer from the server');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
  }

  get open(): boolean {
    return this.closeCode === undefined && this.ws.readyState === WebSocket.OPEN;
  }
}

/** Close codes that are a clean, reasoned close: too big, invalid UTF-8 / frame, policy. */
const CLEAN_CLOSES = new Set([1002, 1007, 1008, 1009]);

const frame = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((b) => ({ kind: 'binary-random', data: Buffer.from(b), binary: true })),
  fc.string({ unit: 'binary', maxLength: 2048 }).map((s) => ({ kind: 'text-random', data: Buffer.from(s), binary: false })),
  fc.jsonValue({ maxDepth: 5 }).map((v) => ({ kind: 'json-any', data: Buffer.from(JSON.stringify(v) ?? 'null'), binary: false })),
  fc.jsonValue({ maxDepth: 5 }).map((v) => ({ kind: 'msgpack-any', data: pack(v), binary: true })),
  fc.record({ seq: fc.oneof(fc.nat(), hostileValue), events: fc.oneof(fc.array(mutatedEvent, { maxLength: 20 }), hostileValue) }).map((m) => ({ kind: 'message', data: Buffer.from(JSON.stringify(m)), binary: false })),
  fc.record({ seq: fc.nat(), events: fc.array(mutatedEvent, { maxLength: 20 }) }).map((m) => ({ kind: 'message-msgpack', data: pack(m), binary: true })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ kind: 'msgpack-truncated', data: Buffer.concat([pack({ seq: 1, events: [validEvent()] }).subarray(0, 20), Buffer.from(b)]), binary: true })),
  deepNesting.map((t) => ({ kind: 'deep', data: Buffer.from(t.slice(0, MAX_WS - 10)), binary: false })),
  fc.integer({ min: 1, max: 8 }).map((k) => ({ kind: 'oversized', data: Buffer.alloc(MAX_WS * k + 1, 0x20), binary: k % 2 === 0 })),
);

test('/v1/stream WebSocket: every frame gets an ack or a coded error, or a clean close; the server stays up', async () => {
  let socket = await Socket.open('/v1/stream', headers);
  await fc.assert(
    fc.asyncProperty(frame, async (f) => {
      if (!socket.open) socket = await Socket.open('/v1/stream', headers);
      socket.ws.send(f.data, { binary: f.binary });
      const reply = await socket.next();
      if (!reply) {
        count('stream', `close-${socket.closeCode}`);
        assert.ok(CLEAN_CLOSES.has(socket.closeCode!), `${f.kind}: closed with ${socket.closeCode}`);
        if (socket.closeCode === 1009) assert.ok(f.data.length > MAX_WS, `${f.kind}: closed as too big at ${f.data.length} bytes`);
        return;
      }
      const m = (reply.binary ? unpack(reply.data) : JSON.parse(String(reply.data))) as { type: string; code?: string; message?: string; rejections?: { reason: string }[] };
      count('stream', m.type === 'error' ? `error-${m.code}` : m.type);
      assert.ok(f.data.length <= MAX_WS, `${f.kind}: a ${f.data.length}-byte frame was read`);
      if (m.type === 'ack') for (const r of m.rejections ?? []) assert.ok(REASONS.has(r.reason), r.reason);
      else {
        assert.equal(m.type, 'error', `${f.kind}: answered ${JSON.stringify(m).slice(0, 200)}`);
        assert.match(m.code!, CODE);
        assert.notEqual(m.code, 'internal', `${f.kind}: internal error`);
        assert.doesNotMatch(m.message ?? '', /\n\s+at |node_modules/);
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );
  socket.ws.close();
  await healthy();
});

const liveFrame = fc.oneof(
  frame,
  fc
    .record({
      op: fc.oneof(fc.constantFrom('subscribe', 'unsubscribe', 'resync', 'ping', 'SUBSCRIBE', '', 'drop'), hostileValue),
      campaign: fc.option(fc.oneof(hostileString, fc.array(hostileString, { maxLength: 5 }), hostileValue), { nil: undefined }),
      assets: fc.option(fc.array(fc.oneof(hostileString, fc.constant('a-1')), { maxLength: 2000 }), { nil: undefined }),
      topic: fc.option(fc.oneof(hostileString, fc.constantFrom('campaign:', 'asset:x', ':', 'master:..', 'tenant:other')), { nil: undefined }),
      id: fc.option(hostileValue, { nil: undefined }),
    })
    .map((m) => ({ kind: 'live-op', data: Buffer.from(JSON.stringify(m)), binary: false })),
);

test('/v1/live WebSocket: random and hostile messages get coded errors or a clean close; the connection keeps answering', async () => {
  let socket = await Socket.open(`/v1/live?tenant_id=${TENANT}`, headers);
  let pings = 0;
  await fc.assert(
    fc.asyncProperty(liveFrame, async (f) => {
      if (!socket.open) socket = await Socket.open(`/v1/live?tenant_id=${TENANT}`, headers);
      socket.ws.send(f.data, { binary: f.binary });
      // A ping after each frame: its pong proves the frame was handled and the connection lives.
      const id = `p${++pings}`;
      socket.ws.send(JSON.stringify({ op: 'ping', id }));
      for (;;) {
        const reply = await socket.next();
        if (!reply) {
          count('live', `close-${socket.closeCode}`);
          assert.ok(CLEAN_CLOSES.has(socket.closeCode!), `${f.kind}: closed with ${socket.closeCode}`);
          return;
        }
        const parsed = JSON.parse(String(reply.data)) as Record<string, unknown> | Record<string, unknown>[];
        for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
          assert.ok(['error', 'pong', 'snapshot', 'delta'].includes(m.type as string), `${f.kind}: answered ${JSON.stringify(m).slice(0, 200)}`);
          if (m.type === 'error') {
            assert.match(m.code as string, CODE);
            count('live', `error-${m.code}`, false);
          }
          if (m.type === 'pong' && m.id === id) {
            count('live', 'handled');
            return;
          }
        }
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );
  socket.ws.close();
  await healthy();
});

// ---- edge protocol ----------------------------------------------------------------------------

/** A well-behaved edge client of another key that the fuzzed connections try to take over. */
const EDGE_VICTIM = uniqueName('fuzz-victim');
/** Closes of the fuzzed edge connection that are a reasoned refusal: protocol, client_id of another key. */
const EDGE_CLOSES = new Set([...CLEAN_CLOSES, EDGE_CLOSE.protocol, EDGE_CLOSE.forbidden]);
const EDGE_TYPES = new Set(['welcome', 'error', 'ack', 'decision', 'pong']);

const seqValue = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 60 }) },
  { weight: 3, arbitrary: fc.constantFrom(-1, 0, 0.5, 1.5, -0.0, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 1_000_001, 1_000_060, '1', '9007199254740991', '0x10', null, true, [], {}) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => Number(b)) },
  { weight: 1, arbitrary: hostileValue },
);
/** Events for a placement: mostly valid (so acks and seqs move), some mutated. */
const edgeEvents = fc.array(fc.oneof({ weight: 3, arbitrary: fc.constant(null).map(() => ({ ...validEvent(), placement: 'p1' })) }, { weight: 1, arbitrary: mutatedEvent }), { maxLength: 20 });
const EDGE_KINDS = new Set(['hello', 'events', 'subscribe', 'unsubscribe', 'decide', 'ping']);
const edgeId = fc.oneof(fc.nat({ max: 20 }).map((n) => `fuzz-dev-${n}`), fc.constant(EDGE_VICTIM), hostileString, hostileValue);
const edgePlacement = fc.oneof(fc.constantFrom('p1', 'p2', 'lobby'), hostileString, hostileValue);

const edgeHello = fc.oneof(
  { weight: 5, arbitrary: fc.nat({ max: 20 }).map((n) => ({ type: 'hello', client_id: `fuzz-dev-${n}` })) },
  { weight: 1, arbitrary: fc.constant({ type: 'hello', client_id: EDGE_VICTIM }) },
  {
    weight: 3,
    arbitrary: fc
      .record({
        type: fc.oneof({ weight: 4, arbitrary: fc.constant('hello') }, { weight: 1, arbitrary: hostileValue }),
        client_id: fc.option(edgeId, { nil: undefined }),
        placements: fc.option(fc.oneof(fc.array(edgePlacement, { maxLength: 120 }), hostileValue), { nil: undefined }),
      })
      .map((m) => ({ ...m })),
  },
);

const edgeMessage = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant('events'), seq: seqValue, events: fc.oneof({ weight: 4, arbitrary: edgeEvents }, { weight: 1, arbitrary: hostileValue }) }) },
  fc.record({ type: fc.constantFrom('subscribe', 'unsubscribe', 'decide'), placement: edgePlacement, assets: fc.option(fc.oneof(fc.array(hostileString, { maxLength: 100 }), hostileValue), { nil: undefined }), id: fc.option(hostileValue, { nil: undefined }) }),
  edgeHello,
  fc.record({ type: fc.oneof(hostileValue, fc.constantFrom('ping', 'PING', 'welcome', 'ack', '')), t: fc.option(hostileValue, { nil: undefined }), seq: fc.option(seqValue, { nil: undefined }) }),
);

const edgeFrame = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(edgeMessage, fc.boolean()).map(([m, binary]) => {
      const type = (m as { type?: unknown }).type;
      return { kind: `edge-${typeof type === 'string' && EDGE_KINDS.has(type) ? type : 'other'}`, data: binary ? pack(m) : Buffer.from(JSON.stringify(m)), binary };
    }),
  },
  { weight: 1, arbitrary: frame },
);

const edgeRun = fc.record({
  fresh: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  hello: edgeHello,
  binary: fc.boolean(),
  frames: fc.array(edgeFrame, { minLength: 1, maxLength: 3 }),
});

test('/v1/edge WebSocket: hostile hellos, seqs and frames get coded errors or a clean close; another client is unaffected', async () => {
  // The victim: its own key (ingest only; the fuzzed connections use ingest+read), its own client_id.
  const victim = new EdgeClient({ url: app.running.url, clientId: EDGE_VICTIM, tenantId: TENANT, headers: await app.authHeaders(TENANT, ['ingest']), reconnectDelayMs: 50 });
  await victim.connect();
  let victimSeq = 0;
  const victimSends = async () => {
    const ack = await victim.send([{ ...validEvent(), placement: 'p1' }]);
    assert.deepEqual({ seq: ack.seq, accepted: ack.accepted, duplicate: ack.duplicate }, { seq: ++victimSeq, accepted: 1, duplicate: undefined }, 'the victim is acked in order, never as a duplicate');
  };
  await victimSends();

  let socket: Socket | undefined;
  let binary = false;
  let pings = 0;
  /** Reads replies until the pong for ping `t` (true) or the close (false), checking each one. */
  const until = async (t: number, kind: string): Promise<boolean> => {
    for (;;) {
      const reply = await socket!.next();
      if (!reply) {
        count('edge', `close-${socket!.closeCode}`, false);
        assert.ok(EDGE_CLOSES.has(socket!.closeCode!), `${kind}: closed with ${socket!.closeCode}`);
        return false;
      }
      const m = (reply.binary ? unpack(reply.data) : JSON.parse(String(reply.data))) as Record<string, unknown>;
      assert.ok(EDGE_TYPES.has(m.type as string), `${kind}: answered ${JSON.stringify(m).slice(0, 200)}`);
      if (m.type === 'error') {
        count('edge', `error-${m.code}`, false);
        assert.match(m.code as string, CODE, kind);
        assert.notEqual(m.code, 'internal', `${kind}: internal error ${m.message}`);
        assert.equal(typeof m.retryable, 'boolean', kind);
        assert.doesNotMatch(String(m.message), /\n\s+at |node_modules|\/work\//, kind);
      }
      if (m.type === 'ack') {
        count('edge', m.duplicate ? 'ack-duplicate' : 'ack', false);
        assert.ok(Number.isSafeInteger(m.seq) && (m.seq as number) >= 1, `${kind}: ack of seq ${String(m.seq)}`);
        for (const r of (m.rejections as { reason: string }[] | undefined) ?? []) assert.ok(REASONS.has(r.reason), r.reason);
      }
      if (m.type === 'pong' && m.t === t) return true;
    }
  };
  const ping = (t: number) => socket!.ws.send(binary ? pack({ type: 'ping', t }) : JSON.stringify({ type: 'ping', t }), { binary });

  await fc.assert(
    fc.asyncProperty(edgeRun, async (run) => {
      if (run.fresh || !socket?.open) {
        socket?.ws.close();
        socket = await Socket.open(`/v1/edge?tenant_id=${TENANT}`, headers);
        binary = run.binary;
        socket.ws.send(binary ? pack(run.hello) : JSON.stringify(run.hello), { binary });
        const t = ++pings;
        ping(t);
        const first = await socket.next();
        const m = first ? ((first.binary ? unpack(first.data) : JSON.parse(String(first.data))) as Record<string, unknown>) : undefined;
        if (m && run.hello.client_id === EDGE_VICTIM && run.hello.type === 'hello') {
          // Another key's hello with the victim's client_id (one that fits a frame): refused, and the victim keeps its connection.
          assert.deepEqual({ type: m?.type, code: m?.code }, { type: 'error', code: EDGE_ERROR.clientIdTaken });
          count('edge', 'hello-taken');
        } else count('edge', m ? `hello-${m.type === 'error' ? m.code : m.type}` : `hello-close-${socket.closeCode}`);
        if (m && m.type !== 'welcome') assert.equal(m.type, 'error', `hello answered ${JSON.stringify(m).slice(0, 200)}`);
        if (!m) assert.ok(EDGE_CLOSES.has(socket.closeCode!), `hello: closed with ${socket.closeCode}`);
        if (!m || m.type === 'error') {
          // Refused: nothing more is read from this connection; it closes cleanly.
          if (m) assert.match(m.code as string, CODE);
          if (m?.type === 'error' && m.retryable === false) {
            while (await socket.next(5_000));
            assert.ok(EDGE_CLOSES.has(socket.closeCode!), `hello refusal closed with ${socket.closeCode}`);
          }
          return;
        }
        if (!(await until(t, 'hello'))) return;
      }
      for (const f of run.frames) {
        if (!socket.open) return;
        socket.ws.send(f.data, { binary: f.binary });
        const t = ++pings;
        if (socket.open) ping(t);
        count('edge', f.kind);
        if (!(await until(t, f.kind))) return;
      }
      if (pings % 10 === 0) await victimSends();
    }),
    { numRuns: RUNS, seed: SEED },
  );
  socket?.ws.close();
  await victimSends();
  assert.equal(victim.reconnects, 0, 'the victim was never replaced or disconnected');
  assert.ok(victim.connected);
  victim.close();
  await healthy();
});

// ---- images -----------------------------------------------------------------------------------

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0);
  return Buffer.concat([head, data, crc]);
}

/** A grey PNG of w x h whose IDAT holds `rows` rows of zeros (fewer than h: truncated image data). */
function png(w: number, h: number, rows = h): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc(Math.min(rows, h) * (w + 1));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

const image = fc.oneof(
  fc.uint8Array({ maxLength: 4096 }).map((b) => ({ kind: 'random', bytes: Buffer.from(b) })),
  fc.tuple(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 200 })).map(([w, h, cut]) => {
    const full = png(w, h);
    return { kind: 'truncated', bytes: full.subarray(0, Math.max(1, full.length - 1 - cut)) };
  }),
  fc.tuple(fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 32 })).map(([w, h]) => ({ kind: 'short-idat', bytes: png(w, h, Math.max(0, h - 1)) })),
  fc.constantFrom(
    { kind: 'pixel-bomb', bytes: png(60_000, 60_000, 1) },
    { kind: 'side-bomb', bytes: png(100_000, 1) },
    // 3000 x 3000 zeros: ~9 MB of pixels deflated to a few KB, over IMAGE_MAX_PIXELS.
    { kind: 'deflate-bomb', bytes: png(3000, 3000) },
  ),
  fc.tuple(fc.integer({ min: 1, max: 16 }), fc.constantFrom('PK\u0003\u0004zipdata', '<html><script>alert(1)</script></html>', '%PDF-1.4\n', 'GIF89a')).map(([s, tail]) => ({ kind: 'polyglot', bytes: Buffer.concat([png(s, s), Buffer.from(tail)]) })),
  fc.constantFrom('GIF89a', '\u00ff\u00d8\u00ff\u00e0', 'RIFF\u0000\u0000\u0000\u0000WEBPVP8 ', '<svg xmlns="http://www.w3.org/2000/svg"/>', 'BM').map((magic) => ({ kind: 'magic-only', bytes: Buffer.from(magic, 'latin1') })),
);

test('POST /v1/assets: random, truncated, polyglot and bomb images are refused with a reason (or stored when valid), never a 5xx', async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(image, async (img) => {
      const form = new FormData();
      form.append('tenant_id', TENANT);
      form.append('role', 'master');
      form.append('name', 'fuzz');
      form.append('channel', 'web');
      form.append('asset_id', `fuzz-${++n}`);
      form.append('image', new Blob([img.bytes]), 'fuzz.png');
      const res = await fetch(`${app.running.url}/v1/assets`, { method: 'POST', headers: admin, body: form });
      const json = (await res.json()) as Record<string, unknown>;
      count('images', `${img.kind}:${res.status}${res.status >= 400 ? `:${json.error}` : ''}`);
      assert.ok(res.status < 500, `${img.kind}: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
      if (res.status >= 400) assertSafeError(json, img.kind);
      if (img.kind.endsWith('bomb')) assert.equal(res.status, 413, `${img.kind} must be refused before decoding`);
      // (A PNG cut inside its 8-byte signature is not a PNG: unknown_format.)
      if (img.kind === 'polyglot' || (img.kind === 'truncated' && img.bytes.length >= 8)) {
        assert.deepEqual([res.status, json.error], [422, img.kind === 'polyglot' ? 'trailing_data' : 'truncated'], `${img.kind} must be refused from its container`);
      }
    }),
    { numRuns: Math.max(50, Math.round(RUNS / 3)), seed: SEED },
  );
  await healthy();
});

const QUERY_NAMES = ['tenant_id', 'from', 'to', 'step', 'limit', 'window', 'metric', 'cursor', 'role', 'campaign_id', 'status', 'fatigue', 'source', 'ad_asset_id', 'master_asset_id', 'access_token'];

test('every GET route: hostile path parameters and query strings get a coded 4xx, never a 5xx', async () => {
  const gets = registeredRoutes(app.running.app).filter((r) => r.method === 'GET' && !r.websocket && r.scope !== 'public');
  const request = fc.record({
    route: fc.constantFrom(...gets),
    param: hostileString,
    query: fc.array(fc.tuple(fc.constantFrom(...QUERY_NAMES), fc.oneof(hostileString, fc.constantFrom('-1', '0', '1e309', 'NaN', '2026-13-45', '1m', '99999999999999999999', '[]', TENANT))), { maxLength: 5 }),
  });
  await fc.assert(
    fc.asyncProperty(request, async ({ route, param, query }) => {
      // Buffer round trip: lone surrogates become U+FFFD (a URL cannot carry them).
      const path = route.url.replace(/:[A-Za-z_]+/g, encodeURIComponent(Buffer.from(param).toString()) || 'x').replace(/\*$/, 'x');
      const qs = new URLSearchParams(query.map(([k, v]): [string, string] => [k, v.replaceAll('\u0000', '')])).toString();
      const res = await fetch(`${app.running.url}${path}${qs ? `?${qs}` : ''}`, { headers });
      const text = await res.text();
      count('queries', String(res.status));
      assert.ok(res.status < 500 || res.status === 501, `${route.url} ${qs.slice(0, 200)}: ${res.status} ${text.slice(0, 300)}`);
      if (res.status >= 400 && res.headers.get('content-type')?.includes('json')) assertSafeError(JSON.parse(text) as Record<string, unknown>, route.url);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  await healthy();
});

test('memory stays bounded: the heap comes back down after the fuzzing', () => {
  const grown = heap() - heapBefore;
  assert.ok(grown < 128 * 2 ** 20, `heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
});

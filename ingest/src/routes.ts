import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { Readable, Transform } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { pack } from 'msgpackr';
import type {} from '@fastify/websocket';
import {
  AfterglowError,
  BackpressureError,
  BadRequestError,
  RateLimitedError,
  actingTenant,
  principalOf,
  quotaOf,
  Gauge,
  type Logger,
  type Quota,
  type Registry,
  type Store,
} from '@afterglow/core';
import { BodyScanner, type DecodedItem, decodeJsonBody, decodeNdjsonBody, decodeStreamBinary, decodeStreamText, isNdjson, type BodyBounds } from './decode.js';
import type { EventIntake, IntakeGuard, IntakeResult } from './intake.js';
import type { HistoryImport, ImportResult } from './backfill.js';
import { campaignCosts, type SpendImport } from './spend.js';
import { assetCostsAndReach, campaignReach, masterReach } from './reach.js';
import { campaignTotals, listCampaigns } from './totals.js';
import { registerAnalyticsRoutes } from './analytics.js';
import { API_ROUTES, intakeResultSchema, importResultSchema, responsesOf, serializeWhole, spendImportResultSchema, type ResponseOf } from '@afterglow/core/api';

export interface IngestDeps {
  intake: EventIntake;
  store: Store;
  log: Logger;
  maxBodyBytes: number;
  maxEventsPerRequest: number;
  /** Undecodable NDJSON lines tolerated per request. */
  maxBadLines: number;
  /** An element or line longer than this is refused unparsed. */
  maxEventBytes: number;
  wsMaxInflightMessages: number;
  /** WebSocket ingest messages received and not yet acknowledged, across every socket (bytes). */
  wsMaxTotalInflightBytes: number;
  /** Concurrent /v1/stream sockets of one tenant in this process; 0 = no cap. */
  wsMaxConnectionsPerTenant: number;
  /** How long a WebSocket message may wait for bus capacity before it is answered with an error. */
  produceTimeoutMs: number;
  registry?: Registry;
  /** Serves POST /v1/import/events when given. */
  history?: HistoryImport;
  /** Serves POST /v1/import/spend when given. */
  spend?: SpendImport;
}

// text/plain is read as JSON: the one body type the browser SDK can send cross-origin without a CORS
// preflight (sendBeacon with a string, fetch keepalive). It opens nothing: every request still needs a key.
const BODY_TYPES = ['application/json', 'application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines', 'text/plain'];
const TENANT_QUERY = {
  type: 'object',
  required: ['tenant_id'],
  properties: { tenant_id: { type: 'string', minLength: 1, maxLength: 128 }, source: { type: 'string', enum: ['rollup', 'raw'] } },
} as const;

/**
 * Ingest's HTTP and WebSocket surface. Requires @fastify/websocket to be registered on `app`
 * (the composition root does it, with the message size limit from config).
 */
export async function registerIngestRoutes(app: FastifyInstance, deps: IngestDeps): Promise<void> {
  const bounds: BodyBounds = { maxEvents: deps.maxEventsPerRequest, maxBadLines: deps.maxBadLines, maxEventBytes: deps.maxEventBytes };
  await app.register(async (scope) => {
    // Bodies are read as bytes and decoded here: NDJSON lines fail one by one, and gzip/deflate/br
    // bodies are decompressed as a stream whose output still counts against bodyLimit.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(BODY_TYPES, { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes }, (_req, body, done) => done(null, body));
    scope.addContentTypeParser('*', (req, _payload, done) =>
      done(new BadRequestError('unsupported_media_type', `content-type ${req.headers['content-type'] ?? '(none)'} is not accepted; use application/json or application/x-ndjson`, 415)),
    );
    scope.addHook('preParsing', async (req, _reply, payload) => scanned(req, payload, decompress(req, payload, deps.maxBodyBytes), bounds, deps.maxBodyBytes));

    /** The request's events, decoded within the body bounds, with the key's quota charged for them. */
    const readItems = async (req: FastifyRequest): Promise<DecodedItem[]> => {
      const body = req.body as Buffer;
      const scan = SCANS.get(req);
      const quota = quotaOf(req);
      // What a compressed body grew to is charged to the key's bytes/s before it is parsed (the
      // auth hook charged only what crossed the wire).
      const wire = Number(req.headers['content-length'] ?? 0) || 0;
      if (quota && body.length > wire && (req.headers['content-encoding'] ?? 'identity') !== 'identity') await quota.bytes(body.length - wire);
      // The scan counted the events as the body streamed in; nothing is parsed past the cap.
      if (scan && scan.count > 0) await quota?.events(scan.count);
      const items = isNdjson(req.headers['content-type']) ? await decodeNdjsonBody(body, bounds, scan) : await decodeJsonBody(body, bounds, scan);
      if (items.length > deps.maxEventsPerRequest) {
        throw new BadRequestError('too_many_events', `${items.length} events in one request; the limit is ${deps.maxEventsPerRequest}`, 413);
      }
      if (!scan) await quota?.events(items.length);
      return items;
    };

    scope.post(
      '/v1/events',
      {
        bodyLimit: deps.maxBodyBytes,
        config: { scope: 'ingest' },
        serializerCompiler: serializeWhole,
        // 422: every event was refused; the same body says why, event by event.
        schema: { response: responsesOf(API_ROUTES.postEvents, { 422: { description: 'every event rejected', schema: intakeResultSchema } }) },
      },
      async (req, reply) => {
      const items = await readItems(req);
      const result = await deps.intake.submit(items, guardOf(req));
      reply.code(result.accepted > 0 || items.length === 0 ? 202 : 422);
      return result.rejections.length > STREAM_REJECTIONS ? reply.type('application/json').send(Readable.from(resultChunks(result))) : result;
      },
    );

    // History import writes the tenant's past straight to the store: an admin's act, not a device's.
    const history = deps.history;
    if (history) {
      scope.post(
        '/v1/import/events',
        {
          bodyLimit: deps.maxBodyBytes,
          config: { scope: 'admin' },
          serializerCompiler: serializeWhole,
          schema: {
            querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false } }, additionalProperties: false },
            response: responsesOf(API_ROUTES.importEvents, { 422: { description: 'every event rejected', schema: importResultSchema } }),
          },
        },
        async (req, reply) => {
          const items = await readItems(req);
          const result = await history.run(items, guardOf(req), (req.query as { dry_run: boolean }).dry_run);
          reply.code(result.new + result.duplicates > 0 || items.length === 0 ? 200 : 422);
          return result.rejections.length > STREAM_REJECTIONS ? reply.type('application/json').send(Readable.from(importChunks(result))) : result;
        },
      );
    }
    const spend = deps.spend;
    if (spend) {
      scope.post(
        '/v1/import/spend',
        {
          bodyLimit: deps.maxBodyBytes,
          config: { scope: 'admin' },
          serializerCompiler: serializeWhole,
          schema: {
            response: responsesOf(API_ROUTES.importSpend, { 422: { description: 'every row rejected', schema: spendImportResultSchema } }),
            description: 'Media spend per asset, placement and UTC day: {campaign_id, asset_id, date, spend, currency?, placement?} rows; a day imported again replaces the earlier figure',
            querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false }, tenant_id: { type: 'string', maxLength: 128 } } },
          },
        },
        async (req, reply) => {
          const items = await readItems(req);
          const q = req.query as { dry_run: boolean; tenant_id?: string };
          const result = await spend.run(items, guardOf(req), q.tenant_id, q.dry_run);
          reply.code(result.rejected === items.length && items.length > 0 ? 422 : 200);
          return result;
        },
      );
    }
  });

  const DAYS_QUERY = {
    type: 'object',
    required: ['tenant_id'],
    properties: {
      tenant_id: { type: 'string', minLength: 1, maxLength: 128 },
      from: { type: 'string', format: 'date' },
      to: { type: 'string', format: 'date' },
    },
  } as const;
  /** Whole UTC days from..to (default: the last 30), at most three years. */
  const daysOf = (q: { from?: string; to?: string }): { from: string; to: string } => {
    const to = q.to ?? new Date().toISOString().slice(0, 10);
    const from = q.from ?? new Date(Date.parse(`${to}T00:00:00Z`) - 29 * 86_400_000).toISOString().slice(0, 10);
    if (from > to) throw new BadRequestError('invalid_range', `from (${from}) is after to (${to})`, 400);
    if (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`) > 3 * 366 * 86_400_000) {
      throw new BadRequestError('invalid_range', 'a range covers at most three years', 400);
    }
    return { from, to };
  };
  app.get(
    '/v1/campaigns/:campaignId/costs',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: { response: responsesOf(API_ROUTES.campaignCosts), description: 'Spend against engagement per asset over whole UTC days from..to (default: the last 30 days): CPM, CPC, CPA, ROAS', querystring: DAYS_QUERY },
    },
    async (req): Promise<ResponseOf<'campaignCosts'>> => {
      const { campaignId } = req.params as { campaignId: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string };
      const { from, to } = daysOf(q);
      return campaignCosts(deps.store, actingTenant(principalOf(req), q.tenant_id), campaignId, from, to);
    },
  );
  app.get(
    '/v1/campaigns/:campaignId/reach',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: { response: responsesOf(API_ROUTES.campaignReach), description: 'Unique viewers and frequency per asset and for the campaign (viewers counted once across assets) over whole UTC days', querystring: DAYS_QUERY },
    },
    async (req): Promise<ResponseOf<'campaignReach'>> => {
      const { campaignId } = req.params as { campaignId: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string };
      const { from, to } = daysOf(q);
      return campaignReach(deps.store, actingTenant(principalOf(req), q.tenant_id), campaignId, from, to);
    },
  );

  app.get(
    '/v1/assets/:id/costs',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        response: responsesOf(API_ROUTES.assetCosts),
        description:
          'One asset over whole UTC days from..to (default: the last 30): spend, CPM, CPC, CPA and ROAS per currency, ' +
          "each day's spend and results, and unique reach and frequency with the sketch's error",
        querystring: DAYS_QUERY,
      },
    },
    async (req): Promise<ResponseOf<'assetCosts'>> => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string };
      const { from, to } = daysOf(q);
      return assetCostsAndReach(deps.store, actingTenant(principalOf(req), q.tenant_id), id, from, to);
    },
  );
  app.get(
    '/v1/masters/:id/reach',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        response: responsesOf(API_ROUTES.masterReach),
        description:
          'A master photo over whole UTC days: unique reach across the ads tied to it (their sketches merged, so a viewer of two ads counts once), ' +
          "frequency, the ads' own reach, and their spend and costs",
        querystring: DAYS_QUERY,
      },
    },
    async (req): Promise<ResponseOf<'masterReach'>> => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string };
      const { from, to } = daysOf(q);
      return masterReach(deps.store, actingTenant(principalOf(req), q.tenant_id), id, from, to);
    },
  );

  app.get('/v1/campaigns/:campaignId/totals', { schema: { querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.campaignTotals) }, config: { scope: 'read' }, serializerCompiler: serializeWhole }, async (req): Promise<ResponseOf<'campaignTotals'>> => {
    const { campaignId } = req.params as { campaignId: string };
    const q = req.query as { tenant_id: string; source?: 'rollup' | 'raw' };
    return campaignTotals(deps.store, actingTenant(principalOf(req), q.tenant_id), campaignId, q.source);
  });

  app.get('/v1/campaigns', { schema: { querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.listCampaigns) }, config: { scope: 'read' }, serializerCompiler: serializeWhole }, async (req): Promise<ResponseOf<'listCampaigns'>> => {
    const tenant_id = actingTenant(principalOf(req), (req.query as { tenant_id: string }).tenant_id);
    return { tenant_id, campaigns: await listCampaigns(deps.store, tenant_id) };
  });

  registerAnalyticsRoutes(app, deps.store);

  const budget = new StreamBudget(deps.wsMaxTotalInflightBytes);
  new Gauge({
    name: 'afterglow_ingest_ws_inflight_bytes',
    help: 'Bytes of /v1/stream messages received and not yet acknowledged, across every socket',
    registers: deps.registry ? [deps.registry] : [],
    collect() {
      this.set(budget.bytes);
    },
  });
  const tenantStreams = new Map<string, number>();
  app.get(
    '/v1/stream',
    {
      websocket: true,
      config: { scope: 'ingest' },
      // Before the upgrade, so a tenant over its cap gets a 429 rather than a socket that closes.
      preHandler: async (req) => {
        const tenant = principalOf(req)?.tenantId;
        const cap = deps.wsMaxConnectionsPerTenant;
        if (tenant === undefined || cap <= 0) return;
        const held = tenantStreams.get(tenant) ?? 0;
        if (held >= cap) throw new RateLimitedError(`this tenant already holds its ${cap} concurrent streams on this server`, 5_000);
        tenantStreams.set(tenant, held + 1);
        const release = () => {
          const n = (tenantStreams.get(tenant) ?? 1) - 1;
          if (n <= 0) tenantStreams.delete(tenant);
          else tenantStreams.set(tenant, n);
        };
        const socket = req.raw.socket;
        if (socket.destroyed) release();
        else socket.once('close', release);
      },
    },
    (socket, req) => new StreamSession(socket, deps, guardOf(req), quotaOf(req), budget).start(),
  );
}

/**
 * Bytes of /v1/stream messages received and not yet acknowledged, across every socket of the
 * process. Over the bound every stream stops reading (TCP flow control slows the senders) until
 * handled messages bring it back under; per-socket queues alone would allow sockets x messages x
 * message size.
 */
class StreamBudget {
  private used = 0;
  private readonly sessions = new Set<StreamSession>();

  constructor(private readonly max: number) {}

  get over(): boolean {
    return this.used >= this.max;
  }

  get bytes(): number {
    return this.used;
  }

  join(session: StreamSession): void {
    this.sessions.add(session);
  }

  leave(session: StreamSession): void {
    this.sessions.delete(session);
  }

  take(bytes: number): void {
    const was = this.over;
    this.used += bytes;
    if (!was && this.over) for (const s of this.sessions) s.updateFlow();
  }

  give(bytes: number): void {
    const was = this.over;
    this.used -= bytes;
    if (was && !this.over) for (const s of this.sessions) s.updateFlow();
  }
}

/** Events must belong to the key's tenant (and placements); no key (AUTH_MODE=off): no check. */
function guardOf(req: FastifyRequest): IntakeGuard | undefined {
  const p = principalOf(req);
  return p ? { tenantId: p.tenantId, placements: p.placements } : undefined;
}

const SCANS = new WeakMap<FastifyRequest, BodyScanner>();

/** Over this many rejections the answer is serialized in slices (100k of them are ~9 MB of JSON). */
const STREAM_REJECTIONS = 500;

/** The same JSON as `JSON.stringify(result)`, a slice of rejections at a time with other work between. */
async function* resultChunks(result: IntakeResult): AsyncGenerator<string> {
  yield `{"accepted":${result.accepted},"rejected":${result.rejected},"rejections":[`;
  yield* rejectionChunks(result.rejections);
}

async function* importChunks(result: ImportResult): AsyncGenerator<string> {
  const { rejections, ...counts } = result;
  yield `${JSON.stringify(counts).slice(0, -1)},"rejections":[`;
  yield* rejectionChunks(rejections);
}

async function* rejectionChunks(rejections: IntakeResult['rejections']): AsyncGenerator<string> {
  for (let i = 0; i < rejections.length; i += STREAM_REJECTIONS) {
    if (i > 0) await nextTurn();
    yield `${i > 0 ? ',' : ''}${JSON.stringify(rejections.slice(i, i + STREAM_REJECTIONS)).slice(1, -1)}`;
  }
  yield ']}';
}

/**
 * The decoded body passes through a BodyScanner on its way to the parser: events are counted (and
 * their boundaries noted) as bytes arrive, so a body over the event cap, or with one event longer
 * than any valid one, is refused after the bytes that show it, before any parsing. The rest of such
 * a body is then read and dropped from the wire (up to the body limit) so the answer can be sent;
 * the decompressor is stopped.
 */
function scanned(req: FastifyRequest, wire: Readable, body: Readable, bounds: BodyBounds, maxBodyBytes: number): Readable {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!BODY_TYPES.includes(type)) return body;
  const scanner = new BodyScanner(isNdjson(type) ? 'ndjson' : 'json', bounds);
  SCANS.set(req, scanner);
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        scanner.push(chunk);
      } catch (err) {
        if (body !== wire) body.destroy();
        drop(wire, maxBodyBytes);
        return done(err as Error);
      }
      done(null, chunk);
    },
    flush(done) {
      // The last line (no newline after it) is counted and measured here, and may be refused too.
      try {
        scanner.finish();
      } catch (err) {
        return done(err as Error);
      }
      done();
    },
  });
  // Fastify checks Content-Length and the body limit against the encoded bytes the decompressor saw.
  Object.defineProperty(out, 'receivedEncodedLength', { get: () => (body as { receivedEncodedLength?: number }).receivedEncodedLength ?? 0 });
  body.on('error', (err) => out.destroy(err));
  // Fastify stops listening once it has refused a body (over the body limit) while bytes may still
  // arrive and be refused here too: such a late error has no one left to tell.
  out.on('error', () => {});
  return body.pipe(out);
}

/** Read and discard the rest of a request body, cutting the connection past `limit` bytes. */
function drop(wire: Readable, limit: number): void {
  wire.unpipe();
  let drained = 0;
  wire.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > limit) wire.destroy();
  });
  wire.resume();
}

function decompress(req: FastifyRequest, payload: Readable, maxBodyBytes: number): Readable {
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  let inflate: Transform;
  switch (encoding) {
    case 'identity':
      return payload;
    case 'gzip':
    case 'x-gzip':
      inflate = createGunzip();
      break;
    case 'deflate':
      inflate = createInflate();
      break;
    case 'br':
      inflate = createBrotliDecompress();
      break;
    default:
      throw new BadRequestError('unsupported_encoding', `content-encoding ${encoding} is not supported`, 415);
  }
  // Fastify checks Content-Length against the bytes on the wire (receivedEncodedLength) and
  // bodyLimit against what we hand it, so a decompression bomb stops at the body limit.
  const out = inflate as Transform & { receivedEncodedLength: number };
  out.receivedEncodedLength = 0;
  payload.on('data', (chunk: Buffer) => {
    out.receivedEncodedLength += chunk.length;
  });
  payload.on('error', (err) => out.destroy(err));
  inflate.on('error', (err: Error & { code?: string; statusCode?: number }) => {
    // Not what the header says (found by test/fuzz.test.ts): a coded 400, not zlib's own code. The
    // rest of the body is read and dropped (up to the body limit) so the answer can still be sent;
    // destroying the request here would cut the connection instead.
    Object.assign(err, { code: 'invalid_encoding', statusCode: 400, message: `body is not valid ${encoding}: ${err.message}` });
    drop(payload, maxBodyBytes);
  });
  return payload.pipe(inflate);
}

/**
 * One edge client's event stream. Messages are handled strictly in order and each is acked with
 * its sequence number once the bus holds its events. When too many messages wait (the bus is
 * slow), the socket stops being read, so TCP flow control slows the client; nothing piles up here.
 */
class StreamSession {
  private readonly queue: { data: Buffer; binary: boolean }[] = [];
  private draining = false;
  private paused = false;
  private autoSeq = 0;

  constructor(
    private readonly socket: WebSocket,
    private readonly deps: IngestDeps,
    private readonly guard: IntakeGuard | undefined,
    private readonly quota: Quota | undefined,
    private readonly budget: StreamBudget,
  ) {}

  start(): void {
    this.budget.join(this);
    this.socket.on('message', (data, isBinary) => {
      const buffer = toBuffer(data);
      this.queue.push({ data: buffer, binary: isBinary });
      this.budget.take(buffer.length);
      this.updateFlow();
      void this.drain();
    });
    this.socket.on('close', () => {
      this.budget.leave(this);
      for (const msg of this.queue.splice(0)) this.budget.give(msg.data.length);
    });
    this.socket.on('error', (err) => this.deps.log.debug({ err }, 'stream socket error'));
  }

  /** Stop reading while this socket's queue is full (resume at half) or the process-wide budget is spent. */
  updateFlow(): void {
    const max = this.deps.wsMaxInflightMessages;
    const full = this.paused ? this.queue.length > max / 2 : this.queue.length >= max;
    const pause = full || this.budget.over;
    if (pause && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!pause && this.paused && this.socket.readyState === this.socket.OPEN) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0 && this.socket.readyState === this.socket.OPEN) {
        const msg = this.queue[0]!;
        try {
          await this.handle(msg.data, msg.binary);
        } finally {
          // Still queued unless the close handler already released it.
          if (this.queue[0] === msg) {
            this.queue.shift();
            this.budget.give(msg.data.length);
          }
        }
        this.updateFlow();
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(data: Buffer, binary: boolean): Promise<void> {
    let seq: number | undefined;
    try {
      const { maxEventsPerRequest: maxEvents, maxBadLines, maxEventBytes } = this.deps;
      const bounds = { maxEvents, maxBadLines, maxEventBytes };
      const msg = binary ? await decodeStreamBinary(data, bounds) : await decodeStreamText(data, bounds);
      seq = msg.seq ?? ++this.autoSeq;
      if (msg.items.length > this.deps.maxEventsPerRequest) {
        throw new BadRequestError('too_many_events', `${msg.items.length} events in one message; the limit is ${this.deps.maxEventsPerRequest}`);
      }
      const result = await this.submitWhenCapacity(msg.items, data.length);
      this.send({ type: 'ack', seq, ...result }, binary);
    } catch (err) {
      const e = err instanceof AfterglowError ? err : undefined;
      if (!e) this.deps.log.error({ err }, 'stream message failed');
      // A message refused before it was parsed may still name its seq (see decodeStreamText).
      seq ??= (err as { seq?: number }).seq;
      this.send({ type: 'error', seq: seq ?? null, code: e?.code ?? 'internal', message: e?.message ?? 'internal error' }, binary);
    }
  }

  /** Unlike HTTP (which answers 429 at once), a stream waits for the bus, up to the produce timeout. */
  private async submitWhenCapacity(items: Parameters<EventIntake['submit']>[0], bytes: number): Promise<IntakeResult> {
    const deadline = Date.now() + this.deps.produceTimeoutMs;
    let charged = false;
    for (;;) {
      try {
        await this.deps.intake.whenCapacity();
        if (!charged && this.quota) {
          // The key's rate limits (issue 8): over them the stream waits, as for the bus.
          await this.quota.bytes(bytes);
          await this.quota.events(items.length);
        }
        charged = true;
        return await this.deps.intake.submit(items, this.guard);
      } catch (err) {
        if (!(err instanceof BackpressureError) || Date.now() + err.retryAfterMs > deadline) throw err;
        await new Promise((r) => setTimeout(r, err.retryAfterMs));
      }
    }
  }

  private send(message: object, binary: boolean): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(binary ? pack(message) : JSON.stringify(message), { binary });
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { pack } from 'msgpackr';
import type {} from '@fastify/websocket';
import { AfterglowError, BackpressureError, BadRequestError, actingTenant, principalOf, quotaOf, type Logger, type Quota, type Store } from '@afterglow/core';
import { decodeJsonBody, decodeNdjsonBody, decodeStreamMessage, isNdjson } from './decode.js';
import type { EventIntake, IntakeGuard, IntakeResult } from './intake.js';
import { campaignTotals, listCampaigns } from './totals.js';

export interface IngestDeps {
  intake: EventIntake;
  store: Store;
  log: Logger;
  maxBodyBytes: number;
  maxEventsPerRequest: number;
  wsMaxInflightMessages: number;
  /** How long a WebSocket message may wait for bus capacity before it is answered with an error. */
  produceTimeoutMs: number;
}

const BODY_TYPES = ['application/json', 'application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines'];
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
  await app.register(async (scope) => {
    // Bodies are read as bytes and decoded here: NDJSON lines fail one by one, and gzip/deflate/br
    // bodies are decompressed as a stream whose output still counts against bodyLimit.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(BODY_TYPES, { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes }, (_req, body, done) => done(null, body));
    scope.addContentTypeParser('*', (req, _payload, done) =>
      done(new BadRequestError('unsupported_media_type', `content-type ${req.headers['content-type'] ?? '(none)'} is not accepted; use application/json or application/x-ndjson`, 415)),
    );
    scope.addHook('preParsing', async (req, _reply, payload) => decompress(req, payload, deps.maxBodyBytes));

    scope.post('/v1/events', { bodyLimit: deps.maxBodyBytes, config: { scope: 'ingest' } }, async (req, reply) => {
      const body = req.body as Buffer;
      const items = isNdjson(req.headers['content-type']) ? decodeNdjsonBody(body) : decodeJsonBody(body);
      if (items.length > deps.maxEventsPerRequest) {
        throw new BadRequestError('too_many_events', `${items.length} events in one request; the limit is ${deps.maxEventsPerRequest}`, 413);
      }
      await quotaOf(req)?.events(items.length);
      const result = await deps.intake.submit(items, guardOf(req));
      reply.code(result.accepted > 0 || items.length === 0 ? 202 : 422);
      return result;
    });
  });

  app.get('/v1/campaigns/:campaignId/totals', { schema: { querystring: TENANT_QUERY }, config: { scope: 'read' } }, async (req) => {
    const { campaignId } = req.params as { campaignId: string };
    const q = req.query as { tenant_id: string; source?: 'rollup' | 'raw' };
    return campaignTotals(deps.store, actingTenant(principalOf(req), q.tenant_id), campaignId, q.source);
  });

  app.get('/v1/campaigns', { schema: { querystring: TENANT_QUERY }, config: { scope: 'read' } }, async (req) => {
    const tenant_id = actingTenant(principalOf(req), (req.query as { tenant_id: string }).tenant_id);
    return { tenant_id, campaigns: await listCampaigns(deps.store, tenant_id) };
  });

  app.get('/v1/stream', { websocket: true, config: { scope: 'ingest' } }, (socket, req) =>
    new StreamSession(socket, deps, guardOf(req), quotaOf(req)).start(),
  );
}

/** Events must belong to the key's tenant (and placements); no key (AUTH_MODE=off): no check. */
function guardOf(req: FastifyRequest): IntakeGuard | undefined {
  const p = principalOf(req);
  return p ? { tenantId: p.tenantId, placements: p.placements } : undefined;
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
    payload.unpipe(inflate);
    let drained = 0;
    payload.on('data', (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > maxBodyBytes) payload.destroy();
    });
    payload.resume();
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
  ) {}

  start(): void {
    this.socket.on('message', (data, isBinary) => {
      this.queue.push({ data: toBuffer(data), binary: isBinary });
      if (!this.paused && this.queue.length >= this.deps.wsMaxInflightMessages) {
        this.paused = true;
        this.socket.pause();
      }
      void this.drain();
    });
    this.socket.on('error', (err) => this.deps.log.debug({ err }, 'stream socket error'));
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0 && this.socket.readyState === this.socket.OPEN) {
        const msg = this.queue.shift()!;
        await this.handle(msg.data, msg.binary);
        if (this.paused && this.queue.length <= this.deps.wsMaxInflightMessages / 2) {
          this.paused = false;
          this.socket.resume();
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(data: Buffer, binary: boolean): Promise<void> {
    let seq: number | undefined;
    try {
      const msg = decodeStreamMessage(data, binary);
      seq = msg.seq ?? ++this.autoSeq;
      if (msg.items.length > this.deps.maxEventsPerRequest) {
        throw new BadRequestError('too_many_events', `${msg.items.length} events in one message; the limit is ${this.deps.maxEventsPerRequest}`);
      }
      const result = await this.submitWhenCapacity(msg.items, data.length);
      this.send({ type: 'ack', seq, ...result }, binary);
    } catch (err) {
      const e = err instanceof AfterglowError ? err : undefined;
      if (!e) this.deps.log.error({ err }, 'stream message failed');
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

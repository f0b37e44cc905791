/**
 * The asset registry's HTTP API (served by the `inference` role; contract in README.md):
 *
 *   POST /v1/assets                    multipart: image + tenant_id, role, campaign_id, name, channel, asset_id (admin)
 *   GET  /v1/assets?tenant_id&role&campaign_id&limit&cursor                                          (read)
 *   GET  /v1/assets/:id?tenant_id                                                                    (read)
 *   GET  /v1/assets/:id/image?tenant_id, /v1/assets/:id/thumbnail?tenant_id                          (read)
 *   GET  /v1/assets/:id/original?tenant_id      the uploaded bytes (image or video); Range: bytes=a-b | a- | -n -> 206 (read)
 *   GET  /v1/assets/:id/timeline?tenant_id&limit    registration, launch, relaunches, tie changes    (read)
 *   GET  /v1/assets/:id/video?tenant_id             a video's duration, fps, audio, shots (times, keyframes, masters) (read)
 *   GET  /v1/assets/:id/poster?tenant_id, /storyboard?tenant_id, /keyframes/:shot/:k?tenant_id (k: 0 first, 1 middle, 2 last)  (read)
 *
 * The upload goes in field "image" or "video" (either takes either: the bytes decide).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { BadRequestError, actingTenant, principalOf, type AssetRole } from '@afterglow/core';
import { API_ROUTES, bytesResponses, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';
import type { AssetRecord, VideoRecord } from './repository.js';
import { CONTENT_TYPES, VIDEO_FORMATS, type AssetRegistry } from './service.js';
import { assetTimeline, type Timeline } from './timeline.js';
import { videoView, withTies, type ApiAsset } from './views.js';

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;
const PARAMS = { type: 'object', required: ['id'], properties: { id: ID } } as const;
const TENANT_QUERY = { type: 'object', properties: { tenant_id: ID } } as const;

/** What the review layer does after a registration (rank an ad, add a master); its answer is added to the response. */
export type OnRegistered = (asset: AssetRecord) => Promise<Record<string, unknown>>;

export interface RegistryRoutesDeps {
  registry: AssetRegistry;
  /** Byte limit of one upload (the larger of IMAGE_MAX_BYTES and VIDEO_MAX_BYTES; each kind checks its own). */
  maxBytes: number;
  onRegistered?: OnRegistered;
}

export function tenantOf(req: FastifyRequest, claimed: string | undefined): string {
  return actingTenant(principalOf(req), claimed);
}

export async function registerRegistryRoutes(app: FastifyInstance, deps: RegistryRoutesDeps): Promise<void> {
  const { registry } = deps;
  const repo = registry.repo;

  const load = async (tenant: string, id: string): Promise<AssetRecord> => {
    const a = await repo.getAsset(tenant, id);
    if (!a) throw new BadRequestError('not_found', `no asset ${id} for this tenant`, 404);
    return a;
  };

  // Multipart parsing only inside this plugin: other routes keep their own body handling.
  await app.register(async (scope) => {
    await scope.register(multipart, {
      limits: { fileSize: deps.maxBytes, files: 1, fields: 16, fieldSize: 4096, parts: 20, headerPairs: 100 },
    });
    scope.post('/v1/assets', { config: { scope: 'admin' }, serializerCompiler: serializeWhole, schema: { response: responsesOf(API_ROUTES.registerAsset) } }, async (req, reply) => {
      if (!req.isMultipart()) throw new BadRequestError('multipart_required', 'POST /v1/assets takes multipart/form-data with the file in field "image"', 415);
      const fields: Record<string, string> = {};
      let file: { bytes: Buffer; filename: string } | undefined;
      try {
        for await (const part of req.parts()) {
          if (part.type === 'file') {
            if (part.fieldname !== 'image' && part.fieldname !== 'video') throw new BadRequestError('unexpected_file', `the file goes in field "image" or "video", not "${part.fieldname}"`);
            file = { bytes: await part.toBuffer(), filename: part.filename };
          } else if (typeof part.value === 'string') fields[part.fieldname] = part.value;
        }
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'FST_REQ_FILE_TOO_LARGE') throw new BadRequestError('too_many_bytes', `upload is over the ${deps.maxBytes}-byte limit`, 413);
        if (code === 'FST_FILES_LIMIT') throw new BadRequestError('too_many_files', 'one file per request', 413);
        if (code === 'FST_PARTS_LIMIT' || code === 'FST_FIELDS_LIMIT') throw new BadRequestError('too_many_fields', 'too many form fields', 413);
        throw err;
      }
      const tenant = tenantOf(req, fields.tenant_id);
      if (!file) throw new BadRequestError('image_required', 'multipart field "image" or "video" (the file) is required');
      const { asset, created } = await registry.register({
        tenant,
        role: fields.role,
        campaign: fields.campaign_id,
        name: fields.name,
        channel: fields.channel,
        assetId: fields.asset_id,
        filename: file.filename,
        bytes: new Uint8Array(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength),
      });
      const extra = created && deps.onRegistered ? await deps.onRegistered(asset) : {};
      const [view] = await withTies(repo, tenant, [asset]);
      const video = VIDEO_FORMATS.has(asset.format) ? await repo.getVideo(tenant, asset.asset_id) : undefined;
      return reply.code(created ? 201 : 200).send({ asset: view, ...(video ? { video: videoView(video) } : {}), ...extra });
    });
  });

  app.get(
    '/v1/assets',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        response: responsesOf(API_ROUTES.listAssets),
        querystring: {
          type: 'object',
          properties: {
            tenant_id: ID,
            role: { type: 'string', enum: ['master', 'ad'] },
            campaign_id: ID,
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: ID,
          },
        },
      },
    },
    async (req): Promise<ResponseOf<'listAssets'>> => {
      const q = req.query as { tenant_id?: string; role?: AssetRole; campaign_id?: string; limit?: number; cursor?: string };
      const tenant = tenantOf(req, q.tenant_id);
      const limit = q.limit ?? 100;
      const rows = await repo.listAssets(tenant, { limit, ...(q.role ? { role: q.role } : {}), ...(q.campaign_id ? { campaign: q.campaign_id } : {}), ...(q.cursor ? { cursor: q.cursor } : {}) });
      const assets: ApiAsset[] = await withTies(repo, tenant, rows);
      return { assets, next_cursor: rows.length === limit ? rows[rows.length - 1]!.asset_id : null };
    },
  );

  const getAsset = { config: { scope: 'read' }, serializerCompiler: serializeWhole, schema: { params: PARAMS, querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.getAsset) } } as const;
  app.get('/v1/assets/:id', getAsset, async (req): Promise<ResponseOf<'getAsset'>> => {
    const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
    const [view] = await withTies(repo, tenant, [await load(tenant, (req.params as { id: string }).id)]);
    // One view per asset given.
    return view!;
  });

  app.get(
    '/v1/assets/:id/timeline',
    {
      config: { scope: 'read' },
      serializerCompiler: serializeWhole,
      schema: {
        params: PARAMS,
        querystring: { type: 'object', properties: { tenant_id: ID, limit: { type: 'integer', minimum: 1, maximum: 2000 } } },
        response: responsesOf(API_ROUTES.assetTimeline),
      },
    },
    async (req): Promise<Timeline> => {
      const q = req.query as { tenant_id?: string; limit?: number };
      const tenant = tenantOf(req, q.tenant_id);
      return assetTimeline(repo, await load(tenant, (req.params as { id: string }).id), { limit: q.limit ?? 500 });
    },
  );

  const serveBlob = (which: 'image' | 'thumbnail') =>
    app.get(
      `/v1/assets/:id/${which}`,
      {
        config: { scope: 'read' },
        schema: {
          params: PARAMS,
          querystring: TENANT_QUERY,
          response: which === 'image' ? bytesResponses('the uploaded image', [...new Set(Object.values(CONTENT_TYPES))]) : bytesResponses('webp, longest side 256', ['image/webp']),
        },
      },
      async (req, reply) => {
        const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
        const asset = await load(tenant, (req.params as { id: string }).id);
        const key = which === 'image' ? asset.content_hash : asset.thumbnail_hash;
        const etag = `"${key}"`;
        reply.header('etag', etag).header('cache-control', 'private, max-age=31536000, immutable');
        if (req.headers['if-none-match'] === etag) return reply.code(304).send();
        const bytes = await registry.blobs.get(key);
        if (!bytes) throw new BadRequestError('blob_missing', `the ${which} of asset ${asset.asset_id} is missing from the blob store`, 404);
        reply.header('content-type', which === 'image' ? (CONTENT_TYPES[asset.format] ?? 'application/octet-stream') : 'image/webp');
        reply.header('x-content-type-options', 'nosniff');
        return reply.send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      },
    );
  serveBlob('image');
  serveBlob('thumbnail');

  // The uploaded bytes with byte ranges, so a <video> can seek without fetching the whole file.
  const originalBytes = bytesResponses('the uploaded bytes (image or video)', ['*/*']);
  const originalResponses: Record<string, Record<string, unknown>> = { ...originalBytes, 206: { ...originalBytes['200'], description: 'the byte range asked for (Range)' } };
  const original = { config: { scope: 'read' }, schema: { params: PARAMS, querystring: TENANT_QUERY, response: originalResponses } } as const;
  app.get('/v1/assets/:id/original', original, async (req, reply) => {
    const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
    const asset = await load(tenant, (req.params as { id: string }).id);
    const etag = `"${asset.content_hash}"`;
    reply.header('etag', etag).header('cache-control', 'private, max-age=31536000, immutable').header('accept-ranges', 'bytes');
    reply.header('x-content-type-options', 'nosniff');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    const missing = () => new BadRequestError('blob_missing', `the original of asset ${asset.asset_id} is missing from the blob store`, 404);
    // The size is the registered one, so a seek reads only its range (not the whole video, hashed, per request).
    const size = asset.bytes;
    // If-Range naming another version: the whole (current) body, as RFC 9110 says.
    const ifRange = req.headers['if-range'];
    const range = typeof req.headers.range === 'string' && (ifRange === undefined || ifRange === etag) ? parseByteRange(req.headers.range, size) : 'none';
    if (range === 'unsatisfiable') {
      reply.header('content-range', `bytes */${size}`);
      throw new BadRequestError('range_not_satisfiable', `the range is outside the ${size} bytes of asset ${asset.asset_id}`, 416);
    }
    reply.header('content-type', CONTENT_TYPES[asset.format] ?? 'application/octet-stream');
    if (range === 'none') {
      const bytes = await registry.blobs.get(asset.content_hash);
      if (!bytes) throw missing();
      return reply.send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
    const part = await registry.blobs.getRange(asset.content_hash, range.start, range.end);
    if (!part) throw missing();
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
    return reply.send(Buffer.from(part.buffer, part.byteOffset, part.byteLength));
  });

  const loadVideo = async (tenant: string, id: string): Promise<VideoRecord> => {
    const asset = await load(tenant, id);
    const video = VIDEO_FORMATS.has(asset.format) ? await repo.getVideo(tenant, id) : undefined;
    if (!video) throw new BadRequestError('not_a_video', `asset ${id} is not a video`, 404);
    return video;
  };

  const video = { config: { scope: 'read' }, serializerCompiler: serializeWhole, schema: { params: PARAMS, querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.assetVideo) } } as const;
  app.get('/v1/assets/:id/video', video, async (req): Promise<ResponseOf<'assetVideo'>> => {
    const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
    return videoView(await loadVideo(tenant, (req.params as { id: string }).id));
  });

  const sendImage = async (reply: FastifyReply, key: string, contentType: string, ifNoneMatch: string | undefined, what: string) => {
    const etag = `"${key}"`;
    reply.header('etag', etag).header('cache-control', 'private, max-age=31536000, immutable');
    if (ifNoneMatch === etag) return reply.code(304).send();
    const bytes = await registry.blobs.get(key);
    if (!bytes) throw new BadRequestError('blob_missing', `the ${what} is missing from the blob store`, 404);
    reply.header('content-type', contentType).header('x-content-type-options', 'nosniff');
    return reply.send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  };
  for (const which of ['poster', 'storyboard'] as const) {
    const frame = { config: { scope: 'read' }, schema: { params: PARAMS, querystring: TENANT_QUERY, response: bytesResponses(`the video's ${which} (webp)`, ['image/webp']) } } as const;
    app.get(`/v1/assets/:id/${which}`, frame, async (req, reply) => {
      const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
      const video = await loadVideo(tenant, (req.params as { id: string }).id);
      return sendImage(reply, which === 'poster' ? video.poster_hash : video.storyboard_hash, 'image/webp', req.headers['if-none-match'], `${which} of ${video.asset_id}`);
    });
  }
  app.get(
    '/v1/assets/:id/keyframes/:shot/:k',
    {
      config: { scope: 'read' },
      schema: {
        params: { type: 'object', required: ['id', 'shot', 'k'], properties: { id: ID, shot: { type: 'integer', minimum: 0, maximum: 10_000 }, k: { type: 'integer', minimum: 0, maximum: 2 } } },
        querystring: TENANT_QUERY,
        response: bytesResponses('the keyframe (jpeg)', ['image/jpeg']),
      },
    },
    async (req, reply) => {
      const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
      const p = req.params as { id: string; shot: number; k: number };
      const video = await loadVideo(tenant, p.id);
      const keyframe = video.shots[p.shot]?.keyframes[p.k];
      if (!keyframe) throw new BadRequestError('not_found', `video ${p.id} has no shot ${p.shot}`, 404);
      return sendImage(reply, keyframe.hash, 'image/jpeg', req.headers['if-none-match'], `keyframe ${p.shot}/${p.k} of ${p.id}`);
    },
  );
}

/**
 * One `bytes=` range of a body of `size` bytes (inclusive ends): 'none' when the header is not one
 * satisfiable-or-not single byte range we serve (another unit, several ranges, garbage: RFC 9110
 * lets a server answer those with the whole body), 'unsatisfiable' when it starts past the end.
 */
export function parseByteRange(header: string, size: number): { start: number; end: number } | 'none' | 'unsatisfiable' {
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'none';
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return 'none';
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}



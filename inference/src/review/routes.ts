/**
 * The tie review API (served by the `inference` role; contract in README.md):
 *
 *   GET  /v1/assets/:id/candidates?tenant_id&similar_scope=campaign|all        (read)
 *   GET  /v1/review/queue?tenant_id&campaign_id&status&limit                  (read)
 *   POST /v1/ties  { tenant_id, ad_asset_id, action, target_asset_id?, decided_by, across_campaigns? }   (admin)
 *   GET  /v1/ties?tenant_id&ad_asset_id|master_asset_id&limit                 (read)
 *   GET  /v1/masters/:id/ads?tenant_id                                        (read)
 *   POST /v1/assets/:id/shots/:shot/review  { tenant_id, action: tie|no_sim|untie, target_asset_id?, decided_by }  one shot of a video ad (admin)
 */
import type { FastifyInstance } from 'fastify';
import { API_ROUTES, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';
import { SHOT_REVIEW_ACTIONS } from '../registry/repository.js';
import { tenantOf } from '../registry/routes.js';
import { QUEUE_STATUSES, SIMILAR_SCOPES, TIE_ACTIONS, type QueueStatus, type ReviewService, type SimilarScope } from './service.js';

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;
const PARAMS = { type: 'object', required: ['id'], properties: { id: ID } } as const;
const TENANT_QUERY = { type: 'object', properties: { tenant_id: ID } } as const;
/** Answers sent whole (JSON.stringify): see serializeWhole. */
const WHOLE = { serializerCompiler: serializeWhole } as const;

export async function registerReviewRoutes(app: FastifyInstance, deps: { review: ReviewService }): Promise<void> {
  const { review } = deps;

  app.get(
    '/v1/assets/:id/candidates',
    {
      config: { scope: 'read' },
      ...WHOLE,
      schema: {
        params: PARAMS,
        querystring: { type: 'object', properties: { tenant_id: ID, similar_scope: { type: 'string', enum: [...SIMILAR_SCOPES] } } },
        response: responsesOf(API_ROUTES.candidates),
      },
    },
    async (req): Promise<ResponseOf<'candidates'>> => {
      const q = req.query as { tenant_id?: string; similar_scope?: SimilarScope };
      const tenant = tenantOf(req, q.tenant_id);
      return review.candidates(tenant, (req.params as { id: string }).id, { similarScope: q.similar_scope ?? 'campaign' });
    },
  );

  app.get(
    '/v1/review/queue',
    {
      config: { scope: 'read' },
      ...WHOLE,
      schema: {
        response: responsesOf(API_ROUTES.reviewQueue),
        querystring: {
          type: 'object',
          properties: { tenant_id: ID, campaign_id: ID, status: { type: 'string', enum: [...QUEUE_STATUSES] }, limit: { type: 'integer', minimum: 1, maximum: 5000 } },
        },
      },
    },
    async (req): Promise<ResponseOf<'reviewQueue'>> => {
      const q = req.query as { tenant_id?: string; campaign_id?: string; status?: QueueStatus; limit?: number };
      const tenant = tenantOf(req, q.tenant_id);
      return review.queue(tenant, { campaign: q.campaign_id, status: q.status ?? 'all', limit: q.limit ?? 200 });
    },
  );

  app.post(
    '/v1/ties',
    {
      config: { scope: 'admin' },
      ...WHOLE,
      schema: {
        response: responsesOf(API_ROUTES.decideTie),
        body: {
          type: 'object',
          required: ['ad_asset_id', 'action', 'decided_by'],
          properties: {
            tenant_id: ID,
            ad_asset_id: ID,
            action: { type: 'string', enum: [...TIE_ACTIONS] },
            target_asset_id: ID,
            decided_by: { type: 'string', minLength: 1, maxLength: 128 },
            across_campaigns: { type: 'boolean' },
          },
        },
      },
    },
    async (req): Promise<ResponseOf<'decideTie'>> => {
      const b = req.body as { tenant_id?: string; ad_asset_id: string; action: string; target_asset_id?: string; decided_by: string; across_campaigns?: boolean };
      const tenant = tenantOf(req, b.tenant_id);
      return review.decide(tenant, b);
    },
  );

  app.get(
    '/v1/ties',
    {
      config: { scope: 'read' },
      ...WHOLE,
      schema: {
        querystring: { type: 'object', properties: { tenant_id: ID, ad_asset_id: ID, master_asset_id: ID, limit: { type: 'integer', minimum: 1, maximum: 5000 } } },
        response: responsesOf(API_ROUTES.tieHistory),
      },
    },
    async (req): Promise<ResponseOf<'tieHistory'>> => {
      const q = req.query as { tenant_id?: string; ad_asset_id?: string; master_asset_id?: string; limit?: number };
      const tenant = tenantOf(req, q.tenant_id);
      return { decisions: await review.decisions(tenant, { ad: q.ad_asset_id, master: q.master_asset_id, limit: q.limit ?? 100 }) };
    },
  );

  app.post(
    '/v1/assets/:id/shots/:shot/review',
    {
      config: { scope: 'admin' },
      ...WHOLE,
      schema: {
        response: responsesOf(API_ROUTES.reviewShot),
        params: { type: 'object', required: ['id', 'shot'], properties: { id: ID, shot: { type: 'integer', minimum: 0, maximum: 10_000 } } },
        body: {
          type: 'object',
          required: ['action', 'decided_by'],
          properties: {
            tenant_id: ID,
            action: { type: 'string', enum: [...SHOT_REVIEW_ACTIONS] },
            target_asset_id: ID,
            decided_by: { type: 'string', minLength: 1, maxLength: 128 },
          },
        },
      },
    },
    async (req): Promise<ResponseOf<'reviewShot'>> => {
      const b = req.body as { tenant_id?: string; action: string; target_asset_id?: string; decided_by: string };
      const p = req.params as { id: string; shot: number };
      const tenant = tenantOf(req, b.tenant_id);
      return review.decideShot(tenant, p.id, p.shot, b);
    },
  );

  const masterAds = { config: { scope: 'read' }, ...WHOLE, schema: { params: PARAMS, querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.masterAds) } } as const;
  app.get('/v1/masters/:id/ads', masterAds, async (req): Promise<ResponseOf<'masterAds'>> => {
    const tenant = tenantOf(req, (req.query as { tenant_id?: string }).tenant_id);
    return review.masterAds(tenant, (req.params as { id: string }).id);
  });
}

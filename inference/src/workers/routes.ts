/**
 * Scores, occlusion maps, attribution and models over HTTP (served by the `inference` role; the
 * contract is /tmp/afterglow-api-spec.md "Scores, models, attribution", mirrored in README):
 *
 *   GET  /v1/assets/:id/score?tenant_id          (read)  latest AssetScore, 404 not_scored
 *   GET  /v1/assets/:id/occlusion?tenant_id      (read)  { grid_w, grid_h, values, model_version }
 *   GET  /v1/campaigns/:id/scores?tenant_id      (read)  { scores }
 *   GET  /v1/attribution?tenant_id[&campaign_id] (read)  { model_version, assets, elements }
 *   GET  /v1/models?tenant_id                    (read)  { models }
 *   POST /v1/models/:version/activate            (admin) body { tenant_id } -> { version, active: true }
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { actingTenant, principalOf } from '@afterglow/core';
import { API_ROUTES, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';
import type { ModelRegistry } from '../predict/registry.js';
import type { ScoringEngine } from './engine.js';

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;
const PARAMS = { type: 'object', required: ['id'], properties: { id: ID } } as const;
const TENANT_QUERY = { type: 'object', properties: { tenant_id: ID } } as const;
/** A read of one asset, answered whole (JSON.stringify: see serializeWhole) and documented as `spec` says. */
const assetRead = (spec: Parameters<typeof responsesOf>[0]) =>
  ({ config: { scope: 'read' }, serializerCompiler: serializeWhole, schema: { params: PARAMS, querystring: TENANT_QUERY, response: responsesOf(spec) } }) as const;

const tenantOf = (req: FastifyRequest, claimed: string | undefined) => actingTenant(principalOf(req), claimed);

export interface ScoreRoutesDeps {
  engine: ScoringEngine;
  registry: ModelRegistry;
  /** Called after a model is activated (the workers rescore on model change). */
  onActivated?: (tenantId: string, version: string) => void;
}

export async function registerScoreRoutes(app: FastifyInstance, deps: ScoreRoutesDeps): Promise<void> {
  const { engine, registry } = deps;
  const q = (req: FastifyRequest) => req.query as { tenant_id?: string; campaign_id?: string };
  const id = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.get('/v1/assets/:id/score', assetRead(API_ROUTES.assetScore), async (req): Promise<ResponseOf<'assetScore'>> =>
    engine.latestScore(tenantOf(req, q(req).tenant_id), id(req)),
  );

  app.get('/v1/assets/:id/occlusion', assetRead(API_ROUTES.assetOcclusion), async (req): Promise<ResponseOf<'assetOcclusion'>> =>
    engine.occlusion(tenantOf(req, q(req).tenant_id), id(req)),
  );

  app.get('/v1/campaigns/:id/scores', assetRead(API_ROUTES.campaignScores), async (req): Promise<ResponseOf<'campaignScores'>> => ({
    scores: await engine.campaignScores(tenantOf(req, q(req).tenant_id), id(req)),
  }));

  const attribution = {
    config: { scope: 'read' },
    serializerCompiler: serializeWhole,
    schema: { querystring: { type: 'object', properties: { tenant_id: ID, campaign_id: ID } }, response: responsesOf(API_ROUTES.attribution) },
  } as const;
  app.get('/v1/attribution', attribution, async (req): Promise<ResponseOf<'attribution'>> =>
    engine.aggregate(tenantOf(req, q(req).tenant_id), q(req).campaign_id),
  );

  const models = { config: { scope: 'read' }, serializerCompiler: serializeWhole, schema: { querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.listModels) } } as const;
  app.get('/v1/models', models, async (req): Promise<ResponseOf<'listModels'>> => ({
    models: (await registry.list(tenantOf(req, q(req).tenant_id))).map(({ schema_id: _s, ...m }) => m),
  }));

  app.post(
    '/v1/models/:version/activate',
    {
      config: { scope: 'admin' },
      serializerCompiler: serializeWhole,
      schema: { params: { type: 'object', required: ['version'], properties: { version: ID } }, querystring: TENANT_QUERY, response: responsesOf(API_ROUTES.activateModel) },
    },
    async (req): Promise<ResponseOf<'activateModel'>> => {
      const tenant = tenantOf(req, (req.body as { tenant_id?: string } | undefined)?.tenant_id ?? q(req).tenant_id);
      const version = (req.params as { version: string }).version;
      await registry.activate(tenant, version);
      deps.onActivated?.(tenant, version);
      return { version, active: true };
    },
  );
}

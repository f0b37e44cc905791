import { z } from 'zod';
import * as s from './schemas.js';

/**
 * Every JSON route of the REST API: method, path (Fastify's `:param` form), and its success answers
 * by status. The routes take their `schema.response` from here (`responsesOf`), and the typed client
 * (client.ts) has one method per entry, so server and client read the same table.
 * Routes that answer bytes (images, video frames) or upgrade to a WebSocket are not here.
 */
export interface RouteSpec {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly responses: Readonly<Partial<Record<200 | 201 | 202, z.ZodType>>>;
}

const route = <const M extends RouteSpec['method'], const P extends string, const R extends RouteSpec['responses']>(method: M, path: P, responses: R) => ({ method, path, responses });

export const API_ROUTES = {
  // health (public)
  health: route('GET', '/healthz', { 200: s.healthSchema }),
  readiness: route('GET', '/readyz', { 200: s.readinessSchema }),
  // ingest
  postEvents: route('POST', '/v1/events', { 202: s.intakeResultSchema }),
  importEvents: route('POST', '/v1/import/events', { 200: s.importResultSchema }),
  importSpend: route('POST', '/v1/import/spend', { 200: s.spendImportResultSchema }),
  listCampaigns: route('GET', '/v1/campaigns', { 200: s.campaignListSchema }),
  campaignTotals: route('GET', '/v1/campaigns/:campaignId/totals', { 200: s.campaignTotalsSchema }),
  campaignCosts: route('GET', '/v1/campaigns/:campaignId/costs', { 200: s.campaignCostsSchema }),
  campaignReach: route('GET', '/v1/campaigns/:campaignId/reach', { 200: s.campaignReachSchema }),
  assetCosts: route('GET', '/v1/assets/:id/costs', { 200: s.assetCostsSchema }),
  masterReach: route('GET', '/v1/masters/:id/reach', { 200: s.masterReachSchema }),
  campaignBreakdown: route('GET', '/v1/campaigns/:campaignId/breakdown', { 200: s.breakdownSchema }),
  campaignRange: route('GET', '/v1/campaigns/:campaignId/range', { 200: s.campaignRangeSchema }),
  assetRange: route('GET', '/v1/assets/:id/range', { 200: s.assetRangeSchema }),
  compareAssets: route('GET', '/v1/compare', { 200: s.compareSchema }),
  // live
  liveFreshness: route('GET', '/v1/live/freshness', { 200: s.freshnessSchema }),
  assetMetrics: route('GET', '/v1/assets/:id/metrics', { 200: s.assetMetricsSchema }),
  assetDecay: route('GET', '/v1/assets/:id/decay', { 200: s.assetDecaySchema }),
  campaignLeaderboard: route('GET', '/v1/campaigns/:id/leaderboard', { 200: s.leaderboardSchema }),
  campaignMetrics: route('GET', '/v1/campaigns/:id/metrics', { 200: s.campaignMetricsSchema }),
  videoMetrics: route('GET', '/v1/assets/:id/video-metrics', { 200: s.videoReportSchema }),
  // triggers
  triggerRules: route('GET', '/v1/triggers/rules', { 200: s.triggerRulesSchema }),
  putTriggerRule: route('PUT', '/v1/triggers/rules/:rule_id', { 200: s.triggerRulePutSchema }),
  deleteTriggerRule: route('DELETE', '/v1/triggers/rules/:rule_id', { 200: s.triggerRuleDeletedSchema }),
  snoozeTriggerRule: route('PUT', '/v1/triggers/rules/:rule_id/snooze', { 200: s.triggerSnoozePutSchema }),
  unsnoozeTriggerRule: route('DELETE', '/v1/triggers/rules/:rule_id/snooze', { 200: s.triggerUnsnoozedSchema }),
  ackFiring: route('POST', '/v1/triggers/firings/:firing_id/ack', { 200: s.triggerAckedSchema }),
  triggersLog: route('GET', '/v1/triggers/log', { 200: s.triggerLogSchema }),
  triggerFiring: route('GET', '/v1/triggers/firings/:firing_id', { 200: s.triggerFiringDetailSchema }),
  // inference: registry, review
  registerAsset: route('POST', '/v1/assets', { 200: s.assetRegisteredSchema, 201: s.assetRegisteredSchema }),
  listAssets: route('GET', '/v1/assets', { 200: s.assetListSchema }),
  getAsset: route('GET', '/v1/assets/:id', { 200: s.assetSchema }),
  assetTimeline: route('GET', '/v1/assets/:id/timeline', { 200: s.timelineSchema }),
  assetVideo: route('GET', '/v1/assets/:id/video', { 200: s.videoSchema }),
  reviewShot: route('POST', '/v1/assets/:id/shots/:shot/review', { 200: s.shotReviewedSchema }),
  candidates: route('GET', '/v1/assets/:id/candidates', { 200: s.candidatesSchema }),
  reviewQueue: route('GET', '/v1/review/queue', { 200: s.reviewQueueSchema }),
  decideTie: route('POST', '/v1/ties', { 200: s.tieDecidedSchema }),
  tieHistory: route('GET', '/v1/ties', { 200: s.tieHistorySchema }),
  masterAds: route('GET', '/v1/masters/:id/ads', { 200: s.masterAdsSchema }),
  // inference: scores, models
  assetScore: route('GET', '/v1/assets/:id/score', { 200: s.assetScoreJsonSchema }),
  assetOcclusion: route('GET', '/v1/assets/:id/occlusion', { 200: s.occlusionSchema }),
  campaignScores: route('GET', '/v1/campaigns/:id/scores', { 200: s.campaignScoresSchema }),
  attribution: route('GET', '/v1/attribution', { 200: s.attributionSummarySchema }),
  listModels: route('GET', '/v1/models', { 200: s.modelListSchema }),
  activateModel: route('POST', '/v1/models/:version/activate', { 200: s.modelActivatedSchema }),
  // keys
  whoami: route('GET', '/v1/whoami', { 200: s.whoamiSchema }),
  createKey: route('POST', '/v1/keys', { 201: s.keyCreatedSchema }),
  listKeys: route('GET', '/v1/keys', { 200: s.keyListSchema }),
  rotateKey: route('POST', '/v1/keys/:id/rotate', { 200: s.keyRotatedSchema }),
  revokeKey: route('DELETE', '/v1/keys/:id', { 200: s.keyRevokedSchema }),
} as const satisfies Record<string, RouteSpec>;

export type ApiRoutes = typeof API_ROUTES;
export type RouteName = keyof ApiRoutes;
/** The body of a route's success answer (the union over its 2xx statuses). */
export type ResponseOf<N extends RouteName> = { [S in keyof ApiRoutes[N]['responses']]: z.infer<ApiRoutes[N]['responses'][S] & z.ZodType> }[keyof ApiRoutes[N]['responses']];

/** JSON Schema (draft 2020-12, as OpenAPI 3.1 reads it) of an answer, without the `$schema` marker. */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

/**
 * A route's `schema.response`: its success answers as JSON Schema, by status, and `others`: answers
 * that are not errors in the `{error, message}` shape (a 422 that reports every refused event).
 */
export function responsesOf(spec: RouteSpec, others: Record<number, { description: string; schema: z.ZodType }> = {}): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [status, schema] of Object.entries(spec.responses)) if (schema) out[status] = { description: 'success', ...jsonSchemaOf(schema) };
  for (const [status, other] of Object.entries(others)) out[status] = { description: other.description, ...jsonSchemaOf(other.schema) };
  return out;
}

/**
 * Route option that keeps JSON.stringify as the serializer of a route that declares response
 * schemas. Fastify would otherwise compile the schema into a serializer that silently drops any
 * field the schema lacks; with this the answer is sent whole, and the contract test (which checks
 * live answers against the documented schemas) is what catches a schema falling behind its handler.
 */
export const serializeWhole = (): ((data: unknown) => string) => (data) => JSON.stringify(data);

/**
 * `schema.response` of a route that answers bytes (an image, a page): the content types it may
 * send, and 304 when the If-None-Match ETag matches. Documentation only: bytes are never serialized.
 */
export function bytesResponses(description: string, contentTypes: readonly string[]): Record<string, Record<string, unknown>> {
  return {
    200: { description, content: Object.fromEntries(contentTypes.map((t) => [t, { schema: { type: 'string', format: 'binary' } }])) },
    304: { description: 'not modified: the If-None-Match ETag matches', type: 'null' },
  };
}

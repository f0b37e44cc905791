import type { FastifyInstance, FastifyRequest } from 'fastify';
import type {} from '@fastify/websocket';
import { BadRequestError, actingTenant, principalOf, type Store } from '@afterglow/core';
import { API_ROUTES, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';
import { fitDecay } from './decay.js';
import type { LiveGateway } from './gateway.js';
import { LiveHistory, type Range } from './history.js';
import { VideoSource, videoReport } from './video.js';
import { RollupRepository } from './store-repository.js';
import { LEADERBOARD_METRICS, type LeaderboardMetric, type LiveReader } from './reader.js';
import { WINDOW_NAMES, type WindowName } from './windows.js';

export interface LiveRoutesDeps {
  /** Absent when this process runs no gateway: /v1/live is then not served here. */
  gateway: LiveGateway | undefined;
  reader: LiveReader;
  /** Absent without a store: history (from/to/step) answers 501. */
  store: Store | undefined;
  ci: { maxRelWidth: number; maxAbsWidth: number };
  fatigueFraction: number;
  /** Assets a leaderboard considers at most (the most recently active). */
  maxLeaderboardAssets: number;
  clock?: () => number;
}

const ID = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' } as const;
const PARAMS = { type: 'object', required: ['id'], properties: { id: ID } } as const;
const HISTORY = {
  from: { type: 'string', maxLength: 40 },
  to: { type: 'string', maxLength: 40 },
  step: { type: 'string', maxLength: 16 },
} as const;
const TENANT = { tenant_id: ID } as const;

/** Dashboards' reads (issue 8): a read key, and the tenant is the key's (a different tenant_id is refused). */
const READ = { scope: 'read' } as const;
/** Answers sent whole (JSON.stringify): see serializeWhole. */
const WHOLE = { serializerCompiler: serializeWhole } as const;
async function resolveTenant(req: FastifyRequest): Promise<void> {
  const q = req.query as { tenant_id?: string };
  q.tenant_id = actingTenant(principalOf(req), q.tenant_id);
}

const MINUTE = 60_000;
const MAX_POINTS = 10_000;

/**
 * The live API:
 *   GET /v1/live?tenant_id=                          WebSocket (see gateway.ts)
 *   GET /v1/live/freshness?tenant_id=                newest event counted live, events/s over the last minute
 *   GET /v1/assets/:id/metrics?tenant_id=[&from&to&step]
 *   GET /v1/assets/:id/decay?tenant_id=[&from&to&step][&fatigue=0.25]
 *   GET /v1/campaigns/:id/leaderboard?tenant_id=[&window=1h][&metric=ctr][&limit=50][&from&to]
 *   GET /v1/campaigns/:id/metrics?tenant_id=
 *   GET /v1/assets/:id/video-metrics?tenant_id=[&from&to]   hook/hold/completion rates, watch time, retention (video.ts)
 * Without from/to/step they read hot state (live windows); with them, ClickHouse rollups.
 */
export async function registerLiveRoutes(app: FastifyInstance, deps: LiveRoutesDeps): Promise<void> {
  const clock = deps.clock ?? Date.now;
  const history = deps.store ? new LiveHistory(new RollupRepository(deps.store), deps.ci) : undefined;
  const needHistory = () => {
    if (!history) throw new BadRequestError('history_unavailable', 'this process has no store; history (from/to/step) is not served here', 501);
    return history;
  };

  if (deps.gateway) {
    const gateway = deps.gateway;
    // The tenant is checked before the upgrade (preHandler); every subscription is then within it.
    app.get(
      '/v1/live',
      { websocket: true, config: READ, preHandler: resolveTenant, schema: { querystring: { type: 'object', required: ['tenant_id'], properties: TENANT } } },
      (socket, req) => {
        gateway.accept(socket, actingTenant(principalOf(req), (req.query as { tenant_id: string }).tenant_id));
      },
    );
  }

  app.get(
    '/v1/live/freshness',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: { querystring: { type: 'object', required: ['tenant_id'], properties: TENANT }, response: responsesOf(API_ROUTES.liveFreshness) },
    },
    async (req): Promise<ResponseOf<'liveFreshness'>> => ({ tenant_id: (req.query as { tenant_id: string }).tenant_id, ...(await deps.reader.freshness((req.query as { tenant_id: string }).tenant_id, clock())) }),
  );

  app.get(
    '/v1/assets/:id/metrics',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: { params: PARAMS, querystring: { type: 'object', required: ['tenant_id'], properties: { ...TENANT, ...HISTORY } }, response: responsesOf(API_ROUTES.assetMetrics) },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string; step?: string };
      const now = clock();
      const range = parseRange(q, now);
      if (range) {
        const live = await deps.reader.asset(q.tenant_id, id);
        const { series, totals } = await needHistory().assetSeries(q.tenant_id, id, range, live?.meta.campaign || undefined);
        return { tenant_id: q.tenant_id, asset_id: id, source: 'clickhouse', from: range.from, to: range.to, step_ms: range.stepMs, totals, series };
      }
      const metrics = await deps.reader.assetMetrics(q.tenant_id, id, now);
      if (!metrics) return reply.code(404).send({ error: 'not_found', message: `no live metrics for asset ${id} (nothing in the last 24 h)` });
      return metrics;
    },
  );

  app.get(
    '/v1/assets/:id/video-metrics',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: {
        params: PARAMS,
        querystring: { type: 'object', required: ['tenant_id'], properties: { ...TENANT, from: HISTORY.from, to: HISTORY.to } },
        response: responsesOf(API_ROUTES.videoMetrics),
      },
    },
    async (req): Promise<ResponseOf<'videoMetrics'>> => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string };
      if (!deps.store) throw new BadRequestError('history_unavailable', 'this process has no store; video metrics are read from it', 501);
      // Always a range (default: the last 24 h): plays are read from the video rollup.
      const range = parseRange({ from: q.from, to: q.to, step: undefined }, clock()) ?? { from: clock() - 24 * 60 * MINUTE, to: clock() };
      return videoReport(new VideoSource(deps.store), q.tenant_id, id, range, deps.ci);
    },
  );

  app.get(
    '/v1/assets/:id/decay',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: {
        params: PARAMS,
        response: responsesOf(API_ROUTES.assetDecay),
        querystring: { type: 'object', required: ['tenant_id'], properties: { ...TENANT, ...HISTORY, fatigue: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } } },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string; step?: string; fatigue?: number };
      const now = clock();
      const fraction = q.fatigue ?? deps.fatigueFraction;
      const range = parseRange(q, now);
      if (range) {
        const live = await deps.reader.asset(q.tenant_id, id);
        const bins = await needHistory().engagementBins(q.tenant_id, id, range, live?.meta.campaign || undefined);
        return { tenant_id: q.tenant_id, asset_id: id, source: 'clickhouse', from: range.from, to: range.to, step_ms: range.stepMs, ...fitDecay(bins, { fatigueFraction: fraction, now, curve: true }) };
      }
      const fit = await deps.reader.decay(q.tenant_id, id, now, fraction);
      if (!fit) return reply.code(404).send({ error: 'not_found', message: `no live state for asset ${id} (nothing in the last 24 h)` });
      return fit;
    },
  );

  app.get(
    '/v1/campaigns/:id/leaderboard',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: {
        params: PARAMS,
        response: responsesOf(API_ROUTES.campaignLeaderboard),
        querystring: {
          type: 'object',
          required: ['tenant_id'],
          properties: {
            ...TENANT,
            from: HISTORY.from,
            to: HISTORY.to,
            window: { type: 'string', enum: [...WINDOW_NAMES] },
            metric: { type: 'string', enum: [...LEADERBOARD_METRICS] },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
          },
        },
      },
    },
    async (req): Promise<ResponseOf<'campaignLeaderboard'>> => {
      const { id } = req.params as { id: string };
      const q = req.query as { tenant_id: string; from?: string; to?: string; window?: WindowName; metric?: LeaderboardMetric; limit?: number };
      const now = clock();
      const metric = q.metric ?? 'ctr';
      const limit = q.limit ?? 50;
      if (q.from !== undefined || q.to !== undefined) {
        const range = parseRange({ ...q, step: undefined }, now)!;
        return needHistory().leaderboard(q.tenant_id, id, range, metric, limit, now);
      }
      return deps.reader.leaderboard(q.tenant_id, id, q.window ?? '1h', metric, limit, deps.maxLeaderboardAssets, now);
    },
  );

  app.get(
    '/v1/campaigns/:id/metrics',
    {
      config: READ,
      ...WHOLE,
      preHandler: resolveTenant,
      schema: { params: PARAMS, querystring: { type: 'object', required: ['tenant_id'], properties: TENANT }, response: responsesOf(API_ROUTES.campaignMetrics) },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const { tenant_id } = req.query as { tenant_id: string };
      const now = clock();
      const metrics = await deps.reader.campaignMetrics(tenant_id, id, now);
      if (!metrics) return reply.code(404).send({ error: 'not_found', message: `no live metrics for campaign ${id} (nothing in the last 24 h)` });
      return { tenant_id, campaign_id: id, source: 'live', at: now, ...metrics };
    },
  );
}

/**
 * from/to: epoch milliseconds or ISO-8601; step: a duration (`1m`, `15m`, `1h`, `1d`, or seconds),
 * whole minutes (the rollups' grain). Defaults: to = now, from = to - 24 h, step = whatever gives
 * about 300 points. Undefined when none is given (live mode).
 */
export function parseRange(q: { from?: string | undefined; to?: string | undefined; step?: string | undefined }, now: number): Range | undefined {
  if (q.from === undefined && q.to === undefined && q.step === undefined) return undefined;
  const to = q.to === undefined ? now : parseTime(q.to, 'to');
  const from = q.from === undefined ? to - 24 * 60 * MINUTE : parseTime(q.from, 'from');
  if (!(from < to)) throw new BadRequestError('invalid_range', 'from must be before to');
  let stepMs = q.step === undefined ? Math.max(MINUTE, Math.ceil((to - from) / 300 / MINUTE) * MINUTE) : parseDuration(q.step);
  if (stepMs % MINUTE !== 0 || stepMs < MINUTE) throw new BadRequestError('invalid_step', 'step must be whole minutes (1m at least): the rollups are per minute');
  if ((to - from) / stepMs > MAX_POINTS) throw new BadRequestError('invalid_step', `at most ${MAX_POINTS} points per request; use a larger step`);
  stepMs = Math.round(stepMs);
  return { from, to, stepMs };
}

function parseTime(v: string, name: string): number {
  const n = /^[0-9]{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) throw new BadRequestError('invalid_range', `${name} must be epoch milliseconds or an ISO-8601 time`);
  return n;
}

function parseDuration(v: string): number {
  const m = /^([0-9]{1,7})(s|m|h|d)?$/.exec(v);
  if (!m) throw new BadRequestError('invalid_step', 'step is a duration such as 1m, 15m, 1h, 1d (or seconds)');
  const unit = { s: 1_000, m: MINUTE, h: 60 * MINUTE, d: 24 * 60 * MINUTE }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, EVENT_KINDS, TABLES, actingTenant, isWindowKind, principalOf, type EventKind, type Store } from '@afterglow/core';
import { API_ROUTES, responsesOf, serializeWhole, type ResponseOf } from '@afterglow/core/api';

/**
 * Reads over a chosen date range, compared with the period of equal length just before it, and
 * optionally filtered or broken down by the events' labels (channel, placement, region, device):
 *
 *   GET /v1/campaigns/:campaignId/breakdown?tenant_id&by=channel&from&to&filter[placement]=feed&limit
 *   GET /v1/campaigns/:campaignId/range?tenant_id&from&to&filter[...]&limit   totals, per asset, series
 *   GET /v1/assets/:id/range?tenant_id&from&to&filter[...]                   totals and series
 *   GET /v1/compare?tenant_id&ids=a,b[,c,d]&from&to&filter[...]              2-4 assets on one time axis
 *
 * Ranges are whole minutes (the rollups' grain): `from` is rounded down, `to` up, and the answer
 * says which range it read. Unfiltered reads use the per-asset rollup (the whole history); a filter
 * or a breakdown reads the per-label rollup, which holds events stored since it was added.
 * `source=raw` recounts events_raw instead: an independent check, as for /totals.
 */

export const DIMENSIONS = ['channel', 'placement', 'region', 'device'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Longest range one read may cover (the previous period doubles what is read). */
export const MAX_RANGE_MS = 400 * DAY_MS;
export const DEFAULT_RANGE_MS = DAY_MS;
/** A series has at most this many points; its step is the smallest of STEPS_MIN that fits. */
export const MAX_POINTS = 240;
const STEPS_MIN = [1, 5, 15, 30, 60, 180, 360, 720, 1440, 2880, 10080];
const MAX_FILTER_VALUES = 20;
const LABEL_MAX = 128;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** ISO 8601 with a zone, or a date alone (read as UTC midnight). */
const ISO_RE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
const EARLIEST_MS = Date.UTC(2000, 0, 1);

export interface Period {
  from: string;
  to: string;
}

export interface Totals {
  counts: Record<EventKind, number>;
  values: Record<EventKind, number>;
  total: number;
  /** clicks / impressions; null without impressions. */
  ctr: number | null;
}

export interface Change {
  abs: number;
  /** Relative to the previous period; null when that was zero. */
  rel: number | null;
}

export interface PeriodChange {
  counts: Record<EventKind, Change>;
  /** Absolute change of CTR (rate points) and relative; null when either period has no impressions. */
  ctr: Change | null;
}

export type Filters = Partial<Record<Dimension, string[]>>;
export type Source = 'rollup' | 'raw';

interface RangeQuery {
  tenant: string;
  fromMs: number;
  toMs: number;
  filters: Filters;
  source: Source;
}

export interface BreakdownRow {
  /** The label's value; '' for events that carried none. */
  value: string;
  current: Totals;
  previous: Totals;
  change: PeriodChange;
}

export interface BreakdownResponse {
  tenant_id: string;
  campaign_id: string;
  by: Dimension;
  range: Period;
  previous_range: Period;
  filters: Filters;
  source: Source;
  /** Most impressions in the range first (then most events, then value A-Z), at most `limit`. */
  rows: BreakdownRow[];
  /** More values exist than `limit`; `totals` still counts them all. */
  truncated: boolean;
  totals: { current: Totals; previous: Totals; change: PeriodChange };
}

export interface SeriesPoint {
  /** Start of the bucket (ISO). */
  t: string;
  counts: Record<EventKind, number>;
}

export interface Series {
  step_ms: number;
  points: SeriesPoint[];
}

export interface AssetRangeRow {
  asset_id: string;
  current: Totals;
  previous: Totals;
  change: PeriodChange;
}

export interface CampaignRangeResponse {
  tenant_id: string;
  campaign_id: string;
  range: Period;
  previous_range: Period;
  filters: Filters;
  source: Source;
  current: Totals;
  previous: Totals;
  change: PeriodChange;
  /** Most impressions in the range first, at most `limit`. */
  assets: AssetRangeRow[];
  assets_truncated: boolean;
  series: Series;
}

export interface AssetRangeResponse {
  tenant_id: string;
  asset_id: string;
  /** The campaign its events name (null: no events in either period). */
  campaign_id: string | null;
  range: Period;
  previous_range: Period;
  filters: Filters;
  source: Source;
  current: Totals;
  previous: Totals;
  change: PeriodChange;
  series: Series;
}

export interface CompareAsset {
  asset_id: string;
  campaign_id: string | null;
  current: Totals;
  series: Series;
}

export interface CompareResponse {
  tenant_id: string;
  range: Period;
  filters: Filters;
  source: Source;
  step_ms: number;
  assets: CompareAsset[];
}

const COMMON_KEYS = new Set(['tenant_id', 'from', 'to', 'source']);

function bad(code: string, message: string): BadRequestError {
  return new BadRequestError(code, message);
}

function single(q: Record<string, unknown>, key: string): string | undefined {
  const v = q[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad('invalid_parameter', `${key} must be given once`);
  return v;
}

function parseInstant(raw: string, key: string): number {
  let ms: number;
  if (/^\d{1,15}$/.test(raw)) ms = Number(raw);
  else if (ISO_RE.test(raw)) {
    ms = Date.parse(raw.length === 10 ? `${raw}T00:00:00Z` : raw);
    // Date.parse rolls 2026-02-30 over into March: the calendar date must exist as written.
    const [y, m, d] = raw.slice(0, 10).split('-').map(Number) as [number, number, number];
    const day = new Date(Date.UTC(y, m - 1, d));
    if (day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d) throw bad('invalid_range', `${key} names a day that does not exist`);
  } else throw bad('invalid_range', `${key} must be an ISO 8601 date-time with a zone (or a date) or epoch milliseconds`);
  if (!Number.isFinite(ms)) throw bad('invalid_range', `${key} is not a valid date`);
  return ms;
}

/** Parse and check the query of a range read; `extra` names the other parameters the route takes. */
export function parseRangeQuery(req: FastifyRequest, extra: readonly string[], now = Date.now()): RangeQuery & { q: Record<string, unknown> } {
  const q = (req.query ?? {}) as Record<string, unknown>;
  // The tenant first: a key of another tenant learns nothing from how the rest is judged.
  const tenantRaw = single(q, 'tenant_id');
  if (!tenantRaw || tenantRaw.length > 128) throw bad('invalid_parameter', 'tenant_id is required');
  const tenant = actingTenant(principalOf(req), tenantRaw);
  const filters: Filters = {};
  for (const key of Object.keys(q)) {
    const m = /^filter\[([a-z_]+)\]$/.exec(key);
    if (m) {
      const dim = m[1] as Dimension;
      if (!(DIMENSIONS as readonly string[]).includes(dim)) throw bad('invalid_filter', `filter on ${JSON.stringify(m[1]).slice(0, 40)}: filters are ${DIMENSIONS.join(', ')}`);
      const raw = q[key];
      const values = (Array.isArray(raw) ? raw : [raw]).map(String);
      if (values.length > MAX_FILTER_VALUES) throw bad('invalid_filter', `at most ${MAX_FILTER_VALUES} values per filter`);
      for (const v of values) if (v.length > LABEL_MAX) throw bad('invalid_filter', `filter values are at most ${LABEL_MAX} characters`);
      filters[dim] = [...new Set(values)];
      continue;
    }
    if (!COMMON_KEYS.has(key) && !extra.includes(key)) throw bad('unknown_parameter', `unknown parameter ${JSON.stringify(key).slice(0, 60)}`);
  }
  const source = single(q, 'source') ?? 'rollup';
  if (source !== 'rollup' && source !== 'raw') throw bad('invalid_parameter', 'source is rollup or raw');
  const toRaw = single(q, 'to');
  const fromRaw = single(q, 'from');
  const toExact = toRaw === undefined ? now : parseInstant(toRaw, 'to');
  const fromExact = fromRaw === undefined ? toExact - DEFAULT_RANGE_MS : parseInstant(fromRaw, 'from');
  const fromMs = Math.floor(fromExact / MINUTE_MS) * MINUTE_MS;
  const toMs = Math.ceil(toExact / MINUTE_MS) * MINUTE_MS;
  if (fromExact >= toExact) throw bad('invalid_range', 'from must be before to');
  if (toMs - fromMs > MAX_RANGE_MS) throw bad('range_too_long', `a range covers at most ${MAX_RANGE_MS / DAY_MS} days`);
  if (fromMs - (toMs - fromMs) < EARLIEST_MS) throw bad('invalid_range', 'the range (and the period before it) must start after 2000-01-01');
  if (toMs > now + DAY_MS) throw bad('invalid_range', 'to is more than a day in the future');
  return { tenant, fromMs, toMs, filters, source, q };
}

function parseLimit(q: Record<string, unknown>, dflt: number, max: number): number {
  const raw = single(q, 'limit');
  if (raw === undefined) return dflt;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw bad('invalid_limit', `limit is 1 to ${max}`);
  return Number(raw);
}

function checkId(id: string, what: string): string {
  if (!ID_RE.test(id)) throw bad('invalid_id', `${what} is not a valid id`);
  return id;
}

/** The smallest step (ms) that keeps a series of `rangeMs` within MAX_POINTS points. */
export function seriesStep(rangeMs: number): number {
  for (const m of STEPS_MIN) if (rangeMs / (m * MINUTE_MS) <= MAX_POINTS) return m * MINUTE_MS;
  return Math.ceil(rangeMs / MAX_POINTS / DAY_MS) * DAY_MS;
}

function byKind(): Record<EventKind, number> {
  return Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>;
}

function emptyTotals(): Totals {
  return { counts: byKind(), values: byKind(), total: 0, ctr: null };
}

function finish(t: Totals): Totals {
  t.total = EVENT_KINDS.reduce((a, k) => a + t.counts[k], 0);
  t.ctr = t.counts.impression > 0 ? t.counts.click / t.counts.impression : null;
  return t;
}

export function changeOf(current: Totals, previous: Totals): PeriodChange {
  const counts = Object.fromEntries(
    EVENT_KINDS.map((k) => [k, { abs: current.counts[k] - previous.counts[k], rel: previous.counts[k] > 0 ? (current.counts[k] - previous.counts[k]) / previous.counts[k] : null }]),
  ) as Record<EventKind, Change>;
  const ctr = current.ctr !== null && previous.ctr !== null ? { abs: current.ctr - previous.ctr, rel: previous.ctr > 0 ? (current.ctr - previous.ctr) / previous.ctr : null } : null;
  return { counts, ctr };
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The rows a read scans, as a table expression with the columns tenant_id, campaign_id, asset_id,
 * kind, minute, events, value_sum (and the labels when `labels`).
 */
function tableOf(store: Store, rq: RangeQuery, labels: boolean): string {
  if (rq.source === 'raw') {
    return `(SELECT tenant_id, campaign_id, asset_id, kind, toStartOfMinute(occurred_at) AS minute, channel, placement, region, device,
                    1 AS events, value AS value_sum
             FROM ${store.table(TABLES.eventsRaw)} FINAL WHERE tenant_id = {tenant:String})`;
  }
  return store.table(labels || Object.keys(rq.filters).length > 0 ? TABLES.dimsMinute : TABLES.assetMinute);
}

function filterSql(rq: RangeQuery, params: Record<string, unknown>): string {
  let sql = '';
  for (const dim of DIMENSIONS) {
    const values = rq.filters[dim];
    if (!values) continue;
    params[`f_${dim}`] = values;
    sql += ` AND ${dim} IN {f_${dim}:Array(String)}`;
  }
  return sql;
}

interface Scope {
  campaign?: string;
  assets?: string[];
}

/** WHERE clause: tenant, scope, [fromMs (or the previous period's start), toMs), filters. */
function whereOf(rq: RangeQuery, scope: Scope, withPrevious: boolean, params: Record<string, unknown>): string {
  params.tenant = rq.tenant;
  params.from = Math.floor(rq.fromMs / 1000);
  params.to = Math.floor(rq.toMs / 1000);
  params.pfrom = Math.floor((rq.fromMs - (rq.toMs - rq.fromMs)) / 1000);
  let sql = `WHERE tenant_id = {tenant:String}`;
  if (scope.campaign !== undefined) {
    params.campaign = scope.campaign;
    sql += ' AND campaign_id = {campaign:String}';
  }
  if (scope.assets !== undefined) {
    params.assets = scope.assets;
    sql += ' AND asset_id IN {assets:Array(String)}';
  }
  sql += ` AND minute >= toDateTime({${withPrevious ? 'pfrom' : 'from'}:UInt32}, 'UTC') AND minute < toDateTime({to:UInt32}, 'UTC')`;
  return sql + filterSql(rq, params);
}

interface PeriodRow {
  g: string;
  kind: EventKind;
  cur: number | string;
  n: number | string;
  v: number | string;
}

async function rows<T>(store: Store, query: string, params: Record<string, unknown>): Promise<T[]> {
  const rs = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return rs.json<T>();
}

/** Totals per group (`groupExpr`), current and previous period. */
async function periodTotals(store: Store, rq: RangeQuery, scope: Scope, groupExpr: string, labels: boolean, restrict?: { column: string; values: string[] }) {
  const params: Record<string, unknown> = {};
  let where = whereOf(rq, scope, true, params);
  if (restrict) {
    params.restrict = restrict.values;
    where += ` AND ${restrict.column} IN {restrict:Array(String)}`;
  }
  const out = new Map<string, { current: Totals; previous: Totals }>();
  const found = await rows<PeriodRow>(
    store,
    `SELECT ${groupExpr} AS g, toString(kind) AS kind, minute >= toDateTime({from:UInt32}, 'UTC') AS cur, sum(events) AS n, sum(value_sum) AS v
     FROM ${tableOf(store, rq, labels)} ${where}
     GROUP BY g, kind, cur`,
    params,
  );
  for (const r of found) {
    // Video plays have their own metrics (GET /v1/assets/:id/video-metrics); these count the other kinds.
    if (!isWindowKind(r.kind)) continue;
    let t = out.get(r.g);
    if (!t) out.set(r.g, (t = { current: emptyTotals(), previous: emptyTotals() }));
    const side = Number(r.cur) ? t.current : t.previous;
    side.counts[r.kind] += Number(r.n);
    side.values[r.kind] += Number(r.v);
  }
  for (const t of out.values()) {
    finish(t.current);
    finish(t.previous);
  }
  return out;
}

/** The `limit` (+1, to tell truncation) groups with most impressions in the current period. */
async function topGroups(store: Store, rq: RangeQuery, scope: Scope, column: string, labels: boolean, limit: number): Promise<string[]> {
  const params: Record<string, unknown> = { limit: limit + 1 };
  const found = await rows<{ g: string }>(
    store,
    `SELECT ${column} AS g FROM ${tableOf(store, rq, labels)} ${whereOf(rq, scope, false, params)}
     GROUP BY g ORDER BY sumIf(events, kind = 'impression') DESC, sum(events) DESC, g ASC LIMIT {limit:UInt32}`,
    params,
  );
  return found.map((r) => r.g);
}

/** Dense series per group over the current period (groupExpr '' for one series). */
async function seriesOf(store: Store, rq: RangeQuery, scope: Scope, groupExpr: string): Promise<{ step: number; byGroup: Map<string, SeriesPoint[]> }> {
  const step = seriesStep(rq.toMs - rq.fromMs);
  const params: Record<string, unknown> = { step: step / 1000 };
  const found = await rows<{ g: string; b: number | string; kind: EventKind; n: number | string }>(
    store,
    `SELECT ${groupExpr || "''"} AS g, intDiv(toUInt32(minute) - {from:UInt32}, {step:UInt32}) AS b, toString(kind) AS kind, sum(events) AS n
     FROM ${tableOf(store, rq, false)} ${whereOf(rq, scope, false, params)}
     GROUP BY g, b, kind`,
    params,
  );
  const buckets = Math.ceil((rq.toMs - rq.fromMs) / step);
  const byGroup = new Map<string, SeriesPoint[]>();
  const dense = () => Array.from({ length: buckets }, (_, i) => ({ t: iso(rq.fromMs + i * step), counts: byKind() }));
  for (const r of found) {
    let points = byGroup.get(r.g);
    if (!points) byGroup.set(r.g, (points = dense()));
    const p = points[Number(r.b)];
    if (p && isWindowKind(r.kind)) p.counts[r.kind] += Number(r.n);
  }
  if (!groupExpr && !byGroup.has('')) byGroup.set('', dense());
  return { step, byGroup };
}

function periods(rq: RangeQuery): { range: Period; previous_range: Period } {
  const len = rq.toMs - rq.fromMs;
  return { range: { from: iso(rq.fromMs), to: iso(rq.toMs) }, previous_range: { from: iso(rq.fromMs - len), to: iso(rq.fromMs) } };
}

export async function campaignBreakdown(store: Store, rq: RangeQuery, campaignId: string, by: Dimension, limit: number): Promise<BreakdownResponse> {
  const scope = { campaign: campaignId };
  const top = await topGroups(store, rq, scope, by, true, limit);
  const truncated = top.length > limit;
  const shown = top.slice(0, limit);
  const [groups, all] = await Promise.all([
    shown.length > 0 ? periodTotals(store, rq, scope, by, true, { column: by, values: shown }) : Promise.resolve(new Map()),
    periodTotals(store, rq, scope, "''", true),
  ]);
  const rowsOut: BreakdownRow[] = shown.map((value) => {
    const t = groups.get(value) ?? { current: emptyTotals(), previous: emptyTotals() };
    return { value, current: t.current, previous: t.previous, change: changeOf(t.current, t.previous) };
  });
  const total = all.get('') ?? { current: emptyTotals(), previous: emptyTotals() };
  return {
    tenant_id: rq.tenant,
    campaign_id: campaignId,
    by,
    ...periods(rq),
    filters: rq.filters,
    source: rq.source,
    rows: rowsOut,
    truncated,
    totals: { current: total.current, previous: total.previous, change: changeOf(total.current, total.previous) },
  };
}

export async function campaignRange(store: Store, rq: RangeQuery, campaignId: string, limit: number): Promise<CampaignRangeResponse> {
  const scope = { campaign: campaignId };
  const top = await topGroups(store, rq, scope, 'asset_id', false, limit);
  const shown = top.slice(0, limit);
  const [perAsset, all, series] = await Promise.all([
    shown.length > 0 ? periodTotals(store, rq, scope, 'asset_id', false, { column: 'asset_id', values: shown }) : Promise.resolve(new Map()),
    periodTotals(store, rq, scope, "''", false),
    seriesOf(store, rq, scope, ''),
  ]);
  const total = all.get('') ?? { current: emptyTotals(), previous: emptyTotals() };
  return {
    tenant_id: rq.tenant,
    campaign_id: campaignId,
    ...periods(rq),
    filters: rq.filters,
    source: rq.source,
    current: total.current,
    previous: total.previous,
    change: changeOf(total.current, total.previous),
    assets: shown.map((asset_id) => {
      const t = perAsset.get(asset_id) ?? { current: emptyTotals(), previous: emptyTotals() };
      return { asset_id, current: t.current, previous: t.previous, change: changeOf(t.current, t.previous) };
    }),
    assets_truncated: top.length > limit,
    series: { step_ms: series.step, points: series.byGroup.get('')! },
  };
}

async function campaignsOf(store: Store, rq: RangeQuery, assets: string[]): Promise<Map<string, string>> {
  const params: Record<string, unknown> = {};
  const found = await rows<{ asset_id: string; campaign_id: string }>(
    store,
    `SELECT asset_id, argMax(campaign_id, minute) AS campaign_id FROM ${tableOf(store, rq, false)} ${whereOf(rq, { assets }, true, params)} GROUP BY asset_id`,
    params,
  );
  return new Map(found.map((r) => [r.asset_id, r.campaign_id]));
}

export async function assetRange(store: Store, rq: RangeQuery, assetId: string): Promise<AssetRangeResponse> {
  const scope = { assets: [assetId] };
  const [all, series, campaigns] = await Promise.all([periodTotals(store, rq, scope, "''", false), seriesOf(store, rq, scope, ''), campaignsOf(store, rq, [assetId])]);
  const total = all.get('') ?? { current: emptyTotals(), previous: emptyTotals() };
  return {
    tenant_id: rq.tenant,
    asset_id: assetId,
    campaign_id: campaigns.get(assetId) ?? null,
    ...periods(rq),
    filters: rq.filters,
    source: rq.source,
    current: total.current,
    previous: total.previous,
    change: changeOf(total.current, total.previous),
    series: { step_ms: series.step, points: series.byGroup.get('')! },
  };
}

export async function compareAssets(store: Store, rq: RangeQuery, ids: string[]): Promise<CompareResponse> {
  const scope = { assets: ids };
  const [per, series, campaigns] = await Promise.all([periodTotals(store, rq, scope, 'asset_id', false), seriesOf(store, rq, scope, 'asset_id'), campaignsOf(store, rq, ids)]);
  const buckets = Math.ceil((rq.toMs - rq.fromMs) / series.step);
  return {
    tenant_id: rq.tenant,
    range: periods(rq).range,
    filters: rq.filters,
    source: rq.source,
    step_ms: series.step,
    assets: ids.map((asset_id) => ({
      asset_id,
      campaign_id: campaigns.get(asset_id) ?? null,
      current: per.get(asset_id)?.current ?? emptyTotals(),
      series: {
        step_ms: series.step,
        points: series.byGroup.get(asset_id) ?? Array.from({ length: buckets }, (_, i) => ({ t: iso(rq.fromMs + i * series.step), counts: byKind() })),
      },
    })),
  };
}

/**
 * The query parameters, for the OpenAPI document. Untyped on purpose: the handlers check them
 * (parseRangeQuery), so a bad one gets its own stable code rather than a generic validation error.
 */
const RANGE_PARAMS = {
  tenant_id: { description: 'the tenant (a key reaches only its own)' },
  from: { description: 'start of the range: epoch ms, ISO 8601 with a zone, or a date (UTC); rounded down to the minute. Default: 24 hours before `to`' },
  to: { description: 'end of the range (exclusive), rounded up to the minute; default now. At most 400 days after `from`' },
  source: { description: 'rollup (default) or raw: recount events_raw, an independent check' },
  ...Object.fromEntries(DIMENSIONS.map((d) => [`filter[${d}]`, { description: `only events whose ${d} is this value ('' for none); repeat for several` }])),
};

function docs(description: string, extra: Record<string, { description: string }> = {}) {
  return { description, querystring: { type: 'object', properties: { ...RANGE_PARAMS, ...extra } } };
}

/** Registered by ingest's routes, next to /totals (they read the same store). */
export function registerAnalyticsRoutes(app: FastifyInstance, store: Store): void {
  const read = { config: { scope: 'read' }, serializerCompiler: serializeWhole } as const;
  const limit = (dflt: number, max: number) => ({ limit: { description: `rows at most (1-${max}, default ${dflt})` } });

  const breakdownDocs = docs('A campaign split by one event label over a range, each value against the period of equal length before it', {
    by: { description: 'channel, placement, region or device' },
    ...limit(50, 500),
  });
  app.get('/v1/campaigns/:campaignId/breakdown', { ...read, schema: { ...breakdownDocs, response: responsesOf(API_ROUTES.campaignBreakdown) } }, async (req): Promise<ResponseOf<'campaignBreakdown'>> => {
    const rq = parseRangeQuery(req, ['by', 'limit']);
    const campaignId = checkId((req.params as { campaignId: string }).campaignId, 'campaign id');
    const by = single(rq.q, 'by');
    if (!by || !(DIMENSIONS as readonly string[]).includes(by)) throw bad('invalid_dimension', `by must be one of ${DIMENSIONS.join(', ')}`);
    return campaignBreakdown(store, rq, campaignId, by as Dimension, parseLimit(rq.q, 50, 500));
  });

  const rangeDocs = docs('A campaign over a range against the period before: totals, changes, per-asset rows and a series (at most 240 points)', limit(200, 1000));
  app.get('/v1/campaigns/:campaignId/range', { ...read, schema: { ...rangeDocs, response: responsesOf(API_ROUTES.campaignRange) } }, async (req): Promise<ResponseOf<'campaignRange'>> => {
    const rq = parseRangeQuery(req, ['limit']);
    const campaignId = checkId((req.params as { campaignId: string }).campaignId, 'campaign id');
    return campaignRange(store, rq, campaignId, parseLimit(rq.q, 200, 1000));
  });

  app.get(
    '/v1/assets/:id/range',
    { ...read, schema: { ...docs('An asset over a range against the period before: totals, changes and a series'), response: responsesOf(API_ROUTES.assetRange) } },
    async (req): Promise<ResponseOf<'assetRange'>> => {
      const rq = parseRangeQuery(req, []);
      return assetRange(store, rq, checkId((req.params as { id: string }).id, 'asset id'));
    },
  );

  const compareDocs = docs('2 to 4 assets over one range on one time axis: totals and series', { ids: { description: 'the assets, comma-separated (2 to 4)' } });
  app.get('/v1/compare', { ...read, schema: { ...compareDocs, response: responsesOf(API_ROUTES.compareAssets) } }, async (req): Promise<ResponseOf<'compareAssets'>> => {
    const rq = parseRangeQuery(req, ['ids']);
    const raw = single(rq.q, 'ids') ?? '';
    const ids = [...new Set(raw.split(',').filter((s) => s !== ''))];
    if (ids.length < 2 || ids.length > 4) throw bad('invalid_ids', 'ids names 2 to 4 different assets, comma-separated');
    for (const id of ids) checkId(id, 'asset id');
    return compareAssets(store, rq, ids);
  });
}

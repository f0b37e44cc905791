import type { Counts } from '@afterglow/core/live-protocol';
import { auth } from './auth.svelte.ts';

/**
 * The REST API the dashboard reads (ingest: campaigns; live: metrics, decay, leaderboard, triggers;
 * inference: assets, thumbnails, tie review, scores). Every call carries the API key (auth.svelte.ts);
 * a 401 opens the key prompt. Shapes: /tmp/afterglow-api-spec.md, core/src/assets.ts.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Params = Record<string, string | number | undefined | null>;

function url(path: string, params: Params): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

/** fetch with the key; a non-2xx answer becomes an ApiError with the server's code and message. */
export async function request(path: string, params: Params, init: RequestInit = {}): Promise<Response> {
  const headers = { ...auth.headers(), ...Object.fromEntries(new Headers(init.headers).entries()) };
  const res = await fetch(url(path, params), { ...init, headers });
  if (res.ok) return res;
  let code = 'http_error';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: string; message?: string };
    code = body.error ?? code;
    message = body.message ?? message;
  } catch {
    // Not JSON.
  }
  if (res.status === 401) auth.unauthorized(message);
  throw new ApiError(res.status, code, message);
}

export async function getJson<T>(path: string, params: Params, signal?: AbortSignal): Promise<T> {
  const res = await request(path, params, { signal: signal ?? null, headers: { accept: 'application/json' } });
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const res = await request(path, {}, { method: 'POST', signal: signal ?? null, headers: { accept: 'application/json', 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return (await res.json()) as T;
}

/** Not there (404), or the route is not served by this deployment: "no data yet", not an error. */
export function isAbsent(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 404 || err.status === 501 || err.status === 503);
}

const enc = encodeURIComponent;

export interface CampaignSummary {
  campaign_id: string;
  assets: number;
  counts: Counts;
  total: number;
  last_minute: string;
}

export function listCampaigns(tenant: string, signal?: AbortSignal) {
  return getJson<{ tenant_id: string; campaigns: CampaignSummary[] }>('/v1/campaigns', { tenant_id: tenant }, signal);
}

export interface RateJson {
  value: number;
  low: number;
  high: number;
  enough: boolean;
}
export interface SeriesPoint {
  t: number;
  counts: Counts;
  dwell_ms: number;
  conversion_value: number;
  ctr: RateJson;
  engagement_rate: RateJson;
  shares_per_1k: RateJson;
}
export interface AssetHistory {
  source: 'clickhouse';
  from: number;
  to: number;
  step_ms: number;
  series: SeriesPoint[];
}

/** Per-step history from the ClickHouse rollups. */
export function assetHistory(tenant: string, asset: string, from: number, to: number, step: string, signal?: AbortSignal) {
  return getJson<AssetHistory>(`/v1/assets/${enc(asset)}/metrics`, { tenant_id: tenant, from, to, step }, signal);
}

export interface AssetMetricsJson {
  asset_id: string;
  campaign_id: string | null;
  master_id: string | null;
  master?: { ads: number };
}

export function assetMetrics(tenant: string, asset: string, signal?: AbortSignal) {
  return getJson<AssetMetricsJson>(`/v1/assets/${enc(asset)}/metrics`, { tenant_id: tenant }, signal);
}

export interface ModelFitJson {
  model: 'exponential' | 'power_law';
  rate0_per_min: number;
  half_life_ms: number | null;
  half_life_ci: [number, number | null] | null;
}
export interface DecayFitJson {
  status: 'ok' | 'insufficient_data' | 'not_decaying';
  events: number;
  peak_at: number | null;
  peak_rate_per_min: number | null;
  model: 'exponential' | 'power_law' | null;
  half_life_ms: number | null;
  half_life_ci: [number, number | null] | null;
  fatigue_fraction: number;
  fatigue_at: number | null;
  fatigued: boolean;
  dispersion: number | null;
  models: { exponential: ModelFitJson | null; power_law: ModelFitJson | null };
  curve?: { t: number; observed_per_min: number; fitted_per_min: number | null }[];
  forecast?: { t: number; fitted_per_min: number }[];
}

/** The live decay fit (hot state) with its observed/fitted curve and forecast. */
export function assetDecay(tenant: string, asset: string, signal?: AbortSignal) {
  return getJson<DecayFitJson>(`/v1/assets/${enc(asset)}/decay`, { tenant_id: tenant }, signal);
}

// ---- Asset registry and tie review (inference role) ----

export type TieAction = 'tie' | 'untie' | 'no_sim' | 'duplicate';

export interface AssetTie {
  /** The master the ad counts for now (null after untie / no_sim, or as a duplicate of an ad with none). */
  master_asset_id: string | null;
  /** For `duplicate`: the ad it duplicates. */
  duplicate_of?: string;
  decided_by: string;
  decided_at: number;
  auto: boolean;
  action: TieAction;
  decision_id?: string;
}

export interface Asset {
  asset_id: string;
  tenant_id: string;
  role: 'master' | 'ad';
  campaign_id: string | null;
  name: string | null;
  channel: string | null;
  content_hash: string;
  width: number;
  height: number;
  created_at: number;
  tie: AssetTie | null;
}

export interface TieDecision {
  action: TieAction;
  tenant_id: string;
  ad_asset_id: string;
  target_asset_id?: string;
  score?: number;
  auto: boolean;
  decided_by: string;
  decided_at: number;
  because_of?: string;
}

export interface MasterMatch {
  master: Asset;
  value: number;
  /** The calibrated score, when the master made it into the verified candidates. */
  score: number | null;
}

export interface Candidates {
  ad: Asset;
  /** 'pending' while the ad has not been ranked yet. */
  status?: 'ready' | 'pending' | 'failed';
  error?: string;
  computed_at?: number | null;
  masters_compared?: number;
  cosine: MasterMatch[];
  euclidean: MasterMatch[];
  candidates: { master_asset_id: string; score: number; cosine: number; euclidean: number; verified: boolean; inliers: number; dense?: number }[];
  similar_ads: { ad: Asset; cosine: number }[];
  /** Where similar_ads come from: the ad's campaign (default) or every campaign. */
  similar_scope?: SimilarScope;
  suggestion: { master_asset_id: string; score: number; auto_tie: boolean } | null;
  tie: TieDecision | null;
}

export type ReviewStatus = 'untied' | 'tied' | 'no_sim' | 'all';
export interface QueueItem {
  ad: Asset;
  best: { master_asset_id: string; score: number } | null;
  status: string;
}

export function getAsset(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<Asset>(`/v1/assets/${enc(id)}`, { tenant_id: tenant }, signal);
}

export function listAssets(tenant: string, q: { role?: 'master' | 'ad'; campaign_id?: string; limit?: number; cursor?: string }, signal?: AbortSignal) {
  return getJson<{ assets: Asset[]; next_cursor: string | null }>('/v1/assets', { tenant_id: tenant, ...q }, signal);
}

export type SimilarScope = 'campaign' | 'all';

export function candidates(tenant: string, ad: string, signal?: AbortSignal, similarScope: SimilarScope = 'campaign') {
  return getJson<Candidates>(`/v1/assets/${enc(ad)}/candidates`, { tenant_id: tenant, similar_scope: similarScope }, signal);
}

export function reviewQueue(tenant: string, q: { campaign_id?: string | undefined; status?: ReviewStatus; limit?: number }, signal?: AbortSignal) {
  return getJson<{ items: QueueItem[] }>('/v1/review/queue', { tenant_id: tenant, ...q }, signal);
}

export function decideTie(tenant: string, body: { ad_asset_id: string; action: TieAction; target_asset_id?: string; decided_by: string; across_campaigns?: boolean }) {
  return postJson<{ decision: TieDecision; auto_ties: TieDecision[] }>('/v1/ties', { tenant_id: tenant, ...body });
}

export function tieHistory(tenant: string, q: { ad_asset_id?: string; master_asset_id?: string; limit?: number }, signal?: AbortSignal) {
  return getJson<{ decisions: TieDecision[] }>('/v1/ties', { tenant_id: tenant, ...q }, signal);
}

export function masterAds(tenant: string, master: string, signal?: AbortSignal) {
  return getJson<{ master: Asset; ads: { ad: Asset; decision: TieDecision }[] }>(`/v1/masters/${enc(master)}/ads`, { tenant_id: tenant }, signal);
}

/** An asset's image (`thumbnail`: webp, longest side 256) as a blob URL; null when it has none. */
export async function imageUrl(tenant: string, id: string, kind: 'thumbnail' | 'image', signal?: AbortSignal): Promise<string | null> {
  try {
    const res = await request(`/v1/assets/${enc(id)}/${kind}`, { tenant_id: tenant }, { signal: signal ?? null });
    // A video's original is no image: its poster-sized thumbnail stands in (the video itself is not downloaded).
    if (res.headers.get('content-type')?.startsWith('video/')) {
      await res.body?.cancel();
      return imageUrl(tenant, id, 'thumbnail', signal);
    }
    return URL.createObjectURL(await res.blob());
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) return null;
    throw err;
  }
}

// ---- Scores, attribution, occlusion (inference role) ----

export interface AttributionJson {
  element: string;
  edit: string;
  delta: number;
  ci_low: number;
  ci_high: number;
  n: number;
}

export interface AssetScoreJson {
  tenant_id: string;
  asset_id: string;
  campaign_id?: string;
  master_asset_id?: string;
  model_version: string;
  predicted: number;
  predicted_low?: number;
  predicted_high?: number;
  actual?: number;
  actual_low?: number;
  actual_high?: number;
  impressions?: number;
  flag: 'over' | 'under' | 'as_expected' | 'insufficient_data';
  attribution?: AttributionJson[];
  reason: string;
  scored_at: number;
}

export interface OcclusionJson {
  grid_w: number;
  grid_h: number;
  values: number[];
  model_version: string;
}

export function assetScore(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<AssetScoreJson>(`/v1/assets/${enc(id)}/score`, { tenant_id: tenant }, signal);
}

export function assetOcclusion(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<OcclusionJson>(`/v1/assets/${enc(id)}/occlusion`, { tenant_id: tenant }, signal);
}

// ---- Triggers (live role) ----

export interface TriggerFiring {
  firing_id: string;
  rule_id: string;
  kind: string;
  asset_id: string | null;
  /** The master the creative counted for when the rule fired. */
  master_asset_id: string | null;
  /** The master it counts for now (the live tie); absent from older servers. */
  master_now?: string | null;
  campaign_id: string | null;
  reason: string;
  numbers: Record<string, unknown>;
  hints: string[];
  fired_at: number;
  deliveries: { target: string; status: string; attempts: number; last_error: string | null }[];
  /** New variants tied to the same master after this firing (the creatives that replace this one). */
  replaced_by?: { asset_id: string; registered_at: number | null; tied_at: number }[];
}

export function triggersLog(tenant: string, q: { campaign_id?: string | undefined; limit?: number }, signal?: AbortSignal) {
  return getJson<{ firings: TriggerFiring[] }>('/v1/triggers/log', { tenant_id: tenant, ...q }, signal);
}

// ---- What drives performance (inference role), models, and who the key belongs to ----

/** One element edit's effect on the prediction, aggregated over a tenant's (or campaign's) creatives. */
export interface AggregatedAttributionJson {
  element: string;
  edit: string;
  /** Mean relative change of the predicted engagement rate when the edit is applied. */
  mean: number;
  ci_low: number;
  ci_high: number;
  /** Creatives behind the estimate. */
  n: number;
  /** The interval excludes 0 and the effect is at least 3%. */
  significant: boolean;
}

export interface AttributionSummaryJson {
  model_version: string | null;
  /** Scored creatives behind the estimates (each estimate's n is at most this). */
  assets: number;
  /** One per element AND edit (text/remove and subject/remove are two). */
  elements: AggregatedAttributionJson[];
}

export function aggregateAttribution(tenant: string, campaign: string | null, signal?: AbortSignal) {
  return getJson<AttributionSummaryJson>('/v1/attribution', { tenant_id: tenant, campaign_id: campaign }, signal);
}

export interface ModelJson {
  version: string;
  trained_at: number;
  metrics: { rmse: number; mae: number; r2: number };
  n_train: number;
  n_valid: number;
  active: boolean;
}

export function listModels(tenant: string, signal?: AbortSignal) {
  return getJson<{ models: ModelJson[] }>('/v1/models', { tenant_id: tenant }, signal);
}

/** The key's tenant and scopes (404 `auth_off` when the server runs without keys). */
export function whoami(signal?: AbortSignal) {
  return getJson<{ tenant_id: string; key_id: string; scopes: string[]; placements: string[] | null }>('/v1/whoami', {}, signal);
}

// ---- Data freshness (live role) ----

/** What the live role last counted for the tenant: apart from the WebSocket's state. */
export interface FreshnessJson {
  /** Epoch ms of the newest event counted live for the tenant; null: none since the live role started. */
  last_event_at: number | null;
  /** Events counted live per second over the last minute. */
  events_per_sec: number;
  /** The server's clock when it answered (ages are measured on it, not on the browser's clock). */
  as_of: number;
}

export function liveFreshness(tenant: string, signal?: AbortSignal) {
  return getJson<FreshnessJson>('/v1/live/freshness', { tenant_id: tenant }, signal);
}

// ---- Timeline annotations (inference role: asset registry and tie decisions) ----

export type TimelineKind = 'registered' | 'launch' | 'relaunch' | 'tie' | 'untie' | 'duplicate' | 'no_sim';
export interface TimelineAnnotation {
  at: number;
  kind: TimelineKind;
  label: string;
  ad_asset_id?: string;
  master_asset_id?: string | null;
  decided_by?: string;
  auto?: boolean;
}

export function assetTimeline(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<{ asset_id: string; role: 'master' | 'ad'; relaunch_gap_ms: number; annotations: TimelineAnnotation[] }>(`/v1/assets/${enc(id)}/timeline`, { tenant_id: tenant }, signal);
}

// Range reads, breakdowns and comparison (ingest/src/analytics.ts): from/to are epoch ms or ISO;
// `filter[channel]=...` etc. narrow by the events' labels.

export interface PeriodJson {
  from: string;
  to: string;
}

export interface RangeTotalsJson {
  counts: Counts;
  values: Counts;
  total: number;
  ctr: number | null;
}

export interface ChangeJson {
  abs: number;
  rel: number | null;
}

export interface PeriodChangeJson {
  counts: Record<keyof Counts, ChangeJson>;
  ctr: ChangeJson | null;
}

export interface RangeSeriesJson {
  step_ms: number;
  points: { t: string; counts: Counts }[];
}

export interface BreakdownRowJson {
  value: string;
  current: RangeTotalsJson;
  previous: RangeTotalsJson;
  change: PeriodChangeJson;
}

export interface BreakdownJson {
  tenant_id: string;
  campaign_id: string;
  by: string;
  range: PeriodJson;
  previous_range: PeriodJson;
  filters: Record<string, string[]>;
  rows: BreakdownRowJson[];
  truncated: boolean;
  totals: { current: RangeTotalsJson; previous: RangeTotalsJson; change: PeriodChangeJson };
}

export interface CampaignRangeJson {
  tenant_id: string;
  campaign_id: string;
  range: PeriodJson;
  previous_range: PeriodJson;
  filters: Record<string, string[]>;
  current: RangeTotalsJson;
  previous: RangeTotalsJson;
  change: PeriodChangeJson;
  assets: { asset_id: string; current: RangeTotalsJson; previous: RangeTotalsJson; change: PeriodChangeJson }[];
  assets_truncated: boolean;
  series: RangeSeriesJson;
}

export interface AssetRangeJson {
  tenant_id: string;
  asset_id: string;
  campaign_id: string | null;
  range: PeriodJson;
  previous_range: PeriodJson;
  current: RangeTotalsJson;
  previous: RangeTotalsJson;
  change: PeriodChangeJson;
  series: RangeSeriesJson;
}

export interface CompareJson {
  tenant_id: string;
  range: PeriodJson;
  step_ms: number;
  assets: { asset_id: string; campaign_id: string | null; current: RangeTotalsJson; series: RangeSeriesJson }[];
}

type RangeParams = Record<string, string>;

export function campaignBreakdown(tenant: string, campaign: string, by: string, range: RangeParams, signal?: AbortSignal) {
  return getJson<BreakdownJson>(`/v1/campaigns/${enc(campaign)}/breakdown`, { tenant_id: tenant, by, ...range }, signal);
}

export function campaignRange(tenant: string, campaign: string, range: RangeParams, signal?: AbortSignal) {
  return getJson<CampaignRangeJson>(`/v1/campaigns/${enc(campaign)}/range`, { tenant_id: tenant, ...range }, signal);
}

export function assetRange(tenant: string, asset: string, range: RangeParams, signal?: AbortSignal) {
  return getJson<AssetRangeJson>(`/v1/assets/${enc(asset)}/range`, { tenant_id: tenant, ...range }, signal);
}

export function compareAssets(tenant: string, ids: string[], range: RangeParams, signal?: AbortSignal) {
  return getJson<CompareJson>('/v1/compare', { tenant_id: tenant, ids: ids.join(','), ...range }, signal);
}

// ---- spend, costs, reach and frequency (ingest: whole UTC days, default the last 30) ----------------

export interface CostFiguresJson {
  currency: string;
  spend: number;
  impressions: number;
  clicks: number;
  conversions: number;
  conversion_value: number;
  cpm: number | null;
  cpc: number | null;
  cpa: number | null;
  roas: number | null;
}
export interface ReachJson {
  reach: number;
  impressions: number;
  frequency: number | null;
}
export interface ReachErrorJson {
  exact: boolean;
  relative_standard_error: number;
}
export interface CampaignCostsJson {
  from: string;
  to: string;
  assets: (CostFiguresJson & { asset_id: string })[];
  totals: CostFiguresJson[];
}
export interface CampaignReachJson extends ReachJson {
  from: string;
  to: string;
  reach_error: ReachErrorJson;
  assets: (ReachJson & { asset_id: string })[];
}
export interface AssetCostsJson {
  asset_id: string;
  from: string;
  to: string;
  costs: CostFiguresJson[];
  days: (Omit<CostFiguresJson, 'cpm' | 'cpc' | 'cpa' | 'roas'> & { day: string })[];
  reach: ReachJson;
  reach_error: ReachErrorJson;
}
export interface MasterReachJson extends ReachJson {
  master_id: string;
  from: string;
  to: string;
  reach_error: ReachErrorJson;
  sum_of_ad_reach: number;
  ads: (ReachJson & { asset_id: string })[];
  costs: CostFiguresJson[];
}
type Days = { from?: string; to?: string };

export function campaignCosts(tenant: string, campaign: string, days: Days = {}, signal?: AbortSignal) {
  return getJson<CampaignCostsJson>(`/v1/campaigns/${enc(campaign)}/costs`, { tenant_id: tenant, ...days }, signal);
}
export function campaignReach(tenant: string, campaign: string, days: Days = {}, signal?: AbortSignal) {
  return getJson<CampaignReachJson>(`/v1/campaigns/${enc(campaign)}/reach`, { tenant_id: tenant, ...days }, signal);
}
export function assetCosts(tenant: string, asset: string, days: Days = {}, signal?: AbortSignal) {
  return getJson<AssetCostsJson>(`/v1/assets/${enc(asset)}/costs`, { tenant_id: tenant, ...days }, signal);
}
export function masterReach(tenant: string, master: string, days: Days = {}, signal?: AbortSignal) {
  return getJson<MasterReachJson>(`/v1/masters/${enc(master)}/reach`, { tenant_id: tenant, ...days }, signal);
}

// ---- Video assets: player, shots and per-shot review (inference role) ----

/** Containers the registry takes as video (inference/src/video/types.ts). */
export const VIDEO_FORMATS: readonly string[] = ['mp4', 'mov', 'webm'];

/** Whether a registered asset is a video (the registry's record names its format). */
export function isVideoAsset(a: Asset | null | undefined): boolean {
  const format = (a as (Asset & { format?: string }) | null | undefined)?.format;
  return format !== undefined && VIDEO_FORMATS.includes(format);
}

export type ShotReviewAction = 'tie' | 'no_sim' | 'untie';

/** A person's word on one shot: cut from `master_asset_id` (tie), or from no master (no_sim). */
export interface ShotReviewJson {
  action: 'tie' | 'no_sim';
  master_asset_id: string | null;
  score: number | null;
  decided_by: string;
  decided_at: number;
}

export interface VideoShotJson {
  index: number;
  /** Seconds. */
  start: number;
  end: number;
  start_frame: number;
  end_frame: number;
  transition: 'start' | 'cut' | 'fade' | 'dissolve';
  /** Frames of the first, middle and last keyframe (GET .../keyframes/:shot/:k, k = 0, 1, 2). */
  keyframes: number[];
  /** Best masters of the shot, best first; absent until the video is ranked. */
  candidates?: { master_asset_id: string; score: number; master_shot?: number }[];
  /** The master the shot clears the auto-tie threshold for; null: ranked, none does (B-roll, end card). */
  auto_tie?: string | null;
  review?: ShotReviewJson;
}

export interface AssetVideoJson {
  container: string;
  codec: string;
  duration_s: number;
  fps: number;
  frames: number;
  audio: boolean;
  poster_frame: number;
  shots: VideoShotJson[];
}

export function assetVideo(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<AssetVideoJson>(`/v1/assets/${enc(id)}/video`, { tenant_id: tenant }, signal);
}

/** A blob URL of a video's image: its poster, or keyframe `k` (0 first, 1 middle, 2 last) of a shot; null when there is none. */
export async function videoImageUrl(tenant: string, id: string, what: 'poster' | { shot: number; k: number }, signal?: AbortSignal): Promise<string | null> {
  const path = what === 'poster' ? `/v1/assets/${enc(id)}/poster` : `/v1/assets/${enc(id)}/keyframes/${what.shot}/${what.k}`;
  try {
    const res = await request(path, { tenant_id: tenant }, { signal: signal ?? null });
    return URL.createObjectURL(await res.blob());
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) return null;
    throw err;
  }
}

/**
 * Where a <video> reads the original from. With a key the bytes are fetched with it into a blob URL
 * (an element's own requests cannot carry the Authorization header); without one the element reads
 * the route itself, by byte ranges, and can start before the whole file is there.
 */
export async function videoSourceUrl(tenant: string, id: string, signal?: AbortSignal): Promise<{ url: string; revoke: boolean }> {
  if (!auth.key) return { url: url(`/v1/assets/${enc(id)}/original`, { tenant_id: tenant }), revoke: false };
  const res = await request(`/v1/assets/${enc(id)}/original`, { tenant_id: tenant }, { signal: signal ?? null });
  return { url: URL.createObjectURL(await res.blob()), revoke: true };
}

export function reviewShot(tenant: string, ad: string, shot: number, body: { action: ShotReviewAction; target_asset_id?: string; decided_by: string }) {
  return postJson<{ shot: VideoShotJson }>(`/v1/assets/${enc(ad)}/shots/${shot}/review`, { tenant_id: tenant, ...body });
}

// ---- Video engagement (live role: GET /v1/assets/:id/video-metrics, stream/live/src/live/video.ts) ----

/** A share with its 95 % Wilson interval; `enough: false` when the interval is too wide to rank on. */
export interface VideoShareJson {
  value: number;
  low: number;
  high: number;
  enough: boolean;
}

export interface VideoMetricsJson {
  starts: number;
  hook_rate: VideoShareJson;
  hold_rate: VideoShareJson;
  completion_rate: VideoShareJson;
  avg_watch_ms: number;
  watch_ms: number;
  /** Share of starts still watching at each percent of the video (0, the quartiles, 100). */
  retention: { percent: number; plays: number; share: VideoShareJson }[];
  /** Milestone events beyond what the plays before them allow (duplicates, progress without a start). */
  excess: number;
}

export interface VideoReportJson {
  tenant_id: string;
  asset_id: string;
  from: number;
  to: number;
  /** The asset's own plays. */
  asset: VideoMetricsJson;
  /** As a master: its own plays and the ads cut from it, weighted by their shots' time on screen. */
  master: VideoMetricsJson & { contributors: { asset_id: string; weight: number; via: 'self' | 'shots' | 'tie' }[] };
}

export function videoMetrics(tenant: string, id: string, range: { from?: number; to?: number } = {}, signal?: AbortSignal) {
  return getJson<VideoReportJson>(`/v1/assets/${enc(id)}/video-metrics`, { tenant_id: tenant, from: range.from, to: range.to }, signal);
}

import type {
  Asset,
  AssetCostsJson,
  AssetDecayJson,
  AssetHistory,
  AssetRangeJson,
  AssetScoreJson,
  AttributionSummaryJson,
  BreakdownJson,
  CampaignCostsJson,
  CampaignRangeJson,
  CampaignReachJson,
  Candidates,
  CompareJson,
  FreshnessJson,
  LiveAssetMetricsJson,
  MasterReachJson,
  OcclusionJson,
  ResponseOf,
  ReviewStatus,
  SimilarScope,
  TieAction,
  VideoJson,
} from '@afterglow/core/api';
import { auth } from './auth.svelte.ts';

/**
 * The REST API the dashboard reads (ingest: campaigns; live: metrics, decay, leaderboard, triggers;
 * inference: assets, thumbnails, tie review, scores). Every call carries the API key (auth.svelte.ts);
 * a 401 opens the key prompt. The answers' types come from the routes' own response schemas
 * (`@afterglow/core/api`, types only: nothing of it is bundled), so a route and this file cannot drift.
 */

export type {
  Asset,
  AssetCostsJson,
  AssetHistory,
  AssetRangeJson,
  AssetScoreJson,
  AssetTie,
  AttributionJson,
  AggregatedAttributionJson,
  AttributionSummaryJson,
  BreakdownJson,
  BreakdownRowJson,
  CampaignCostsJson,
  CampaignRangeJson,
  CampaignReachJson,
  CampaignSummary,
  Candidates,
  ChangeJson,
  CompareJson,
  CostFiguresJson,
  FreshnessJson,
  MasterMatch,
  MasterReachJson,
  ModelFitJson,
  ModelJson,
  OcclusionJson,
  PeriodChangeJson,
  PeriodJson,
  QueueItem,
  RangeSeriesJson,
  RangeTotalsJson,
  RateJson,
  ReachErrorJson,
  ReachJson,
  ReviewStatus,
  SeriesPoint,
  SimilarScope,
  TieAction,
  VideoJson,
  TieDecision,
  TimelineAnnotation,
  TimelineKind,
  TriggerFiring,
} from '@afterglow/core/api';
/** The live decay fit (or a fit of the rollups' history): what the decay chart reads. */
export type DecayFitJson = AssetDecayJson;
/** The live metrics of an asset (hot state). */
export type AssetMetricsJson = LiveAssetMetricsJson;

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

export function listCampaigns(tenant: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'listCampaigns'>>('/v1/campaigns', { tenant_id: tenant }, signal);
}

/** Per-step history from the ClickHouse rollups. */
export function assetHistory(tenant: string, asset: string, from: number, to: number, step: string, signal?: AbortSignal) {
  return getJson<AssetHistory>(`/v1/assets/${enc(asset)}/metrics`, { tenant_id: tenant, from, to, step }, signal);
}

export function assetMetrics(tenant: string, asset: string, signal?: AbortSignal) {
  return getJson<LiveAssetMetricsJson>(`/v1/assets/${enc(asset)}/metrics`, { tenant_id: tenant }, signal);
}

/** The live decay fit (hot state) with its observed/fitted curve and forecast. */
export function assetDecay(tenant: string, asset: string, signal?: AbortSignal) {
  return getJson<AssetDecayJson>(`/v1/assets/${enc(asset)}/decay`, { tenant_id: tenant }, signal);
}

// ---- Asset registry and tie review (inference role) ----

export function getAsset(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'getAsset'>>(`/v1/assets/${enc(id)}`, { tenant_id: tenant }, signal);
}

export function listAssets(tenant: string, q: { role?: 'master' | 'ad'; campaign_id?: string; limit?: number; cursor?: string }, signal?: AbortSignal) {
  return getJson<ResponseOf<'listAssets'>>('/v1/assets', { tenant_id: tenant, ...q }, signal);
}

export function candidates(tenant: string, ad: string, signal?: AbortSignal, similarScope: SimilarScope = 'campaign') {
  return getJson<Candidates>(`/v1/assets/${enc(ad)}/candidates`, { tenant_id: tenant, similar_scope: similarScope }, signal);
}

export function reviewQueue(tenant: string, q: { campaign_id?: string | undefined; status?: ReviewStatus; limit?: number }, signal?: AbortSignal) {
  return getJson<ResponseOf<'reviewQueue'>>('/v1/review/queue', { tenant_id: tenant, ...q }, signal);
}

export function decideTie(tenant: string, body: { ad_asset_id: string; action: TieAction; target_asset_id?: string; decided_by: string; across_campaigns?: boolean }) {
  return postJson<ResponseOf<'decideTie'>>('/v1/ties', { tenant_id: tenant, ...body });
}

export function tieHistory(tenant: string, q: { ad_asset_id?: string; master_asset_id?: string; limit?: number }, signal?: AbortSignal) {
  return getJson<ResponseOf<'tieHistory'>>('/v1/ties', { tenant_id: tenant, ...q }, signal);
}

export function masterAds(tenant: string, master: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'masterAds'>>(`/v1/masters/${enc(master)}/ads`, { tenant_id: tenant }, signal);
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

export function assetScore(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<AssetScoreJson>(`/v1/assets/${enc(id)}/score`, { tenant_id: tenant }, signal);
}

export function assetOcclusion(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<OcclusionJson>(`/v1/assets/${enc(id)}/occlusion`, { tenant_id: tenant }, signal);
}

// ---- Triggers (live role) ----

export function triggersLog(tenant: string, q: { campaign_id?: string | undefined; limit?: number }, signal?: AbortSignal) {
  return getJson<ResponseOf<'triggersLog'>>('/v1/triggers/log', { tenant_id: tenant, ...q }, signal);
}

// ---- What drives performance (inference role), models, and who the key belongs to ----

export function aggregateAttribution(tenant: string, campaign: string | null, signal?: AbortSignal) {
  return getJson<AttributionSummaryJson>('/v1/attribution', { tenant_id: tenant, campaign_id: campaign }, signal);
}

export function listModels(tenant: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'listModels'>>('/v1/models', { tenant_id: tenant }, signal);
}

/** The key's tenant and scopes (404 `auth_off` when the server runs without keys). */
export function whoami(signal?: AbortSignal) {
  return getJson<ResponseOf<'whoami'>>('/v1/whoami', {}, signal);
}

// ---- Data freshness (live role) ----

/** What the live role last counted for the tenant: apart from the WebSocket's state. */
export function liveFreshness(tenant: string, signal?: AbortSignal) {
  return getJson<FreshnessJson>('/v1/live/freshness', { tenant_id: tenant }, signal);
}

// ---- Timeline annotations (inference role: asset registry and tie decisions) ----

export function assetTimeline(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'assetTimeline'>>(`/v1/assets/${enc(id)}/timeline`, { tenant_id: tenant }, signal);
}

// Range reads, breakdowns and comparison (ingest/src/analytics.ts): from/to are epoch ms or ISO;
// `filter[channel]=...` etc. narrow by the events' labels.

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

export type { ShotReviewJson, VideoShotJson, VideoJson as AssetVideoJson } from '@afterglow/core/api';

export function assetVideo(tenant: string, id: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'assetVideo'>>(`/v1/assets/${enc(id)}/video`, { tenant_id: tenant }, signal);
}

/**
 * Loads an asset's video view for an `$effect`: `onChange(undefined, null)` while loading, then the
 * view, or null when the asset is not a video, or the error's message. Returns the cancel the effect
 * hands back, so a view that moved to another asset never takes the old answer.
 */
export function watchAssetVideo(tenant: string, id: string, onChange: (video: VideoJson | null | undefined, error: string | null) => void): () => void {
  const ctl = new AbortController();
  onChange(undefined, null);
  assetVideo(tenant, id, ctl.signal).then(
    (v) => onChange(v, null),
    (err: unknown) => {
      if (ctl.signal.aborted) return;
      if (isAbsent(err)) onChange(null, null);
      else onChange(undefined, err instanceof ApiError ? err.message : String(err));
    },
  );
  return () => ctl.abort();
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
  return postJson<ResponseOf<'reviewShot'>>(`/v1/assets/${enc(ad)}/shots/${shot}/review`, { tenant_id: tenant, ...body });
}

// ---- Video engagement (live role: GET /v1/assets/:id/video-metrics, stream/live/src/live/video.ts) ----

/** A share with its 95 % Wilson interval; `enough: false` when the interval is too wide to rank on. */
export type { RateJson as VideoShareJson, VideoMetricsJson, VideoReportJson } from '@afterglow/core/api';

export function videoMetrics(tenant: string, id: string, range: { from?: number; to?: number } = {}, signal?: AbortSignal) {
  return getJson<ResponseOf<'videoMetrics'>>(`/v1/assets/${enc(id)}/video-metrics`, { tenant_id: tenant, from: range.from, to: range.to }, signal);
}

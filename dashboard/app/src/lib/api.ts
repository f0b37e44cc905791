import type { Counts } from './protocol.ts';

/** The REST API the dashboard reads (ingest: campaigns; live: metrics, decay, leaderboard). */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function getJson<T>(path: string, params: Record<string, string | number | undefined>, signal?: AbortSignal): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const res = await fetch(`${path}?${q}`, { signal, headers: { accept: 'application/json' } });
  if (!res.ok) {
    let code = 'http_error';
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: string; message?: string };
      code = body.error ?? code;
      message = body.message ?? message;
    } catch {
      // Not JSON.
    }
    throw new ApiError(res.status, code, message);
  }
  return (await res.json()) as T;
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

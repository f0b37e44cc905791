/**
 * Training data from ClickHouse: per-asset engagement outcomes over a horizon, detrended against
 * the campaign's rolling baseline and cube-root transformed (seed 001, section III-B), joined with
 * the stored feature vectors, and split by time.
 *
 *   outcome(a)  = engagements / impressions of asset a within [first impression, + horizon)
 *   baseline(a) = impression-weighted outcome of the campaign's assets whose first impression lies
 *                 in (first(a) - window, first(a)]  (a rolling baseline, a itself included)
 *   target(a)   = cbrt(outcome(a) / baseline(a))
 *
 * The seed normalises likes by a 12-month rolling average and takes the cube root; here the
 * "average" is the campaign's rolling engagement rate, so campaign-wide shifts (audience, season,
 * budget) are removed and the model learns what the image adds relative to its campaign.
 * Only mature assets (first impression + horizon <= now) are used: younger ones are censored.
 */
import type { FeatureProviderKind, StoredFeatures } from './featurizer.js';
import type { PredictionDataRepository } from './repository.js';

export { ENGAGEMENT_KINDS } from './repository.js';

export interface OutcomeOptions {
  tenantId: string;
  campaignId?: string;
  horizonMs: number;
  /** Rolling baseline window. */
  baselineWindowMs: number;
  /** Assets with fewer impressions in the horizon are left out (their rate is mostly noise). */
  minImpressions: number;
  /** Epoch ms; default Date.now(). */
  now?: number;
  /** Include assets whose horizon has not elapsed (default false). */
  includeImmature?: boolean;
}

export interface Outcome {
  assetId: string;
  campaignId: string;
  firstAt: number;
  impressions: number;
  engagements: number;
  rate: number;
  baseline: number;
  target: number;
}

export const toTarget = (rate: number, baseline: number): number => Math.cbrt(baseline > 0 ? rate / baseline : 0);
/** Inverse of toTarget: the engagement rate a target value means for a campaign baseline. */
export const fromTarget = (target: number, baseline: number): number => Math.max(0, target) ** 3 * baseline;

export async function loadOutcomes(data: PredictionDataRepository, o: OutcomeOptions): Promise<Outcome[]> {
  const rows = await data.outcomes(o.tenantId, o.campaignId, o.horizonMs);
  const now = o.now ?? Date.now();
  const all = rows.map((r) => ({
    assetId: r.asset_id,
    campaignId: r.campaign_id,
    firstAt: Number(r.first_ms),
    impressions: Number(r.impressions),
    engagements: Number(r.engagements),
  }));
  return withBaselines(all, o.baselineWindowMs).filter((r) => r.impressions >= o.minImpressions && (o.includeImmature || r.firstAt + o.horizonMs <= now));
}

/** Rolling, impression-weighted campaign baseline per asset (two pointers over each campaign's assets by first impression). */
export function withBaselines(rows: readonly Omit<Outcome, 'rate' | 'baseline' | 'target'>[], windowMs: number): Outcome[] {
  const byCampaign = new Map<string, (typeof rows)[number][]>();
  for (const r of rows) (byCampaign.get(r.campaignId) ?? byCampaign.set(r.campaignId, []).get(r.campaignId)!).push(r);
  const out: Outcome[] = [];
  for (const list of byCampaign.values()) {
    list.sort((a, b) => a.firstAt - b.firstAt || a.assetId.localeCompare(b.assetId));
    let lo = 0;
    let imp = 0;
    let eng = 0;
    for (let hi = 0; hi < list.length; hi++) {
      imp += list[hi]!.impressions;
      eng += list[hi]!.engagements;
      while (list[lo]!.firstAt <= list[hi]!.firstAt - windowMs) {
        imp -= list[lo]!.impressions;
        eng -= list[lo]!.engagements;
        lo++;
      }
      const r = list[hi]!;
      const rate = r.impressions > 0 ? r.engagements / r.impressions : 0;
      const baseline = imp > 0 ? eng / imp : 0;
      out.push({ ...r, rate, baseline, target: toTarget(rate, baseline) });
    }
  }
  return out;
}

/** The campaign's current baseline (its rolling rate over the window ending now), for scoring new assets. */
export async function campaignBaseline(data: PredictionDataRepository, tenantId: string, campaignId: string, windowMs: number, now = Date.now()): Promise<number | undefined> {
  const { imp, eng } = await data.campaignTotals(tenantId, campaignId, now - windowMs);
  return imp > 0 ? eng / imp : undefined;
}

/** Latest stored features of each asset (for one featurizer kind). */
export async function loadFeatures(data: PredictionDataRepository, tenantId: string, provider: FeatureProviderKind, assetIds?: readonly string[]): Promise<Map<string, StoredFeatures>> {
  const rows = await data.features(tenantId, provider, assetIds);
  return new Map(
    rows.map((r) => [r.asset_id, { named: JSON.parse(r.named) as Record<string, number>, words: r.words, embedding: Float32Array.from(r.embedding), meta: JSON.parse(r.meta) as StoredFeatures['meta'] }]),
  );
}

export async function storeFeatures(
  data: PredictionDataRepository,
  rows: readonly { tenantId: string; provider: FeatureProviderKind; assetId: string; campaignId?: string; contentHash?: string; features: StoredFeatures }[],
): Promise<void> {
  if (rows.length === 0) return;
  const now = Date.now();
  await data.insertFeatures(
    rows.map((r) => ({
      tenant_id: r.tenantId,
      provider: r.provider,
      asset_id: r.assetId,
      campaign_id: r.campaignId ?? '',
      content_hash: r.contentHash ?? '',
      named: JSON.stringify(r.features.named),
      words: r.features.words,
      embedding: Array.from(r.features.embedding),
      meta: JSON.stringify(r.features.meta),
      computed_at: now,
    })),
  );
}

export type TrainingRow = Outcome & { features: StoredFeatures };
export interface TrainingSet {
  rows: TrainingRow[];
  train: TrainingRow[];
  valid: TrainingRow[];
  /** Assets with outcomes but no stored features (left out). */
  missingFeatures: number;
}

/** Outcomes joined with features, split by time: the latest `validShare` of assets (by first impression) validate. */
export async function loadTrainingSet(data: PredictionDataRepository, provider: FeatureProviderKind, o: OutcomeOptions & { validShare: number }): Promise<TrainingSet> {
  const outcomes = await loadOutcomes(data, o);
  const features = await loadFeatures(data, o.tenantId, provider);
  const rows: TrainingSet['rows'] = [];
  let missing = 0;
  for (const r of outcomes) {
    const f = features.get(r.assetId);
    if (f) rows.push({ ...r, features: f });
    else missing++;
  }
  rows.sort((a, b) => a.firstAt - b.firstAt || a.assetId.localeCompare(b.assetId));
  const nValid = Math.round(rows.length * o.validShare);
  return { rows, train: rows.slice(0, rows.length - nValid), valid: rows.slice(rows.length - nValid), missingFeatures: missing };
}

/**
 * Resampling clusters: an ad tied to a master (its latest tie decision is `tie`) belongs to that
 * master's cluster; every other asset is its own. Ads cut from one photo share whatever the features
 * miss about it, so the bootstrap draws them together.
 */
export async function loadClusters(data: PredictionDataRepository, tenantId: string): Promise<Map<string, string>> {
  try {
    const rows = await data.latestTies(tenantId);
    return new Map(rows.filter((r) => r.action === 'tie' && r.target).map((r) => [r.ad_asset_id, r.target]));
  } catch {
    // No tie decisions table (registry not deployed): every asset is its own cluster.
    return new Map();
  }
}

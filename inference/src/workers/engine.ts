/**
 * Scoring one asset: image (blob store) -> analysis + features (stored in asset_features) -> the
 * tenant's active model through onnxruntime worker threads (./predictor.ts) -> predicted engagement
 * rate with an interval, the live actual rate with a Wilson interval, the over/under flag, and ANVIL
 * attribution per element/edit. The workers (./service.ts) and the routes (./routes.ts) call this.
 */
import { BadRequestError, type AssetScore, type PredictSettings } from '@afterglow/core';
import { aggregateAttribution, attributeAsset, occlusionMap, type AggregatedElement, type AssetAttribution, type EditEffect, type OcclusionMap, type Scorer } from '../attribution/anvil.js';
import type { AssetMeta } from '../features/types.js';
import { campaignBaseline, fromTarget, storeFeatures } from '../predict/dataset.js';
import { vectorOf, type Analysed, type FeatureProvider } from '../predict/featurizer.js';
import type { ModelRegistry, StoredModel } from '../predict/registry.js';
import type { PredictionDataRepository } from '../predict/repository.js';
import type { ScoreRepository } from './repository.js';
import type { ModelRef, Predictor } from './predictor.js';

/** Where the worker reads an asset's image and metadata (the asset registry's blob store and table). */
export interface ImageSource {
  get(tenantId: string, assetId: string): Promise<{ bytes: Uint8Array; contentHash: string; campaignId?: string; channel?: string; masterAssetId?: string } | undefined>;
}

/** Reads the registry's `assets` table (latest version) and the blob store by content hash. */
export function registryImageSource(assets: { latestContent(tenant: string, id: string): Promise<{ content_hash: string; campaign_id: string; channel: string; deleted: number } | undefined> }, blobs: { get(key: string): Promise<Uint8Array | undefined> }): ImageSource {
  return {
    async get(tenantId, assetId) {
      const row = await assets.latestContent(tenantId, assetId);
      if (!row || Number(row.deleted) || !row.content_hash) return undefined;
      const bytes = await blobs.get(row.content_hash);
      return bytes ? { bytes, contentHash: row.content_hash, campaignId: row.campaign_id || undefined, channel: row.channel || undefined } : undefined;
    },
  };
}

export interface EngineDeps {
  /** Outcomes and stored features (the prediction tables). */
  data: PredictionDataRepository;
  scores: ScoreRepository;
  registry: ModelRegistry;
  predictor: Predictor;
  provider: FeatureProvider;
  images: ImageSource;
  settings: Pick<PredictSettings, 'horizonMs' | 'baselineWindowMs' | 'minImpressions'>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

interface Loaded {
  stored: StoredModel;
  ref: ModelRef;
  scorer: Scorer;
}

export interface ScoreRequest {
  tenantId: string;
  assetId: string;
  reason: AssetScore['reason'];
  campaignId?: string;
  masterAssetId?: string;
  /** Recompute attribution (default: only when there is none for this model version yet). */
  attribution?: boolean;
}

/** Wilson score interval (95 %) of k successes in n trials. */
export function wilson(k: number, n: number, z = 1.96): { p: number; low: number; high: number } {
  if (n <= 0) return { p: 0, low: 0, high: 1 };
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { p, low: Math.max(0, c - h), high: Math.min(1, c + h) };
}

export class NotScoredError extends BadRequestError {
  constructor(message: string) {
    super('not_scored', message, 404);
  }
}

export class ScoringEngine {
  private readonly models = new Map<string, Loaded>();
  private readonly analysed = new Map<string, Analysed>();
  /** Assets whose current features this process already stored. */
  private readonly featuresStored = new Set<string>();
  /** Last attribution per tenant/asset/model version (reused when only the live numbers change). */
  private readonly lastAttribution = new Map<string, AssetAttribution>();
  scored = 0;

  constructor(private readonly deps: EngineDeps) {}

  get provider(): FeatureProvider {
    return this.deps.provider;
  }

  /** The tenant's active model, loaded (undefined when none was trained). */
  async activeModel(tenantId: string): Promise<Loaded | undefined> {
    const version = await this.deps.registry.activeVersion(tenantId);
    return version ? this.loadModel(tenantId, version) : undefined;
  }

  loadModel(tenantId: string, version: string): Loaded {
    const key = `${tenantId}\0${version}`;
    let m = this.models.get(key);
    if (!m) {
      const stored = this.deps.registry.load(tenantId, version);
      const ref: ModelRef = { version, onnxPath: stored.onnxPath, nFeatures: stored.card.schema.columns.length, members: stored.gbt.members.length };
      const scorer: Scorer = { provider: this.deps.provider, schema: stored.card.schema, predict: (rows) => this.deps.predictor.predict(ref, rows) };
      m = { stored, ref, scorer };
      this.models.set(key, m);
    }
    return m;
  }

  /** Image -> analysis + features, cached by content hash (a few recent assets), stored in asset_features. */
  async analyse(tenantId: string, assetId: string): Promise<{ analysed: Analysed; campaignId?: string; masterAssetId?: string }> {
    const img = await this.deps.images.get(tenantId, assetId);
    if (!img) throw new BadRequestError('not_found', `no image for asset ${assetId}`, 404);
    const meta: AssetMeta = { channel: img.channel, campaign: img.campaignId };
    const key = `${this.deps.provider.kind}:${img.contentHash}:${JSON.stringify(meta)}`;
    let a = this.analysed.get(key);
    if (!a) {
      a = await this.deps.provider.analyse(img.bytes, meta);
      this.analysed.set(key, a);
      if (this.analysed.size > 64) this.analysed.delete(this.analysed.keys().next().value!);
    }
    const storedKey = `${tenantId}\0${assetId}\0${key}`;
    if (!this.featuresStored.has(storedKey)) {
      await storeFeatures(this.deps.data, [{ tenantId, provider: this.deps.provider.kind, assetId, campaignId: img.campaignId, contentHash: img.contentHash, features: a.features }]);
      this.featuresStored.add(storedKey);
      if (this.featuresStored.size > 100_000) this.featuresStored.delete(this.featuresStored.values().next().value!);
    }
    return { analysed: a, campaignId: img.campaignId, masterAssetId: img.masterAssetId };
  }

  /** Live outcome of an asset over the model horizon from its first impression. */
  async actual(tenantId: string, assetId: string): Promise<{ impressions: number; engagements: number }> {
    return this.deps.data.assetOutcome(tenantId, assetId, this.deps.settings.horizonMs);
  }

  async score(req: ScoreRequest): Promise<{ score: AssetScore; attribution: AssetAttribution } | undefined> {
    // Features first: they are stored for training even before a tenant has any model.
    const { analysed, campaignId: regCampaign, masterAssetId } = await this.analyse(req.tenantId, req.assetId);
    const model = await this.activeModel(req.tenantId);
    if (!model) return undefined;
    const campaignId = req.campaignId ?? regCampaign;
    const card = model.stored.card;
    const attKey = `${req.tenantId}\0${req.assetId}\0${card.version}`;
    let att = req.attribution === true ? undefined : this.lastAttribution.get(attKey);
    if (!att) {
      att = await attributeAsset(analysed, model.scorer);
      this.lastAttribution.set(attKey, att);
      if (this.lastAttribution.size > 10_000) this.lastAttribution.delete(this.lastAttribution.keys().next().value!);
    }
    const baseline = (campaignId ? await campaignBaseline(this.deps.data, req.tenantId, campaignId, card.target.baselineWindowMs) : undefined) ?? card.globalBaseline;
    const y = att.predicted;
    const ms = att.predictedMembers;
    const memberVar = ms.reduce((s, v) => s + (v - y) ** 2, 0) / Math.max(1, ms.length - 1);
    const half = 1.96 * Math.sqrt(card.residualSd ** 2 + memberVar);
    const predicted = fromTarget(y, baseline);
    const predictedLow = fromTarget(y - half, baseline);
    const predictedHigh = fromTarget(y + half, baseline);
    const live = await this.actual(req.tenantId, req.assetId);
    const w = wilson(live.engagements, live.impressions);
    const enough = live.impressions >= this.deps.settings.minImpressions;
    const flag: AssetScore['flag'] = !enough ? 'insufficient_data' : w.low > predictedHigh ? 'over' : w.high < predictedLow ? 'under' : 'as_expected';
    const score: AssetScore = {
      tenant_id: req.tenantId,
      asset_id: req.assetId,
      ...(campaignId ? { campaign_id: campaignId } : {}),
      ...((req.masterAssetId ?? masterAssetId) ? { master_asset_id: req.masterAssetId ?? masterAssetId } : {}),
      model_version: card.version,
      predicted,
      predicted_low: predictedLow,
      predicted_high: predictedHigh,
      ...(live.impressions > 0 ? { actual: w.p, actual_low: w.low, actual_high: w.high } : {}),
      impressions: live.impressions,
      flag,
      attribution: att.attribution.map(({ members: _m, ...a }) => a),
      reason: req.reason,
      scored_at: Date.now(),
    };
    this.scored++;
    return { score, attribution: att };
  }

  /** Stores a score (and the per-member attribution the aggregate resamples). */
  async storeScore(score: AssetScore, attribution: readonly EditEffect[]): Promise<void> {
    await this.deps.scores.insertScore({
      tenant_id: score.tenant_id,
      asset_id: score.asset_id,
      campaign_id: score.campaign_id ?? '',
      model_version: score.model_version,
      predicted: score.predicted,
      actual: score.actual ?? null,
      flag: score.flag,
      reason: score.reason,
      scored_at: score.scored_at,
      score: JSON.stringify({ score, members: Object.fromEntries(attribution.map((a) => [`${a.element}\0${a.edit}`, a.members])) }),
    });
  }

  private async latestRows(tenantId: string, where: string, params: Record<string, unknown>): Promise<{ score: AssetScore; members: Record<string, number[]> }[]> {
    return (await this.deps.scores.latestOf(tenantId, where, params)).map((s) => JSON.parse(s) as { score: AssetScore; members: Record<string, number[]> });
  }

  /**
   * The latest stored score of every asset (all tenants), most recently scored first, at most
   * `limit`: what the workers watch for engagement shifts after a restart. Attribution is left out
   * (the shift check needs only the numbers and the flag).
   */
  async latestScores(limit = 100_000): Promise<AssetScore[]> {
    return (await this.deps.scores.latestOfAll(limit)).map((s) => {
      const { attribution: _a, ...score } = (JSON.parse(s) as { score: AssetScore }).score;
      return score;
    });
  }

  /** Every tenant's active model version (see ModelRegistry.activeVersions). */
  activeVersions(): Promise<Map<string, string>> {
    return this.deps.registry.activeVersions();
  }

  async latestScore(tenantId: string, assetId: string): Promise<AssetScore> {
    const [row] = await this.latestRows(tenantId, 'AND asset_id = {asset:String}', { asset: assetId });
    if (!row) throw new NotScoredError(`asset ${assetId} has not been scored`);
    return row.score;
  }

  async campaignScores(tenantId: string, campaignId: string): Promise<AssetScore[]> {
    return (await this.latestRows(tenantId, 'AND campaign_id = {campaign:String}', { campaign: campaignId })).map((r) => r.score).sort((a, b) => b.predicted - a.predicted);
  }

  /** Attribution aggregated over the latest scores of the active model (optionally one campaign). */
  async aggregate(tenantId: string, campaignId?: string): Promise<{ model_version: string | null; assets: number; elements: AggregatedElement[] }> {
    const version = await this.deps.registry.activeVersion(tenantId);
    if (!version) return { model_version: null, assets: 0, elements: [] };
    const rows = await this.latestRows(tenantId, `${campaignId ? 'AND campaign_id = {campaign:String}' : ''}`, { campaign: campaignId ?? '' });
    const per = rows
      .filter((r) => r.score.model_version === version)
      .map((r) =>
        (r.score.attribution ?? []).map((a) => ({ ...a, members: r.members[`${a.element}\0${a.edit}`] ?? [a.delta] })),
      );
    // Creatives with any attribution: the "n of N" of every estimate.
    return { model_version: version, assets: per.filter((p) => p.length > 0).length, elements: aggregateAttribution(per) };
  }

  /** The occlusion map of an asset under the active model (computed once per model version, then stored). */
  async occlusion(tenantId: string, assetId: string): Promise<OcclusionMap & { model_version: string }> {
    const model = await this.activeModel(tenantId);
    if (!model) throw new NotScoredError('no model has been trained for this tenant');
    const version = model.stored.card.version;
    const row = await this.deps.scores.occlusion(tenantId, assetId, version);
    if (row) return { grid_w: Number(row.grid_w), grid_h: Number(row.grid_h), values: row.cell_values, model_version: version };
    const { analysed } = await this.analyse(tenantId, assetId);
    const map = await occlusionMap(analysed, model.scorer);
    await this.deps.scores.insertOcclusion({ tenant_id: tenantId, asset_id: assetId, model_version: version, grid_w: map.grid_w, grid_h: map.grid_h, cell_values: map.values, computed_at: Date.now() });
    return { ...map, model_version: version };
  }

  /** Assets of a tenant with stored features (what a new model rescores), with their campaign. */
  async featuredAssets(tenantId: string): Promise<{ assetId: string; campaignId?: string }[]> {
    return (await this.deps.data.featuredAssets(tenantId, this.deps.provider.kind)).map((r) => ({ assetId: r.asset_id, ...(r.campaign_id ? { campaignId: r.campaign_id } : {}) }));
  }

  /** Predictions (per member) for stored feature rows, e.g. benchmarks: vectors through the worker threads. */
  async predictFeatures(tenantId: string, features: readonly Analysed['features'][]): Promise<ArrayLike<number>[]> {
    const model = await this.activeModel(tenantId);
    if (!model) throw new NotScoredError('no model has been trained for this tenant');
    return model.scorer.predict(features.map((f) => vectorOf(f, model.stored.card.schema)));
  }
}

/**
 * Training: ClickHouse outcomes + stored features -> gradient-boosted trees -> ONNX -> registry.
 *
 * The number of rounds is chosen by early stopping on the last 15 % (by time) of the training
 * split; then a bag of models is fitted with that many rounds on cluster bootstraps of the whole
 * training split (see trainBag: ads of one master are drawn together), and the
 * validation split (the latest assets, never seen) gives the reported RMSE / MAE / R2 in target
 * space (cube root of the detrended rate), the space seed 001 reports in.
 */
import type { PredictionDataRepository } from './repository.js';
import { loadClusters, loadTrainingSet, type OutcomeOptions } from './dataset.js';
import { buildVectorSchema, vectorOf, type FeatureProviderKind } from './featurizer.js';
import { DEFAULT_GBT_PARAMS, matrix, predictBag, regressionMetrics, trainBag, trainGbt, type GbtParams, type TrainProgress } from './gbt.js';
import { gbtToOnnx } from './onnx-trees.js';
import { newModelVersion, type ModelCard, type ModelRegistry, type StoredModel } from './registry.js';

export interface TrainOptions extends Omit<OutcomeOptions, 'campaignId'> {
  /** Which stored features to train on. */
  provider: FeatureProviderKind;
  /** Embedding projection dims (default 32). */
  embeddingProjection?: number;
  validShare?: number;
  params?: Partial<GbtParams>;
  /** Bag members (cluster-bootstrap refits); their spread is the model uncertainty. Default 8. */
  members?: number;
  activate?: boolean;
  /** Phase and progress (0..1) for a progress bar. */
  onProgress?: (phase: 'load' | 'select' | 'fit' | 'export', done: number, detail?: TrainProgress) => void;
  /** Version id to use (default: gbt-<timestamp>-<random>). */
  version?: string;
}

export class NotEnoughDataError extends Error {
  readonly code = 'not_enough_data' as const;
}

export async function trainModel(data: PredictionDataRepository, registry: ModelRegistry, o: TrainOptions): Promise<StoredModel> {
  o.onProgress?.('load', 0);
  const set = await loadTrainingSet(data, o.provider, { ...o, validShare: o.validShare ?? 0.2 });
  o.onProgress?.('load', 1);
  if (set.train.length < 12 || set.valid.length < 3) {
    throw new NotEnoughDataError(
      `not enough mature assets with outcomes and features to train: ${set.train.length} train / ${set.valid.length} valid (${set.missingFeatures} without features)`,
    );
  }
  const params: GbtParams = { ...DEFAULT_GBT_PARAMS, ...o.params };
  // The layout comes from the training split only (words, metadata values), never from validation.
  const schema = buildVectorSchema(set.train.map((r) => r.features), { embeddingProjection: o.embeddingProjection });
  const cols = schema.columns.length;
  const toX = (rows: typeof set.rows) => matrix(rows.map((r) => vectorOf(r.features, schema)), cols);

  // 1. rounds by early stopping on the tail of the training split
  const cut = Math.max(1, Math.round(set.train.length * 0.85));
  const inner = set.train.slice(0, cut);
  const stop = set.train.slice(cut);
  const sel = trainGbt(toX(inner), inner.map((r) => r.target), {
    params,
    valid: { x: toX(stop), y: stop.map((r) => r.target) },
    onProgress: (p) => o.onProgress?.('select', p.round / p.rounds, p),
  });
  const rounds = Math.max(10, sel.bestRound);
  // 2. the bag: refits on cluster bootstraps of the whole training split
  const clusters = await loadClusters(data, o.tenantId);
  const xTrain = toX(set.train);
  const yTrain = set.train.map((r) => r.target);
  const bag = trainBag(xTrain, yTrain, set.train.map((r) => clusters.get(r.assetId) ?? r.assetId), {
    members: o.members ?? 8,
    params: { ...params, rounds },
    onMember: (done, of) => o.onProgress?.('fit', done / of),
  });
  const xValid = toX(set.valid);
  const yValid = set.valid.map((r) => r.target);
  const valid = regressionMetrics(predictBag(bag, xValid), yValid);
  const train = regressionMetrics(predictBag(bag, xTrain), yTrain);
  const gain = new Array<number>(cols).fill(0);
  for (const m of bag.members) m.gain.forEach((g, i) => (gain[i]! += g));

  o.onProgress?.('export', 0);
  const version = o.version ?? newModelVersion();
  let imp = 0;
  let eng = 0;
  for (const r of set.rows) {
    imp += r.impressions;
    eng += r.engagements;
  }
  const card: ModelCard = {
    version,
    tenantId: o.tenantId,
    trainedAt: Date.now(),
    provider: o.provider,
    schema,
    target: { horizonMs: o.horizonMs, baselineWindowMs: o.baselineWindowMs, minImpressions: o.minImpressions, transform: 'cbrt(rate/baseline)' },
    params: { ...params, rounds },
    metrics: { valid, train, bestRound: rounds },
    nTrain: set.train.length,
    nValid: set.valid.length,
    residualSd: valid.rmse,
    globalBaseline: imp > 0 ? eng / imp : 0,
    members: bag.members.length,
    clusters: new Set(set.train.map((r) => clusters.get(r.assetId) ?? r.assetId)).size,
    importance: gain
      .map((gain, i) => ({ name: schema.columns[i] ?? `f${i}`, gain }))
      .filter((x) => x.gain > 0)
      .sort((a, b) => b.gain - a.gain)
      .slice(0, 20),
  };
  const onnx = gbtToOnnx(bag, { graphName: version, metadata: { version, schema: schema.id, target: card.target.transform } });
  const stored = await registry.save(card, bag, onnx, { activate: o.activate });
  o.onProgress?.('export', 1);
  return stored;
}

/**
 * Model versions: files in the models data dir (`<dir>/<tenant>/<version>/model.onnx` + `model.json`)
 * and a row per version in ClickHouse (prediction_models), with the tenant's active version in
 * prediction_model_active (latest activation wins). Training activates the new version unless told
 * not to; `POST /v1/models/:version/activate` switches back and forth.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BadRequestError } from '@afterglow/core';
import type { GbtBag, GbtParams, RegressionMetrics } from './gbt.js';
import type { FeatureProviderKind, VectorSchema } from './featurizer.js';
import type { ModelRepository } from './repository.js';

export interface ModelCard {
  version: string;
  tenantId: string;
  trainedAt: number;
  /** Featurizer kind the features came from, and the vector layout. */
  provider: FeatureProviderKind;
  schema: VectorSchema;
  /** What the target means (see ./dataset.ts). */
  target: { horizonMs: number; baselineWindowMs: number; minImpressions: number; transform: 'cbrt(rate/baseline)' };
  params: GbtParams;
  metrics: { valid: RegressionMetrics; train: RegressionMetrics; bestRound: number };
  nTrain: number;
  nValid: number;
  /** Bag members, and resampling clusters (masters, or single assets) in the training split. */
  members: number;
  clusters: number;
  /** Residual standard deviation on the validation split (target space), for prediction intervals. */
  residualSd: number;
  /** Campaign baselines seen at training time (fallback when a campaign has no live baseline yet). */
  globalBaseline: number;
  /** Top features by split gain. */
  importance: { name: string; gain: number }[];
}

export interface StoredModel {
  card: ModelCard;
  gbt: GbtBag;
  onnxPath: string;
}

export interface ModelListing {
  version: string;
  trained_at: number;
  metrics: { rmse: number; mae: number; r2: number };
  n_train: number;
  n_valid: number;
  active: boolean;
  schema_id: string;
}

export function newModelVersion(now = Date.now()): string {
  const d = new Date(now).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `gbt-${d}-${randomBytes(3).toString('hex')}`;
}

export class ModelRegistry {
  constructor(
    private readonly models: ModelRepository,
    readonly dir: string,
  ) {}

  private versionDir(tenantId: string, version: string): string {
    return path.join(this.dir, encodeURIComponent(tenantId), version);
  }

  async save(card: ModelCard, gbt: GbtBag, onnx: Uint8Array, options: { activate?: boolean } = {}): Promise<StoredModel> {
    const dir = this.versionDir(card.tenantId, card.version);
    mkdirSync(dir, { recursive: true });
    const onnxPath = path.join(dir, 'model.onnx');
    writeFileSync(`${onnxPath}.tmp`, onnx);
    renameSync(`${onnxPath}.tmp`, onnxPath);
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ card, gbt }));
    await this.models.insertModel({
      tenant_id: card.tenantId,
      version: card.version,
      provider: card.provider,
      schema_id: card.schema.id,
      trained_at: card.trainedAt,
      n_train: card.nTrain,
      n_valid: card.nValid,
      metrics: JSON.stringify(card.metrics.valid),
      params: JSON.stringify(card.params),
      path: dir,
    });
    if (options.activate !== false) await this.activate(card.tenantId, card.version);
    return { card, gbt, onnxPath };
  }

  async list(tenantId: string): Promise<ModelListing[]> {
    const active = await this.activeVersion(tenantId);
    const rows = await this.models.versions(tenantId);
    return rows.map((r) => {
      const m = JSON.parse(r.metrics) as RegressionMetrics;
      return {
        version: r.version,
        trained_at: Number(r.trained_ms),
        metrics: { rmse: m.rmse, mae: m.mae, r2: m.r2 },
        n_train: Number(r.n_train),
        n_valid: Number(r.n_valid),
        active: r.version === active,
        schema_id: r.schema_id,
      };
    });
  }

  async activate(tenantId: string, version: string): Promise<void> {
    if (!(await this.models.exists(tenantId, version))) throw new BadRequestError('model_not_found', `no model ${version} for tenant ${tenantId}`, 404);
    await this.models.insertActivation(tenantId, version, Date.now());
  }

  activeVersion(tenantId: string): Promise<string | undefined> {
    return this.models.activeVersion(tenantId);
  }

  /**
   * Every tenant's active version (latest activation wins). The scoring workers poll this to notice
   * a model activated by another process (`afterglow train`, another inference replica).
   */
  activeVersions(): Promise<Map<string, string>> {
    return this.models.activeVersions();
  }

  /** A stored model's files (card, JS trees, ONNX path). */
  load(tenantId: string, version: string): StoredModel {
    const dir = this.versionDir(tenantId, version);
    let parsed: { card: ModelCard; gbt: GbtBag };
    try {
      parsed = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { card: ModelCard; gbt: GbtBag };
    } catch (err) {
      throw new BadRequestError('model_not_found', `model ${version} has no files in ${dir}: ${(err as Error).message}`, 404);
    }
    return { ...parsed, onnxPath: path.join(dir, 'model.onnx') };
  }
}

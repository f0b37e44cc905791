/**
 * `afterglow train`: fit a prediction model for a tenant from ClickHouse (outcomes + stored
 * features), export it to ONNX, register it (and activate it unless --no-activate), with a progress
 * bar on stderr and the validation metrics on stdout (JSON).
 */
import { createStore, loadConfig, migrate, type Env } from '@afterglow/core';
import { parseCommandArgs } from '../cli-args.js';
import { ProgressBar } from '../tie/cli.js';
import { ModelRegistry } from './registry.js';
import { ModelRepository, PredictionDataRepository } from './repository.js';
import { trainModel } from './train.js';

export const TRAIN_USAGE = `usage: afterglow train --tenant ID [options]

  --tenant ID          tenant whose data trains the model (required)
  --features KIND      full | light: which stored features (default PREDICT_FEATURES)
  --horizon-hours H    outcome horizon from the first impression (default PREDICT_HORIZON_HOURS)
  --baseline-days D    rolling campaign baseline window (default PREDICT_BASELINE_DAYS)
  --min-impressions N  assets with fewer impressions in the horizon are left out (default PREDICT_MIN_IMPRESSIONS)
  --members K          bag members (default PREDICT_MEMBERS)
  --rounds N           boosting rounds, at most (early stopping picks fewer)
  --seed S             random seed (default 1)
  --no-activate        register the model without making it the active one
  --quiet              no progress bar`;

export async function runTrainCommand(argv: readonly string[], env: Env = process.env, io: { stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream & { isTTY?: boolean } } = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const parsed = parseCommandArgs(
    argv,
    {
      tenant: { type: 'string' },
      features: { type: 'string' },
      'horizon-hours': { type: 'string' },
      'baseline-days': { type: 'string' },
      'min-impressions': { type: 'string' },
      members: { type: 'string' },
      rounds: { type: 'string' },
      seed: { type: 'string' },
      'no-activate': { type: 'boolean' },
      quiet: { type: 'boolean' },
    },
    TRAIN_USAGE,
    { stderr, help: stdout },
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const num = (name: string): number | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
    return n;
  };
  if (typeof values.tenant !== 'string') {
    stderr.write(`--tenant is required\n\n${TRAIN_USAGE}\n`);
    return 2;
  }
  const features = values.features ?? undefined;
  if (features !== undefined && features !== 'full' && features !== 'light') {
    stderr.write(`--features must be full or light\n`);
    return 2;
  }
  let opts: { horizonH?: number; baselineD?: number; minImp?: number; members?: number; rounds?: number; seed?: number };
  try {
    opts = { horizonH: num('horizon-hours'), baselineD: num('baseline-days'), minImp: num('min-impressions'), members: num('members'), rounds: num('rounds'), seed: num('seed') };
  } catch (err) {
    stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const config = loadConfig(env);
  const store = await createStore(config.store);
  const bar = new ProgressBar(stderr, !values.quiet);
  try {
    await migrate(store);
    const registry = new ModelRegistry(new ModelRepository(store), config.predict.modelsDir);
    const phases = { load: 0, select: 1, fit: 2, export: 3 } as const;
    const stored = await trainModel(new PredictionDataRepository(store), registry, {
      tenantId: values.tenant,
      provider: (features as 'full' | 'light' | undefined) ?? config.predict.features,
      horizonMs: opts.horizonH !== undefined ? opts.horizonH * 3_600_000 : config.predict.horizonMs,
      baselineWindowMs: opts.baselineD !== undefined ? opts.baselineD * 86_400_000 : config.predict.baselineWindowMs,
      minImpressions: opts.minImp ?? config.predict.minImpressions,
      members: opts.members ?? config.predict.members,
      params: { ...(opts.rounds ? { rounds: Math.round(opts.rounds) } : {}), ...(opts.seed ? { seed: Math.round(opts.seed) } : {}) },
      activate: !values['no-activate'],
      onProgress: (phase, done) => bar.update('train', Math.round((phases[phase] + done) * 25), 100),
    });
    bar.update('train', 100, 100);
    const c = stored.card;
    stdout.write(
      `${JSON.stringify({ version: c.version, active: !values['no-activate'], n_train: c.nTrain, n_valid: c.nValid, members: c.members, rounds: c.metrics.bestRound, valid: c.metrics.valid, train: c.metrics.train, top_features: c.importance.slice(0, 8) })}\n`,
    );
    return 0;
  } catch (err) {
    stderr.write(`\ntrain failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

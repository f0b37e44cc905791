/**
 * The models directory tests and benchmarks share: AFTERGLOW_MODELS_DIR when set, else the repo's
 * `.afterglow-data/models` (gitignored; the same place `npm run models` builds to from the repo root),
 * so a model converted once is reused by every later test run.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { buildModels, type BuiltModel, type EmbeddingModelId } from '@afterglow/inference';

export function testModelsDir(): string {
  const fromEnv = process.env.AFTERGLOW_MODELS_DIR;
  if (fromEnv) return path.resolve(fromEnv);
  // test/kit/src or test/kit/dist -> repo root
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  return path.join(process.env.AFTERGLOW_DATA_DIR ? path.resolve(process.env.AFTERGLOW_DATA_DIR) : path.join(repo, '.afterglow-data'), 'models');
}

/** Builds (or verifies) the given models in `testModelsDir()`; synchronous, seconds on first run. */
export function ensureTestModels(ids: readonly EmbeddingModelId[] = ['mobilenet_v2', 'inception_v3']): BuiltModel[] {
  return buildModels({ modelsDir: testModelsDir(), models: ids });
}

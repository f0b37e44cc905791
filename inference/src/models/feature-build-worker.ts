/** Worker thread entry: builds the feature models (see ./feature-models.ts, ../features/featurizer.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { buildFeatureModels, type FeatureModelId } from './feature-models.js';

const { modelsDir, ids } = workerData as { modelsDir: string; ids: FeatureModelId[] };
try {
  buildFeatureModels({ modelsDir, models: ids });
  parentPort?.postMessage({ ok: true });
} catch (err) {
  parentPort?.postMessage({ ok: false, error: (err as Error).message });
}

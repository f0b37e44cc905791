/** Worker thread entry: builds one model (see ./ensure.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { buildModels } from './build.js';
import type { EmbeddingModelId } from './types.js';

const { modelsDir, id } = workerData as { modelsDir: string; id: EmbeddingModelId };
try {
  buildModels({ modelsDir, models: [id] });
  parentPort?.postMessage({ ok: true });
} catch (err) {
  parentPort?.postMessage({ ok: false, error: (err as Error).message });
}

/**
 * Prediction through onnxruntime in worker threads (the shared TensorPool of ../models), with
 * dynamic batching: rows are queued per model version and, whenever fewer than `workers` runs are in
 * flight, up to `batchRows` rows of the version whose oldest row waited longest go out as one run.
 * So concurrent scorings (an asset's original, its variants, its occlusion cells, other assets)
 * share onnxruntime calls, a lone row never waits for a batch to fill, and the caller's event loop
 * never runs inference.
 */
import { TensorPool } from '../models/tensor-pool.js';
import { TREE_INPUT, TREE_OUTPUT } from '../predict/onnx-trees.js';

export interface PredictorOptions {
  workers: number;
  /** Rows per onnxruntime call, at most. */
  batchRows: number;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  intraOpThreads: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface ModelRef {
  version: string;
  onnxPath: string;
  nFeatures: number;
  /** Outputs per row (bag members). */
  members: number;
}

interface Item {
  row: Float32Array;
  at: number;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

export class Predictor {
  private readonly pool: TensorPool;
  private readonly queues = new Map<string, { model: ModelRef; items: Item[] }>();
  private inflight = 0;
  private closed = false;
  calls = 0;
  rows = 0;

  constructor(private readonly options: PredictorOptions) {
    this.pool = new TensorPool({ workers: options.workers, executionProvider: options.executionProvider, intraOpThreads: options.intraOpThreads, log: options.log ?? (() => {}) });
  }

  get executionProvider(): 'cpu' | 'cuda' | undefined {
    return this.pool.executionProvider;
  }

  /** Per row, in order: the bag members' predictions (target space). */
  predict(model: ModelRef, rows: readonly Float32Array[]): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new Error('predictor is closed'));
    for (const r of rows) if (r.length !== model.nFeatures) return Promise.reject(new Error(`model ${model.version} expects ${model.nFeatures} features, got ${r.length}`));
    const key = `${model.version}\0${model.onnxPath}`;
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = { model, items: [] }));
    const queue = q;
    const out = rows.map((row) => new Promise<Float32Array>((resolve, reject) => queue.items.push({ row, at: performance.now(), resolve, reject })));
    this.pump();
    return Promise.all(out);
  }

  private pump(): void {
    while (this.inflight < Math.max(1, this.options.workers)) {
      let best: { model: ModelRef; items: Item[] } | undefined;
      for (const q of this.queues.values()) if (q.items.length && (!best || q.items[0]!.at < best.items[0]!.at)) best = q;
      if (!best) return;
      const { model } = best;
      const items = best.items.splice(0, this.options.batchRows);
      const f = model.nFeatures;
      const data = new Float32Array(items.length * f);
      items.forEach((it, i) => data.set(it.row, i * f));
      this.inflight++;
      this.calls++;
      this.rows += items.length;
      this.pool
        .run(`predict:${model.version}`, model.onnxPath, { [TREE_INPUT]: { type: 'float32', data, dims: [items.length, f] } }, [TREE_OUTPUT])
        .then(
          (out) => {
            const k = model.members;
            const scores = out[TREE_OUTPUT]?.data;
            if (!scores || scores.length !== items.length * k) throw new Error(`prediction returned ${scores?.length} values for ${items.length} rows x ${k} members`);
            items.forEach((it, i) => it.resolve(scores.slice(i * k, (i + 1) * k)));
          },
          (err: Error) => {
            throw new Error(`prediction failed: ${err.message}`);
          },
        )
        .catch((err: Error) => {
          for (const it of items) it.reject(err);
        })
        .finally(() => {
          this.inflight--;
          this.pump();
        });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('predictor is closed');
    for (const q of this.queues.values()) for (const it of q.items.splice(0)) it.reject(err);
    await this.pool.close();
  }
}

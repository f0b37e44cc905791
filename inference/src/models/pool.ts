/**
 * A small pool of onnxruntime worker threads (./ort-worker.ts) with dynamic batching: images are
 * queued per model, and whenever a worker is idle it takes up to `batchSize` queued images of the
 * model whose oldest image has waited longest. Concurrent callers therefore share batches, a lone
 * image never waits for a batch to fill, and inference never runs on the caller's event loop.
 *
 * Workers are unref'd while idle, so a process that forgets `close()` can still exit.
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from './ensure.js';
import { ModelError } from './types.js';

export interface PoolModel {
  id: string;
  path: string;
  inputName: string;
  outputName: string;
  /** [width, height]. */
  inputSize: [number, number];
  dims: number;
  /** Power normalization before L2 (1 = none). */
  power: number;
}

export interface PoolOptions {
  workers: number;
  batchSize: number;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  intraOpThreads: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

interface Item {
  pixels: Uint8Array;
  enqueuedAt: number;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  inflight: Map<number, { items: Item[]; model: PoolModel }>;
}

export class OrtPool {
  private readonly slots: Slot[] = [];
  private readonly queues = new Map<string, { model: PoolModel; items: Item[] }>();
  private nextId = 1;
  private closed = false;
  /** Worker deaths since a batch last succeeded: past a few, the pool gives up instead of respawning forever. */
  private crashes = 0;
  private broken: Error | undefined;
  private readonly logged = new Set<string>();
  /** Execution provider reported by the first session loaded. */
  executionProvider: 'cpu' | 'cuda' | undefined;
  batches = 0;
  images = 0;

  constructor(private readonly options: PoolOptions) {
    for (let i = 0; i < Math.max(1, options.workers); i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = moduleWorker('ort-worker', { name: 'afterglow-ort' });
    worker.unref();
    const slot: Slot = { worker, busy: false, inflight: new Map() };
    worker.postMessage({ type: 'init', executionProvider: this.options.executionProvider, intraOpThreads: this.options.intraOpThreads });
    worker.on('message', (m: { type: string; id?: number; ep?: 'cpu' | 'cuda'; message?: string; embeddings?: Float32Array }) => {
      if (m.type === 'log') {
        // Every worker decides alike: say it once.
        if (!this.logged.has(m.message ?? '')) {
          this.logged.add(m.message ?? '');
          this.options.log(m.message ?? '');
        }
        return;
      }
      if (m.type === 'loaded') {
        if (!this.executionProvider) {
          this.executionProvider = m.ep;
          this.options.log(`onnxruntime execution provider: ${m.ep} (requested ${this.options.executionProvider})`, { executionProvider: m.ep });
        }
        return;
      }
      const job = m.id !== undefined ? slot.inflight.get(m.id) : undefined;
      if (!job) return;
      slot.inflight.delete(m.id!);
      if (m.type === 'result' && m.embeddings) {
        this.crashes = 0;
        const d = job.model.dims;
        job.items.forEach((it, i) => it.resolve(m.embeddings!.slice(i * d, (i + 1) * d)));
      } else {
        const err = new ModelError(`inference failed (${job.model.id}): ${m.message ?? 'unknown error'}`);
        for (const it of job.items) it.reject(err);
      }
      this.idle(slot);
    });
    const fail = (err: Error) => {
      for (const job of slot.inflight.values()) for (const it of job.items) it.reject(new ModelError(`inference worker died: ${err.message}`));
      slot.inflight.clear();
      const i = this.slots.indexOf(slot);
      if (i < 0 || this.closed) return;
      if (++this.crashes > 3) {
        this.broken = new ModelError(`inference workers keep dying (last: ${err.message})`);
        this.options.log(this.broken.message);
        this.slots.splice(i, 1);
        for (const q of this.queues.values()) for (const it of q.items.splice(0)) it.reject(this.broken);
        void slot.worker.terminate();
        return;
      }
      this.slots[i] = this.spawn();
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed && this.slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    return slot;
  }

  private idle(slot: Slot): void {
    slot.busy = false;
    slot.worker.unref();
    this.pump();
  }

  run(model: PoolModel, pixels: Uint8Array): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new ModelError('embedder is closed'));
    if (this.broken) return Promise.reject(this.broken);
    const [w, h] = model.inputSize;
    if (pixels.byteLength !== w * h * 3) return Promise.reject(new ModelError(`expected ${w}x${h}x3 pixels, got ${pixels.byteLength} bytes`));
    return new Promise((resolve, reject) => {
      let q = this.queues.get(model.id);
      if (!q) {
        q = { model, items: [] };
        this.queues.set(model.id, q);
      }
      q.items.push({ pixels, enqueuedAt: performance.now(), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.busy) continue;
      // The model whose head item has waited longest.
      let best: { model: PoolModel; items: Item[] } | undefined;
      for (const q of this.queues.values()) if (q.items.length && (!best || q.items[0]!.enqueuedAt < best.items[0]!.enqueuedAt)) best = q;
      if (!best) return;
      const items = best.items.splice(0, this.options.batchSize);
      this.dispatch(slot, best.model, items);
    }
  }

  private dispatch(slot: Slot, model: PoolModel, items: Item[]): void {
    slot.busy = true;
    slot.worker.ref();
    const [w, h] = model.inputSize;
    const per = w * h * 3;
    const pixels = new Uint8Array(items.length * per);
    items.forEach((it, i) => pixels.set(it.pixels, i * per));
    const id = this.nextId++;
    slot.inflight.set(id, { items, model });
    this.batches++;
    this.images += items.length;
    slot.worker.postMessage(
      { type: 'run', id, model: model.id, path: model.path, inputName: model.inputName, outputName: model.outputName, n: items.length, h, w, dims: model.dims, power: model.power, pixels },
      [pixels.buffer],
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new ModelError('embedder is closed');
    for (const q of this.queues.values()) for (const it of q.items.splice(0)) it.reject(err);
    for (const slot of this.slots) for (const job of slot.inflight.values()) for (const it of job.items) it.reject(err);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

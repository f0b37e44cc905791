/**
 * A small pool of onnxruntime worker threads (./ort-worker.ts) with dynamic batching: images are
 * queued per model, and whenever a worker is idle it takes up to `batchSize` queued images of the
 * model whose oldest image has waited longest. Concurrent callers therefore share batches, a lone
 * image never waits for a batch to fill, and inference never runs on the caller's event loop.
 *
 * Workers are unref'd while idle, so a process that forgets `close()` can still exit.
 */
import type { Worker } from 'node:worker_threads';
import { ModelError } from './types.js';
import { OrtWorkerPool, type OrtWorkerOptions } from './worker-pool.js';

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

export interface PoolOptions extends OrtWorkerOptions {
  batchSize: number;
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

type Message = { type: string; id?: number; ep?: 'cpu' | 'cuda'; message?: string; embeddings?: Float32Array };

export class OrtPool extends OrtWorkerPool<Slot, Message> {
  private readonly queues = new Map<string, { model: PoolModel; items: Item[] }>();
  private nextId = 1;
  /** Set once workers keep dying: every later run is refused with it. */
  private broken: Error | undefined;
  batches = 0;
  images = 0;

  constructor(private readonly options: PoolOptions) {
    super('ort-worker', 'afterglow-ort', 'inference', options);
    this.start();
  }

  protected newSlot(worker: Worker): Slot {
    return { worker, busy: false, inflight: new Map() };
  }

  protected override onFirstLoaded(ep: 'cpu' | 'cuda'): void {
    this.options.log(`onnxruntime execution provider: ${ep} (requested ${this.options.executionProvider})`, { executionProvider: ep });
  }

  protected onJobMessage(slot: Slot, m: Message): void {
    const job = m.id !== undefined ? slot.inflight.get(m.id) : undefined;
    if (!job) return;
    slot.inflight.delete(m.id!);
    if (m.type === 'result' && m.embeddings) {
      this.succeeded();
      const d = job.model.dims;
      job.items.forEach((it, i) => it.resolve(m.embeddings!.slice(i * d, (i + 1) * d)));
    } else {
      const err = new ModelError(`inference failed (${job.model.id}): ${m.message ?? 'unknown error'}`);
      for (const it of job.items) it.reject(err);
    }
    this.idle(slot);
  }

  protected failJobs(slot: Slot, err: ModelError): void {
    for (const job of slot.inflight.values()) for (const it of job.items) it.reject(err);
    slot.inflight.clear();
  }

  protected gaveUp(slot: Slot, err: ModelError): void {
    this.broken = err;
    this.options.log(err.message);
    for (const q of this.queues.values()) for (const it of q.items.splice(0)) it.reject(err);
    void slot.worker.terminate();
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

  protected pump(): void {
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

/**
 * A pool of ./tensor-worker.ts threads: jobs (one model run on named tensors, already batched by the
 * caller) are queued and handed to the next idle worker, so onnxruntime never blocks the caller's
 * event loop. Workers are unref'd while idle; `close()` terminates them.
 */
import type { Worker } from 'node:worker_threads';
import type { WireTensor } from './tensor-worker.js';
import { ModelError } from './types.js';
import { OrtWorkerPool, type OrtWorkerOptions } from './worker-pool.js';

export type { WireTensor };

export type TensorPoolOptions = OrtWorkerOptions;

export interface TensorOutput {
  data: Float32Array;
  dims: number[];
}

interface Job {
  model: string;
  path: string;
  feeds: Record<string, WireTensor>;
  outputs: string[];
  resolve: (v: Record<string, TensorOutput>) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job: (Job & { id: number }) | undefined;
  started: number;
}

type Message = { type: string; id?: number; ep?: 'cpu' | 'cuda'; message?: string; outputs?: Record<string, TensorOutput> };

export class TensorPool extends OrtWorkerPool<Slot, Message> {
  private readonly queue: Job[] = [];
  private nextId = 1;
  runs = 0;
  /** Wall milliseconds spent in worker runs, per model (queue wait excluded). */
  readonly msByModel = new Map<string, { runs: number; ms: number; items: number }>();

  constructor(options: TensorPoolOptions) {
    super('tensor-worker', 'afterglow-features', 'feature model', options);
    this.start();
  }

  protected newSlot(worker: Worker): Slot {
    return { worker, job: undefined, started: 0 };
  }

  protected onJobMessage(slot: Slot, m: Message): void {
    const job = slot.job;
    if (!job || job.id !== m.id) return;
    slot.job = undefined;
    const stat = this.msByModel.get(job.model) ?? { runs: 0, ms: 0, items: 0 };
    stat.runs++;
    stat.ms += performance.now() - slot.started;
    const first = Object.values(job.feeds)[0];
    stat.items += first?.dims[0] ?? 1;
    this.msByModel.set(job.model, stat);
    if (m.type === 'result' && m.outputs) {
      this.succeeded();
      job.resolve(m.outputs);
    } else job.reject(new ModelError(`inference failed (${job.model}): ${m.message ?? 'unknown error'}`));
    slot.worker.unref();
    this.pump();
  }

  protected failJobs(slot: Slot, err: ModelError): void {
    slot.job?.reject(err);
    slot.job = undefined;
  }

  protected gaveUp(_slot: Slot, err: ModelError): void {
    if (this.slots.length === 0) for (const j of this.queue.splice(0)) j.reject(err);
  }

  /** Runs one model on named inputs; resolves with the requested outputs (float32). */
  run(model: string, path: string, feeds: Record<string, WireTensor>, outputs: string[]): Promise<Record<string, TensorOutput>> {
    if (this.closed) return Promise.reject(new ModelError('feature models are closed'));
    if (this.slots.length === 0) return Promise.reject(new ModelError('feature model workers are broken'));
    return new Promise((resolve, reject) => {
      this.queue.push({ model, path, feeds, outputs, resolve, reject });
      this.pump();
    });
  }

  protected pump(): void {
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      const id = this.nextId++;
      slot.job = { ...job, id };
      this.runs++;
      slot.worker.ref();
      slot.started = performance.now();
      const transfer = Object.values(job.feeds).map((t) => t.data.buffer as ArrayBuffer);
      slot.worker.postMessage({ type: 'run', id, model: job.model, path: job.path, feeds: job.feeds, outputs: job.outputs }, transfer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new ModelError('feature models are closed');
    for (const j of this.queue.splice(0)) j.reject(err);
    for (const s of this.slots) s.job?.reject(err);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

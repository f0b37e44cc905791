/**
 * Worker threads for edits and measurements (./anvil-worker.ts): jobs go to the least busy worker;
 * the caller's event loop only posts messages. Workers are unref'd while idle.
 */
import type { Worker } from 'node:worker_threads';
import type { EditSpec } from '../edits/index.js';
import type { AssetAnalysis, AssetFeatures, RawImage } from '../features/types.js';
import { moduleWorker } from '../models/ensure.js';

export interface MeasuredVariant {
  element: string;
  edit: string;
  analysis: AssetAnalysis;
  named: Record<string, number>;
  words: string[];
  image?: RawImage;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

export class AnvilPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(workers: number) {
    for (let i = 0; i < Math.max(1, workers); i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = moduleWorker('../predict/anvil-worker', { name: 'afterglow-anvil' });
    worker.unref();
    const slot: Slot = { worker, jobs: new Map() };
    worker.on('message', (m: { id: number; ok: boolean; message?: string }) => {
      const job = slot.jobs.get(m.id);
      if (!job) return;
      slot.jobs.delete(m.id);
      if (slot.jobs.size === 0) worker.unref();
      if (m.ok) job.resolve(m);
      else job.reject(new Error(m.message ?? 'edit/measure failed'));
    });
    const fail = (err: Error) => {
      for (const j of slot.jobs.values()) j.reject(new Error(`anvil worker died: ${err.message}`));
      slot.jobs.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed && this.slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    return slot;
  }

  private call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('anvil pool is closed'));
    const slot = this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      slot.jobs.set(id, { resolve: resolve as (v: unknown) => void, reject });
      slot.worker.ref();
      slot.worker.postMessage({ ...msg, id });
    });
  }

  async measure(image: RawImage, analysis: AssetAnalysis, source: { width: number; height: number }): Promise<{ named: Record<string, number>; words: string[]; dominant: AssetFeatures['dominantColors'] }> {
    const m = await this.call<{ named: Record<string, number>; words: string[]; dominant: AssetFeatures['dominantColors'] }>({ op: 'measure', image, analysis, source });
    return { named: m.named, words: m.words, dominant: m.dominant };
  }

  async variants(image: RawImage, analysis: AssetAnalysis, source: { width: number; height: number }, specs: readonly EditSpec[], images: boolean): Promise<MeasuredVariant[]> {
    const r = await this.call<{ variants: MeasuredVariant[] }>({ op: 'variants', image, analysis, source, specs, images });
    return r.variants;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.slots) for (const j of s.jobs.values()) j.reject(new Error('anvil pool is closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

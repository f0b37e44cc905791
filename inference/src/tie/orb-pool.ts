/**
 * Worker threads for the keypoint and dense verification work (OpenCV.js is synchronous and CPU-bound): a fixed pool, a FIFO
 * queue, one task per idle worker. Workers are unref'd so a forgotten pool does not keep a process
 * alive; `close()` terminates them.
 */
import type { Worker } from 'node:worker_threads';
import { scriptWorker, siblingModuleUrl } from '../models/ensure.js';
import type { DenseParams, Thumb } from './dense.js';
import type { Features, MatchResult, OrbParams } from './orb.js';

interface Pending {
  msg: Record<string, unknown>;
  transfer: ArrayBuffer[];
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | undefined;
}

/** Starts a sibling module as a worker, from dist (.js) or from sources under tsx (.ts). */
export function siblingWorker(name: string): Worker {
  return scriptWorker(siblingModuleUrl(name, import.meta.url));
}

export class OrbPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(workers: number) {
    for (let i = 0; i < Math.max(1, workers); i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  private spawn(): Slot {
    const worker = siblingWorker('orb-worker');
    worker.unref();
    const slot: Slot = { worker, busy: undefined };
    worker.on('message', (m: { ok: boolean; result?: unknown; error?: string }) => {
      const p = slot.busy;
      slot.busy = undefined;
      worker.unref();
      if (p) {
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(m.error ?? 'orb worker failed'));
      }
      this.pump();
    });
    worker.on('error', (err) => {
      const p = slot.busy;
      slot.busy = undefined;
      p?.reject(err);
      // Replace the dead worker and go on with the queue.
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) {
        this.slots[i] = this.spawn();
        this.pump();
      }
    });
    return slot;
  }

  private run<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.closed) return Promise.reject(new Error('orb pool is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ msg, transfer, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.busy) continue;
      const p = this.queue.shift()!;
      slot.busy = p;
      slot.worker.ref();
      const msg = { ...p.msg, id: this.nextId++ };
      try {
        slot.worker.postMessage(msg, p.transfer);
      } catch {
        // Node 22+ refuses to transfer an ArrayBuffer it cannot detach (sharp's output buffers are
        // external memory): send a copy instead. Anything else that fails fails the task, not the pool.
        try {
          slot.worker.postMessage(msg);
        } catch (err) {
          slot.busy = undefined;
          slot.worker.unref();
          p.reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    }
  }

  /** ORB features of a greyscale image (and of its mirror image when `flip`). The buffer is transferred. */
  features(gray: Uint8Array, width: number, height: number, params: OrbParams, flip: boolean): Promise<{ features: Features; flipped: Features | undefined }> {
    const own = gray.byteOffset === 0 && gray.byteLength === gray.buffer.byteLength ? gray : gray.slice();
    return this.run({ type: 'features', gray: own, width, height, params, flip }, [own.buffer as ArrayBuffer]);
  }

  /**
   * Matches an ad against candidate masters (one result per master, in order). With `adGray` instead
   * of `adFlipped`, the worker describes the flipped ad only if the flip is tried (copied, not transferred).
   */
  match(ad: Features, adFlipped: Features | undefined, masters: Features[], params: OrbParams, adGray?: { gray: Uint8Array; width: number; height: number }): Promise<MatchResult[]> {
    return this.run({ type: 'match', ad, adFlipped, masters, params, ...(adGray ? { adGray } : {}) });
  }

  /** Dense verification scores of candidate masters for an ad (./dense.ts `denseScores`; one per master, in order). Copied, not transferred. */
  dense(ad: Thumb, masters: readonly Thumb[], params: DenseParams, mirrored?: boolean): Promise<Float32Array> {
    return this.run({ type: 'dense', ad, masters, params, ...(mirrored !== undefined ? { mirrored } : {}) });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('orb pool closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

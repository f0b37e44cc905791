/**
 * What the onnxruntime worker pools (./pool.ts for the embedder, ./tensor-pool.ts for the feature
 * models) share: each worker is started with an init message; its log lines are said once per pool;
 * the first session loaded records the execution provider; a worker that dies (error or exit) fails
 * the jobs it held and is replaced, until more than a few die without a success in between, when the
 * pool stops replacing it (`gaveUp`) instead of respawning forever.
 */
import type { Worker } from 'node:worker_threads';
import { moduleWorker } from './ensure.js';
import { ModelError } from './types.js';

export interface OrtWorkerOptions {
  workers: number;
  executionProvider: 'auto' | 'cpu' | 'cuda';
  intraOpThreads: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface WorkerMessage {
  type: string;
  id?: number;
  ep?: 'cpu' | 'cuda';
  message?: string;
}

export abstract class OrtWorkerPool<S extends { worker: Worker }, M extends WorkerMessage> {
  protected readonly slots: S[] = [];
  protected closed = false;
  /** Worker deaths since a job last succeeded. */
  private crashes = 0;
  private readonly logged = new Set<string>();
  /** Execution provider reported by the first session loaded. */
  executionProvider: 'cpu' | 'cuda' | undefined;

  /** `script`: the worker module's name beside this file; `label` names the workers in errors. */
  constructor(
    private readonly script: string,
    private readonly threadName: string,
    private readonly label: string,
    private readonly workerOptions: OrtWorkerOptions,
  ) {}

  /** Starts the workers: call at the end of the subclass's constructor. */
  protected start(): void {
    for (let i = 0; i < Math.max(1, this.workerOptions.workers); i++) this.slots.push(this.spawn());
  }

  protected abstract newSlot(worker: Worker): S;
  /** A job's result or error message from the worker of `slot`. */
  protected abstract onJobMessage(slot: S, m: M): void;
  /** Rejects (with `err`) and forgets the jobs `slot` held. */
  protected abstract failJobs(slot: S, err: ModelError): void;
  /** Called once the dead `slot` has been removed for good (too many deaths in a row). */
  protected abstract gaveUp(slot: S, err: ModelError): void;
  /** Hands queued work to idle workers. */
  protected abstract pump(): void;
  /** Called when the first session reports its execution provider. */
  protected onFirstLoaded(_ep: 'cpu' | 'cuda'): void {}

  /** A job succeeded: worker deaths before it no longer count towards giving up. */
  protected succeeded(): void {
    this.crashes = 0;
  }

  private spawn(): S {
    const worker = moduleWorker(this.script, { name: this.threadName });
    worker.unref();
    const slot = this.newSlot(worker);
    worker.postMessage({ type: 'init', executionProvider: this.workerOptions.executionProvider, intraOpThreads: this.workerOptions.intraOpThreads });
    worker.on('message', (m: M) => {
      if (m.type === 'log') {
        // Every worker decides alike: say it once.
        if (!this.logged.has(m.message ?? '')) {
          this.logged.add(m.message ?? '');
          this.workerOptions.log(m.message ?? '');
        }
        return;
      }
      if (m.type === 'loaded') {
        if (!this.executionProvider) {
          this.executionProvider = m.ep;
          if (m.ep) this.onFirstLoaded(m.ep);
        }
        return;
      }
      this.onJobMessage(slot, m);
    });
    const fail = (err: Error) => {
      this.failJobs(slot, new ModelError(`${this.label} worker died: ${err.message}`));
      const i = this.slots.indexOf(slot);
      if (i < 0 || this.closed) return;
      if (++this.crashes > 3) {
        this.slots.splice(i, 1);
        this.gaveUp(slot, new ModelError(`${this.label} workers keep dying (last: ${err.message})`));
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
}

/**
 * onnxruntime session loading shared by the inference worker threads (./ort-worker.ts,
 * ./tensor-worker.ts): their message loop (`serveRuns`), the execution provider choice (CUDA when
 * requested or, for 'auto', when its library is installed and a session loads on it; else CPU,
 * decided once per worker) and one cached session per key, retried after a failed load.
 */
import { readFile } from 'node:fs/promises';
import type { MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { cudaProviderInstalled } from './cuda.js';
import { pruneToOutputs } from './onnx-prune.js';

export type RequestedEp = 'auto' | 'cpu' | 'cuda';
export interface LoadedSession {
  session: ort.InferenceSession;
  ep: 'cpu' | 'cuda';
}

export class SessionLoader {
  private ep: RequestedEp = 'auto';
  private intraOpThreads = 1;
  private readonly sessions = new Map<string, Promise<LoadedSession>>();

  /** `post` receives { type: 'loaded', model, ep } once per session and { type: 'log', message } diagnostics. */
  constructor(private readonly post: (msg: { type: 'loaded'; model: string; ep: 'cpu' | 'cuda' } | { type: 'log'; message: string }) => void) {}

  init(executionProvider: RequestedEp, intraOpThreads: number): void {
    this.ep = executionProvider;
    this.intraOpThreads = Math.max(1, intraOpThreads);
  }

  /**
   * The session for `key` (loading `file` the first time), reported as `model`. With `outputs`, the
   * graph is pruned to them first (./onnx-prune.ts): onnxruntime would otherwise run every node.
   */
  get(key: string, model: string, file: string, outputs?: readonly string[]): Promise<LoadedSession> {
    let s = this.sessions.get(key);
    if (!s) {
      const source = outputs ? readFile(file).then((bytes) => pruneToOutputs(bytes, outputs).bytes) : Promise.resolve(file);
      s = source.then((src) => this.load(src)).then((l) => {
        this.post({ type: 'loaded', model, ep: l.ep });
        return l;
      });
      this.sessions.set(key, s);
      // A failed load is retried by the next run.
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  private create(file: string | Uint8Array, provider: 'cpu' | 'cuda'): Promise<ort.InferenceSession> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: provider === 'cuda' ? [{ name: 'cuda', deviceId: 0 } as ort.InferenceSession.ExecutionProviderConfig] : ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: this.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    };
    // Two calls: create's overloads take a path or bytes, not their union.
    return typeof file === 'string' ? ort.InferenceSession.create(file, options) : ort.InferenceSession.create(file, options);
  }

  private async load(file: string | Uint8Array): Promise<LoadedSession> {
    if (this.ep === 'cpu') return { session: await this.create(file, 'cpu'), ep: 'cpu' };
    const cuda = cudaProviderInstalled();
    let why = `libonnxruntime_providers_cuda is not installed in ${cuda.dir ?? 'onnxruntime-node'}`;
    if (cuda.installed) {
      try {
        return { session: await this.create(file, 'cuda'), ep: 'cuda' };
      } catch (err) {
        why = (err as Error).message.split('\n')[0] ?? 'unknown error';
      }
    }
    if (this.ep === 'cuda') throw new Error(`INFERENCE_EXECUTION_PROVIDER=cuda but the CUDA execution provider is unavailable: ${why}`);
    // 'auto': decide once per worker.
    this.ep = 'cpu';
    this.post({ type: 'log', message: `CUDA execution provider unavailable (${why}); using CPU` });
    return { session: await this.create(file, 'cpu'), ep: 'cpu' };
  }
}

/**
 * The message loop of an onnxruntime worker thread: `{ type: 'init', executionProvider,
 * intraOpThreads }` configures the sessions; every other message is a run, answered with
 * `{ type: 'result', id, ...reply }` (its `transfer` buffers moved) or `{ type: 'error', id, message }`.
 */
export function serveRuns<R extends { type: 'run'; id: number }>(
  port: MessagePort,
  run: (msg: R, sessions: SessionLoader) => Promise<{ reply: Record<string, unknown>; transfer: ArrayBuffer[] }>,
): void {
  const sessions = new SessionLoader((m) => port.postMessage(m));
  port.on('message', (msg: R | { type: 'init'; executionProvider: RequestedEp; intraOpThreads: number }) => {
    if (msg.type === 'init') {
      sessions.init(msg.executionProvider, msg.intraOpThreads);
      return;
    }
    void (async () => {
      try {
        const { reply, transfer } = await run(msg, sessions);
        port.postMessage({ type: 'result', id: msg.id, ...reply }, transfer);
      } catch (err) {
        port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message });
      }
    })();
  });
}

/**
 * Worker thread that owns onnxruntime sessions: onnxruntime-node's `run` does its work on the calling
 * thread's side of the addon and can hold it for the length of a batch, so it lives here, never on a
 * role's event loop. Messages (see ./pool.ts):
 *
 *   init  { type: 'init', executionProvider, intraOpThreads }
 *   run   { type: 'run', id, model, path, inputName, outputName, n, h, w, dims, power, pixels (uint8 NHWC) }
 *         -> { type: 'result', id, embeddings (n*dims: sign(x)|x|^power, then L2-normalized) } | { type: 'error', id, message }
 *   and, once per model session created: { type: 'loaded', model, ep }; diagnostics: { type: 'log', message }
 */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

type Ep = 'auto' | 'cpu' | 'cuda';
interface Loaded {
  session: ort.InferenceSession;
  inputName: string;
  outputName: string;
  ep: 'cpu' | 'cuda';
}

type Msg =
  | { type: 'init'; executionProvider: Ep; intraOpThreads: number }
  | { type: 'run'; id: number; model: string; path: string; inputName: string; outputName: string; n: number; h: number; w: number; dims: number; power: number; pixels: Uint8Array };

const port = parentPort;
if (!port) throw new Error('ort-worker must run in a worker thread');

let ep: Ep = 'auto';
let intraOpThreads = 1;
const sessions = new Map<string, Promise<Loaded>>();

async function createSession(path: string, provider: 'cpu' | 'cuda'): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, {
    executionProviders: provider === 'cuda' ? [{ name: 'cuda', deviceId: 0 } as ort.InferenceSession.ExecutionProviderConfig] : ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
}

/**
 * Where onnxruntime-node keeps its native libraries, and whether the CUDA provider library is among
 * them: it is not bundled in the npm package (its install script fetches it from NuGet, which our
 * installs skip), so without it trying CUDA only prints a native error before falling back.
 */
export function cudaProviderInstalled(): { installed: boolean; dir: string | undefined } {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    const bin = path.join(path.dirname(entry), '..', 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = path.join(bin, napi, process.platform, process.arch);
      if (existsSync(path.join(dir, 'onnxruntime_binding.node'))) {
        const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
        return { installed: existsSync(path.join(dir, lib)), dir };
      }
    }
  } catch {
    /* fall through */
  }
  return { installed: false, dir: undefined };
}

async function load(file: string, inputName: string, outputName: string): Promise<Loaded> {
  if (ep === 'cpu') return { session: await createSession(file, 'cpu'), inputName, outputName, ep: 'cpu' };
  const cuda = cudaProviderInstalled();
  let why: string;
  if (cuda.installed) {
    try {
      return { session: await createSession(file, 'cuda'), inputName, outputName, ep: 'cuda' };
    } catch (err) {
      why = (err as Error).message.split('\n')[0] ?? 'unknown error';
    }
  } else {
    why = `libonnxruntime_providers_cuda is not installed in ${cuda.dir ?? 'onnxruntime-node'}`;
  }
  if (ep === 'cuda') throw new Error(`INFERENCE_EXECUTION_PROVIDER=cuda but the CUDA execution provider is unavailable: ${why}`);
  // 'auto': decide once per worker.
  ep = 'cpu';
  port!.postMessage({ type: 'log', message: `CUDA execution provider unavailable (${why}); using CPU` });
  return { session: await createSession(file, 'cpu'), inputName, outputName, ep: 'cpu' };
}

function session(model: string, path: string, inputName: string, outputName: string): Promise<Loaded> {
  let s = sessions.get(model);
  if (!s) {
    s = load(path, inputName, outputName).then((l) => {
      port!.postMessage({ type: 'loaded', model, ep: l.ep });
      return l;
    });
    sessions.set(model, s);
    // A failed load is retried by the next batch.
    s.catch(() => sessions.delete(model));
  }
  return s;
}

/** Power normalization (x -> sign(x)|x|^p; p = 0.5 is the signed square root) then L2, per row. */
export function postprocess(raw: Float32Array, n: number, dims: number, power: number): Float32Array {
  const emb = new Float32Array(n * dims);
  for (let i = 0; i < n; i++) {
    const off = i * dims;
    let ss = 0;
    for (let j = 0; j < dims; j++) {
      const x = raw[off + j]!;
      const y = power === 1 ? x : power === 0.5 ? Math.sign(x) * Math.sqrt(Math.abs(x)) : Math.sign(x) * Math.abs(x) ** power;
      emb[off + j] = y;
      ss += y * y;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let j = 0; j < dims; j++) emb[off + j]! *= inv;
  }
  return emb;
}

port.on('message', (msg: Msg) => {
  void handle(msg);
});

async function handle(msg: Msg): Promise<void> {
  if (msg.type === 'init') {
    ep = msg.executionProvider;
    intraOpThreads = Math.max(1, msg.intraOpThreads);
    return;
  }
  try {
    const s = await session(msg.model, msg.path, msg.inputName, msg.outputName);
    const input = new ort.Tensor('uint8', msg.pixels, [msg.n, msg.h, msg.w, 3]);
    const out = await s.session.run({ [s.inputName]: input });
    const t = out[s.outputName];
    if (!t || t.dims.length !== 2 || t.dims[0] !== msg.n || t.dims[1] !== msg.dims) {
      throw new Error(`model ${msg.model} returned ${JSON.stringify(t?.dims)} for ${msg.n}x${msg.dims}`);
    }
    const emb = postprocess(t.data as Float32Array, msg.n, msg.dims, msg.power);
    for (const v of Object.values(out)) v.dispose?.();
    port!.postMessage({ type: 'result', id: msg.id, embeddings: emb }, [emb.buffer as ArrayBuffer]);
  } catch (err) {
    port!.postMessage({ type: 'error', id: msg.id, message: (err as Error).message });
  }
}

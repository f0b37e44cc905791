/**
 * Worker thread that owns onnxruntime sessions: onnxruntime-node's `run` does its work on the calling
 * thread's side of the addon and can hold it for the length of a batch, so it lives here, never on a
 * role's event loop. Messages (see ./pool.ts):
 *
 *   init  { type: 'init', executionProvider, intraOpThreads }
 *   run   { type: 'run', id, model, path, inputName, outputName (the one output fetched), n, h, w, dims, power, pixels (uint8 NHWC) }
 *         -> { type: 'result', id, embeddings (n*dims: sign(x)|x|^power, then L2-normalized) } | { type: 'error', id, message }
 *   and, once per model session created: { type: 'loaded', model, ep }; diagnostics: { type: 'log', message }
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { cudaProviderInstalled } from './cuda.js';
import { serveRuns } from './ort-session.js';

export { cudaProviderInstalled };

type RunMsg = { type: 'run'; id: number; model: string; path: string; inputName: string; outputName: string; n: number; h: number; w: number; dims: number; power: number; pixels: Uint8Array };

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

if (!parentPort) throw new Error('ort-worker must run in a worker thread');

serveRuns<RunMsg>(parentPort, async (msg, sessions) => {
  // One session per model output (e.g. embedding, descriptor), its graph pruned to that output.
  const { session } = await sessions.get(`${msg.path}#${msg.outputName}`, msg.model, msg.path, [msg.outputName]);
  const input = new ort.Tensor('uint8', msg.pixels, [msg.n, msg.h, msg.w, 3]);
  // One output per call (a model may have several, e.g. embedding and descriptor).
  const out = await session.run({ [msg.inputName]: input }, [msg.outputName]);
  const t = out[msg.outputName];
  if (t?.dims.length !== 2 || t.dims[0] !== msg.n || t.dims[1] !== msg.dims) {
    throw new Error(`model ${msg.model} returned ${JSON.stringify(t?.dims)} for ${msg.n}x${msg.dims}`);
  }
  const emb = postprocess(t.data as Float32Array, msg.n, msg.dims, msg.power);
  for (const v of Object.values(out)) v.dispose?.();
  return { reply: { embeddings: emb }, transfer: [emb.buffer as ArrayBuffer] };
});

/**
 * Worker thread running arbitrary onnxruntime sessions on named input tensors (the feature models:
 * PP-OCR detection/recognition, ISNet segmentation). Like ./ort-worker.ts for the embedder, inference
 * never runs on a role's event loop. Messages (see ./tensor-pool.ts):
 *
 *   init  { type: 'init', executionProvider, intraOpThreads }
 *   run   { type: 'run', id, model, path, feeds: { name: { type, data, dims } }, outputs: [name] }
 *         -> { type: 'result', id, outputs: { name: { data, dims } } } | { type: 'error', id, message }
 *   once per session: { type: 'loaded', model, ep }; diagnostics: { type: 'log', message }
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { serveRuns } from './ort-session.js';

export interface WireTensor {
  type: 'float32' | 'uint8' | 'int64';
  data: Float32Array | Uint8Array | BigInt64Array;
  dims: number[];
}
type RunMsg = { type: 'run'; id: number; model: string; path: string; feeds: Record<string, WireTensor>; outputs: string[] };

if (!parentPort) throw new Error('tensor-worker must run in a worker thread');

serveRuns<RunMsg>(parentPort, async (msg, sessions) => {
  const { session: s } = await sessions.get(msg.model, msg.model, msg.path);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
  const out = await s.run(feeds, msg.outputs);
  const outputs: Record<string, { data: Float32Array; dims: number[] }> = {};
  const transfer: ArrayBuffer[] = [];
  for (const name of msg.outputs) {
    const t = out[name];
    if (!t) throw new Error(`model ${msg.model} has no output ${name}`);
    const data = (t.data as Float32Array).slice();
    outputs[name] = { data, dims: [...t.dims] };
    transfer.push(data.buffer as ArrayBuffer);
  }
  for (const v of Object.values(out)) v.dispose?.();
  return { reply: { outputs }, transfer };
});

/**
 * Worker thread of ./orb-pool.ts: one OpenCV.js instance, ORB feature extraction and matching.
 * Messages in: { id, type: 'features' | 'match', ... }; out: { id, ok, result | error }.
 */
import { parentPort } from 'node:worker_threads';
import { denseScores, type DenseParams, type Thumb } from './dense.js';
import { extractFeatures, flipGrayX, loadCv, matchAd, type Features, type OrbParams } from './orb.js';

interface FeaturesTask {
  id: number;
  type: 'features';
  gray: Uint8Array;
  width: number;
  height: number;
  flip: boolean;
  params: OrbParams;
}

interface MatchTask {
  id: number;
  type: 'match';
  ad: Features;
  adFlipped: Features | undefined;
  /** The ad's grey image: its flipped description is computed here, only if the flip is tried. */
  adGray?: { gray: Uint8Array; width: number; height: number };
  masters: Features[];
  params: OrbParams;
}

interface DenseTask {
  id: number;
  type: 'dense';
  ad: Thumb;
  masters: Thumb[];
  params: DenseParams;
  mirrored?: boolean;
}

const port = parentPort;
if (!port) throw new Error('orb-worker must run in a worker thread');
const cvReady = loadCv();

port.on('message', (task: FeaturesTask | MatchTask | DenseTask) => {
  cvReady.then(
    (cv) => {
      try {
        if (task.type === 'features') {
          const features = extractFeatures(cv, task.gray, task.width, task.height, task.params);
          const flipped = task.flip ? extractFeatures(cv, flipGrayX(task.gray, task.width, task.height), task.width, task.height, task.params) : undefined;
          const transfer = [features.xy.buffer, features.desc.buffer, ...(flipped ? [flipped.xy.buffer, flipped.desc.buffer] : [])] as ArrayBuffer[];
          port.postMessage({ id: task.id, ok: true, result: { features, flipped } }, transfer);
        } else if (task.type === 'dense') {
          const scores = denseScores(cv, task.ad, task.masters, task.params, task.mirrored);
          port.postMessage({ id: task.id, ok: true, result: scores }, [scores.buffer as ArrayBuffer]);
        } else {
          const g = task.adGray;
          const flipped = task.adFlipped ?? (g ? () => extractFeatures(cv, flipGrayX(g.gray, g.width, g.height), g.width, g.height, task.params) : undefined);
          const results = matchAd(cv, task.ad, flipped, task.masters, task.params);
          port.postMessage({ id: task.id, ok: true, result: results });
        }
      } catch (err) {
        // An Emscripten abort (this OpenCV.js build turns every C++ exception into one) leaves the wasm
        // instance corrupt: a few more and every call fails ("memory access out of bounds"). Die instead:
        // the pool rejects the task with this error and starts a fresh worker.
        if (err instanceof Error && err.name === 'RuntimeError') throw err; // WebAssembly.RuntimeError
        port.postMessage({ id: task.id, ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    },
    (err: unknown) => port.postMessage({ id: task.id, ok: false, error: `OpenCV.js failed to load: ${err instanceof Error ? err.message : String(err)}` }),
  );
});

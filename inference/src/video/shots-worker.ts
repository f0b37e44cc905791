/** Worker thread: shot boundaries of one video's frames (the CPU part of an analysis, off the event loop). */
import { parentPort, workerData } from 'node:worker_threads';
import { detectShots } from './shots.js';

interface Job {
  width: number;
  height: number;
  fps: number;
  minShotS?: number;
  pixels: Uint8Array;
}

const job = workerData as Job;
const frameBytes = job.width * job.height * 3;
const frames = Array.from({ length: Math.floor(job.pixels.byteLength / frameBytes) }, (_, i) => job.pixels.subarray(i * frameBytes, (i + 1) * frameBytes));
parentPort!.postMessage(detectShots({ width: job.width, height: job.height, frames }, { fps: job.fps, ...(job.minShotS !== undefined ? { minShotS: job.minShotS } : {}) }));

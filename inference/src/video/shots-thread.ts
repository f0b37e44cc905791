/**
 * detectShots in a worker thread: for a three-minute video the features and distances of every frame
 * take a good part of a second, which the event loop (HTTP, the bus) must not wait for. The frames go
 * over by transfer (one buffer, no copy); one short-lived worker per analysis (analyses are few at once).
 */
import { scriptWorker, siblingModuleUrl } from '../models/ensure.js';
import type { Shot, ShotOptions } from './shots.js';

export function detectShotsInWorker(input: { width: number; height: number; pixels: Uint8Array }, options: ShotOptions): Promise<Shot[]> {
  // The worker owns the pixels from here on: a copy when they are a view of a larger buffer.
  const pixels = input.pixels.byteOffset === 0 && input.pixels.byteLength === input.pixels.buffer.byteLength ? input.pixels : input.pixels.slice();
  const worker = scriptWorker(siblingModuleUrl('shots-worker', import.meta.url), {
    workerData: { width: input.width, height: input.height, fps: options.fps, minShotS: options.minShotS, pixels },
    transferList: [pixels.buffer as ArrayBuffer],
    name: 'afterglow-shots',
  });
  return new Promise<Shot[]>((resolve, reject) => {
    let done = false;
    worker.once('message', (shots: Shot[]) => {
      done = true;
      resolve(shots);
      void worker.terminate();
    });
    worker.once('error', (err) => {
      done = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!done) reject(new Error(`the shot detection worker exited with code ${code}`));
    });
  });
}

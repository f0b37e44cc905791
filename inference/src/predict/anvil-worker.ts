/**
 * Worker thread for the pixel work of scoring: applying element edits (../edits) and measuring
 * features (../features measure: colour statistics, k-means dominant colours, mask statistics) are
 * plain JavaScript loops over pixels that would hold the role's event loop for tens of milliseconds
 * per image. Messages (see ./anvil-pool.ts):
 *
 *   { id, op: 'measure', image, analysis, source }               -> { id, ok, named, words, dominant }
 *   { id, op: 'variants', image, analysis, source, specs, images } -> { id, ok, variants: [{ element, edit, analysis, named, words, image? }] }
 */
import { parentPort } from 'node:worker_threads';
import { generateVariants, type EditSpec } from '../edits/index.js';
import { measure } from '../features/featurizer.js';
import type { AssetAnalysis, RawImage } from '../features/types.js';

type Msg =
  | { id: number; op: 'measure'; image: RawImage; analysis: AssetAnalysis; source: { width: number; height: number } }
  | { id: number; op: 'variants'; image: RawImage; analysis: AssetAnalysis; source: { width: number; height: number }; specs: EditSpec[]; images: boolean };

const port = parentPort;
if (!port) throw new Error('anvil-worker must run in a worker thread');

port.on('message', (msg: Msg) => {
  void (async () => {
    try {
      if (msg.op === 'measure') {
        const m = await measure(msg.image, msg.analysis, msg.source);
        port.postMessage({ id: msg.id, ok: true, named: m.named, words: m.words, dominant: m.dominant });
        return;
      }
      const variants = await generateVariants(msg.image, msg.analysis, msg.specs);
      const out = [];
      const transfer: ArrayBuffer[] = [];
      for (const v of variants) {
        const m = await measure(v.image, v.analysis, msg.source);
        out.push({ element: v.element, edit: v.edit, analysis: v.analysis, named: m.named, words: m.words, ...(msg.images ? { image: v.image } : {}) });
        if (msg.images) transfer.push(v.image.data.buffer as ArrayBuffer);
      }
      port.postMessage({ id: msg.id, ok: true, variants: out }, transfer);
    } catch (err) {
      port.postMessage({ id: msg.id, ok: false, message: (err as Error).message });
    }
  })();
});

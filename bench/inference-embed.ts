/**
 * bench/inference-embed: image embedding throughput on this machine's CPU, per model and batch size.
 * Prints figures; asserts nothing about speed. `--short` is the CI mode (well under 60 s).
 *
 *   node bench/dist/inference-embed.js [--short] [--images N] [--batches 1,8,32] [--models mobilenet_v2,inception_v3]
 *
 * For each model and batch size two figures:
 *   - inference: an onnxruntime-node session alone (intra-op threads = cores) on ready 224/299
 *     pixels, batch-sized calls (what the model costs);
 *   - end-to-end: `embedder.embed` on encoded photos (sharp probe + decode + resize + blur, worker
 *     inference, power + L2 normalization), cache off, INFERENCE_BATCH_SIZE = the batch size.
 * Photos: the Debian python3-skimage sample photos when present (see test/kit/src/images.ts),
 * else generated 1024x768 JPEGs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { buildModels, createEmbedder, loadManifest, MODEL_IDS, runtimeSpec, type EmbeddingModelId } from '@afterglow/inference';
import { findSamplePhotos, testModelsDir } from '@afterglow/testkit/inference';
import { availableCores } from '@afterglow/core';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};

const SHORT = flag('short');
const IMAGES = Number(opt('images') ?? (SHORT ? 32 : 128));
const BATCHES = (opt('batches') ?? '1,8,32').split(',').map(Number);
const MODELS = (opt('models')?.split(',') ?? [...MODEL_IDS]) as EmbeddingModelId[];
const cores = availableCores();

async function photos(): Promise<Buffer[]> {
  const found = findSamplePhotos().map((p) => readFileSync(p.path));
  if (found.length) return found;
  const out: Buffer[] = [];
  for (let k = 0; k < 8; k++) {
    const w = 1024;
    const h = 768;
    const px = Buffer.alloc(w * h * 3);
    let s = k + 1;
    for (let i = 0; i < px.length; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      px[i] = (((i / 3) % w) / 4 + k * 30 + ((s >>> 26) & 15)) & 255;
    }
    out.push(await sharp(px, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer());
  }
  return out;
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

async function main(): Promise<void> {
  const modelsDir = testModelsDir();
  const t0 = performance.now();
  const built = buildModels({ modelsDir, models: MODELS });
  const buildMs = performance.now() - t0;
  const srcs = await photos();
  // Distinct inputs (no cache effects): a different crop of a photo for each image.
  const inputs = (n: number, salt: number) =>
    Array.from({ length: n }, (_, i) => ({ bytes: srcs[i % srcs.length]!, crop: { left: (i + salt) % 17, top: (i * 7 + salt) % 13, width: 10_000, height: 10_000 } }));

  console.log(`\n== bench/inference-embed (${SHORT ? 'short' : 'full'}): ${cores} CPU cores, ${IMAGES} images per figure, ${srcs.length} source photos`);
  console.log(`   models ${built.map((b) => `${b.id} ${b.built ? 'built' : 'present'}`).join(', ')} in ${Math.round(buildMs)} ms (${modelsDir})`);
  console.log('   model          batch   inference img/s (ms/batch)   end-to-end img/s (mean batch)');
  const manifest = loadManifest();
  for (const model of MODELS) {
    const spec = runtimeSpec(model);
    const session = await ort.InferenceSession.create(path.join(modelsDir, manifest.models[model].file), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: cores,
    });
    for (const batch of BATCHES) {
      const emb = await createEmbedder({ modelsDir, executionProvider: 'cpu', workers: 1, intraOpThreads: cores, batchSize: batch, cacheMaxBytes: 0, log: () => {} });
      try {
        // Warm-up: session creation and first-run allocations are not throughput.
        await emb.embed(inputs(Math.min(batch, 4), 99), model);

        // Inference alone: ready pixels, batch-sized calls, one at a time (after one warm-up call).
        const [w, h] = spec.inputSize;
        const pixels = new Uint8Array(batch * w * h * 3);
        for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 31) & 255;
        const feed = { [manifest.models[model].onnx.input.name]: new ort.Tensor('uint8', pixels, [batch, h, w, 3]) };
        await session.run(feed);
        const calls = Math.max(1, Math.round(IMAGES / batch));
        const a0 = performance.now();
        for (let c = 0; c < calls; c++) await session.run(feed);
        const ti = performance.now() - a0;
        const inferRate = ((calls * batch) / ti) * 1000;
        const msPerBatch = ti / calls;

        // End to end on encoded photos.
        const e0 = emb.inferenceStats();
        const a = performance.now();
        await emb.embed(inputs(IMAGES, batch), model);
        const te = performance.now() - a;
        const e1 = emb.inferenceStats();
        const meanBatch = (e1.images - e0.images) / (e1.batches - e0.batches);
        console.log(
          `   ${model.padEnd(14)} ${String(batch).padStart(5)}   ${fmt(inferRate).padStart(9)} (${msPerBatch.toFixed(0).padStart(5)} ms)` +
            `            ${fmt((IMAGES / te) * 1000).padStart(9)} (${meanBatch.toFixed(1)})`,
        );
      } finally {
        await emb.close();
      }
    }
    await session.release();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * The embedder on real photos (Debian python3-skimage sample data): unit norm, determinism (across
 * batch compositions and the cache), raw/crop inputs, near-duplicates (resized, cropped, re-encoded
 * copies) closer than unrelated photos for both models, typed refusals, and the event loop staying
 * free while a batch runs in the worker.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { findSamplePhotos, photosOrSkip, shootGroup } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { cudaProviderInstalled } from './cuda.js';
import { createEmbedder, embedCacheKey } from './embedder.js';
import { decodeImage } from './image.js';
import { ImageRejectedError, type Embedder, type EmbeddingModelId } from './types.js';

const MODELS: EmbeddingModelId[] = ['mobilenet_v2', 'inception_v3'];
const quiet = () => {};

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Ad-like copies of a photo: downscaled + JPEG q60; centre crop 80% + JPEG; brighter, crop 90%, WebP. */
async function nearDuplicates(src: Buffer): Promise<Buffer[]> {
  const m = await sharp(src).metadata();
  const w = m.width!;
  const h = m.height!;
  return Promise.all([
    sharp(src).resize(Math.round(w * 0.5)).jpeg({ quality: 60 }).toBuffer(),
    sharp(src)
      .extract({ left: Math.round(w * 0.1), top: Math.round(h * 0.1), width: Math.round(w * 0.8), height: Math.round(h * 0.8) })
      .jpeg({ quality: 80 })
      .toBuffer(),
    sharp(src)
      .extract({ left: Math.round(w * 0.05), top: 0, width: Math.round(w * 0.9), height: Math.round(h * 0.9) })
      .modulate({ brightness: 1.15 })
      .webp({ quality: 70 })
      .toBuffer(),
  ]);
}

describe('embedder', () => {
  let emb: Embedder;
  before(async () => {
    ensureTestModels();
    emb = await createEmbedder({ modelsDir: testModelsDir(), executionProvider: 'auto', workers: 1, batchSize: 8, cacheMaxBytes: 8 * 1024 * 1024, log: quiet });
  });
  after(async () => {
    await emb?.close();
  });

  it('returns unit-norm vectors of the manifest dims, deterministically, whatever the batch', async (t) => {
    const photos = photosOrSkip(t, 3);
    if (!photos) return;
    const bytes = photos.slice(0, 3).map((p) => readFileSync(p.path));
    for (const model of MODELS) {
      const a = await emb.embed(bytes, model, { noCache: true });
      const b = await emb.embed([bytes[2]!], model, { noCache: true }); // alone, different batch
      const c = await emb.embed(bytes, model); // through the cache (miss then stored)
      const d = await emb.embed(bytes, model); // cache hit
      assert.equal(a.length, 3);
      for (const v of a) {
        assert.equal(v.length, emb.dims[model]);
        assert.ok(Math.abs(Math.sqrt(dot(v, v)) - 1) < 1e-5, `${model}: norm ${Math.sqrt(dot(v, v))}`);
        assert.ok(v.every((x) => Number.isFinite(x)));
      }
      // Batch composition must not change a result beyond float noise.
      assert.ok(1 - dot(a[2]!, b[0]!) < 1e-6, `${model}: batch of 3 vs 1 differ (cos ${dot(a[2]!, b[0]!)})`);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(c[i], d[i]);
        assert.ok(1 - dot(a[i]!, c[i]!) < 1e-6);
      }
    }
    assert.ok(emb.cacheStats().hits >= 6, JSON.stringify(emb.cacheStats()));
    // 'auto' picks CUDA exactly when its provider library is installed and a GPU is there, else the CPU.
    const cudaExpected = cudaProviderInstalled().installed && existsSync('/dev/nvidiactl');
    assert.equal(emb.executionProvider, cudaExpected ? 'cuda' : 'cpu');
  });

  it("serves the manifest's descriptor output (unit norm, its own width and cache entries; refused for a model without one)", async (t) => {
    const photos = photosOrSkip(t, 2);
    if (!photos) return;
    const bytes = photos.slice(0, 2).map((p) => readFileSync(p.path));
    const [d1, d2] = await emb.embed(bytes, 'mobilenet_v2', { output: 'descriptor' });
    const [e1] = await emb.embed([bytes[0]!], 'mobilenet_v2');
    assert.equal(d1!.length, 576);
    assert.equal(e1!.length, emb.dims.mobilenet_v2);
    assert.ok(Math.abs(Math.sqrt(dot(d1!, d1!)) - 1) < 1e-5);
    assert.ok(d1!.every((x) => x >= 0), 'pooled ReLU6 maps are non-negative');
    assert.ok(dot(d1!, d2!) < 0.999, 'two photos must not describe alike');
    const [again] = await emb.embed([bytes[0]!], 'mobilenet_v2', { output: 'descriptor', noCache: true });
    assert.ok(1 - dot(d1!, again!) < 1e-6, 'batched and alone agree');
    assert.notEqual(embedCacheKey(bytes[0]!, 'mobilenet_v2', 'fill', 'descriptor'), embedCacheKey(bytes[0]!, 'mobilenet_v2', 'fill'));
    await assert.rejects(emb.embed([bytes[0]!], 'inception_v3', { output: 'descriptor' }), /no descriptor output/);
  });

  it('embeds crops of raw decoded pixels like crops of the encoded bytes', async (t) => {
    const photos = photosOrSkip(t, 1);
    if (!photos) return;
    const bytes = readFileSync(photos[0]!.path);
    const raw = await decodeImage(bytes);
    const crop = { left: 0, top: 0, width: Math.floor(raw.width / 2), height: raw.height };
    const [fromBytes, fromRaw, whole] = await emb.embed([{ bytes, crop }, { raw, crop }, bytes], 'mobilenet_v2', { noCache: true });
    assert.ok(dot(fromBytes!, fromRaw!) > 0.999, `cos ${dot(fromBytes!, fromRaw!)}`);
    assert.ok(dot(fromBytes!, whole!) < 0.999, 'a half crop should not embed like the whole image');
    // Cache keys tell crops apart and honour a caller-provided key for raw pixels.
    assert.notEqual(embedCacheKey({ bytes, crop }, 'mobilenet_v2', 'fill'), embedCacheKey(bytes, 'mobilenet_v2', 'fill'));
    assert.equal(embedCacheKey({ raw, crop, key: 'abc' }, 'mobilenet_v2', 'fill'), `mobilenet_v2:fill:k:abc@0,0,${crop.width},${crop.height}`);
  });

  it('embeds a mirrored crop like the mirrored image, under its own cache key', async (t) => {
    const photos = photosOrSkip(t, 1);
    if (!photos) return;
    const bytes = readFileSync(photos[0]!.path);
    const raw = await decodeImage(bytes);
    const crop = { left: 0, top: 0, width: Math.floor(raw.width * 0.6), height: raw.height };
    const flopped = await sharp(bytes).autoOrient().extract(crop).flop().png().toBuffer();
    const [mirrored, ofFlopped, plain] = await emb.embed([{ raw, crop, mirror: true }, flopped, { raw, crop }], 'mobilenet_v2', { output: 'descriptor', noCache: true });
    assert.ok(dot(mirrored!, ofFlopped!) > 0.995, `mirrored crop vs flopped image: cos ${dot(mirrored!, ofFlopped!)}`);
    assert.ok(dot(mirrored!, plain!) < dot(mirrored!, ofFlopped!), 'mirroring changes the descriptor (CNN features are not mirror-invariant)');
    assert.notEqual(embedCacheKey({ raw, crop, key: 'abc', mirror: true }, 'mobilenet_v2', 'fill'), embedCacheKey({ raw, crop, key: 'abc' }, 'mobilenet_v2', 'fill'));
  });

  for (const model of MODELS) {
    it(`${model}: near-duplicates (resized, cropped, re-encoded) are closer than unrelated photos`, async (t) => {
      const photos = photosOrSkip(t, 5);
      if (!photos) return;
      const originals = photos.map((p) => readFileSync(p.path));
      const base = await emb.embed(originals, model);
      let worstMargin = Infinity;
      let rank1 = 0;
      let total = 0;
      for (let i = 0; i < originals.length; i++) {
        const copies = await emb.embed(await nearDuplicates(originals[i]!), model);
        for (const q of copies) {
          const own = dot(q, base[i]!);
          let bestOther = -1;
          let other = '';
          for (let j = 0; j < base.length; j++) {
            if (shootGroup(photos[j]!) === shootGroup(photos[i]!)) continue; // same scene (stereo pair)
            const s = dot(q, base[j]!);
            if (s > bestOther) {
              bestOther = s;
              other = photos[j]!.id;
            }
          }
          total++;
          if (own > bestOther) rank1++;
          worstMargin = Math.min(worstMargin, own - bestOther);
          assert.ok(own > bestOther, `${model}: copy of ${photos[i]!.id} is closer to ${other} (${bestOther.toFixed(3)}) than to its original (${own.toFixed(3)})`);
        }
      }
      t.diagnostic(`${model}: ${rank1}/${total} copies nearest to their original over ${photos.length} photos; worst cosine margin ${worstMargin.toFixed(3)}`);
    });
  }

  it('refuses hostile inputs with typed errors, per input with embedSettled', async () => {
    const good = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#336699' } }).png().toBuffer();
    const settled = await emb.embedSettled([good, Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), good.subarray(0, 40)], 'mobilenet_v2');
    assert.equal(settled[0]!.ok, true);
    assert.equal(settled[1]!.ok, false);
    assert.equal(settled[2]!.ok, false);
    const e1 = (settled[1] as { error: Error }).error;
    assert.ok(e1 instanceof ImageRejectedError && e1.reason === 'unknown_format', String(e1));
    const e2 = (settled[2] as { error: Error }).error;
    assert.ok(e2 instanceof ImageRejectedError && (e2.reason === 'truncated' || e2.reason === 'corrupt'), String(e2));
    await assert.rejects(emb.embed([good, Buffer.alloc(0)], 'mobilenet_v2'), (err: unknown) => err instanceof ImageRejectedError && err.reason === 'empty');
    await assert.rejects(emb.embed([good], 'resnet' as EmbeddingModelId), /unknown model/);
  });

  it('keeps the event loop free while inference runs in the worker', async (t) => {
    const photos = findSamplePhotos();
    const srcs = photos.length ? photos.slice(0, 4).map((p) => readFileSync(p.path)) : [await sharp({ create: { width: 640, height: 480, channels: 3, background: '#808080' } }).jpeg().toBuffer()];
    // 32 distinct inputs (noCache), InceptionV3: seconds of CPU in the worker.
    const inputs = Array.from({ length: 32 }, (_, i) => ({ bytes: srcs[i % srcs.length]!, crop: { left: i, top: i, width: 200, height: 200 } }));
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const t0 = performance.now();
    await emb.embed(inputs, 'inception_v3', { noCache: true });
    const ms = performance.now() - t0;
    h.disable();
    const maxLag = h.max / 1e6;
    t.diagnostic(`32 InceptionV3 embeddings in ${Math.round(ms)} ms; event-loop delay max ${maxLag.toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms`);
    // Inference on this thread would block for whole batches (~1 s+); decode and hashing stay small.
    assert.ok(maxLag < Math.max(150, ms / 8), `event loop blocked for ${maxLag.toFixed(1)} ms`);
  });
});

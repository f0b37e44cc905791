/**
 * The conversion is checked against the source of truth: the same nsfwjs TF.js layers model run by
 * @tensorflow/tfjs (pure-JS CPU backend), cut at the same layer, on the same real photos. ONNX
 * (onnxruntime-node) must agree within the manifest's tolerance (1e-4 absolute).
 *
 * TF.js on its JS CPU backend is slow: ~1.3 s per MobileNetV2 image, ~20 s per InceptionV3 image on
 * 2 cores. CI runs 2 photos through MobileNetV2 and 1 through InceptionV3;
 * AFTERGLOW_PARITY_IMAGES=N runs N photos through both.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, before } from 'node:test';
import * as ort from 'onnxruntime-node';
import type * as TF from '@tensorflow/tfjs';
import { photosOrSkip } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { buildModels, isModelVerified, packageDir, sha256Hex } from './build.js';
import { ensureModel } from './ensure.js';
import { DEFAULT_IMAGE_LIMITS, preprocess } from './image.js';
import { loadManifest, runtimeSpec } from './manifest.js';
import { parseModelBundle, parseShardBundle } from './tfjs-format.js';
import { ModelError, type EmbeddingModelId } from './types.js';

const manifest = loadManifest();

/**
 * TF.js reference: the model cut at the embedding layer, or (with `descriptorLayers`) the manifest's
 * descriptor computed from those layers' outputs: global average pool, signed sqrt, L2, concatenated.
 */
async function tfjsEmbeddings(id: EmbeddingModelId, pixels: Uint8Array[], size: [number, number], descriptorLayers?: readonly string[]): Promise<Float32Array[]> {
  const tf = await import('@tensorflow/tfjs');
  tf.env().set('PROD', true); // no "install tfjs-node" banner
  await tf.setBackend('cpu');
  const spec = manifest.models[id];
  const dir = path.join(packageDir(spec.source.package), spec.source.dir);
  const modelFile = Object.keys(spec.source.files).find((f) => f.startsWith('model'))!;
  const json = parseModelBundle(readFileSync(path.join(dir, modelFile), 'utf8'), modelFile);
  const shards = json.weightsManifest.flatMap((g) => g.paths).map((p) => parseShardBundle(readFileSync(path.join(dir, `${p}.min.js`), 'latin1'), p));
  const all = new Uint8Array(shards.reduce((n, s) => n + s.byteLength, 0));
  let at = 0;
  for (const s of shards) {
    all.set(s, at);
    at += s.byteLength;
  }
  const full = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology as unknown as object,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights) as unknown as TF.io.WeightsManifestEntry[],
      weightData: all.buffer,
    }),
  );
  const layers = descriptorLayers ?? [spec.source.embeddingLayer];
  const cut = tf.model({ inputs: full.inputs, outputs: layers.map((l) => full.getLayer(l).output as TF.SymbolicTensor) });
  const [w, h] = size;
  const out: Float32Array[] = [];
  for (const px of pixels) {
    // Exactly nsfwjs's preprocessing of an already-sized image: float(x) / 255.
    const y = tf.tidy(() => {
      const r = cut.predict(tf.tensor4d(px, [1, h, w, 3], 'int32').toFloat().div(255));
      const maps = Array.isArray(r) ? r : [r];
      if (!descriptorLayers) return maps[0]!;
      const parts = maps.map((m) => {
        const pooled = m.mean([1, 2]); // NHWC global average pool -> [1, C]
        const p = pooled.sign().mul(pooled.abs().sqrt());
        return p.div(p.norm(2, 1, true).maximum(1e-12));
      });
      return tf.concat(parts, 1);
    });
    out.push(Float32Array.from(await y.data()));
    y.dispose();
  }
  full.dispose();
  return out;
}

async function onnxEmbeddings(id: EmbeddingModelId, pixels: Uint8Array[], size: [number, number], output?: { name: string; dims: number }): Promise<Float32Array[]> {
  const spec = manifest.models[id];
  const out = output ?? { name: spec.onnx.output.name, dims: spec.dims };
  const session = await ort.InferenceSession.create(path.join(testModelsDir(), spec.file), { executionProviders: ['cpu'] });
  const [w, h] = size;
  const batch = new Uint8Array(pixels.length * w * h * 3);
  pixels.forEach((p, i) => batch.set(p, i * w * h * 3));
  const res = await session.run({ [spec.onnx.input.name]: new ort.Tensor('uint8', batch, [pixels.length, h, w, 3]) }, [out.name]);
  const data = res[out.name]!.data as Float32Array;
  await session.release();
  return pixels.map((_, i) => data.slice(i * out.dims, (i + 1) * out.dims));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('model conversion (nsfwjs TF.js -> ONNX)', () => {
  before(() => {
    ensureTestModels();
  });

  it('builds idempotently with the manifest checksums', () => {
    const again = buildModels({ modelsDir: testModelsDir() });
    for (const r of again) {
      assert.equal(r.built, false, `${r.id} should already be present`);
      assert.equal(r.sha256, manifest.models[r.id].onnx.sha256);
      assert.equal(sha256Hex(readFileSync(r.path)), manifest.models[r.id].onnx.sha256);
    }
  });

  it('rebuilds a corrupted model on first use (in a worker) and refuses sources that fail their checksum', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-models-'));
    try {
      const file = path.join(dir, manifest.models.mobilenet_v2.file);
      copyFileSync(path.join(testModelsDir(), manifest.models.mobilenet_v2.file), file);
      assert.equal(isModelVerified(dir, 'mobilenet_v2'), true);
      const bytes = readFileSync(file);
      bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
      writeFileSync(file, bytes);
      assert.equal(isModelVerified(dir, 'mobilenet_v2'), false, 'a flipped byte must fail verification (stamp invalidated by size/mtime)');
      await assert.rejects(ensureModel(dir, 'mobilenet_v2', { buildIfMissing: false }), ModelError);
      assert.equal(await ensureModel(dir, 'mobilenet_v2', { log: () => {} }), file);
      assert.equal(sha256Hex(readFileSync(file)), manifest.models.mobilenet_v2.onnx.sha256);

      // A manifest pinning different source bytes: the build refuses to convert.
      const bad = JSON.parse(readFileSync(path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../models.manifest.json'), 'utf8'));
      bad.models.mobilenet_v2.source.files['model.min.js'] = '0'.repeat(64);
      const badFile = path.join(dir, 'bad-manifest.json');
      writeFileSync(badFile, JSON.stringify(bad));
      assert.throws(() => buildModels({ modelsDir: dir, models: ['mobilenet_v2'], force: true, manifestFile: badFile }), /sha256 [0-9a-f]{64} != manifest 0{64}/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const n = Number(process.env.AFTERGLOW_PARITY_IMAGES ?? 0);
  for (const [id, count] of [
    ['mobilenet_v2', n || 2],
    ['inception_v3', n || 1],
  ] as const) {
    it(`${id}: ONNX matches TF.js within ${manifest.models[id].parity.maxAbsDiff} on ${count} real photo(s)`, async (t) => {
      const photos = photosOrSkip(t, count);
      if (!photos) return;
      const spec = runtimeSpec(id);
      const chosen = photos.slice(0, count);
      const pixels = await Promise.all(
        chosen.map((p) => preprocess(readFileSync(p.path), { size: spec.inputSize, fit: spec.fit, kernel: spec.kernel }, DEFAULT_IMAGE_LIMITS)),
      );
      const t0 = performance.now();
      const ref = await tfjsEmbeddings(id, pixels, spec.inputSize);
      const t1 = performance.now();
      const got = await onnxEmbeddings(id, pixels, spec.inputSize);
      const t2 = performance.now();
      let worst = 0;
      chosen.forEach((p, i) => {
        const d = maxAbsDiff(ref[i]!, got[i]!);
        worst = Math.max(worst, d);
        const mag = ref[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assert.ok(mag > 0.01, `${id} ${p.id}: reference embedding is degenerate (max ${mag})`);
        assert.ok(d <= manifest.models[id].parity.maxAbsDiff, `${id} ${p.id}: max |onnx - tfjs| = ${d}`);
      });
      t.diagnostic(`${id}: max |onnx - tfjs| = ${worst.toExponential(2)} over ${chosen.length} photo(s) x ${spec.dims} dims; tfjs ${Math.round(t1 - t0)} ms, onnx ${Math.round(t2 - t1)} ms`);
    });
  }

  for (const id of ['mobilenet_v2', 'inception_v3'] as const) {
    const d = manifest.models[id].descriptor;
    if (!d) continue;
    it(`${id}: the descriptor output (${d.layers.join(' + ')}) matches TF.js within ${manifest.models[id].parity.maxAbsDiff}`, async (t) => {
      const photos = photosOrSkip(t, n || 2);
      if (!photos) return;
      const spec = runtimeSpec(id);
      const chosen = photos.slice(0, n || 2);
      const pixels = await Promise.all(chosen.map((p) => preprocess(readFileSync(p.path), { size: spec.inputSize, fit: spec.fit, kernel: spec.kernel }, DEFAULT_IMAGE_LIMITS)));
      const ref = await tfjsEmbeddings(id, pixels, spec.inputSize, d.layers);
      const got = await onnxEmbeddings(id, pixels, spec.inputSize, { name: d.output, dims: d.dims });
      let worst = 0;
      chosen.forEach((p, i) => {
        assert.equal(got[i]!.length, d.dims);
        const diff = maxAbsDiff(ref[i]!, got[i]!);
        worst = Math.max(worst, diff);
        // Each layer's part is unit-norm: the whole has norm sqrt(layers).
        const norm = Math.sqrt(got[i]!.reduce((s, v) => s + v * v, 0));
        assert.ok(Math.abs(norm - Math.sqrt(d.layers.length)) < 1e-3, `${id} ${p.id}: descriptor norm ${norm}`);
        assert.ok(diff <= manifest.models[id].parity.maxAbsDiff, `${id} ${p.id}: descriptor max |onnx - tfjs| = ${diff}`);
      });
      t.diagnostic(`${id} descriptor: max |onnx - tfjs| = ${worst.toExponential(2)} over ${chosen.length} photo(s) x ${d.dims} dims`);
    });
  }
});

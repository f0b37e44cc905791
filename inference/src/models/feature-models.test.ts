/**
 * The feature models' builds: idempotent and checksum-pinned (a second build leaves verified files
 * alone; a corrupted file is rebuilt), and the TF.js-graph -> ONNX conversion of the people models
 * agrees with TF.js itself (`@tensorflow/tfjs`, CPU backend) on a real photo within the manifest's
 * tolerance.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { photosOrSkip } from '@afterglow/testkit/images';
import { buildFeatureModels, dataPackageDir, featureModelPath, isFeatureModelVerified, loadFeatureManifest } from './feature-models.js';
import { runModelsCommand } from './models-cli.js';
import type { TfjsGraphModelJson } from './tfjs-graph-to-onnx.js';

describe('feature models', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-feature-models-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('builds every model from its pinned package, idempotently, and rebuilds a corrupted one', () => {
    const first = buildFeatureModels({ modelsDir: dir });
    assert.deepEqual(first.map((r) => r.id), ['ocr_det', 'ocr_rec', 'isnet', 'face', 'person']);
    assert.ok(first.every((r) => r.built));
    const m = loadFeatureManifest();
    for (const r of first) assert.equal(r.sha256, m[r.id].onnx.sha256);
    const second = buildFeatureModels({ modelsDir: dir });
    assert.ok(second.every((r) => !r.built), 'second build leaves verified files alone');
    writeFileSync(featureModelPath(dir, 'face'), 'not a model');
    assert.equal(isFeatureModelVerified(dir, 'face'), false);
    const third = buildFeatureModels({ modelsDir: dir });
    assert.deepEqual(third.filter((r) => r.built).map((r) => r.id), ['face']);
    assert.equal(isFeatureModelVerified(dir, 'face'), true);
  });

  it('`afterglow models` lists them, builds them with --only, refuses unknown ids', async () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => {} };
    assert.equal(await runModelsCommand(['--list'], dir, io), 0);
    for (const id of ['ocr_det', 'ocr_rec', 'isnet', 'face', 'person']) assert.ok(out.some((l) => l.startsWith(`${id}\t`)), id);
    out.length = 0;
    assert.equal(await runModelsCommand(['--only', 'isnet,face'], dir, io), 0);
    assert.deepEqual(out.map((l) => l.split('\t').slice(0, 2).join(' ')), ['isnet present', 'face present']);
    assert.equal(await runModelsCommand(['--only', 'isnet,nope'], dir, io), 2);
  });

  it('converts the people models from TF.js graphs to ONNX matching TF.js', async (t) => {
    const photos = photosOrSkip(t, 1);
    if (!photos) return;
    await tf.setBackend('cpu');
    const m = loadFeatureManifest();
    const astronaut = photos.find((p) => p.id.endsWith('/astronaut.png')) ?? photos[0]!;
    const px = await sharp(astronaut.path).removeAlpha().resize(256, 256, { fit: 'fill' }).raw().toBuffer();
    for (const id of ['face', 'person'] as const) {
      const spec = m[id];
      const src = path.join(dataPackageDir(spec.source.package), spec.source.dir);
      const jsonFile = Object.keys(spec.source.files).find((f) => f.endsWith('.json'))!;
      const json = JSON.parse(readFileSync(path.join(src, jsonFile), 'utf8')) as TfjsGraphModelJson & { modelTopology: object };
      const bin = readFileSync(path.join(src, json.weightsManifest[0]!.paths[0]!));
      const ref = await tf.loadGraphModel(
        tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0]!.weights as tf.io.WeightsManifestEntry[], weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) }),
      );
      const x = Float32Array.from(px, (v) => (id === 'face' ? v / 127.5 - 1 : v / 255));
      const session = await ort.InferenceSession.create(featureModelPath(dir, id));
      const out = await session.run({ [spec.onnx.input.name]: new ort.Tensor('float32', x, [1, 256, 256, 3]) });
      const outputs = spec.graphOutputs!;
      const want = ref.execute(tf.tensor4d(x, [1, 256, 256, 3]), outputs.map((o) => o.node)) as tf.Tensor | tf.Tensor[];
      const wantList = Array.isArray(want) ? want : [want];
      outputs.forEach((o, k) => {
        const a = out[o.name]!.data as Float32Array;
        const b = wantList[k]!.dataSync();
        assert.equal(a.length, b.length, `${id}/${o.name} size`);
        let max = 0;
        // relative to the value's magnitude: BlazeFace emits logits and box offsets in the tens
        for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
        assert.ok(max <= spec.parity!.maxAbsDiff, `${id}/${o.name}: max |onnx - tfjs| / max(1, |tfjs|) = ${max}`);
      });
      ref.dispose();
      await session.release();
    }
  });
});

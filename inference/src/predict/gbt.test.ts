import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { mulberry32 } from '@afterglow/core';
import { matrix, predict, predictBag, predictMembers, regressionMetrics, trainBag, trainGbt } from './gbt.js';
import { gbtToOnnx } from './onnx-trees.js';
import { Predictor } from '../workers/predictor.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function data(n: number, seed: number, nan = false) {
  const r = mulberry32(seed);
  const rows: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = Array.from({ length: 8 }, () => r() * 4 - 2);
    if (nan && r() < 0.1) x[3] = Number.NaN;
    rows.push(x);
    y.push(Math.sin(x[0]!) + x[1]! * x[2]! + (Number.isNaN(x[3]!) ? 0.5 : 0) + 0.1 * (r() - 0.5));
  }
  return { x: matrix(rows), y };
}

test('boosted trees learn a non-linear function and generalise', () => {
  const tr = data(600, 1);
  const va = data(200, 2);
  const res = trainGbt(tr.x, tr.y, { params: { rounds: 400, maxDepth: 4 }, valid: { x: va.x, y: va.y } });
  const m = regressionMetrics(predict(res.model, va.x), va.y);
  assert.ok(m.r2 > 0.85, `validation R2 ${m.r2}`);
  assert.ok(res.bestRound > 50 && res.bestRound <= 400);
  // A constant target gives no splits and predicts the mean.
  const flat = trainGbt(tr.x, tr.y.map(() => 3), { params: { rounds: 5 } });
  assert.ok(flat.model.trees.every((t) => t.feature.length === 1));
  assert.ok(Math.abs(predict(flat.model, va.x)[0]! - 3) < 1e-6);
});

test('ONNX TreeEnsembleRegressor (onnxruntime) == JS trees within 1e-5, one output per bag member, NaN included', async () => {
  const tr = data(400, 3, true);
  const te = data(300, 4, true);
  const bag = trainBag(tr.x, tr.y, tr.y.map((_, i) => `g${i % 50}`), { members: 3, params: { rounds: 120, maxDepth: 5 } });
  const session = await ort.InferenceSession.create(gbtToOnnx(bag));
  const out = await session.run({ features: new ort.Tensor('float32', te.x.data, [te.x.rows, te.x.cols]) });
  const got = out.score!;
  assert.deepEqual(got.dims, [te.x.rows, 3]);
  const js = predictMembers(bag, te.x);
  let max = 0;
  for (let i = 0; i < te.x.rows; i++) for (let m = 0; m < 3; m++) max = Math.max(max, Math.abs((got.data as Float32Array)[i * 3 + m]! - js[m]![i]!));
  assert.ok(max <= 1e-5, `max |onnx - js| = ${max}`);
  // The members differ (bootstrap), the bag mean is their mean.
  assert.notDeepEqual(Array.from(js[0]!.slice(0, 5)), Array.from(js[1]!.slice(0, 5)));
  const mean = predictBag(bag, te.x);
  assert.ok(Math.abs(mean[0]! - (js[0]![0]! + js[1]![0]! + js[2]![0]!) / 3) < 1e-9);
  const r2 = regressionMetrics(mean, te.y).r2;
  assert.ok(r2 > 0.5, `bag R2 ${r2}`);
});

test('the predictor runs the model in worker threads and batches concurrent requests', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-predictor-'));
  const predictor = new Predictor({ workers: 1, batchRows: 64, executionProvider: 'cpu', intraOpThreads: 1 });
  try {
    const tr = data(300, 5);
    const bag = trainBag(tr.x, tr.y, tr.y.map((_, i) => String(i)), { members: 2, params: { rounds: 50 } });
    const file = path.join(dir, 'm.onnx');
    writeFileSync(file, gbtToOnnx(bag));
    const ref = { version: 'v1', onnxPath: file, nFeatures: 8, members: 2 };
    const rows = Array.from({ length: 200 }, (_, i) => tr.x.data.slice(i * 8, (i + 1) * 8));
    const parts = await Promise.all([predictor.predict(ref, rows.slice(0, 100)), predictor.predict(ref, rows.slice(100))]);
    const got = parts.flat();
    const js = predictMembers(bag, matrix(rows, 8));
    got.forEach((r, i) => r.forEach((v, m) => assert.ok(Math.abs(v - js[m]![i]!) <= 1e-5)));
    assert.ok(predictor.calls < 200, `rows were batched (${predictor.calls} onnxruntime calls for 200 rows)`);
    await assert.rejects(predictor.predict(ref, [new Float32Array(3)]), /expects 8 features/);
  } finally {
    await predictor.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('determinism: a seeded bag fit, its attribution aggregate and the light features (one at a time or all at once) repeat exactly', async () => {
  const tr = data(300, 5, true);
  const groups = Array.from({ length: 300 }, (_, i) => `g${i % 40}`);
  const fit = () => trainBag(tr.x, tr.y, groups, { members: 3, params: { rounds: 30, maxDepth: 3, seed: 4 } });
  assert.deepEqual(fit(), fit());
  const { aggregateAttribution } = await import('../attribution/anvil.js');
  const r = mulberry32(9);
  const per = Array.from({ length: 12 }, () => [{ element: 'subject', edit: 'recolor:red', delta: 0, ci_low: 0, ci_high: 0, n: 4, members: Array.from({ length: 4 }, () => r() - 0.3) }]);
  assert.deepEqual(aggregateAttribution(per), aggregateAttribution(per));
  // Measurements run in worker threads and interleave: the features must not depend on that order.
  const { default: sharp } = await import('sharp');
  const { lightFeatureProvider } = await import('./featurizer.js');
  const images = await Promise.all(
    Array.from({ length: 6 }, (_, k) => {
      const px = Buffer.alloc(96 * 64 * 3);
      const rr = mulberry32(100 + k);
      for (let i = 0; i < px.length; i++) px[i] = Math.floor(rr() * 256 * ((i % 3) + 1)) % 256;
      return sharp(px, { raw: { width: 96, height: 64, channels: 3 } }).png().toBuffer();
    }),
  );
  const provider = lightFeatureProvider({ workers: 2 });
  try {
    const together = await Promise.all(images.map((b) => provider.analyse(b)));
    const alone = [];
    for (const b of images.slice().reverse()) alone.unshift(await provider.analyse(b));
    assert.deepEqual(together.map((a) => a.features.named), alone.map((a) => a.features.named));
  } finally {
    await provider.close();
  }
});

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { query } from 'chdb';
import { Packr, isNativeAccelerationEnabled } from 'msgpackr';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

/**
 * The runtime the project brings (the pinned `node` dev dependency) and every native addon the
 * roles load, exercised on it: a Node upgrade that leaves an addon without a working binary fails
 * here rather than in a role at start-up.
 */

const require = createRequire(import.meta.url);

test('tests run on the Node the project pins (24 LTS), not an older system node', () => {
  const pinned = (require('../package.json') as { devDependencies: Record<string, string> }).devDependencies.node!;
  assert.equal(process.version, `v${pinned}`);
  assert.ok(Number(process.versions.node.split('.')[0]) >= 24);
});

test('sharp decodes and resizes with its prebuilt libvips', async () => {
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 40, b: 10 } } }).png().toBuffer();
  const { data, info } = await sharp(png).resize(16, 12).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [16, 12, 3]);
  assert.deepEqual([...data.subarray(0, 3)], [200, 40, 10]);
});

test('onnxruntime-node runs a model on the CPU provider', async () => {
  const { onnx } = onnxProto;
  const f32 = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: f32, shape: { dim: [{ dimValue: 3 }] } } } });
  const model = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 7,
      opsetImport: [{ domain: '', version: 13 }],
      graph: { name: 'relu', input: [vi('x')], output: [vi('y')], node: [{ opType: 'Relu', input: ['x'], output: ['y'] }] },
    }),
  ).finish();
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 0, 2]), [3]) });
  assert.deepEqual(Array.from(out.y!.data as Float32Array), [0, 0, 2]);
});

test('chDB (ClickHouse in-process) answers a query', () => {
  assert.equal(query('SELECT sum(number) FROM numbers(10)', 'CSV').trim(), '45');
});

test('msgpackr uses its native extension (msgpackr-extract)', () => {
  assert.equal(isNativeAccelerationEnabled, true);
  const packr = new Packr();
  const value = { asset_id: 'a1', kind: 'click', attrs: { s: 'x'.repeat(100) } };
  assert.deepEqual(packr.unpack(packr.pack(value)), value);
});

test('ws masks with bufferutil', () => {
  // ws takes bufferutil when it resolves (and Node has no built-in websocketMask yet).
  const bufferutil = require('bufferutil') as { mask: (s: Buffer, m: Buffer, o: Buffer, off: number, len: number) => void };
  const source = Buffer.alloc(64, 0xff);
  const output = Buffer.alloc(64);
  bufferutil.mask(source, Buffer.from([1, 2, 3, 4]), output, 0, 64);
  assert.deepEqual([...output.subarray(0, 4)], [0xfe, 0xfd, 0xfc, 0xfb]);
});

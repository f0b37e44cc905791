import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { pruneToOutputs } from './onnx-prune.js';
import { ModelError } from './types.js';

const { onnx } = onnxProto;

/** x -> Mul(w) -> Relu -> a;  x -> Neg -> Abs -> b  (w an initializer only `a` needs). */
function twoHeaded(): Uint8Array {
  const f32 = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: f32, shape: { dim: [{ dimValue: 4 }] } } } });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'two-headed',
      input: [vi('x')],
      output: [vi('a'), vi('b')],
      initializer: [{ name: 'w', dims: [4], dataType: f32, floatData: [1, -2, 3, -4] }],
      node: [
        { opType: 'Mul', input: ['x', 'w'], output: ['xw'], name: 'mul' },
        { opType: 'Relu', input: ['xw'], output: ['a'], name: 'relu' },
        { opType: 'Neg', input: ['x'], output: ['nx'], name: 'neg' },
        { opType: 'Abs', input: ['nx'], output: ['b'], name: 'abs' },
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

describe('pruneToOutputs', () => {
  it('keeps only the nodes and initializers an output needs, with the same values', async () => {
    const full = twoHeaded();
    const a = pruneToOutputs(full, ['a']);
    assert.deepEqual(a.nodes, { before: 4, after: 2 });
    const pa = onnx.ModelProto.decode(a.bytes).graph!;
    assert.deepEqual(pa.node!.map((n) => n.name), ['mul', 'relu']);
    assert.deepEqual(pa.output!.map((o) => o.name), ['a']);
    assert.deepEqual(pa.initializer!.map((t) => t.name), ['w']);

    const b = pruneToOutputs(full, ['b']);
    const pb = onnx.ModelProto.decode(b.bytes).graph!;
    assert.deepEqual(pb.node!.map((n) => n.name), ['neg', 'abs']);
    assert.equal(pb.initializer!.length, 0, 'w is not needed for b');

    const x = new ort.Tensor('float32', Float32Array.from([1, 2, -3, 4]), [4]);
    const whole = await ort.InferenceSession.create(full);
    const onlyA = await ort.InferenceSession.create(a.bytes);
    const onlyB = await ort.InferenceSession.create(b.bytes);
    assert.deepEqual(onlyA.outputNames, ['a']);
    const ref = await whole.run({ x });
    assert.deepEqual(Array.from((await onlyA.run({ x })).a!.data as Float32Array), Array.from(ref.a!.data as Float32Array));
    assert.deepEqual(Array.from((await onlyB.run({ x })).b!.data as Float32Array), Array.from(ref.b!.data as Float32Array));
    assert.deepEqual(Array.from(ref.a!.data as Float32Array), [1, 0, 0, 0]);
  });

  it('refuses an output the model does not have', () => {
    assert.throws(() => pruneToOutputs(twoHeaded(), ['c']), (e: unknown) => e instanceof ModelError && /no output c/.test((e as Error).message));
  });
});

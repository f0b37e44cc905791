/**
 * Keras (TF.js layers) functional model -> ONNX, for the CNN layers the nsfwjs graphs use, cut at an
 * embedding layer (the classifier head is dropped).
 *
 * The ONNX graph takes what sharp produces: `pixels` uint8 [N, H, W, 3] (RGB, NHWC), casts, divides
 * by 255 (the nsfwjs/TF.js preprocessing), transposes to NCHW and runs the backbone. The output is
 * `embedding` float32 [N, C]: the global-average-pooled last feature map (not normalized; the
 * embedder L2-normalizes). Everything is explicit: pads computed from the fixed input size the way
 * TensorFlow computes 'same' padding, ZeroPadding2D folded into the next convolution, BatchNorm kept
 * as BatchNormalization (onnxruntime fuses it into the conv at load), AveragePooling2D over the whole
 * map as GlobalAveragePool. Unknown layers or configs fail loudly rather than convert approximately.
 *
 * Optional second output `descriptor` (ConvertOptions.descriptor, from the manifest): earlier layers
 * pooled for instance retrieval; and, for experiments, raw feature maps (`featureMaps`).
 */
import onnxProto from 'onnx-proto';
import type { KerasLayer, TfjsLayersModelJson, Weight } from './tfjs-format.js';
import { ModelError } from './types.js';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 7;
export const INPUT_NAME = 'pixels';
export const OUTPUT_NAME = 'embedding';

export interface ConvertOptions {
  /** Name of the Keras layer whose output is the embedding (e.g. the Flatten before the head). */
  embeddingLayer: string;
  /** Graph name and doc string recorded in the ONNX model. */
  graphName: string;
  docString?: string;
  /** metadata_props of the ONNX model (source package, version, licence, ...). */
  metadata?: Record<string, string>;
  /**
   * Extra outputs: the raw feature maps of these layers, float32 [N, C, H, W] (NCHW), each as an ONNX
   * output named after the layer (diagnostics and experiments; descriptors are pooled in `descriptors`).
   */
  featureMaps?: readonly string[];
  /**
   * An instance-retrieval descriptor as a second output (float32 [N, sum of the layers' channels]):
   * each layer's feature map global-average-pooled, signed square root, L2-normalized, then the layers
   * concatenated. onnxruntime runs only the nodes an output needs, so fetching just this output skips
   * the layers above the last one listed.
   */
  descriptor?: { output: string; layers: readonly string[] };
}

export interface ConvertResult {
  bytes: Uint8Array;
  inputShape: [number, number, number]; // H, W, C
  embeddingDims: number;
  /** Width of the `descriptor` output (0 without one). */
  descriptorDims: number;
  nodeCount: number;
  parameterCount: number;
}

/** [C, H, W] of an NCHW tensor (batch left dynamic). */
type Shape = [number, number, number];

export function kerasToOnnx(model: TfjsLayersModelJson, weights: Map<string, Weight>, options: ConvertOptions): ConvertResult {
  const cfg = model.modelTopology.model_config;
  if (cfg.class_name !== 'Model' && cfg.class_name !== 'Functional') throw new ModelError(`unsupported model class ${cfg.class_name}`);
  const layers = cfg.config.layers;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const inputsOf = (l: KerasLayer): string[] => {
    if (l.inbound_nodes.length === 0) return [];
    if (l.inbound_nodes.length !== 1) throw new ModelError(`layer ${l.name}: shared layers are not supported`);
    return l.inbound_nodes[0]!.map(([name, nodeIndex, tensorIndex]) => {
      if (nodeIndex !== 0 || tensorIndex !== 0) throw new ModelError(`layer ${l.name}: multi-node inputs are not supported`);
      return name;
    });
  };

  // Only the ancestors of the embedding layer are converted: this is where the head is dropped.
  const target = byName.get(options.embeddingLayer);
  if (!target) throw new ModelError(`embedding layer ${options.embeddingLayer} not in the model`);
  for (const f of options.featureMaps ?? []) if (!byName.has(f)) throw new ModelError(`feature-map layer ${f} not in the model`);
  const needed = new Set<string>();
  for (const f of options.descriptor?.layers ?? []) if (!byName.has(f)) throw new ModelError(`descriptor layer ${f} not in the model`);
  const stack = [target.name, ...(options.featureMaps ?? []), ...(options.descriptor?.layers ?? [])];
  while (stack.length) {
    const n = stack.pop()!;
    if (needed.has(n)) continue;
    needed.add(n);
    const l = byName.get(n);
    if (!l) throw new ModelError(`layer ${n} referenced but not defined`);
    stack.push(...inputsOf(l));
  }
  const consumers = new Map<string, string[]>();
  for (const l of layers) {
    if (!needed.has(l.name)) continue;
    for (const i of inputsOf(l)) consumers.set(i, [...(consumers.get(i) ?? []), l.name]);
  }

  const nodes: INodeProto[] = [];
  const initializers: ITensorProto[] = [];
  const shapes = new Map<string, Shape>();
  const usedWeights = new Set<string>();
  let parameterCount = 0;
  /** Pads [top, left, bottom, right] of a ZeroPadding2D folded into its consumer, by the padding layer's name. */
  const foldedPads = new Map<string, { input: string; pads: [number, number, number, number] }>();
  /** Layer name -> ONNX tensor name holding its output (identity layers alias their input). */
  const alias = new Map<string, string>();
  const tensorOf = (layer: string): string => alias.get(layer) ?? layer;
  let inputShape: [number, number, number] | undefined;

  const weight = (layer: string, w: string, required = true): Weight | undefined => {
    const name = `${layer}/${w}`;
    const found = weights.get(name);
    if (!found && required) throw new ModelError(`weight ${name} missing`);
    if (found) usedWeights.add(name);
    return found;
  };
  const addInit = (name: string, dims: number[], data: Float32Array): string => {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    initializers.push({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes });
    parameterCount += data.length;
    return name;
  };
  const addInt64Init = (name: string, values: number[]): string => {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    initializers.push({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(data.buffer) });
    return name;
  };
  const node = (opType: string, inputs: string[], output: string, name: string, attrs: IAttributeProto[] = []): void => {
    nodes.push({ opType, input: inputs, output: [output], name, attribute: attrs });
  };
  const ints = (name: string, v: number[]): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  const int = (name: string, v: number): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
  const float = (name: string, v: number): IAttributeProto => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v });

  const pair = (v: unknown, what: string): [number, number] => {
    if (typeof v === 'number') return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
    throw new ModelError(`bad ${what}: ${JSON.stringify(v)}`);
  };
  const checkChannelsLast = (l: KerasLayer) => {
    const df = l.config.data_format;
    if (df !== undefined && df !== 'channels_last') throw new ModelError(`layer ${l.name}: data_format ${String(df)} not supported`);
  };
  /** TensorFlow padding arithmetic; returns output size and [before, after]. */
  const padding = (mode: unknown, inSize: number, k: number, s: number, d: number): { out: number; pad: [number, number] } => {
    const keff = (k - 1) * d + 1;
    if (mode === 'valid') return { out: Math.floor((inSize - keff) / s) + 1, pad: [0, 0] };
    if (mode === 'same') {
      const out = Math.ceil(inSize / s);
      const total = Math.max((out - 1) * s + keff - inSize, 0);
      return { out, pad: [Math.floor(total / 2), total - Math.floor(total / 2)] };
    }
    throw new ModelError(`padding ${String(mode)} not supported`);
  };
  const activation = (l: KerasLayer, x: string): string => {
    const a = l.config.activation;
    if (a === undefined || a === 'linear') return x;
    const out = `${l.name}/activation`;
    if (a === 'relu') node('Relu', [x], out, out);
    else if (a === 'sigmoid') node('Sigmoid', [x], out, out);
    else if (a === 'tanh') node('Tanh', [x], out, out);
    else throw new ModelError(`layer ${l.name}: activation ${String(a)} not supported`);
    return out;
  };

  for (const l of layers) {
    if (!needed.has(l.name)) continue;
    const ins = inputsOf(l);
    const inName = ins[0] !== undefined ? tensorOf(ins[0]) : undefined;
    const inShape = ins[0] !== undefined ? shapes.get(tensorOf(ins[0])) : undefined;
    const requireInput = (): [string, Shape] => {
      if (inName === undefined || inShape === undefined) throw new ModelError(`layer ${l.name}: missing input`);
      return [inName, inShape];
    };
    switch (l.class_name) {
      case 'InputLayer': {
        const bis = l.config.batch_input_shape as Array<number | null>;
        if (!Array.isArray(bis) || bis.length !== 4 || bis[3] !== 3 || typeof bis[1] !== 'number' || typeof bis[2] !== 'number') {
          throw new ModelError(`input ${l.name}: expected [null, H, W, 3], got ${JSON.stringify(bis)}`);
        }
        inputShape = [bis[1], bis[2], 3];
        node('Cast', [INPUT_NAME], 'pixels_float', 'cast', [int('to', onnx.TensorProto.DataType.FLOAT)]);
        const k255 = 'const_255';
        addInit(k255, [], new Float32Array([255]));
        parameterCount -= 1;
        node('Div', ['pixels_float', k255], 'pixels_unit', 'scale_1_255');
        node('Transpose', ['pixels_unit'], l.name, 'nhwc_to_nchw', [ints('perm', [0, 3, 1, 2])]);
        shapes.set(l.name, [3, bis[1], bis[2]]);
        break;
      }
      case 'ZeroPadding2D': {
        checkChannelsLast(l);
        const [x, s] = requireInput();
        const p = l.config.padding as unknown;
        let top: number, bottom: number, left: number, right: number;
        if (typeof p === 'number') [top, bottom, left, right] = [p, p, p, p];
        else if (Array.isArray(p) && p.length === 2 && Array.isArray(p[0]) && Array.isArray(p[1])) [[top, bottom], [left, right]] = p as [[number, number], [number, number]];
        else if (Array.isArray(p) && p.length === 2) [top, bottom, left, right] = [p[0], p[0], p[1], p[1]] as [number, number, number, number];
        else throw new ModelError(`layer ${l.name}: padding ${JSON.stringify(p)}`);
        const outShape: Shape = [s[0], s[1] + top + bottom, s[2] + left + right];
        const cons = consumers.get(l.name) ?? [];
        const c = cons.length === 1 ? byName.get(cons[0]!) : undefined;
        if (c && (c.class_name === 'Conv2D' || c.class_name === 'DepthwiseConv2D') && c.config.padding === 'valid') {
          // Folded into the convolution's own pads (zero padding either way).
          foldedPads.set(l.name, { input: x, pads: [top, left, bottom, right] });
          alias.set(l.name, x);
          shapes.set(`${l.name}#padded`, outShape);
        } else {
          const pads = addInt64Init(`${l.name}/pads`, [0, 0, top, left, 0, 0, bottom, right]);
          node('Pad', [x, pads], l.name, l.name, []);
          shapes.set(l.name, outShape);
        }
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        checkChannelsLast(l);
        const [x0, s0] = requireInput();
        const fold = ins[0] !== undefined ? foldedPads.get(ins[0]) : undefined;
        const s = fold ? shapes.get(`${ins[0]}#padded`)! : s0;
        const x = fold ? fold.input : x0;
        const [kh, kw] = pair(l.config.kernel_size, 'kernel_size');
        const [sh, sw] = pair(l.config.strides ?? [1, 1], 'strides');
        const [dh, dw] = pair(l.config.dilation_rate ?? [1, 1], 'dilation_rate');
        const ph = padding(l.config.padding, s[1], kh, sh, dh);
        const pw = padding(l.config.padding, s[2], kw, sw, dw);
        const pads = [ph.pad[0], pw.pad[0], ph.pad[1], pw.pad[1]];
        if (fold) for (let i = 0; i < 4; i++) pads[i]! += fold.pads[i]!;
        const depthwise = l.class_name === 'DepthwiseConv2D';
        const kernel = weight(l.name, depthwise ? 'depthwise_kernel' : 'kernel')!;
        const cin = s[0];
        let outC: number;
        let w: Float32Array;
        let wdims: number[];
        if (!depthwise) {
          // Keras HWIO [kh, kw, in, out] -> ONNX OIHW [out, in, kh, kw].
          const [khk, kwk, ci, co] = kernel.shape as [number, number, number, number];
          if (khk !== kh || kwk !== kw || ci !== cin || co !== l.config.filters) throw new ModelError(`layer ${l.name}: kernel ${JSON.stringify(kernel.shape)} vs input ${cin}`);
          w = new Float32Array(co * ci * kh * kw);
          for (let y = 0; y < kh; y++)
            for (let xk = 0; xk < kw; xk++)
              for (let i = 0; i < ci; i++)
                for (let o = 0; o < co; o++) w[((o * ci + i) * kh + y) * kw + xk] = kernel.data[((y * kw + xk) * ci + i) * co + o]!;
          outC = co;
          wdims = [co, ci, kh, kw];
        } else {
          // Keras [kh, kw, in, mult] -> ONNX [in*mult, 1, kh, kw], group = in (output channel c*mult+m).
          const [khk, kwk, ci, mult] = kernel.shape as [number, number, number, number];
          if (khk !== kh || kwk !== kw || ci !== cin) throw new ModelError(`layer ${l.name}: depthwise kernel ${JSON.stringify(kernel.shape)} vs input ${cin}`);
          w = new Float32Array(ci * mult * kh * kw);
          for (let y = 0; y < kh; y++)
            for (let xk = 0; xk < kw; xk++)
              for (let i = 0; i < ci; i++)
                for (let m = 0; m < mult; m++) w[(((i * mult + m) * 1 + 0) * kh + y) * kw + xk] = kernel.data[((y * kw + xk) * ci + i) * mult + m]!;
          outC = ci * mult;
          wdims = [ci * mult, 1, kh, kw];
        }
        const convIns = [x, addInit(`${l.name}/W`, wdims, w)];
        if (l.config.use_bias) {
          const b = weight(l.name, depthwise ? 'depthwise_bias' : 'bias', false) ?? weight(l.name, 'bias')!;
          convIns.push(addInit(`${l.name}/B`, [outC], b.data));
        }
        const conv = l.config.activation && l.config.activation !== 'linear' ? `${l.name}/conv` : l.name;
        node('Conv', convIns, conv, `${l.name}/conv`, [
          ints('kernel_shape', [kh, kw]),
          ints('strides', [sh, sw]),
          ints('dilations', [dh, dw]),
          ints('pads', pads),
          int('group', depthwise ? cin : 1),
        ]);
        const outH = Math.floor((s[1] + pads[0]! + pads[2]! - ((kh - 1) * dh + 1)) / sh) + 1;
        const outW = Math.floor((s[2] + pads[1]! + pads[3]! - ((kw - 1) * dw + 1)) / sw) + 1;
        if (!fold && (outH !== ph.out || outW !== pw.out)) throw new ModelError(`layer ${l.name}: shape arithmetic mismatch`);
        const out = activation(l, conv);
        if (out !== l.name) alias.set(l.name, out);
        shapes.set(tensorOf(l.name), [outC, outH, outW]);
        break;
      }
      case 'BatchNormalization': {
        const [x, s] = requireInput();
        const axis = l.config.axis;
        if (axis !== -1 && axis !== 3 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === 3 || axis[0] === -1))) {
          throw new ModelError(`layer ${l.name}: BatchNormalization axis ${JSON.stringify(axis)} not supported`);
        }
        const c = s[0];
        const eps = Number(l.config.epsilon ?? 1e-3);
        const gamma = l.config.scale === false ? new Float32Array(c).fill(1) : weight(l.name, 'gamma')!.data;
        const beta = l.config.center === false ? new Float32Array(c) : weight(l.name, 'beta')!.data;
        const mean = weight(l.name, 'moving_mean')!.data;
        const variance = weight(l.name, 'moving_variance')!.data;
        for (const [n, a] of [['gamma', gamma], ['beta', beta], ['mean', mean], ['var', variance]] as const) {
          if (a.length !== c) throw new ModelError(`layer ${l.name}: ${n} has ${a.length} values for ${c} channels`);
        }
        node(
          'BatchNormalization',
          [x, addInit(`${l.name}/scale`, [c], gamma), addInit(`${l.name}/bias`, [c], beta), addInit(`${l.name}/mean`, [c], mean), addInit(`${l.name}/var`, [c], variance)],
          l.name,
          l.name,
          [float('epsilon', eps)],
        );
        shapes.set(l.name, s);
        break;
      }
      case 'ReLU': {
        const [x, s] = requireInput();
        const max = l.config.max_value as number | null | undefined;
        if ((l.config.negative_slope ?? 0) !== 0 || (l.config.threshold ?? 0) !== 0) throw new ModelError(`layer ${l.name}: leaky/thresholded ReLU not supported`);
        if (max === null || max === undefined) node('Relu', [x], l.name, l.name);
        else {
          const lo = addInit(`${l.name}/min`, [], new Float32Array([0]));
          const hi = addInit(`${l.name}/max`, [], new Float32Array([max]));
          parameterCount -= 2;
          node('Clip', [x, lo, hi], l.name, l.name);
        }
        shapes.set(l.name, s);
        break;
      }
      case 'Activation': {
        const [x, s] = requireInput();
        const out = activation(l, x);
        alias.set(l.name, out);
        shapes.set(out, s);
        break;
      }
      case 'Dropout': {
        const [x] = requireInput();
        alias.set(l.name, x); // inference: identity
        break;
      }
      case 'Add': {
        if (ins.length < 2) throw new ModelError(`layer ${l.name}: Add needs 2+ inputs`);
        const xs = ins.map(tensorOf);
        const s = shapes.get(xs[0]!)!;
        for (const t of xs) if (shapes.get(t)?.join() !== s.join()) throw new ModelError(`layer ${l.name}: Add shape mismatch`);
        node(xs.length === 2 ? 'Add' : 'Sum', xs, l.name, l.name);
        shapes.set(l.name, s);
        break;
      }
      case 'Concatenate': {
        checkChannelsLast(l);
        const ax = l.config.axis;
        if (ax !== -1 && ax !== 3) throw new ModelError(`layer ${l.name}: Concatenate axis ${String(ax)} not supported`);
        const xs = ins.map(tensorOf);
        const ss = xs.map((t) => shapes.get(t)!);
        if (ss.some((s) => s[1] !== ss[0]![1] || s[2] !== ss[0]![2])) throw new ModelError(`layer ${l.name}: Concatenate spatial mismatch`);
        node('Concat', xs, l.name, l.name, [int('axis', 1)]);
        shapes.set(l.name, [ss.reduce((n, s) => n + s[0], 0), ss[0]![1], ss[0]![2]]);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        checkChannelsLast(l);
        const [x, s] = requireInput();
        const [kh, kw] = pair(l.config.pool_size, 'pool_size');
        const [sh, sw] = pair(l.config.strides ?? l.config.pool_size, 'strides');
        const avg = l.class_name === 'AveragePooling2D';
        if (avg && l.config.padding === 'valid' && kh === s[1] && kw === s[2]) {
          node('GlobalAveragePool', [x], l.name, l.name);
          shapes.set(l.name, [s[0], 1, 1]);
          break;
        }
        const ph = padding(l.config.padding, s[1], kh, sh, 1);
        const pw = padding(l.config.padding, s[2], kw, sw, 1);
        const attrs = [ints('kernel_shape', [kh, kw]), ints('strides', [sh, sw]), ints('pads', [ph.pad[0], pw.pad[0], ph.pad[1], pw.pad[1]])];
        // TensorFlow's 'same' average pooling divides by the number of real (unpadded) inputs.
        if (avg) attrs.push(int('count_include_pad', 0));
        node(avg ? 'AveragePool' : 'MaxPool', [x], l.name, l.name, attrs);
        shapes.set(l.name, [s[0], ph.out, pw.out]);
        break;
      }
      case 'GlobalAveragePooling2D': {
        checkChannelsLast(l);
        const [x, s] = requireInput();
        node('GlobalAveragePool', [x], `${l.name}/pool`, `${l.name}/pool`);
        node('Flatten', [`${l.name}/pool`], l.name, l.name, [int('axis', 1)]);
        shapes.set(l.name, [s[0], 1, 1]);
        break;
      }
      case 'Flatten': {
        const [x, s] = requireInput();
        // NHWC and NCHW flatten orders agree only when the map is 1x1.
        if (s[1] !== 1 || s[2] !== 1) throw new ModelError(`layer ${l.name}: Flatten of a ${s[1]}x${s[2]} map not supported`);
        node('Flatten', [x], l.name, l.name, [int('axis', 1)]);
        shapes.set(l.name, s);
        break;
      }
      default:
        throw new ModelError(`layer ${l.name}: ${l.class_name} not supported by the converter`);
    }
  }

  if (!inputShape) throw new ModelError('model has no InputLayer');
  const outTensor = tensorOf(target.name);
  const outShape = shapes.get(outTensor);
  if (outShape?.[1] !== 1 || outShape[2] !== 1) throw new ModelError(`embedding layer ${target.name} is not a pooled vector (${JSON.stringify(outShape)})`);
  // The embedding output: pooled [N, C, 1, 1] flattened to [N, C] under a stable name.
  if (target.class_name === 'Flatten' || target.class_name === 'GlobalAveragePooling2D') node('Identity', [outTensor], OUTPUT_NAME, 'output');
  else node('Flatten', [outTensor], OUTPUT_NAME, 'output', [int('axis', 1)]);

  const batch = { dimParam: 'N' };
  const featureOutputs: onnxProto.onnx.IValueInfoProto[] = (options.featureMaps ?? []).map((f) => {
    const t = tensorOf(f);
    const s = shapes.get(t);
    if (!s) throw new ModelError(`feature-map layer ${f} has no shape`);
    const name = `map_${f}`;
    node('Identity', [t], name, `${name}/out`);
    return { name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: s[0] }, { dimValue: s[1] }, { dimValue: s[2] }] } } } };
  });

  const descriptorOutputs: onnxProto.onnx.IValueInfoProto[] = [];
  let descriptorDims = 0;
  if (options.descriptor) {
    const d = options.descriptor;
    if (d.layers.length === 0) throw new ModelError('descriptor needs at least one layer');
    const eps = addInit('descriptor/eps', [], new Float32Array([1e-12]));
    parameterCount -= 1;
    const parts = d.layers.map((layer, i) => {
      const t = tensorOf(layer);
      const s = shapes.get(t);
      if (!s) throw new ModelError(`descriptor layer ${layer} has no shape`);
      descriptorDims += s[0];
      const p = `descriptor/${i}_${layer}`;
      node('GlobalAveragePool', [t], `${p}/gap`, `${p}/gap`);
      node('Flatten', [`${p}/gap`], `${p}/flat`, `${p}/flat`, [int('axis', 1)]);
      // Signed square root (power normalization), then L2 per layer so each layer weighs the same.
      node('Abs', [`${p}/flat`], `${p}/abs`, `${p}/abs`);
      node('Sqrt', [`${p}/abs`], `${p}/sqrt`, `${p}/sqrt`);
      node('Sign', [`${p}/flat`], `${p}/sign`, `${p}/sign`);
      node('Mul', [`${p}/sign`, `${p}/sqrt`], `${p}/pow`, `${p}/pow`);
      node('ReduceL2', [`${p}/pow`], `${p}/norm`, `${p}/norm`, [ints('axes', [1]), int('keepdims', 1)]);
      node('Max', [`${p}/norm`, eps], `${p}/norm_eps`, `${p}/norm_eps`);
      node('Div', [`${p}/pow`, `${p}/norm_eps`], `${p}/l2`, `${p}/l2`);
      return `${p}/l2`;
    });
    if (parts.length === 1) node('Identity', parts, d.output, 'descriptor/out');
    else node('Concat', parts, d.output, 'descriptor/out', [int('axis', 1)]);
    descriptorOutputs.push({ name: d.output, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: descriptorDims }] } } } });
  }

  // Every backbone weight must have been used: a silent leftover would mean a mis-conversion.
  for (const l of layers) {
    if (!needed.has(l.name)) continue;
    for (const name of weights.keys()) if (name.startsWith(`${l.name}/`) && !usedWeights.has(name)) throw new ModelError(`weight ${name} unused by the conversion`);
  }

  const graph: onnxProto.onnx.IGraphProto = {
    name: options.graphName,
    node: nodes,
    initializer: initializers,
    input: [
      {
        name: INPUT_NAME,
        type: { tensorType: { elemType: onnx.TensorProto.DataType.UINT8, shape: { dim: [batch, { dimValue: inputShape[0] }, { dimValue: inputShape[1] }, { dimValue: 3 }] } } },
      },
    ],
    output: [
      {
        name: OUTPUT_NAME,
        type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: outShape[0] }] } } },
      },
      ...descriptorOutputs,
      ...featureOutputs,
    ],
  };
  if (options.docString !== undefined) graph.docString = options.docString;
  const modelProto = onnx.ModelProto.create({
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'afterglow-inference',
    producerVersion: '1',
    graph,
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  const bytes = onnx.ModelProto.encode(modelProto).finish();
  return { bytes, inputShape, embeddingDims: outShape[0], descriptorDims, nodeCount: nodes.length, parameterCount };
}

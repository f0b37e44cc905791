/**
 * Reading TF.js layers models as nsfwjs ships them: `model.min.js` (a browserify UMD bundle whose
 * module value is the model JSON, minified as a JS object literal) and `group1-shardNofM.min.js`
 * (bundles whose module value is one base64 string of weight bytes).
 *
 * Callers verify every file's sha256 against the manifest before calling these: the model bundle is
 * evaluated (in an empty `vm` context, no require, no globals) because its literal is not JSON; the
 * shards are never evaluated, their base64 literal is extracted by pattern.
 */
import vm from 'node:vm';
import { ModelError } from './types.js';

export interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  /** Keras 2.2 format: one entry per call of the layer; each a list of [layer, nodeIndex, tensorIndex, kwargs]. */
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>?]>>;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; min?: number; scale?: number };
}

export interface TfjsLayersModelJson {
  modelTopology: {
    keras_version?: string;
    backend?: string;
    model_config: {
      class_name: string;
      config: { name?: string; layers: KerasLayer[]; input_layers: Array<[string, number, number]>; output_layers: Array<[string, number, number]> };
    };
  };
  weightsManifest: Array<{ paths: string[]; weights: WeightSpec[] }>;
}

export interface Weight {
  shape: number[];
  data: Float32Array;
}

/** Evaluates a nsfwjs `model.min.js` bundle in an empty context and returns its module value. */
export function parseModelBundle(source: string, fileName: string): TfjsLayersModelJson {
  const sandbox: { module: { exports: unknown }; exports: unknown } = { module: { exports: {} }, exports: {} };
  sandbox.exports = sandbox.module.exports;
  try {
    vm.runInNewContext(source, sandbox, { filename: fileName, timeout: 10_000 });
  } catch (err) {
    throw new ModelError(`${fileName}: not a loadable model bundle: ${(err as Error).message}`);
  }
  const value = sandbox.module.exports as Partial<TfjsLayersModelJson> | undefined;
  // A value from another realm: round-trip through JSON to get plain objects of this realm.
  const json = JSON.parse(JSON.stringify(value ?? null)) as Partial<TfjsLayersModelJson> | null;
  if (!json?.modelTopology?.model_config?.config?.layers || !Array.isArray(json.weightsManifest)) {
    throw new ModelError(`${fileName}: no modelTopology/weightsManifest in the bundle`);
  }
  return json as TfjsLayersModelJson;
}

/** Extracts the weight bytes of a `group1-shardNofM.min.js` bundle without evaluating it. */
export function parseShardBundle(source: string, fileName: string): Uint8Array {
  const matches = [...source.matchAll(/exports\s*=\s*"([A-Za-z0-9+/]*={0,2})"/g)];
  if (matches.length !== 1 || matches[0]?.[1] === undefined) {
    throw new ModelError(`${fileName}: expected exactly one base64 weight literal, found ${matches.length}`);
  }
  const buf = Buffer.from(matches[0][1], 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Decodes the weights the way TF.js does (`tf.io.decodeWeights`): specs in manifest order over the
 * concatenated shards; uint8/uint16 affine dequantization `v * scale + min` computed in double and
 * stored as float32, so the values are bit-identical to what TF.js loads.
 */
export function decodeWeights(manifest: TfjsLayersModelJson['weightsManifest'], shards: Uint8Array[]): Map<string, Weight> {
  const total = shards.reduce((n, s) => n + s.byteLength, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const s of shards) {
    all.set(s, at);
    at += s.byteLength;
  }
  const out = new Map<string, Weight>();
  let offset = 0;
  for (const group of manifest) {
    for (const spec of group.weights) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (spec.dtype !== 'float32') throw new ModelError(`weight ${spec.name}: dtype ${spec.dtype} not supported`);
      const q = spec.quantization;
      let data: Float32Array;
      if (!q) {
        const bytes = all.slice(offset, offset + size * 4);
        data = new Float32Array(bytes.buffer, bytes.byteOffset, size);
        offset += size * 4;
      } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
        if (q.min === undefined || q.scale === undefined) throw new ModelError(`weight ${spec.name}: quantization without min/scale`);
        const width = q.dtype === 'uint8' ? 1 : 2;
        const bytes = all.slice(offset, offset + size * width);
        const qa = q.dtype === 'uint8' ? bytes : new Uint16Array(bytes.buffer, bytes.byteOffset, size);
        data = new Float32Array(size);
        for (let i = 0; i < size; i++) data[i] = qa[i]! * q.scale + q.min;
        offset += size * width;
      } else {
        throw new ModelError(`weight ${spec.name}: quantization ${q.dtype} not supported`);
      }
      if (offset > total) throw new ModelError(`weight ${spec.name}: shards too short (${total} bytes)`);
      out.set(spec.name, { shape: spec.shape, data });
    }
  }
  if (offset !== total) throw new ModelError(`weights: ${total - offset} trailing bytes after the last spec`);
  return out;
}

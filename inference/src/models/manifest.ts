/**
 * The model manifest (inference/models.manifest.json): for each model its source npm package,
 * version, licence, source-file checksums, the sha256 of the .onnx we produce from it, the ONNX
 * input/output and the preprocessing. Read once, validated, frozen.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ModelError, type EmbeddingModelId, type ResizeFit } from './types.js';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const modelSchema = z.object({
  file: z.string().regex(/^[A-Za-z0-9_.-]+\.onnx$/),
  dims: z.number().int().positive(),
  source: z.object({
    package: z.string(),
    version: z.string(),
    license: z.string(),
    licenseFile: z.string().optional(),
    repository: z.string(),
    provenance: z.string(),
    dir: z.string(),
    files: z.record(z.string(), sha256),
    embeddingLayer: z.string(),
    droppedHead: z.array(z.string()),
  }),
  onnx: z.object({
    sha256,
    opset: z.number().int(),
    input: z.object({ name: z.string(), dtype: z.literal('uint8'), layout: z.literal('NHWC'), shape: z.tuple([z.literal('N'), z.number(), z.number(), z.literal(3)]) }),
    output: z.object({ name: z.string(), dtype: z.literal('float32'), shape: z.tuple([z.literal('N'), z.number()]) }),
  }),
  preprocessing: z.object({
    inputSize: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    colorOrder: z.literal('RGB'),
    colorSpace: z.literal('sRGB'),
    orientation: z.string(),
    alpha: z.string(),
    resize: z.object({ fit: z.enum(['fill', 'cover', 'contain']), kernel: z.enum(['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3']) }),
    /** Gaussian blur at the model's input size (0 = none): anti-aliasing against JPEG blocking and resampling. */
    blurSigma: z.number().min(0).max(10),
    normalization: z.string(),
    output: z.string(),
  }),
  /** Applied by the embedder to the pooled output: x -> sign(x)|x|^power, then L2 (power 1 = plain L2). */
  postprocessing: z.object({ power: z.number().positive().max(1), l2: z.literal(true) }),
  parity: z.object({ reference: z.string(), maxAbsDiff: z.number().positive() }),
  /**
   * An optional second ONNX output for instance retrieval (the tie engine's descriptor): `layers`
   * global-average-pooled, signed square root and L2 per layer, concatenated (`dims` wide). Chosen with
   * `EmbedOptions.output = 'descriptor'`; the embedder L2-normalizes it again (postprocessing.power is
   * not applied: the graph already did).
   */
  descriptor: z
    .object({ output: z.string(), layers: z.array(z.string()).min(1), dims: z.number().int().positive(), pooling: z.string(), why: z.string().optional() })
    .optional(),
});

const manifestSchema = z.object({
  $comment: z.string().optional(),
  manifestVersion: z.literal(1),
  models: z.object({ mobilenet_v2: modelSchema, inception_v3: modelSchema }),
});

export type ModelManifest = z.infer<typeof manifestSchema>;
export type ModelSpec = z.infer<typeof modelSchema>;

/** Absolute path of inference/models.manifest.json (same relative place from src/ and dist/). */
export const MANIFEST_PATH = fileURLToPath(new URL('../../models.manifest.json', import.meta.url));

let cached: ModelManifest | undefined;

export function loadManifest(file = MANIFEST_PATH): ModelManifest {
  if (file === MANIFEST_PATH && cached) return cached;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelError(`model manifest ${file}: ${(err as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ModelError(`model manifest ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  for (const [id, m] of Object.entries(parsed.data.models)) {
    if (m.onnx.output.shape[1] !== m.dims) throw new ModelError(`model manifest: ${id} output width ${m.onnx.output.shape[1]} != dims ${m.dims}`);
    if (m.onnx.input.shape[1] !== m.preprocessing.inputSize[1] || m.onnx.input.shape[2] !== m.preprocessing.inputSize[0]) {
      throw new ModelError(`model manifest: ${id} input shape disagrees with preprocessing.inputSize`);
    }
  }
  const frozen = deepFreeze(parsed.data);
  if (file === MANIFEST_PATH) cached = frozen;
  return frozen;
}

export const MODEL_IDS: readonly EmbeddingModelId[] = Object.freeze(['mobilenet_v2', 'inception_v3'] as const);

export function isModelId(x: unknown): x is EmbeddingModelId {
  return typeof x === 'string' && (MODEL_IDS as readonly string[]).includes(x);
}

/** What the preprocessing and the worker need to know about one model. */
export interface ModelRuntimeSpec {
  id: EmbeddingModelId;
  /** [width, height] of the model input. */
  inputSize: [number, number];
  dims: number;
  fit: ResizeFit;
  kernel: ModelSpec['preprocessing']['resize']['kernel'];
  blurSigma: number;
  power: number;
  inputName: string;
  outputName: string;
  /** The descriptor output, when the model has one. */
  descriptor: { outputName: string; dims: number } | undefined;
}

export function runtimeSpec(id: EmbeddingModelId, manifest = loadManifest()): ModelRuntimeSpec {
  const m = manifest.models[id];
  return {
    id,
    inputSize: [m.preprocessing.inputSize[0], m.preprocessing.inputSize[1]],
    dims: m.dims,
    fit: m.preprocessing.resize.fit,
    kernel: m.preprocessing.resize.kernel,
    blurSigma: m.preprocessing.blurSigma,
    power: m.postprocessing.power,
    inputName: m.onnx.input.name,
    outputName: m.onnx.output.name,
    descriptor: m.descriptor ? { outputName: m.descriptor.output, dims: m.descriptor.dims } : undefined,
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

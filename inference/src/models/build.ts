/**
 * Builds the manifest's models into a cache directory: locate the pinned npm package, verify every
 * source file's sha256, convert (tfjs-format + keras-to-onnx), verify the output's sha256, write
 * atomically. Idempotent: a model already there with the right checksum is left alone (a stamp file
 * beside it saves re-hashing 90 MB on every start).
 *
 * `buildModels` is synchronous CPU work (about 1 s for MobileNetV2, 5 s for InceptionV3): the CLI
 * calls it directly; servers use `ensureModels` (./ensure.ts), which runs it in a worker thread.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { kerasToOnnx } from './keras-to-onnx.js';
import { loadManifest, MANIFEST_PATH, MODEL_IDS, type ModelManifest, type ModelSpec } from './manifest.js';
import { decodeWeights, parseModelBundle, parseShardBundle } from './tfjs-format.js';
import { ModelError, type EmbeddingModelId } from './types.js';

export interface BuildModelsOptions {
  modelsDir: string;
  /** Default: every model in the manifest. */
  models?: readonly EmbeddingModelId[];
  /** Rebuild even when a verified file is present. */
  force?: boolean;
  /**
   * Maintainers only, after a deliberate upgrade of the source package or the converter: record the
   * checksums found instead of failing on a mismatch, and rewrite the manifest file.
   */
  updateManifest?: boolean;
  manifestFile?: string;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface BuiltModel {
  id: EmbeddingModelId;
  path: string;
  sha256: string;
  bytes: number;
  /** false when a verified file was already there. */
  built: boolean;
  ms: number;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function modelPath(modelsDir: string, id: EmbeddingModelId, manifest: ModelManifest = loadManifest()): string {
  return path.join(modelsDir, manifest.models[id].file);
}

/** True when the model file is present and its checksum (or a fresh stamp of it) matches the manifest. */
export function isModelVerified(modelsDir: string, id: EmbeddingModelId, manifest: ModelManifest = loadManifest()): boolean {
  return isFileVerified(modelPath(modelsDir, id, manifest), manifest.models[id].onnx.sha256);
}

/** True when `file` exists with sha256 `want`; a stamp file beside it (size, mtime) saves re-hashing. */
export function isFileVerified(file: string, want: string): boolean {
  let st;
  try {
    st = statSync(file);
  } catch {
    return false;
  }
  const stampFile = `${file}.sha256`;
  const stamp = `${want} ${st.size} ${Math.trunc(st.mtimeMs)}\n`;
  try {
    if (readFileSync(stampFile, 'utf8') === stamp) return true;
  } catch {
    /* no stamp: hash it */
  }
  if (sha256Hex(readFileSync(file)) !== want) return false;
  try {
    writeFileSync(stampFile, stamp);
  } catch {
    /* read-only cache dir: fine, we re-hash next time */
  }
  return true;
}

/** Directory of an installed npm package (its package.json need not be exported). */
export function packageDir(name: string): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch (err) {
    throw new ModelError(`npm package ${name} is not installed (${(err as Error).message}); run npm ci`);
  }
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === name) return dir;
      } catch {
        /* keep walking */
      }
    }
  }
  throw new ModelError(`cannot find the package directory of ${name} from ${entry}`);
}

/** Reads and verifies the source files of one model; returns their contents by file name. */
function readSources(spec: ModelSpec, id: string, update: boolean): Map<string, Buffer> {
  return readPackageSources(id, spec.source, packageDir(spec.source.package), update).files;
}

/**
 * Checks an installed source package's version and licence against the manifest, then reads each of
 * `source.files` (under `source.dir`) and checks its sha256. With `update`, mismatches are recorded in
 * `source` instead of failing.
 */
export function readPackageSources(
  id: string,
  source: { package: string; version: string; license: string; dir: string; files: Readonly<Record<string, string>> },
  pkgDir: string,
  update: boolean,
): { dir: string; files: Map<string, Buffer> } {
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version?: string; license?: string };
  if (pkg.version !== source.version && !update) {
    throw new ModelError(`${id}: ${source.package}@${pkg.version ?? '?'} is installed but the manifest pins ${source.version}`);
  }
  if (pkg.license !== source.license && !update) {
    throw new ModelError(`${id}: ${source.package} declares licence ${pkg.license ?? '?'}, the manifest records ${source.license}`);
  }
  const dir = path.join(pkgDir, source.dir);
  const files = new Map<string, Buffer>();
  for (const [f, want] of Object.entries(source.files)) {
    const data = readFileSync(path.join(dir, f));
    const got = sha256Hex(data);
    if (got !== want) {
      if (!update) throw new ModelError(`${id}: ${source.package}/${source.dir}/${f} sha256 ${got} != manifest ${want}`);
      (source.files as Record<string, string>)[f] = got;
    }
    files.set(f, data);
  }
  return { dir, files };
}

/**
 * Writes `bytes` to `file` atomically (concurrent builders, processes or threads, each write their
 * own temp file and rename) and drops the stale checksum stamp beside it.
 */
export function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
  rmSync(`${file}.sha256`, { force: true });
}

/** Converts one model to ONNX bytes from its verified sources. */
export function convertModel(id: EmbeddingModelId, spec: ModelSpec, update = false): Uint8Array {
  const sources = readSources(spec, id, update);
  const modelFile = Object.keys(spec.source.files).find((f) => f.startsWith('model'));
  if (!modelFile) throw new ModelError(`${id}: no model.*.js among the manifest's source files`);
  const model = parseModelBundle(sources.get(modelFile)!.toString('utf8'), modelFile);
  const shards = model.weightsManifest
    .flatMap((g) => g.paths)
    .map((p) => {
      const f = `${p}.min.js`;
      const src = sources.get(f);
      if (!src) throw new ModelError(`${id}: weight shard ${f} is not a checksummed source file in the manifest`);
      return parseShardBundle(src.toString('latin1'), f);
    });
  const weights = decodeWeights(model.weightsManifest, shards);
  const result = kerasToOnnx(model, weights, {
    embeddingLayer: spec.source.embeddingLayer,
    ...(spec.descriptor ? { descriptor: { output: spec.descriptor.output, layers: spec.descriptor.layers } } : {}),
    graphName: `afterglow_${id}_embedding`,
    docString: `${id} embedding (${spec.dims}-d, pooled) converted from ${spec.source.package}@${spec.source.version}/${spec.source.dir}; classifier head dropped.`,
    metadata: {
      'afterglow.model': id,
      'source.package': `${spec.source.package}@${spec.source.version}`,
      'source.license': spec.source.license,
      'source.dir': spec.source.dir,
      'preprocessing.input': `uint8 NHWC RGB ${spec.preprocessing.inputSize.join('x')}`,
      'preprocessing.normalization': spec.preprocessing.normalization,
    },
  });
  if (result.embeddingDims !== spec.dims) throw new ModelError(`${id}: converted embedding has ${result.embeddingDims} dims, manifest says ${spec.dims}`);
  if (spec.descriptor && result.descriptorDims !== spec.descriptor.dims) throw new ModelError(`${id}: converted descriptor has ${result.descriptorDims} dims, manifest says ${spec.descriptor.dims}`);
  const [w, h] = spec.preprocessing.inputSize;
  if (result.inputShape[0] !== h || result.inputShape[1] !== w) throw new ModelError(`${id}: model input ${result.inputShape.join('x')} != manifest ${w}x${h}`);
  return result.bytes;
}

export function buildModels(options: BuildModelsOptions): BuiltModel[] {
  const manifestFile = options.manifestFile ?? MANIFEST_PATH;
  const update = options.updateManifest === true;
  // The update path mutates a private, unfrozen copy.
  const manifest: ModelManifest = update ? (JSON.parse(readFileSync(manifestFile, 'utf8')) as ModelManifest) : loadManifest(manifestFile);
  const ids = options.models ?? MODEL_IDS;
  const log = options.log ?? (() => {});
  mkdirSync(options.modelsDir, { recursive: true });
  const results: BuiltModel[] = [];
  for (const id of ids) {
    const spec = manifest.models[id];
    if (!spec) throw new ModelError(`unknown model ${String(id)}`);
    const file = path.join(options.modelsDir, spec.file);
    const t0 = performance.now();
    if (!options.force && !update && isModelVerified(options.modelsDir, id, manifest)) {
      results.push({ id, path: file, sha256: spec.onnx.sha256, bytes: statSync(file).size, built: false, ms: performance.now() - t0 });
      continue;
    }
    log(`building model ${id} from ${spec.source.package}@${spec.source.version}`, { model: id, file });
    const bytes = convertModel(id, spec, update);
    const got = sha256Hex(bytes);
    if (got !== spec.onnx.sha256) {
      if (!update) {
        throw new ModelError(
          `${id}: converted ONNX sha256 ${got} != manifest ${spec.onnx.sha256} (converter or dependency changed; ` +
            'if deliberate, run `npm run models -- --update-manifest` and review the parity test)',
        );
      }
      spec.onnx.sha256 = got;
    }
    writeAtomic(file, bytes);
    isModelVerified(options.modelsDir, id, manifest); // writes the stamp
    const ms = performance.now() - t0;
    log(`built model ${id}`, { model: id, file, bytes: bytes.byteLength, sha256: got, ms: Math.round(ms) });
    results.push({ id, path: file, sha256: got, bytes: bytes.byteLength, built: true, ms });
  }
  if (update) writeFileSync(manifestFile, formatJson(manifest));
  return results;
}

/** JSON with 2-space indent, arrays of scalars and small flat objects kept on one line. */
export function formatJson(value: unknown): string {
  const text = JSON.stringify(value, null, 2);
  const inline = text.replace(/([[{])\n\s*([^[\]{}]*?)\n\s*([\]}])/g, (m, open: string, body: string, close: string) => {
    const one = `${open}${open === '{' ? ' ' : ''}${body.split(/,\n\s*/).join(', ')}${open === '{' ? ' ' : ''}${close}`;
    return one.length <= 110 ? one : m;
  });
  return `${inline}\n`;
}

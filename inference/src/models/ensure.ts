/**
 * First-use model builds for long-running processes: `ensureModel` checks the cache directory and,
 * when the model is missing or fails its checksum, builds it in a worker thread (the conversion is
 * seconds of synchronous CPU work that must not stall an event loop). Concurrent callers share one
 * build per (directory, model).
 */
import path from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { isModelVerified, modelPath } from './build.js';
import { ModelError, type EmbeddingModelId } from './types.js';

const inflight = new Map<string, Promise<string>>();

/** URL of a sibling worker module, .ts under tsx (tests) and .js from dist. */
export function siblingModuleUrl(name: string, base: string = import.meta.url): URL {
  const ext = base.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${ext}`, base);
}

/**
 * A worker running a sibling module. From dist that is plain `new Worker(file.js)`; under tsx (the
 * test runner) the worker first registers tsx's ESM hooks itself and then imports the .ts module.
 */
export function moduleWorker(name: string, options: WorkerOptions = {}): Worker {
  return scriptWorker(siblingModuleUrl(name), options);
}

/**
 * A worker running `url`, a .js file or (under tsx) a .ts one. Node 20 runs no `--import` preload
 * in workers, Node 22 and later do: the worker gets only the parent's `--conditions` and registers
 * tsx once itself (registered twice, its hooks left the worker's import hanging).
 */
export function scriptWorker(url: URL, options: WorkerOptions = {}): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, options);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(boot, { ...options, eval: true, execArgv: conditionsOnly(options.execArgv ?? process.execArgv) });
}

/** The parent's `--conditions` (workspace packages resolve to their sources under tests), nothing else. */
function conditionsOnly(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--conditions=')) out.push(a);
    else if ((a === '--conditions' || a === '-C') && args[i + 1]) out.push(`--conditions=${args[++i]}`);
  }
  return out;
}

export async function ensureModel(
  modelsDir: string,
  id: EmbeddingModelId,
  options: { buildIfMissing?: boolean; log?: (msg: string, fields?: Record<string, unknown>) => void } = {},
): Promise<string> {
  const dir = path.resolve(modelsDir);
  const key = `${dir}\0${id}`;
  const running = inflight.get(key);
  if (running) return running;
  const p = (async () => {
    if (isModelVerified(dir, id)) return modelPath(dir, id);
    if (options.buildIfMissing === false) {
      throw new ModelError(`model ${id} is not built in ${dir}; run \`afterglow models\` (or npm run models)`);
    }
    options.log?.(`model ${id} missing or unverified in ${dir}: building it (worker thread)`, { model: id, modelsDir: dir });
    await runBuildWorker(dir, id);
    return modelPath(dir, id);
  })();
  inflight.set(key, p);
  try {
    return await p;
  } finally {
    inflight.delete(key);
  }
}

function runBuildWorker(modelsDir: string, id: EmbeddingModelId): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = moduleWorker('build-worker', { workerData: { modelsDir, id } });
    let settled = false;
    w.once('message', (m: { ok: boolean; error?: string }) => {
      settled = true;
      if (m.ok) resolve();
      else reject(new ModelError(m.error ?? `building ${id} failed`));
    });
    w.once('error', (err) => {
      settled = true;
      reject(err instanceof ModelError ? err : new ModelError(`building ${id} failed: ${err.message}`));
    });
    w.once('exit', (code) => {
      if (!settled) reject(new ModelError(`model build worker for ${id} exited with code ${code}`));
    });
  });
}

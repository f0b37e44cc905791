/** Whether onnxruntime-node's CUDA execution provider library is installed (no side effects: safe to import from any worker). */
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * Where onnxruntime-node keeps its native libraries, and whether the CUDA provider library is among
 * them: it is not bundled in the npm package (its install script fetches it from NuGet, which our
 * installs skip), so without it trying CUDA only prints a native error before falling back.
 */
export function cudaProviderInstalled(): { installed: boolean; dir: string | undefined } {
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    const bin = path.join(path.dirname(entry), '..', 'bin');
    for (const napi of readdirSync(bin)) {
      const dir = path.join(bin, napi, process.platform, process.arch);
      if (existsSync(path.join(dir, 'onnxruntime_binding.node'))) {
        const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
        return { installed: existsSync(path.join(dir, lib)), dir };
      }
    }
  } catch {
    /* fall through */
  }
  return { installed: false, dir: undefined };
}

// Bundles the SDK with esbuild (already in the tree through tsx/vite): dist/afterglow.mjs (ESM) and
// dist/afterglow.iife.js (a script tag's build: window.Afterglow.init({...})), both minified for
// browsers from 2020 on (IntersectionObserver, fetch keepalive, sendBeacon).
import { build } from 'esbuild';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const common = { entryPoints: [path.join(here, 'src/index.ts')], bundle: true, minify: true, target: ['es2020'], platform: 'browser', legalComments: 'none', logLevel: 'warning' };

/** Build both files into `outDir` (default dist/); returns their paths. */
export async function buildWebSdk(outDir = path.join(here, 'dist')) {
  const esm = path.join(outDir, 'afterglow.mjs');
  const iife = path.join(outDir, 'afterglow.iife.js');
  await Promise.all([
    build({ ...common, format: 'esm', outfile: esm }),
    build({ ...common, format: 'iife', globalName: 'Afterglow', outfile: iife }),
  ]);
  return { esm, iife };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(here, 'build.mjs')) {
  const out = await buildWebSdk();
  console.log(`built ${path.relative(process.cwd(), out.esm)} and ${path.relative(process.cwd(), out.iife)}`);
}

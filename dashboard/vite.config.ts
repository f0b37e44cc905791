import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defaultClientConditions, defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * The dashboard app: dashboard/app -> dashboard/dist/app, served by the dashboard role
 * (src/index.ts). `npm run dev -w @afterglow/dashboard` serves it with hot reload and proxies the
 * API to a running `npm start` (AFTERGLOW_API, default http://127.0.0.1:8080).
 */
export default defineConfig({
  root: here('./app'),
  base: '/',
  plugins: [svelte()],
  // Workspace packages resolve to their TypeScript sources (`source` export condition), so the app
  // builds without `tsc -b` first; only browser-safe subpaths (@afterglow/core/live-protocol) are imported.
  resolve: { conditions: ['source', ...defaultClientConditions] },
  build: {
    outDir: here('./dist/app'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 200,
  },
  server: {
    proxy: { '/v1': { target: process.env.AFTERGLOW_API ?? 'http://127.0.0.1:8080', ws: true } },
  },
});

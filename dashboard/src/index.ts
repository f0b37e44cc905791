import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RoleHandle } from '@afterglow/core';
import { bytesResponses } from '@afterglow/core/api';
import { bundleSize, etagMatches, loadStaticFiles, pickEncoding, type StaticFile } from './static.js';
import { NOT_BUILT_PAGE } from './page.js';

export { loadStaticFiles, bundleSize, pickEncoding, etagMatches, type StaticFile } from './static.js';

/** Where `vite build` (dashboard/vite.config.ts) writes the app: dashboard/dist/app. */
export const DEFAULT_APP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'app');

export interface DashboardOptions {
  /** The built app (a Vite outDir); defaults to dashboard/dist/app. */
  root?: string;
}

/**
 * Content-Security-Policy of the page: scripts only from this origin (the bundle), WebSocket and
 * fetch to this origin (`/v1/live`, the REST API). Styles allow inline: Svelte and uPlot set
 * `style` attributes. Media from this origin (a video's original by byte ranges) or a blob URL (the
 * same bytes fetched with the key).
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The app's files are public (issue 8): it carries no data; the API it calls needs a key. */
const PUBLIC = { config: { scope: 'public' as const } };

/** The dashboard role as the composition root starts every role: its routes, nothing to stop. */
export async function startDashboard(deps: { app: FastifyInstance } & DashboardOptions): Promise<RoleHandle> {
  const { app, ...options } = deps;
  await registerDashboardRoutes(app, options);
  return { ready: {}, stop: async () => undefined };
}

/**
 * The dashboard role: serves the Svelte app built by Vite. `GET /` is the single-page app (it routes
 * in the URL fragment, so no other HTML path exists); `GET /assets/*` are its content-hashed files,
 * cached for a year; other top-level files (icons) are revalidated. Nothing under `/v1/*` is
 * touched: the app reads the live WebSocket and the REST API that the other roles serve.
 */
export async function registerDashboardRoutes(app: FastifyInstance, options: DashboardOptions = {}): Promise<void> {
  const root = options.root ?? DEFAULT_APP_DIR;
  const files = loadStaticFiles(root);
  const index = files.get('/index.html');
  if (!index) {
    app.log.warn({ root }, 'dashboard bundle not built (npm run build): GET / explains how to build it');
    app.get('/', PUBLIC, async (_req, reply) =>
      reply.code(503).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(NOT_BUILT_PAGE),
    );
    return;
  }
  const size = bundleSize(files);
  app.log.info({ root, files: files.size, raw_bytes: size.raw, gzip_bytes: size.gzip, brotli_bytes: size.brotli }, 'dashboard: serving the built app');

  const send = (req: FastifyRequest, reply: FastifyReply, file: StaticFile, extra?: Record<string, string>) => {
    reply.header('cache-control', file.cacheControl).header('etag', file.etag).header('x-content-type-options', 'nosniff');
    if (file.gzip || file.br) reply.header('vary', 'accept-encoding');
    if (extra) for (const [k, v] of Object.entries(extra)) reply.header(k, v);
    if (etagMatches(req.headers['if-none-match'], file.etag)) return reply.code(304).send();
    const encoding = pickEncoding(req.headers['accept-encoding'], file);
    const body = encoding === 'br' ? file.br! : encoding === 'gzip' ? file.gzip! : file.body;
    if (encoding !== 'identity') reply.header('content-encoding', encoding);
    return reply.type(file.type).header('content-length', body.length).send(body);
  };

  const pageHeaders = { 'content-security-policy': CSP, 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };
  app.get('/', { ...PUBLIC, schema: { response: bytesResponses('the single-page app', ['text/html']) } }, (req, reply) => send(req, reply, index, pageHeaders));
  app.get('/index.html', { ...PUBLIC, schema: { response: { 301: { description: 'to /', type: 'null' } } } }, (_req, reply) => reply.redirect('/', 301));
  app.get('/assets/*', { ...PUBLIC, schema: { response: bytesResponses('a content-hashed file of the app (scripts, styles, fonts)', ['*/*']) } }, (req, reply) => {
    const file = files.get(req.url.split('?')[0]!);
    if (!file) return reply.code(404).send({ error: 'not_found', message: 'no such dashboard asset' });
    return send(req, reply, file);
  });
  // Top-level static files next to index.html (favicon, robots.txt, ...): one route each.
  for (const file of files.values()) {
    if (file.urlPath === '/index.html' || file.urlPath.startsWith('/assets/') || file.urlPath.startsWith('/v1/')) continue;
    app.get(file.urlPath, { ...PUBLIC, schema: { response: bytesResponses(`${file.urlPath} of the app`, [file.type]) } }, (req, reply) => send(req, reply, file));
  }
}

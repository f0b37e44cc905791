import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

/**
 * A tiny in-memory static file set for the built dashboard (a few files, ~100 KB): every file is
 * read once at start-up, with a strong ETag and, for text, gzip and brotli variants, so a request
 * costs a map lookup. Vite names everything under `assets/` by content hash, so those are cached
 * for a year (`immutable`); `index.html` and the other top-level files are revalidated each time.
 */

export interface StaticFile {
  /** URL path, `/index.html`, `/assets/index-abc123.js`. */
  urlPath: string;
  type: string;
  etag: string;
  cacheControl: string;
  body: Buffer;
  gzip: Buffer | undefined;
  br: Buffer | undefined;
}

export type Encoding = 'br' | 'gzip' | 'identity';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
const COMPRESSIBLE = /^(text\/|application\/(json|manifest\+json)|image\/svg\+xml)/;
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/** Reads every file under `root` (a Vite `outDir`). Returns an empty map when `root` does not exist. */
export function loadStaticFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let exists = false;
  try {
    exists = statSync(root).isDirectory();
  } catch {
    exists = false;
  }
  if (!exists) return files;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const st = statSync(full);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) {
        const rel = path.relative(root, full).split(path.sep).join('/');
        const body = readFileSync(full);
        const type = TYPES[path.extname(name).toLowerCase()] ?? 'application/octet-stream';
        const compress = COMPRESSIBLE.test(type) && body.length > 512;
        files.set(`/${rel}`, {
          urlPath: `/${rel}`,
          type,
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          cacheControl: rel.startsWith('assets/') ? IMMUTABLE : REVALIDATE,
          body,
          gzip: compress ? gzipSync(body, { level: 9 }) : undefined,
          br: compress ? brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }) : undefined,
        });
      }
    }
  };
  walk(root);
  return files;
}

/** The best encoding the client accepts (q-values honoured; `q=0` refuses). */
export function pickEncoding(acceptEncoding: string | undefined, file: StaticFile): Encoding {
  if (!acceptEncoding || (!file.br && !file.gzip)) return 'identity';
  const q = new Map<string, number>();
  for (const part of acceptEncoding.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q=([0-9.]+)\s*$/.exec(p);
      if (m) weight = Number(m[1]);
    }
    q.set(name.trim(), weight);
  }
  const accepts = (enc: string) => (q.get(enc) ?? q.get('*') ?? 0) > 0;
  if (file.br && accepts('br')) return 'br';
  if (file.gzip && accepts('gzip')) return 'gzip';
  return 'identity';
}

/** Does an If-None-Match header match this ETag (weak comparison, as RFC 9110 asks for GET)? */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === bare);
}

/** Total raw and gzip bytes of the JS and CSS the page loads (for logs and the bundle report). */
export function bundleSize(files: Map<string, StaticFile>): { raw: number; gzip: number; brotli: number } {
  let raw = 0;
  let gzip = 0;
  let brotli = 0;
  for (const f of files.values()) {
    if (!/\.(js|css|html)$/.test(f.urlPath)) continue;
    raw += f.body.length;
    gzip += (f.gzip ?? f.body).length;
    brotli += (f.br ?? f.body).length;
  }
  return { raw, gzip, brotli };
}

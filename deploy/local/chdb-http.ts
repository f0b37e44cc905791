/**
 * A ClickHouse HTTP interface in front of chDB (the ClickHouse engine as a library), so that several
 * processes on ONE machine can share one ClickHouse engine in tests and local runs.
 *
 * THIS IS A STAND-IN, NOT A DEPLOYMENT PIECE. Production (and deploy/docker-compose.yml, deploy/k8s)
 * runs a real ClickHouse server; this file exists because this machine has none (Debian's
 * `clickhouse-server` is 18.16 from 2018: no DateTime64, no insert_deduplication_token) and chDB
 * binds its data directory to a single process. The SQL engine behind it is real ClickHouse
 * (chDB 26.x): parsing, MergeTree parts, materialized views and insert dedup are the server's own.
 * What is emulated is only the HTTP layer, and only the subset @clickhouse/client uses:
 *
 *   - `GET|POST /?query=...` with the rest of the SQL (or an INSERT's data) in the body, or the
 *     whole query in the body; `FORMAT` in the SQL, else `default_format` (TabSeparated);
 *   - `database`, `query_id`, `param_<name>` (server-side bind), and every other URL parameter as a
 *     setting of that one query (applied with SET on a pooled session and reset afterwards, so one
 *     request's `insert_deduplication_token` never leaks into another's);
 *   - `Content-Encoding: gzip|deflate` request bodies; gzip responses when the client asks
 *     (`enable_http_compression=1` + `Accept-Encoding`);
 *   - errors as a non-2xx status, the `Code: N. DB::Exception: ...` text as the body and
 *     `X-ClickHouse-Exception-Code`; `X-ClickHouse-Summary` / `-Query-Id` / `-Format` on success;
 *   - `GET /ping` -> `Ok.`.
 * Not emulated: auth (bound to 127.0.0.1 only, any user/password accepted), sessions
 * (`session_id`), multipart query parameters, progress headers, streaming of results.
 *
 * usage: node --import tsx deploy/local/chdb-http.ts --path DIR [--port 8123] [--host 127.0.0.1]
 * (deploy/local/clickhouse.sh runs it as a managed background service.)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createInflate, gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import type { Session as SessionT } from 'chdb';

const require = createRequire(import.meta.url);
const { Session } = require('chdb') as { Session: typeof SessionT };

/** URL parameters that are part of the HTTP protocol, not settings. */
const PROTOCOL_PARAMS = new Set(['query', 'database', 'default_format', 'query_id', 'user', 'password', 'session_id', 'session_timeout', 'session_check', 'role']);
/** Settings of the HTTP layer that the embedded engine does not know (and must not SET). */
const HTTP_ONLY_SETTINGS = new Set([
  'wait_end_of_query',
  'send_progress_in_http_headers',
  'http_response_buffer_size',
  'http_headers_progress_interval_ms',
  'http_send_progress_interval_ms',
  'enable_http_compression',
  'http_zlib_compression_level',
  'http_native_compression_disable_checksumming_on_decompress',
  'compress',
  'decompress',
]);
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ChdbHttpOptions {
  /** chDB data directory (one process may own it at a time). */
  path: string;
  host?: string;
  port?: number;
  /** Sessions run queries concurrently; each holds its own settings. Default 4. */
  sessions?: number;
  /** Largest accepted request body after decompression. Default 512 MiB. */
  maxBodyBytes?: number;
}

export interface ChdbHttpServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface Pooled {
  session: SessionT;
  database: string;
}

/** Start the stand-in; resolves once it listens. */
export async function startChdbHttp(options: ChdbHttpOptions): Promise<ChdbHttpServer> {
  mkdirSync(options.path, { recursive: true });
  const maxBody = options.maxBodyBytes ?? 512 * 1024 * 1024;
  const size = Math.max(1, options.sessions ?? 4);
  const idle: Pooled[] = [];
  const all: Pooled[] = [];
  const waiters: ((p: Pooled) => void)[] = [];
  const acquire = async (): Promise<Pooled> => {
    const free = idle.pop();
    if (free) return free;
    if (all.length < size) {
      const p = { session: new Session(options.path), database: 'default' };
      all.push(p);
      return p;
    }
    return new Promise((resolve) => waiters.push(resolve));
  };
  const release = (p: Pooled) => {
    const next = waiters.shift();
    if (next) next(p);
    else idle.push(p);
  };
  // Warm up (creates the engine and the default database) before accepting connections.
  const first = await acquire();
  await first.session.queryAsync('SELECT 1', { format: 'TabSeparated' });
  release(first);

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) sendError(res, err);
      else res.destroy(err as Error);
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/ping' || (url.pathname === '/' && req.method === 'GET' && !url.searchParams.has('query'))) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' }).end('Ok.\n');
      return;
    }
    if (url.pathname !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=UTF-8' }).end(`There is no handle ${url.pathname}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, POST' }).end();
      return;
    }
    if (/^multipart\//i.test(req.headers['content-type'] ?? '')) throw new HttpError(400, 'multipart query parameters are not supported by this stand-in');
    const body = req.method === 'POST' ? await readBody(req, maxBody) : Buffer.alloc(0);
    const params = url.searchParams;
    const head = params.get('query');
    // As the server does: the `query` parameter, then the body (an INSERT's data, or the rest of the SQL).
    const sql = head !== null ? (body.length > 0 ? `${head}\n${body.toString('utf8')}` : head) : body.toString('utf8');
    if (sql.trim() === '') throw new HttpError(400, 'Empty query', 'Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)');
    const database = params.get('database') || 'default';
    if (!DATABASE_NAME.test(database)) throw new HttpError(400, `invalid database ${JSON.stringify(database)}`);
    const settings: [string, string][] = [];
    const binds: Record<string, string> = {};
    for (const [k, v] of params) {
      if (k.startsWith('param_')) binds[k.slice(6)] = v;
      else if (!PROTOCOL_PARAMS.has(k) && !HTTP_ONLY_SETTINGS.has(k)) {
        if (!SETTING_NAME.test(k)) throw new HttpError(400, `invalid setting name ${JSON.stringify(k)}`);
        settings.push([k, v]);
      }
    }
    const queryId = params.get('query_id') || randomUUID();
    const format = params.get('default_format') || 'TabSeparated';

    const pooled = await acquire();
    let healthy = true;
    try {
      if (pooled.database !== database) {
        await pooled.session.queryAsync(`USE ${database}`);
        pooled.database = database;
      }
      if (settings.length > 0) await pooled.session.queryAsync(`SET ${settings.map(([k, v]) => `${k} = ${literal(v)}`).join(', ')}`);
      const started = process.hrtime.bigint();
      try {
        const result =
          Object.keys(binds).length > 0
            ? await pooled.session.queryBindAsync(sql, binds, { format })
            : await pooled.session.queryAsync(sql, { format });
        const elapsed = String(process.hrtime.bigint() - started);
        const insert = /^\s*INSERT\b/i.test(head ?? sql);
        const rows = String(result.rowsRead ?? 0);
        const bytes = String(result.bytesRead ?? 0);
        const summary = {
          read_rows: rows,
          read_bytes: bytes,
          written_rows: insert ? rows : '0',
          written_bytes: insert ? bytes : '0',
          total_rows_to_read: '0',
          result_rows: insert ? '0' : rows,
          result_bytes: insert ? '0' : bytes,
          elapsed_ns: elapsed,
        };
        let out: Buffer = Buffer.from(result.bytes());
        const headers: Record<string, string> = {
          'content-type': 'text/plain; charset=UTF-8',
          'x-clickhouse-query-id': queryId,
          'x-clickhouse-summary': JSON.stringify(summary),
          'x-clickhouse-format': formatOf(sql) ?? format,
          'x-clickhouse-timezone': 'UTC',
          'x-clickhouse-server-display-name': 'chdb-http (local stand-in)',
        };
        if (params.get('enable_http_compression') === '1' && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
          out = gzipSync(out, { level: 1 });
          headers['content-encoding'] = 'gzip';
        }
        headers['content-length'] = String(out.length);
        res.writeHead(200, headers).end(out);
      } finally {
        if (settings.length > 0) {
          // Settings are per session in chDB: put them back so the next request starts clean.
          await pooled.session.queryAsync(`SET ${settings.map(([k]) => `${k} = DEFAULT`).join(', ')}`).catch(() => {
            healthy = false;
          });
        }
      }
    } finally {
      if (healthy) release(pooled);
      else {
        // A session whose settings could not be reset is retired; a fresh one takes its place.
        all.splice(all.indexOf(pooled), 1);
        try {
          pooled.session.close();
        } catch {
          /* ignore */
        }
        const next = waiters.shift();
        if (next) void acquire().then(next);
      }
    }
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8123, host, () => resolve());
  });
  server.keepAliveTimeout = 10_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 8123);
  return {
    url: `http://${host}:${port}`,
    port,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const p of all) {
        try {
          p.session.close();
        } catch {
          /* ignore */
        }
      }
    },
  };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body = `Code: 36. DB::Exception: ${message}. (BAD_ARGUMENTS)`,
  ) {
    super(message);
  }
}

/** ClickHouse's HTTP status for an exception code (the common ones; the rest are 500). */
function statusOf(code: number): number {
  if ([62, 27, 36, 41, 43, 47, 44, 53, 69, 117, 128, 159, 164, 395].includes(code)) return code === 159 ? 504 : code === 164 ? 403 : 400;
  if (code === 60 || code === 81) return 404;
  if (code === 516) return 401;
  return 500;
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof HttpError) {
    const code = /^Code: (\d+)/.exec(err.body)?.[1] ?? '36';
    res.writeHead(err.status, { 'content-type': 'text/plain; charset=UTF-8', 'x-clickhouse-exception-code': code }).end(`${err.body}\n`);
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  const m = /Code: (\d+)\./.exec(message);
  const code = m ? Number(m[1]) : 1002;
  const text = m ? message.slice(m.index) : `Code: 1002. DB::Exception: ${message}. (UNKNOWN_EXCEPTION)`;
  res.writeHead(statusOf(code), { 'content-type': 'text/plain; charset=UTF-8', 'x-clickhouse-exception-code': String(code) }).end(`${text}\n`);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? '').toLowerCase();
  const source = encoding === 'gzip' ? req.pipe(createGunzip()) : encoding === 'deflate' ? req.pipe(createInflate()) : req;
  if (encoding && encoding !== 'gzip' && encoding !== 'deflate' && encoding !== 'identity')
    throw new HttpError(400, `unsupported Content-Encoding ${encoding}`);
  const chunks: Buffer[] = [];
  let n = 0;
  await pipeline(source, async (stream: AsyncIterable<Buffer>) => {
    for await (const chunk of stream) {
      n += chunk.length;
      if (n > max) throw new HttpError(413, `request body over ${max} bytes`);
      chunks.push(chunk);
    }
  });
  return Buffer.concat(chunks, n);
}

/** A setting value from the URL as a SQL string literal (ClickHouse parses it per setting type, as the server does). */
function literal(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function formatOf(sql: string): string | undefined {
  return /\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$/i.exec(sql.slice(0, 10_000).split('\n')[0] ?? '')?.[1];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      path: { type: 'string' },
      port: { type: 'string', default: process.env.CLICKHOUSE_PORT ?? '8123' },
      host: { type: 'string', default: '127.0.0.1' },
      sessions: { type: 'string', default: '4' },
    },
  });
  if (!values.path) {
    console.error('usage: chdb-http.ts --path DIR [--port 8123] [--host 127.0.0.1] [--sessions 4]');
    process.exit(2);
  }
  const server = await startChdbHttp({ path: values.path, port: Number(values.port), host: values.host, sessions: Number(values.sessions) });
  console.log(`[chdb-http] ClickHouse HTTP stand-in (chDB) on ${server.url}, data ${values.path}`);
  let closing = false;
  const stop = (signal: string) => {
    if (closing) return;
    closing = true;
    console.log(`[chdb-http] ${signal}: closing`);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error('[chdb-http]', err);
    process.exit(1);
  });
}

import { randomUUID } from 'node:crypto';
import { STATUS_CODES, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import websocket from '@fastify/websocket';
import { AfterglowError, BackpressureError, BadRequestError, eventJsonSchema, type HttpSettings, type Logger, type Registry } from '@afterglow/core';
import { API_ROUTES, readinessSchema, responsesOf, serializeWhole } from '@afterglow/core/api';
import { installAuth, type AuthOptions } from './auth.js';
import { markDocsRoutesPublic, registerOpenApi } from './openapi.js';

/** The API's version in the OpenAPI document (the `afterglow` package's). */
const API_VERSION = '0.1.0';

export interface HttpOptions {
  log: Logger;
  registry: Registry;
  wsMaxPayloadBytes: number;
  /** Readiness checks by name; each resolves when its dependency answers. */
  readiness: Record<string, () => Promise<unknown>>;
  /** The access check (cli/src/auth.ts), installed before any route. */
  auth: AuthOptions;
  /** Timeouts and the connection cap (HTTP_*); absent = Node's and Fastify's defaults. */
  limits?: Omit<HttpSettings, 'host' | 'port'>;
}

/**
 * Slow clients are cut: the whole request (headers and body) must arrive within requestTimeout
 * (408), headers within headersTimeout, an idle kept-alive socket closes after keepAliveTimeout,
 * a socket silent both ways after idleTimeout (upgraded WebSockets have their own liveness), and
 * past maxConnections new sockets are closed at accept. Node checks the first two only every
 * connectionsCheckingInterval (30 s by default), so it is set from them.
 */
function serverLimits(limits: HttpOptions['limits']) {
  if (!limits) return {};
  const { requestTimeoutMs: request, headersTimeoutMs: headers } = limits;
  const timeouts = [request, headers].filter((t) => t > 0);
  const headersTimeout = headers > 0 && request > 0 ? Math.min(headers, request) : headers;
  return {
    requestTimeout: request,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    http: {
      ...(headersTimeout > 0 && { headersTimeout }),
      ...(timeouts.length > 0 && { connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(Math.min(...timeouts) / 4))) }),
    },
  };
}

/**
 * The HTTP server every role runs: health, readiness, typed-error mapping (clients get a
 * code and a message, never a stack trace) and request ids for log correlation. Roles add routes.
 */
export async function createHttpServer(options: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...serverLimits(options.limits),
    loggerInstance: options.log as FastifyBaseLogger,
    // Per-request lines would drown the logs at event rates; errors are logged by the handler below.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    // URLs the router refuses (a path parameter over maxParamLength, bad percent-encoding): a
    // stable code, and the URL is not echoed back.
    frameworkErrors: (err: Error & { code?: string; statusCode?: number }, _req, reply) => {
      const code = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'param_too_long' : err.code === 'FST_ERR_BAD_URL' ? 'bad_url' : 'bad_request';
      const message = code === 'param_too_long' ? 'a path parameter is over 100 characters' : code === 'bad_url' ? 'the URL is not valid (percent-encoding)' : 'the request could not be read';
      return (reply as FastifyReply).code(err.statusCode && err.statusCode < 500 ? err.statusCode : 400).send({ error: code, message });
    },
    // Requests Node cannot even parse (header overflow, timeout, bad HTTP) answer in the same
    // {error, message} shape as everything else, with a stable code.
    clientErrorHandler: (err: Error & { code?: string }, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, code, message] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'headers_too_large', 'the request line and headers are over the size limit']
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'request_timeout', 'the request took too long to arrive']
            : [400, 'bad_http', 'the request is not valid HTTP'];
      const body = JSON.stringify({ error: code, message });
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      }
      socket.destroy(err);
    },
  });
  if (options.limits && options.limits.maxConnections > 0) app.server.maxConnections = options.limits.maxConnections;
  await app.register(websocket, {
    options: { maxPayload: options.wsMaxPayloadBytes },
    // A client's broken frame (too big, bad UTF-8, bad opcode) is its problem, not a server error:
    // ws has already answered with the matching close code; keep it out of the error log.
    errorHandler: (err, socket, req) => {
      const code = (err as { code?: string }).code ?? '';
      if (code.startsWith('WS_ERR_')) req.log.debug({ code, reqId: req.id }, 'websocket closed: bad frame from the client');
      else req.log.error({ err, reqId: req.id }, 'websocket handler failed');
      socket.terminate();
    },
  });
  markDocsRoutesPublic(app);
  installAuth(app, options.auth);
  // Before any route: the document is built from the routes registered after it.
  await registerOpenApi(app, { version: API_VERSION, eventSchema: eventJsonSchema as unknown as Record<string, unknown> });

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  app.setErrorHandler((err: Error, req, reply) => {
    if (err instanceof BackpressureError) {
      reply.header('retry-after', Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
      return reply.code(429).send({ error: err.code, message: err.message });
    }
    if (err instanceof BadRequestError) return reply.code(err.status).send({ error: err.code, message: err.message });
    if (err instanceof AfterglowError) {
      req.log.warn({ err, reqId: req.id }, 'dependency unavailable');
      reply.header('retry-after', 1);
      return reply.code(503).send({ error: err.code, message: err.message });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      const code = (err as { code?: string }).code ?? 'bad_request';
      return reply.code(status).send({ error: code.toLowerCase().replace(/^fst_err_/, ''), message: err.message });
    }
    req.log.error({ err, reqId: req.id }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error', request_id: req.id });
  });

  // Unknown paths answer like every other error (and never echo the URL, which may hold a token).
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: 'not_found', message: `no route for ${req.method} on this path` }));

  const pub = { config: { scope: 'public' as const } };
  app.get('/healthz', { ...pub, serializerCompiler: serializeWhole, schema: { response: responsesOf(API_ROUTES.health) } }, async () => ({ status: 'ok' }));
  // Public (probes carry no key), so it says only which dependency fails: its error text (hosts,
  // addresses, SQL) goes to the log, never to the caller.
  const readiness = {
    ...pub,
    serializerCompiler: serializeWhole,
    schema: { response: responsesOf(API_ROUTES.readiness, { 503: { description: 'a dependency is failing (named in checks)', schema: readinessSchema } }) },
  };
  app.get('/readyz', readiness, async (req, reply) => {
    const checks: Record<string, 'ok' | 'failing'> = {};
    let ready = true;
    await Promise.all(
      Object.entries(options.readiness).map(async ([name, check]) => {
        try {
          await check();
          checks[name] = 'ok';
        } catch (err) {
          ready = false;
          checks[name] = 'failing';
          req.log.warn({ err, check: name, reqId: req.id }, 'readiness check failing');
        }
      }),
    );
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });
  // No /metrics here: the process-wide numbers (every tenant's traffic) are served on the admin
  // listener (startMetricsServer, METRICS_PORT), never on the port tenants reach.
  return app;
}

/**
 * Prometheus' endpoint on its own listener (METRICS_PORT, bound to METRICS_HOST, loopback by
 * default): GET /metrics and nothing else. No key: what protects it is where it listens.
 */
export async function startMetricsServer(registry: Registry, host: string, port: number, log: Logger): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found', message: 'this listener serves GET /metrics only' }));
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err }, 'metrics not collected');
        res.writeHead(500).end();
      },
    );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  return {
    url,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

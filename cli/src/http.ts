import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import { AfterglowError, BackpressureError, BadRequestError, type Logger, type Registry } from '@afterglow/core';

export interface HttpOptions {
  log: Logger;
  registry: Registry;
  wsMaxPayloadBytes: number;
  /** Readiness checks by name; each resolves when its dependency answers. */
  readiness: Record<string, () => Promise<unknown>>;
}

/**
 * The HTTP server every role runs: health, readiness, metrics, typed-error mapping (clients get a
 * code and a message, never a stack trace) and request ids for log correlation. Roles add routes.
 */
export async function createHttpServer(options: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.log as FastifyBaseLogger,
    // Per-request lines would drown the logs at event rates; errors are logged by the handler below.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
  });
  await app.register(websocket, { options: { maxPayload: options.wsMaxPayloadBytes } });

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

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const checks: Record<string, string> = {};
    let ready = true;
    await Promise.all(
      Object.entries(options.readiness).map(async ([name, check]) => {
        try {
          await check();
          checks[name] = 'ok';
        } catch (err) {
          ready = false;
          checks[name] = (err as Error).message.slice(0, 200);
        }
      }),
    );
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  return app;
}

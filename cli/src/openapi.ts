import type { FastifyInstance, RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';

/**
 * The OpenAPI 3.1 document of the running process, generated from the route schemas every role
 * registers (so it lists exactly the routes this process serves, with the roles it runs), plus
 * what the schemas do not say: each route's access scope (`x-afterglow-scope`), the bearer key it
 * needs, and the error answers every route can give in the `{error, message}` shape.
 * Served at GET /v1/openapi.json, with a reading page at /docs; both public (they describe the API,
 * never a tenant's data).
 */
export const OPENAPI_PATH = '/v1/openapi.json';

const ERROR: Record<string, unknown> = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'stable code clients match on' },
    message: { type: 'string' },
    request_id: { type: 'string' },
  },
};

const EVENTS_BODY = {
  description:
    'Events: a JSON array (or one object), or NDJSON (one event per line); gzip, deflate or br with Content-Encoding. text/plain is read as JSON ' +
    '(browsers: the web SDK sends it with a web key in ?access_token=, which needs no CORS preflight)',
  required: true,
  content: {
    'application/json': { schema: { oneOf: [{ type: 'array', items: { $ref: '#/components/schemas/Event' } }, { $ref: '#/components/schemas/Event' }] } },
    'application/x-ndjson': { schema: { type: 'string' } },
    'text/plain': { schema: { type: 'string' } },
  },
};

export interface OpenApiOptions {
  version: string;
  /** The event schema (core's eventJsonSchema), documented once as a component. */
  eventSchema: Record<string, unknown>;
}

export async function registerOpenApi(app: FastifyInstance, options: OpenApiOptions): Promise<void> {
  const { $schema: _drop, ...event } = options.eventSchema;
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Afterglow API',
        version: options.version,
        description:
          'Live creative-performance intelligence. Every route but the public ones needs an API key (Authorization: Bearer ag_...) ' +
          'with the scope named in x-afterglow-scope; a key reaches only its own tenant. Errors answer {error, message} with a stable code. ' +
          'WebSocket endpoints (/v1/stream, /v1/live, /v1/edge) are not operations here; README describes their messages.',
      },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Afterglow API key (afterglow keys create)' } },
        schemas: { Error: ERROR, Event: event } as never,
      },
    },
    hideUntagged: false,
    transform: ({ schema, url, route }) => {
      const scope = scopeOf(route);
      const responses: Record<string, unknown> = { ...((schema?.response as Record<string, unknown> | undefined) ?? {}) };
      const errorAnswer = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
      // Routes that declare no success answer: the range (200, or 201/202 for what they create or queue).
      if (!Object.keys(responses).some((s) => s.startsWith('2'))) responses['2XX'] = { description: 'success' };
      responses['400'] ??= errorAnswer('invalid request (bad query, body or parameter)');
      if (scope !== 'public') {
        responses['401'] ??= errorAnswer('no key, or a key that is unknown, revoked or expired');
        responses['403'] ??= errorAnswer('the key lacks the scope, or names another tenant');
        responses['429'] ??= errorAnswer('over the key\'s or address\'s rate limit (Retry-After)');
      }
      if (url.includes(':') || url.includes('*') || route.method !== 'GET') responses['404'] ??= errorAnswer('no such resource (named in the path or body) for this tenant');
      if (route.method === 'POST' || route.method === 'PUT') {
        responses['413'] ??= errorAnswer('body over the size or count limit');
        responses['415'] ??= errorAnswer('content type not accepted');
        responses['422'] ??= errorAnswer('understood but refused (every event rejected, or a value not allowed)');
      }
      responses['500'] ??= errorAnswer('internal error (details in the server log under request_id)');
      responses['503'] ??= errorAnswer('a dependency (bus, store) is unavailable; retry');
      const documented: Record<string, unknown> = {
        ...schema,
        tags: [tagOf(url)],
        response: responses,
        security: scope === 'public' ? [] : [{ apiKey: [] }],
        'x-afterglow-scope': scope,
      };
      if ((route as { websocket?: boolean }).websocket) documented.description = 'WebSocket: upgrade with GET; messages as described in README';
      if (url === '/v1/events' || url === '/v1/import/events') documented['x-request-body'] = EVENTS_BODY;
      return { schema: documented as typeof schema, url };
    },
    transformObject: (doc) => {
      // Event bodies are read by ingest's own streaming parser, not by a body schema: documented here.
      const spec = (doc as { openapiObject: { paths?: Record<string, Record<string, Record<string, unknown>>> } }).openapiObject;
      for (const methods of Object.values(spec.paths ?? {})) {
        for (const op of Object.values(methods)) {
          if (op['x-request-body']) {
            op.requestBody = op['x-request-body'];
            delete op['x-request-body'];
          }
        }
      }
      return spec;
    },
  });
  app.get(OPENAPI_PATH, { config: { scope: 'public' }, schema: { hide: true } }, async () => app.swagger());
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { url: OPENAPI_PATH, deepLinking: true } as never,
    staticCSP: true,
    uiHooks: {
      // The page plugin redirects static/index.html to itself when a query string is present (a
      // loop a browser gives up on): send it to the page instead.
      onRequest: (req, reply, done) => {
        if (req.url.split('?')[0] === `${DOCS_PREFIX}/static/index.html`) void reply.redirect(`${DOCS_PREFIX}/`);
        else done();
      },
    },
  });
}

const DOCS_PREFIX = '/docs';

/**
 * The reading page's own routes (HTML, scripts, the document's copies) are public like the
 * document. An onRoute hook on the root, added before the access check's, so that the check
 * sees the scope (hooks run in the order they were added; the page plugin sets no route config).
 */
export function markDocsRoutesPublic(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) {
      route.config = { ...(route.config as object), scope: 'public' } as typeof route.config;
    }
  });
}

function scopeOf(route: RouteOptions): string {
  return ((route.config as { scope?: string } | undefined)?.scope ?? 'undeclared') as string;
}

function tagOf(url: string): string {
  const part = url.split('/')[2] ?? 'health';
  return part.startsWith(':') || part === '' ? 'health' : part;
}

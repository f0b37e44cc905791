import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import {
  ApiKeyStore,
  AuthFailureBudget,
  AuthFailuresError,
  BadRequestError,
  ForbiddenError,
  RateLimiter,
  type AfterglowConfig,
  type HotState,
  type Store,
  SCOPES,
  UnauthorizedError,
  actingTenant,
  parseScopes,
  principalOf,
  setPrincipal,
  setQuota,
  type AuthSettings,
  type Logger,
  type RouteScope,
} from '@afterglow/core';
import { API_ROUTES, responsesOf, serializeWhole, type RouteSpec, type ResponseOf } from '@afterglow/core/api';

/**
 * The access check every route passes through (issue 8), installed on the HTTP server before any
 * route is added:
 *
 * - Every route declares `config: { scope }` (ingest | read | admin | public). A route without one
 *   is refused at request time (fail closed) and listed by `registeredRoutes`, which the tenancy
 *   test walks.
 * - The key comes from `Authorization: Bearer <key>`, `x-api-key`, or, on a WebSocket upgrade only
 *   (browsers cannot set headers there), the `access_token` query parameter, which is then cut
 *   from the URL so no log line carries it. No key or a bad one: 401; a key without the scope: 403.
 * - The principal is left on the request; handlers resolve the tenant with actingTenant().
 * - WebSocket upgrades from a browser (an Origin header) must come from the server's own origin or
 *   one in AUTH_ALLOWED_ORIGINS (cross-site WebSocket hijacking), whatever AUTH_MODE says. Plain
 *   HTTP needs no such check: keys travel in a header a browser never adds on its own.
 * - Web keys (the browser SDK; a key with origins, ingest-only by construction) are public: they
 *   sit in page source. sendBeacon cannot set headers, so such a key may also come as the
 *   `access_token` query parameter (cut from the URL like the upgrade one); an ordinary key there is
 *   refused, so a secret never learns to travel in URLs. Every request with a web key must carry an
 *   Origin among the key's origins (403 otherwise, with no CORS headers, so the page cannot read
 *   the answer); allowed ones get Access-Control-Allow-Origin. An Origin header can be forged
 *   outside a browser: what bounds such a caller is the key's scope (write events of its tenant,
 *   never read), its placements and its rate limits, as for any key.
 * - Rate limits: request bodies count against the key's bytes/s; WebSocket upgrades hold one of its
 *   connection slots until the socket closes; handlers charge events through quotaOf(req).
 * - Failed authentications (a key presented and refused) are charged to the client address
 *   (AUTH_FAIL_*); an address over its budget gets 429 + Retry-After before its key is even parsed.
 *   Refusing a key never queries the store (the key cache is complete), so this bounds CPU, not I/O.
 */

export interface RouteEntry {
  method: string;
  url: string;
  scope: RouteScope | undefined;
  websocket: boolean;
}

const ROUTES = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route added to `app` since installAuth, with its declared scope. */
export function registeredRoutes(app: FastifyInstance): RouteEntry[] {
  return [...(ROUTES.get(app) ?? [])];
}

export interface AuthOptions {
  settings: AuthSettings;
  /** Absent when AUTH_MODE=off. */
  keys: ApiKeyStore | undefined;
  limiter: RateLimiter | undefined;
  log: Logger;
}

const ROUTE_SCOPES: readonly string[] = [...SCOPES, 'public'];

/** The presented key, and whether it came in the URL. */
function keyFrom(req: FastifyRequest): { raw: string | undefined; inUrl: boolean } {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return { raw: m ? m[1] : auth, inUrl: false };
  }
  const header = req.headers['x-api-key'];
  if (typeof header === 'string') return { raw: header, inUrl: false };
  const q = req.query as Record<string, unknown> | undefined;
  const token = q?.access_token;
  return typeof token === 'string' ? { raw: token, inUrl: true } : { raw: undefined, inUrl: false };
}

/** Cut access_token out of the URL (and the parsed query) before anything can log it. */
function redactToken(req: FastifyRequest): void {
  const raw = req.raw.url;
  if (raw?.includes('access_token')) req.raw.url = raw.replace(/([?&]access_token=)[^&#]*/g, '$1REDACTED');
  const q = req.query as Record<string, unknown> | undefined;
  if (q && typeof q === 'object' && 'access_token' in q) delete q.access_token;
}

function originAllowed(req: FastifyRequest, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser: the key is the check
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  const routes: RouteEntry[] = [];
  ROUTES.set(app, routes);
  const { settings, keys, limiter, log } = options;
  const failures = settings.failures ? new AuthFailureBudget(settings.failures) : undefined;

  app.addHook('onRoute', (route: RouteOptions) => {
    const scope = (route.config as { scope?: RouteScope } | undefined)?.scope;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      routes.push({ method, url: route.url, scope, websocket: Boolean((route as { websocket?: boolean }).websocket) });
    }
    if (scope === undefined || !ROUTE_SCOPES.includes(scope)) {
      log.error({ url: route.url, methods }, 'route declares no valid access scope (config.scope): every request to it is refused');
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    const { raw, inUrl } = keyFrom(req);
    if (inUrl) redactToken(req);
    if (req.is404) return;
    const scope = (req.routeOptions.config as { scope?: RouteScope } | undefined)?.scope;
    if (scope === undefined || !ROUTE_SCOPES.includes(scope)) {
      throw new BadRequestError('route_unprotected', 'this route declares no access scope and is refused', 403);
    }
    if (upgrade && !originAllowed(req, settings.allowedOrigins)) {
      throw new ForbiddenError('origin_forbidden', 'WebSocket connections from this origin are not allowed (AUTH_ALLOWED_ORIGINS)');
    }
    if (scope === 'public' || !keys) return;
    if (raw !== undefined && failures) {
      const wait = failures.blocked(req.ip);
      if (wait > 0) throw new AuthFailuresError(wait);
    }
    const principal = raw === undefined ? undefined : await keys.authenticate(raw);
    if (!principal) {
      if (raw !== undefined) failures?.fail(req.ip);
      reply.header('www-authenticate', 'Bearer');
      throw new UnauthorizedError(
        raw === undefined
          ? 'an API key is required: Authorization: Bearer <key> (WebSockets from a browser: ?access_token=<key>)'
          : 'the API key is not valid (unknown, revoked or expired)',
      );
    }
    if (principal.origins) {
      const origin = req.headers.origin;
      if (origin === undefined || !principal.origins.includes(origin)) {
        throw new ForbiddenError('origin_forbidden', 'this web key is not allowed from this origin (its origins are set when it is created)');
      }
      reply.header('access-control-allow-origin', origin);
      reply.header('vary', 'Origin');
    } else if (inUrl && !upgrade) {
      throw new UnauthorizedError('only web keys (created with origins) may travel in the URL; send this key in Authorization: Bearer <key>');
    }
    if (!principal.scopes.includes(scope)) throw new ForbiddenError('scope_forbidden', `this key lacks the ${scope} scope`);
    setPrincipal(req, principal);
    if (!limiter) return;
    setQuota(req, limiter.quota(principal));
    // A Content-Length the body limit will refuse anyway costs at most one burst.
    const length = Math.min(Number(req.headers['content-length'] ?? 0) || 0, settings.rate.bytesBurst);
    if (length > 0) await limiter.bytes(principal, length);
    if (upgrade) {
      const lease = await limiter.connect(principal);
      const socket = req.raw.socket;
      if (socket.destroyed) lease.release();
      else socket.once('close', () => lease.release());
    }
  });

  // Defence in depth, for every route whatever its handler does: a tenant_id in the query or in a
  // JSON object body must be the key's own; a query without one gets the key's tenant.
  app.addHook('preValidation', async (req) => {
    const p = principalOf(req);
    if (!p) return;
    const q = req.query as Record<string, unknown> | undefined;
    if (q && typeof q === 'object') {
      if (q.tenant_id === undefined) q.tenant_id = p.tenantId;
      else if (q.tenant_id !== p.tenantId) throw new ForbiddenError('tenant_forbidden', 'this key belongs to another tenant');
    }
    const b = req.body as Record<string, unknown> | undefined;
    if (b && typeof b === 'object' && !Array.isArray(b) && !Buffer.isBuffer(b) && b.tenant_id !== undefined && b.tenant_id !== p.tenantId) {
      throw new ForbiddenError('tenant_forbidden', 'this key belongs to another tenant');
    }
  });

  if (limiter) {
    // Bodies without a Content-Length are counted as they stream and charged when they end
    // (the bucket may go into debt, which refuses the key's next requests).
    app.addHook('preParsing', async (req, _reply, payload) => {
      const principal = principalOf(req);
      if (!principal || req.headers['content-length'] !== undefined) return payload;
      let bytes = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
        flush(done) {
          limiter.bytes(principal, bytes).catch(() => {});
          done();
        },
      });
      payload.on('error', (err) => counter.destroy(err));
      return payload.pipe(counter);
    });
  }
}

/** Who the caller is, as its key says: the dashboard learns its tenant from here. */
export function registerWhoami(app: FastifyInstance): void {
  app.get('/v1/whoami', { config: { scope: 'read' }, ...answers(API_ROUTES.whoami) }, async (req) => {
    const p = principalOf(req);
    if (!p) throw new BadRequestError('auth_off', 'AUTH_MODE=off: requests carry no key', 404);
    return { tenant_id: p.tenantId, key_id: p.keyId, scopes: p.scopes, placements: p.placements ?? null, origins: p.origins ?? null };
  });
}

const KEY_ID = { type: 'string', pattern: '^k[0-9a-f]{16}$' } as const;

/** The documented answers of a route, sent whole (JSON.stringify: see serializeWhole); spread into the options, `schema` merged. */
function answers(spec: RouteSpec, schema: Record<string, unknown> = {}) {
  return { serializerCompiler: serializeWhole, schema: { ...schema, response: responsesOf(spec) } };
}
const TENANT = { type: 'string', minLength: 1, maxLength: 128 } as const;

/**
 * Key administration for a tenant's admin keys (a key only ever manages its own tenant's keys):
 *   POST   /v1/keys               { tenant_id?, scopes, name?, placements?, origins?, expires_at? } -> 201 { key, info }
 *   GET    /v1/keys?tenant_id                                                             -> { keys }
 *   POST   /v1/keys/:id/rotate    { tenant_id?, grace_ms? }                               -> { key, info, previous }
 *   DELETE /v1/keys/:id?tenant_id                                                         -> { info }
 * The secret is in the reply once; only its hash is stored.
 */
export function registerKeyRoutes(app: FastifyInstance, keys: ApiKeyStore): void {
  const admin = { scope: 'admin' as const };
  app.post(
    '/v1/keys',
    {
      config: admin,
      serializerCompiler: serializeWhole,
      schema: {
        response: responsesOf(API_ROUTES.createKey),
        body: {
          type: 'object',
          required: ['scopes'],
          additionalProperties: false,
          properties: {
            tenant_id: TENANT,
            scopes: { anyOf: [{ type: 'string', maxLength: 64 }, { type: 'array', maxItems: 3, items: { type: 'string', maxLength: 16 } }] },
            name: { type: 'string', maxLength: 128 },
            placements: { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 128 } },
            origins: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 256 } },
            expires_at: { type: 'integer', minimum: 0 },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { tenant_id?: string; scopes: string | string[]; name?: string; placements?: string[]; origins?: string[]; expires_at?: number };
      const tenantId = actingTenant(principalOf(req), b.tenant_id);
      const created = await keys.create({
        tenantId,
        scopes: parseScopes(b.scopes),
        ...(b.name !== undefined && { name: b.name }),
        ...(b.placements !== undefined && { placements: b.placements }),
        ...(b.origins !== undefined && { origins: b.origins }),
        ...(b.expires_at !== undefined && { expiresAt: b.expires_at }),
      });
      return reply.code(201).send(created);
    },
  );
  app.get('/v1/keys', { config: admin, ...answers(API_ROUTES.listKeys, { querystring: { type: 'object', properties: { tenant_id: TENANT } } }) }, async (req): Promise<ResponseOf<'listKeys'>> => {
    const tenantId = actingTenant(principalOf(req), (req.query as { tenant_id?: string }).tenant_id);
    return { keys: await keys.list(tenantId) };
  });
  app.post(
    '/v1/keys/:id/rotate',
    {
      config: admin,
      serializerCompiler: serializeWhole,
      schema: {
        response: responsesOf(API_ROUTES.rotateKey),
        params: { type: 'object', required: ['id'], properties: { id: KEY_ID } },
        body: { type: 'object', additionalProperties: false, properties: { tenant_id: TENANT, grace_ms: { type: 'integer', minimum: 0, maximum: 30 * 24 * 3600_000 } } },
      },
    },
    async (req): Promise<ResponseOf<'rotateKey'>> => {
      const b = (req.body ?? {}) as { tenant_id?: string; grace_ms?: number };
      const tenantId = actingTenant(principalOf(req), b.tenant_id);
      return keys.rotate(tenantId, (req.params as { id: string }).id, b.grace_ms ?? 24 * 3600_000);
    },
  );
  app.delete(
    '/v1/keys/:id',
    { config: admin, ...answers(API_ROUTES.revokeKey, { params: { type: 'object', required: ['id'], properties: { id: KEY_ID } }, querystring: { type: 'object', properties: { tenant_id: TENANT } } }) },
    async (req): Promise<ResponseOf<'revokeKey'>> => {
      const tenantId = actingTenant(principalOf(req), (req.query as { tenant_id?: string }).tenant_id);
      return { info: await keys.revoke(tenantId, (req.params as { id: string }).id) };
    },
  );
}

/**
 * The composition root's half of auth: the key store (when AUTH_MODE=keys) and the rate limiter
 * over Redis when configured, else process memory.
 */
export async function createAuth(
  config: AfterglowConfig,
  store: Store | undefined,
  log: Logger,
  /** The process's hot state (the rate limits' buckets), created by the composition root on first use. */
  hotState: () => Promise<HotState>,
): Promise<{ options: AuthOptions; keys: ApiKeyStore | undefined; close(): Promise<void> }> {
  const settings = config.auth;
  let keys: ApiKeyStore | undefined;
  if (settings.mode === 'keys') {
    if (!store) throw new Error('AUTH_MODE=keys needs the store');
    keys = new ApiKeyStore({ store, pepper: settings.pepper, refreshMs: settings.refreshMs, log: log.child({ component: 'auth' }) });
    await keys.start();
  } else {
    log.warn('AUTH_MODE=off: every request acts for the tenant_id it names; run this only behind a gateway that authenticates');
  }
  const r = settings.rate;
  const limited = settings.mode === 'keys' && (r.eventsPerSec > 0 || r.bytesPerSec > 0 || r.maxConnections > 0);
  const hot = limited ? await hotState() : undefined;
  const limiter = hot ? new RateLimiter(hot, r) : undefined;
  return {
    options: { settings, keys, limiter, log: log.child({ component: 'auth' }) },
    keys,
    async close() {
      keys?.close();
      limiter?.close();
    },
  };
}

/** Keys for the embedded demo tenant: one to ingest with (the demo generator), one for the dashboard (read + admin). */
export async function createDemoKeys(keys: ApiKeyStore, tenantId: string): Promise<{ ingest: string; dashboard: string }> {
  // Earlier runs' demo keys are revoked: their secrets were only ever printed.
  for (const k of await keys.list(tenantId)) {
    if (k.status === 'active' && k.name.startsWith('demo:')) await keys.revoke(tenantId, k.key_id);
  }
  const ingest = await keys.create({ tenantId, scopes: ['ingest'], name: 'demo:generator' });
  const dashboard = await keys.create({ tenantId, scopes: ['read', 'admin'], name: 'demo:dashboard' });
  return { ingest: ingest.key, dashboard: dashboard.key };
}

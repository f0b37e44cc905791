import { BadRequestError } from '../errors.js';

/**
 * Who a request acts for. Every REST route and WebSocket subscription declares the scope it needs
 * (fastify route option `config: { scope }`); the HTTP layer's auth hook resolves the caller's API
 * key to a Principal before the handler runs. Handlers never trust a tenant_id from the client on
 * its own: they call `actingTenant(principalOf(req), claimed)`.
 *
 *   ingest  write events (event sources, edge clients)
 *   read    dashboards: metrics, assets, ties, scores, triggers
 *   admin   rules, models, keys, tie decisions
 *   public  no key (health, static dashboard files)
 */
export const SCOPES = ['ingest', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];
export type RouteScope = Scope | 'public';

export interface Principal {
  tenantId: string;
  /** Public id of the API key (never the secret). */
  keyId: string;
  scopes: readonly Scope[];
  /** Edge keys: the placements this key may subscribe to (absent = any of the tenant's). */
  placements?: readonly string[];
  /** Web keys: the page origins requests must come from (absent = an ordinary secret key). */
  origins?: readonly string[];
}

/** Where the auth hook leaves the principal on a request object. */
const PRINCIPAL = Symbol.for('afterglow.principal');

export function setPrincipal(req: object, principal: Principal): void {
  (req as Record<symbol, unknown>)[PRINCIPAL] = principal;
}

export function principalOf(req: object): Principal | undefined {
  return (req as Record<symbol, Principal | undefined>)[PRINCIPAL];
}

/** The request carries no usable key (401). */
export class UnauthorizedError extends BadRequestError {
  constructor(message = 'a valid API key is required') {
    super('unauthorized', message, 401);
  }
}

/** The key is valid but may not do this: wrong scope, or another tenant's data (403). */
export class ForbiddenError extends BadRequestError {
  constructor(code: 'scope_forbidden' | 'tenant_forbidden' | 'placement_forbidden' | 'origin_forbidden', message: string) {
    super(code, message, 403);
  }
}

/**
 * The tenant a request acts for. With a principal (auth on): the key's tenant, and a tenant_id the
 * client also sent must be the same one. Without one (auth off): the tenant the client claimed.
 */
export function actingTenant(principal: Principal | undefined, claimed: string | undefined): string {
  if (principal) {
    if (claimed !== undefined && claimed !== principal.tenantId) {
      throw new ForbiddenError('tenant_forbidden', 'this key belongs to another tenant');
    }
    return principal.tenantId;
  }
  if (claimed === undefined || claimed === '') throw new BadRequestError('tenant_required', 'tenant_id is required');
  return claimed;
}

import { API_ROUTES, type ApiRoutes, type ResponseOf, type RouteName } from './routes.js';

/**
 * A typed client of the REST API, one method per route of API_ROUTES (browser-safe: fetch only).
 * Path parameters are named as in the route (`{ campaignId }`), the query is a flat object (arrays
 * repeat the key), a body is sent as JSON unless it is a BodyInit (FormData, a string, bytes).
 * A non-2xx answer throws ApiError with the server's stable `error` code.
 */

/** The `:name` parameters of a route path. */
export type PathParamsOf<P extends string> = P extends `${string}:${infer K}/${infer Rest}` ? K | PathParamsOf<`/${Rest}`> : P extends `${string}:${infer K}` ? K : never;

type BodyInit = NonNullable<RequestInit['body']>;

export type QueryValue = string | number | boolean | null | undefined | readonly string[];
export type Query = Record<string, QueryValue>;

type PathArgs<N extends RouteName> = [PathParamsOf<ApiRoutes[N]['path']>] extends [never] ? { path?: undefined } : { path: Record<PathParamsOf<ApiRoutes[N]['path']>, string | number> };
type BodyArgs<N extends RouteName> = ApiRoutes[N]['method'] extends 'POST' | 'PUT' ? { body?: unknown } : { body?: undefined };

export type CallArgs<N extends RouteName> = PathArgs<N> &
  BodyArgs<N> & {
    query?: Query;
    signal?: AbortSignal | undefined;
    /** Extra request headers (content-type of a raw body, content-encoding). */
    headers?: Record<string, string>;
  };

/** Calls with no required argument may leave the argument out. */
export type ApiClient = {
  [N in RouteName]: [PathParamsOf<ApiRoutes[N]['path']>] extends [never] ? (args?: CallArgs<N>) => Promise<ResponseOf<N>> : (args: CallArgs<N>) => Promise<ResponseOf<N>>;
};

export class ApiError extends Error {
  constructor(
    /** HTTP status of the answer. */
    readonly status: number,
    /** The server's stable error code (`http_error` when the answer carried none). */
    readonly code: string,
    message: string,
    /** The whole error body, when it was JSON. */
    readonly body?: unknown,
    /** How long the server asks to wait before a retry (Retry-After of a 429 or 503), when it says. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  /** Origin and prefix the paths are resolved against ('' in a browser on the API's own origin). */
  baseUrl?: string;
  /** The API key (sent as a bearer token), or a function read on every call. */
  apiKey?: string | (() => string | undefined) | undefined;
  /** Headers sent with every call. */
  headers?: () => Record<string, string>;
  fetch?: typeof fetch;
  /** Called with every ApiError before it is thrown (the dashboard opens its key prompt on 401). */
  onError?: (err: ApiError) => void;
}

export function pathOf(template: string, params: Record<string, string | number> | undefined): string {
  return template.replace(/:([A-Za-z_]+)/g, (_m, name: string) => {
    const v = params?.[name];
    if (v === undefined) throw new TypeError(`path parameter ${name} is missing`);
    return encodeURIComponent(String(v));
  });
}

export function queryOf(query: Query | undefined): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const item of v) q.append(k, item);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function isBodyInit(body: unknown): body is BodyInit {
  return (
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    (typeof FormData !== 'undefined' && body instanceof FormData) ||
    (typeof Blob !== 'undefined' && body instanceof Blob) ||
    (typeof URLSearchParams !== 'undefined' && body instanceof URLSearchParams)
  );
}

/** A non-2xx answer as an ApiError: the `{error, message}` body when there is one. */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = 'http_error';
  let message = `${res.status} ${res.statusText}`;
  let body: unknown;
  try {
    body = await res.json();
    const b = body as { error?: unknown; message?: unknown };
    if (typeof b?.error === 'string') code = b.error;
    if (typeof b?.message === 'string') message = b.message;
  } catch {
    // Not JSON: the status says it.
  }
  const retryAfter = Number(res.headers.get('retry-after'));
  return new ApiError(res.status, code, message, body, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
}

export function createApiClient(options: ClientOptions = {}): ApiClient {
  const doFetch = options.fetch ?? ((input: Parameters<typeof fetch>[0], init?: RequestInit) => fetch(input, init));
  const base = (options.baseUrl ?? '').replace(/\/$/, '');
  const call = async (name: RouteName, args: CallArgs<RouteName> = {} as CallArgs<RouteName>): Promise<unknown> => {
    const spec = API_ROUTES[name];
    const key = typeof options.apiKey === 'function' ? options.apiKey() : options.apiKey;
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers?.(), ...(key ? { authorization: `Bearer ${key}` } : {}), ...args.headers };
    let body: BodyInit | undefined;
    if (args.body !== undefined) {
      if (isBodyInit(args.body)) body = args.body;
      else {
        body = JSON.stringify(args.body);
        headers['content-type'] ??= 'application/json';
      }
    }
    const url = `${base}${pathOf(spec.path, (args as { path?: Record<string, string | number> }).path)}${queryOf(args.query)}`;
    const res = await doFetch(url, { method: spec.method, headers, ...(body !== undefined ? { body } : {}), ...(args.signal ? { signal: args.signal } : {}) });
    if (!res.ok) {
      const err = await errorOf(res);
      options.onError?.(err);
      throw err;
    }
    return res.json();
  };
  return Object.fromEntries(Object.keys(API_ROUTES).map((name) => [name, (args?: CallArgs<RouteName>) => call(name as RouteName, args)])) as unknown as ApiClient;
}

import { mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type { ChdbConnection } from 'chdb/connection';
import type { AfterglowConfig } from '../config.js';

/**
 * The store port is ClickHouse itself, spoken through @clickhouse/client; the adapter decides
 * only where that client's connection goes: a server over HTTP (CLICKHOUSE_URL) or the embedded
 * chDB engine in this process (chdb/connection). Business code sees one `Store` either way.
 */
export interface Store {
  readonly kind: 'clickhouse' | 'chdb';
  readonly client: ClickHouseClient;
  /** Database that holds Afterglow's tables; always qualify table names with it. */
  readonly database: string;
  /** `database.table`, for SQL text. */
  table(name: string): string;
  close(): Promise<void>;
}

export async function createStore(config: AfterglowConfig['store']): Promise<Store> {
  let client: ClickHouseClient;
  if (config.kind === 'clickhouse') {
    client = createClient({
      url: config.url,
      username: config.user,
      password: config.password,
      request_timeout: 60_000,
    });
  } else {
    mkdirSync(config.path, { recursive: true });
    // Loaded lazily: the engine is a large native library that server deployments never need.
    const { createChdbConnection } = await import('chdb/connection');
    client = createClient({ connection: new PerCallSettingsConnection(createChdbConnection({ path: config.path })) });
  }
  const database = config.database;
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  return {
    kind: config.kind,
    client,
    database,
    table: (name) => `${database}.${name}`,
    close: () => client.close(),
  };
}

/** Quote a string literal for ClickHouse SQL text (used only where parameters cannot go). */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;
type QueryParams = Parameters<ClientConnection['query']>[0];
type Settings = QueryParams['clickhouse_settings'];

/**
 * chDB's connection applies a call's `clickhouse_settings` as `SET k = v; <sql>` on its one session,
 * and a session keeps its settings: without this wrapper one insert's insert_deduplication_token (or
 * a max_threads) stays in force for every later statement in the process, and a different insert
 * carrying that stale token is silently dropped as a duplicate. Over HTTP each query has exactly its
 * own settings; this gives the embedded engine the same contract:
 *
 * - calls run one at a time (chDB runs a session's statements one at a time anyway, so nothing is
 *   lost), an insert's body being read BEFORE its turn so a slow stream does not hold the others;
 * - each call's SQL is prefixed with `SET k = <start value>` for every setting an earlier call
 *   changed that this call does not set itself, in the same statement batch, so the call sees
 *   exactly the session's starting settings plus its own, whatever ran before it (failures included).
 *   "Start value" is the session's own (chDB starts with a few settings off ClickHouse's defaults,
 *   e.g. allow_introspection_functions = 1), which `SET k = DEFAULT` alone would not give back.
 */
class PerCallSettingsConnection implements ClientConnection {
  /** Settings changed since the session started (by calls through here): the next call resets the ones it does not set. */
  #changed = new Set<string>();
  #engine: Promise<{ known: Set<string>; start: Map<string, string> }> | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  /** The same object as `chdb`, seen through the client's copy of the Connection contract (chdb builds
   *  against @clickhouse/client-common, the client bundles its own copy; the declarations differ only in identity). */
  private readonly inner: ClientConnection;

  constructor(private readonly chdb: ChdbConnection) {
    this.inner = chdb as unknown as ClientConnection;
  }

  query(params: QueryParams) {
    return this.#turn(params, (p) => this.inner.query(p));
  }
  command(params: Parameters<ClientConnection['command']>[0]) {
    return this.#turn(params, (p) => this.inner.command(p));
  }
  async insert(params: Parameters<ClientConnection['insert']>[0]) {
    const values = await bodyOf(params.values);
    return this.#turn({ ...params, values }, (p) => this.inner.insert(p), values.trim() === '');
  }
  async exec(params: Parameters<ClientConnection['exec']>[0]) {
    if (params.values === undefined) return this.#turn(params, (p) => this.inner.exec(p));
    const body = await bodyOf(params.values);
    return this.#turn({ ...params, values: Readable.from([body]) }, (p) => this.inner.exec(p), body.trim() === '');
  }
  ping(params: Parameters<ClientConnection['ping']>[0]) {
    return this.inner.ping(params);
  }
  async close() {
    await this.#tail.catch(() => undefined);
    await this.inner.close();
  }

  /** Run `call` alone, with the SQL reset to the session's starting settings except the call's own. */
  #turn<P extends { query: string; clickhouse_settings?: Settings }, R>(params: P, call: (p: P) => Promise<R>, noop = false): Promise<R> {
    const run = async (): Promise<R> => {
      const engine = await (this.#engine ??= this.#loadEngineSettings().catch((err: unknown) => {
        this.#engine = undefined; // the next call tries again
        throw err;
      }));
      const own = new Set(
        Object.entries(params.clickhouse_settings ?? {})
          .filter(([k, v]) => v !== undefined && k !== 'default_format' && engine.known.has(k))
          .map(([k]) => k),
      );
      const resets = [...this.#changed].filter((k) => !own.has(k)).map((k) => `${k} = ${engine.start.has(k) ? sqlString(engine.start.get(k)!) : 'DEFAULT'}`);
      // Until the call succeeds, assume both the old and the new settings may be in force.
      this.#changed = new Set([...this.#changed, ...own]);
      const result = await call(resets.length > 0 ? { ...params, query: `SET ${resets.join(', ')}; ${params.query}` } : params);
      if (!noop) this.#changed = own; // the batch ran: the session holds its starting settings plus `own`
      return result;
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Names the engine knows (others, HTTP-only ones, chDB's connection drops) and the session's starting values of those it changed. */
  async #loadEngineSettings() {
    const rs = await this.chdb.chdb.queryAsync('SELECT name, value, changed FROM system.settings', { format: 'JSONCompactEachRow' });
    const known = new Set<string>();
    const start = new Map<string, string>();
    for (const line of rs.text().split('\n')) {
      if (!line) continue;
      const [name, value, changed] = JSON.parse(line) as [string, string, number | boolean];
      known.add(name);
      if (Number(changed)) start.set(name, value);
    }
    return { known, start };
  }
}

async function bodyOf(values: string | Readable): Promise<string> {
  if (typeof values === 'string') return values;
  // The client's row streams yield strings; byte chunks may split a UTF-8 character, hence the streaming decoder.
  const decoder = new TextDecoder();
  let body = '';
  for await (const chunk of values as AsyncIterable<string | Uint8Array>) body += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return body + decoder.decode();
}

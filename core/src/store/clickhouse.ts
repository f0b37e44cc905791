import { mkdirSync } from 'node:fs';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
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
    // chdb builds against @clickhouse/client-common, the client bundles its own copy of the same
    // Connection contract; the two declarations differ only in identity, hence the cast.
    const connection = createChdbConnection({ path: config.path }) as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'];
    client = createClient({ connection });
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

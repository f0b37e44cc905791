import { parseArgs } from 'node:util';
import { ApiKeyStore, ConfigError, createStore, loadConfig, migrate, parseScopes, type ApiKeyInfo } from '@afterglow/core';
import { ApiError, createApiClient } from '@afterglow/core/api';
import { PEPPER_FILE, readSecretFile, secretPath } from './secrets.js';

const USAGE = `usage: afterglow keys <create|list|rotate|revoke> [options]

  create --tenant T --scopes read,admin [--name N] [--placements p1,p2] [--origins https://a.example,https://b.example] [--expires-at MS]
  list   --tenant T
  rotate --tenant T --id KEY_ID [--grace-ms MS]      (default grace: 24 h)
  revoke --tenant T --id KEY_ID

With --url URL (or AFTERGLOW_URL) the command goes through a running server's /v1/keys with an
admin key of the tenant (--key or AFTERGLOW_API_KEY). Without it, it writes the store named by
the environment directly (CLICKHOUSE_URL; for embedded chDB only while no server holds the data dir),
hashing with AUTH_KEY_PEPPER (or the embedded demo's generated one in the data dir). The new key is printed once; only its hash is stored.
--origins makes a web key for the browser SDK (@afterglow/web): public, ingest-only, accepted only
from those page origins.`;

export async function runKeysCommand(argv: string[]): Promise<number> {
  try {
    return await keysCommand(argv);
  } catch (err) {
    console.error(`afterglow keys: ${(err as Error).message}`);
    return 1;
  }
}

async function keysCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (!action || !['create', 'list', 'rotate', 'revoke'].includes(action)) {
    console.error(USAGE);
    return action === '--help' || action === '-h' ? 0 : 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      tenant: { type: 'string' },
      scopes: { type: 'string' },
      name: { type: 'string' },
      placements: { type: 'string' },
      origins: { type: 'string' },
      'expires-at': { type: 'string' },
      id: { type: 'string' },
      'grace-ms': { type: 'string' },
      url: { type: 'string' },
      key: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const tenant = values.tenant;
  if (!tenant) {
    console.error(`--tenant is required\n\n${USAGE}`);
    return 2;
  }
  if ((action === 'rotate' || action === 'revoke') && !values.id) {
    console.error(`--id is required\n\n${USAGE}`);
    return 2;
  }
  const placements = values.placements?.split(',').map((p) => p.trim()).filter(Boolean);
  const origins = values.origins?.split(',').map((o) => o.trim()).filter(Boolean);
  const config = loadConfig(process.env);
  const url = values.url ?? config.client.url;
  let out: unknown;
  if (url) {
    const key = values.key ?? config.client.apiKey;
    if (!key) {
      console.error('--url needs an admin key: --key or AFTERGLOW_API_KEY');
      return 2;
    }
    const api = createApiClient({ baseUrl: url, apiKey: key });
    try {
      if (action === 'create') {
        out = await api.createKey({
          body: {
            tenant_id: tenant,
            scopes: parseScopes(values.scopes ?? ''),
            ...(values.name && { name: values.name }),
            ...(placements && { placements }),
            ...(origins && { origins }),
            ...(values['expires-at'] && { expires_at: Number(values['expires-at']) }),
          },
        });
      } else if (action === 'list') out = await api.listKeys({ query: { tenant_id: tenant } });
      else if (action === 'rotate') out = await api.rotateKey({ path: { id: values.id! }, body: { tenant_id: tenant, ...(values['grace-ms'] && { grace_ms: Number(values['grace-ms']) }) } });
      else out = await api.revokeKey({ path: { id: values.id! }, query: { tenant_id: tenant } });
    } catch (err) {
      if (err instanceof ApiError) throw new Error(`${err.status} ${err.code}: ${err.message}`);
      throw err;
    }
  } else {
    // The server's pepper: keys hashed with another one would never authenticate.
    const pepper = config.auth.pepper ?? readSecretFile(secretPath(config.dataDir, PEPPER_FILE));
    if (!pepper) throw new ConfigError('AUTH_KEY_PEPPER is not set (and the data dir holds no demo pepper): set the one the servers use');
    const store = await createStore(config.store);
    try {
      await migrate(store);
      const keys = new ApiKeyStore({ store, pepper, refreshMs: config.auth.refreshMs });
      if (action === 'create') {
        out = await keys.create({
          tenantId: tenant,
          scopes: parseScopes(values.scopes ?? ''),
          ...(values.name && { name: values.name }),
          ...(placements && { placements }),
          ...(origins && { origins }),
          ...(values['expires-at'] && { expiresAt: Number(values['expires-at']) }),
        });
      } else if (action === 'list') out = { keys: await keys.list(tenant) };
      else if (action === 'rotate') out = await keys.rotate(tenant, values.id!, values['grace-ms'] ? Number(values['grace-ms']) : 24 * 3600_000);
      else out = { info: await keys.revoke(tenant, values.id!) };
    } finally {
      await store.close();
    }
  }
  if (values.json) console.log(JSON.stringify(out, null, 2));
  else print(out as { key?: string; info?: ApiKeyInfo; keys?: ApiKeyInfo[]; previous?: ApiKeyInfo });
  return 0;
}

function print(out: { key?: string; info?: ApiKeyInfo; keys?: ApiKeyInfo[]; previous?: ApiKeyInfo }): void {
  const line = (k: ApiKeyInfo) =>
    `${k.key_id}  ${k.status.padEnd(7)}  ${k.scopes.join(',').padEnd(17)}  ${k.name || '-'}${k.placements.length ? `  placements=${k.placements.join(',')}` : ''}${k.origins?.length ? `  origins=${k.origins.join(',')}` : ''}${k.expires_at ? `  expires=${new Date(k.expires_at).toISOString()}` : ''}`;
  if (out.key) console.log(`key (shown once, store it now):\n  ${out.key}`);
  if (out.info) console.log(line(out.info));
  if (out.previous) console.log(`previous: ${line(out.previous)}`);
  if (out.keys) for (const k of out.keys) console.log(line(k));
}

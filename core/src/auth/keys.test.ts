import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { eventually } from '../testing/services.js';
import { createStore, type Store } from '../store/clickhouse.js';
import { migrate } from '../store/migrations.js';
import { TABLES } from '../contracts.js';
import { ApiKeyStore, generateKey, hashSecret, parseKey, parseOrigins, parseScopes } from './keys.js';
import { actingTenant } from './principal.js';

let dir: string;
let store: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'afterglow-keys-'));
  store = await createStore({ kind: 'chdb', path: path.join(dir, 'chdb'), database: 'afterglow_keys_test' });
  await migrate(store);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function keyStore(options: Partial<ConstructorParameters<typeof ApiKeyStore>[0]> = {}): ApiKeyStore {
  return new ApiKeyStore({ store, refreshMs: 60_000, ...options });
}

test('key format: a public key id and a 256-bit secret; parsing never throws on junk', () => {
  const { keyId, secret, key } = generateKey();
  assert.match(key, /^ag_k[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(parseKey(key), { keyId, secret });
  assert.deepEqual(parseKey(` ${key}\n`), { keyId, secret });
  for (const junk of ['', 'ag_', `${key}x`, key.replace('ag_', 'AG_'), 'ag_k0000000000000000.short', 'x'.repeat(10_000), '\u0000', undefined]) {
    assert.equal(parseKey(junk as string), undefined, String(junk).slice(0, 30));
  }
  assert.notEqual(generateKey().key, generateKey().key);
});

test('hashing: keyed (the pepper changes the hash), deterministic, and the secret is not in it', () => {
  const { secret } = generateKey();
  assert.equal(hashSecret(secret, 'pepper-one-0123456'), hashSecret(secret, 'pepper-one-0123456'));
  assert.notEqual(hashSecret(secret, 'pepper-one-0123456'), hashSecret(secret, 'pepper-two-0123456'));
  assert.ok(!hashSecret(secret).includes(secret));
});

test('scopes are checked', () => {
  assert.deepEqual(parseScopes('read, admin'), ['admin', 'read']);
  assert.deepEqual(parseScopes(['ingest', 'ingest']), ['ingest']);
  assert.throws(() => parseScopes(''), { code: 'invalid_scopes' });
  assert.throws(() => parseScopes('read,root'), { code: 'invalid_scopes' });
});

test('web keys: origins are exact browser origins, the key may only ingest, and rotation keeps them', async () => {
  assert.deepEqual(parseOrigins(['https://shop.example', 'http://127.0.0.1:8080', 'https://shop.example']), ['http://127.0.0.1:8080', 'https://shop.example']);
  for (const bad of ['https://shop.example/', 'https://shop.example/path', 'shop.example', '*', 'javascript:alert(1)', 'file:///etc', 'https://user@shop.example', '']) {
    assert.throws(() => parseOrigins([bad]), { code: 'invalid_origins' }, bad);
  }
  const keys = keyStore();
  await keys.start();
  try {
    await assert.rejects(keys.create({ tenantId: 'acme', scopes: ['ingest', 'read'], origins: ['https://shop.example'] }), { code: 'invalid_scopes' });
    const web = await keys.create({ tenantId: 'acme', scopes: ['ingest'], name: 'site', origins: ['https://shop.example'] });
    assert.deepEqual(web.info.origins, ['https://shop.example']);
    assert.deepEqual(await keys.authenticate(web.key), { tenantId: 'acme', keyId: web.info.key_id, scopes: ['ingest'], origins: ['https://shop.example'] });
    const plain = await keys.create({ tenantId: 'acme', scopes: ['ingest'] });
    assert.equal((await keys.authenticate(plain.key))?.origins, undefined, 'an ordinary key has no origins');
    const rotated = await keys.rotate('acme', web.info.key_id, 0);
    assert.deepEqual(rotated.info.origins, ['https://shop.example']);
    // A fresh process (cache read from the store) sees the origins too.
    const other = keyStore();
    await other.start();
    assert.deepEqual((await other.authenticate(rotated.key))?.origins, ['https://shop.example']);
    other.close();
  } finally {
    keys.close();
  }
});

test('create and authenticate; only the hash is stored; a wrong secret, a malformed or unknown key is refused', async () => {
  const keys = keyStore();
  await keys.start();
  const { key, info } = await keys.create({ tenantId: 'acme', scopes: ['read', 'ingest'], name: 'edge-1', placements: ['lobby'] });
  assert.deepEqual(info.scopes, ['ingest', 'read']);
  assert.equal(info.status, 'active');
  assert.deepEqual(await keys.authenticate(key), { tenantId: 'acme', keyId: info.key_id, scopes: ['ingest', 'read'], placements: ['lobby'] });
  // What ClickHouse holds: no secret.
  const rs = await store.client.query({ query: `SELECT * FROM ${store.table(TABLES.apiKeys)} WHERE key_id = {id:String}`, query_params: { id: info.key_id }, format: 'JSONEachRow' });
  const rows = JSON.stringify(await rs.json());
  assert.ok(!rows.includes(parseKey(key)!.secret));
  const wrong = `${key.slice(0, -3)}${key.endsWith('AAA') ? 'BBB' : 'AAA'}`;
  assert.equal(await keys.authenticate(wrong), undefined);
  assert.equal(await keys.authenticate(generateKey().key), undefined);
  assert.equal(await keys.authenticate('Bearer nonsense'), undefined);
  // Another process sees it once it has loaded the keys (at start, then every refresh).
  const other = keyStore();
  await other.start();
  assert.equal((await other.authenticate(key))?.tenantId, 'acme');
  keys.close();
  other.close();
});

test('the cache is the truth for misses: unknown key ids cost no store query; keys made elsewhere appear on refresh', async () => {
  const here = keyStore();
  const there = keyStore({ refreshMs: 100 });
  await here.start();
  await there.start();
  // Count every query the store is asked while random well-formed keys are refused.
  const client = store.client;
  const query = client.query.bind(client);
  let queries = 0;
  client.query = ((...args: Parameters<typeof query>) => {
    queries++;
    return query(...args);
  }) as typeof client.query;
  try {
    there.close();
    for (let i = 0; i < 200; i++) assert.equal(await here.authenticate(generateKey().key), undefined);
    assert.equal(queries, 0);
  } finally {
    client.query = query;
  }
  const { key } = await here.create({ tenantId: 'acme', scopes: ['read'] });
  assert.ok(await here.authenticate(key), 'made here: valid at once');
  await there.start();
  await eventually(async () => ((await there.authenticate(key)) ? true : undefined), 10_000, 50);
  here.close();
  there.close();
});

test('revocation is immediate here and reaches other processes on their refresh', async () => {
  const here = keyStore();
  const there = keyStore({ refreshMs: 100 });
  await here.start();
  await there.start();
  const { key, info } = await here.create({ tenantId: 'acme', scopes: ['read'] });
  await eventually(async () => ((await there.authenticate(key)) ? true : undefined), 10_000, 50);
  const revoked = await here.revoke('acme', info.key_id);
  assert.equal(revoked.status, 'revoked');
  assert.equal(await here.authenticate(key), undefined);
  await eventually(async () => ((await there.authenticate(key)) === undefined ? true : undefined), 10_000, 50);
  // Revoking twice is harmless; another tenant cannot revoke (nor learn that the key exists).
  assert.equal((await here.revoke('acme', info.key_id)).status, 'revoked');
  const b = await here.create({ tenantId: 'beta', scopes: ['read'] });
  await assert.rejects(here.revoke('acme', b.info.key_id), { code: 'not_found', status: 404 });
  assert.ok(await here.authenticate(b.key));
  here.close();
  there.close();
});

test('rotation: a new key with the same grants; the old one works until its grace ends', async () => {
  let now = Date.now();
  const keys = keyStore({ clock: () => now });
  await keys.start();
  const old = await keys.create({ tenantId: 'acme', scopes: ['ingest'], name: 'edge', placements: ['p1', 'p2'] });
  const rotated = await keys.rotate('acme', old.info.key_id, 60_000);
  assert.notEqual(rotated.key, old.key);
  assert.deepEqual([rotated.info.scopes, rotated.info.placements, rotated.info.name], [['ingest'], ['p1', 'p2'], 'edge']);
  assert.equal(rotated.previous.rotated_to, rotated.info.key_id);
  assert.equal(rotated.previous.expires_at, now + 60_000);
  assert.ok(await keys.authenticate(old.key), 'old key valid during the grace period');
  assert.ok(await keys.authenticate(rotated.key));
  now += 60_001;
  assert.equal(await keys.authenticate(old.key), undefined, 'old key refused after the grace period');
  assert.ok(await keys.authenticate(rotated.key));
  await assert.rejects(keys.rotate('acme', old.info.key_id, 0), { code: 'key_inactive' });
  // A fresh process sees the same: expiry and revocation fold as min/max over a key's rows.
  const fresh = keyStore({ clock: () => now });
  await fresh.start();
  assert.equal(await fresh.authenticate(old.key), undefined);
  const listed = await fresh.list('acme');
  assert.equal(listed.find((k) => k.key_id === old.info.key_id)?.status, 'expired');
  assert.equal(listed.find((k) => k.key_id === rotated.info.key_id)?.status, 'active');
  assert.ok(listed.every((k) => k.tenant_id === 'acme' && !('secret_hash' in k)));
  keys.close();
  fresh.close();
});

test('input checks on create', async () => {
  const keys = keyStore();
  await assert.rejects(keys.create({ tenantId: 'bad tenant', scopes: ['read'] }), { code: 'invalid_tenant' });
  await assert.rejects(keys.create({ tenantId: 'acme', scopes: [] }), { code: 'invalid_scopes' });
  await assert.rejects(keys.create({ tenantId: 'acme', scopes: ['read'], expiresAt: Date.now() - 1 }), { code: 'invalid_expiry' });
  await assert.rejects(keys.create({ tenantId: 'acme', scopes: ['read'], placements: [''] }), { code: 'invalid_placements' });
});

test('actingTenant: the key decides; a different claim is refused, none is the key\'s tenant', () => {
  const p = { tenantId: 'acme', keyId: 'k1', scopes: ['read'] as const };
  assert.equal(actingTenant(p, undefined), 'acme');
  assert.equal(actingTenant(p, 'acme'), 'acme');
  assert.throws(() => actingTenant(p, 'beta'), { code: 'tenant_forbidden', status: 403 });
  assert.equal(actingTenant(undefined, 'beta'), 'beta');
  assert.throws(() => actingTenant(undefined, undefined), { code: 'tenant_required' });
});

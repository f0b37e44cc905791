/**
 * Secrets a deployment holds outside the store: the API key pepper and the webhook secret key.
 * Outside the embedded demo a missing one stops the process at start with an error that names the
 * variable (no silent public default); the demo generates each once into a 0600 file in its data
 * directory and keeps using it across restarts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ConfigError, TABLES, loadConfig, type Env } from '@afterglow/core';
import { start, type RoleName, type Running } from 'afterglow';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function env(extra: Env = {}): { env: Env; dataDir: string } {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-sec-secrets-'));
  dirs.push(dataDir);
  return { dataDir, env: { PORT: '0', LOG_LEVEL: 'silent', AFTERGLOW_DATA_DIR: dataDir, AFTERGLOW_DEMO: '0', KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '', PREDICT_WORKERS_ENABLED: '0', ...extra } };
}

async function startWith(e: Env, roles: RoleName[], demo = false): Promise<Running> {
  return start(loadConfig(e), { roles, demo });
}

test('outside the demo, API keys on without AUTH_KEY_PEPPER: start fails naming the variable', async () => {
  const { env: e } = env();
  await assert.rejects(startWith(e, ['ingest']), (err: Error) => err instanceof ConfigError && /AUTH_KEY_PEPPER/.test(err.message));
  // AUTH_MODE=off has no keys to pepper.
  const off = await startWith(env({ AUTH_MODE: 'off' }).env, ['ingest']);
  await off.stop();
});

test('outside the demo, the live role with keys on without TRIGGERS_SECRET_KEY: start fails naming the variable', async () => {
  const { env: e } = env({ AUTH_KEY_PEPPER: 'a-pepper-of-at-least-16' });
  await assert.rejects(startWith(e, ['live']), (err: Error) => err instanceof ConfigError && /TRIGGERS_SECRET_KEY/.test(err.message));
  assert.throws(() => loadConfig({ ...e, TRIGGERS_SECRET_KEY: 'too-short' }), /TRIGGERS_SECRET_KEY/);
  // Roles without triggers do not need it.
  const ingest = await startWith(e, ['ingest']);
  await ingest.stop();
});

test('the demo generates the pepper and the webhook key into 0600 files once, and keeps them across restarts', async () => {
  const { env: e, dataDir } = env({ AFTERGLOW_DEMO: '1' });
  const first = await startWith(e, ['live'], true);
  const pepperFile = path.join(dataDir, 'secrets', 'auth-key-pepper');
  const keyFile = path.join(dataDir, 'secrets', 'triggers-secret-key');
  let key: string;
  try {
    for (const f of [pepperFile, keyFile]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.equal(statSync(path.dirname(pepperFile)).mode & 0o077, 0, 'the secrets directory is private too');
    assert.equal(first.config.auth.pepper, readFileSync(pepperFile, 'utf8').trim());
    assert.equal(first.config.triggers.secretKey?.length, 32);
    key = (await first.keys!.create({ tenantId: 'demo-t', scopes: ['read'], name: 'probe' })).key;
    // A webhook secret saved now is sealed in the store.
    const res = await fetch(`${first.url}/v1/triggers/rules/r1`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${(await first.keys!.create({ tenantId: 'demo-t', scopes: ['admin'], name: 'admin' })).key}`, 'content-type': 'application/json' },
      // A public address literal: the egress policy needs no DNS for it.
      body: JSON.stringify({ kind: 'fatigue', webhook_url: 'https://93.184.216.34/x', webhook_secret: 'a-clear-webhook-secret-42', enabled: false }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const rows = await (await first.store!.client.query({ query: `SELECT webhook_secret FROM ${first.store!.table(TABLES.triggerRules)}`, format: 'JSONEachRow' })).json<{ webhook_secret: string }>();
    assert.equal(rows.length, 1);
    assert.ok(rows[0]!.webhook_secret.startsWith('v1:') && !rows[0]!.webhook_secret.includes('a-clear-webhook-secret'), rows[0]!.webhook_secret);
  } finally {
    await first.stop();
  }
  const again = await startWith(e, ['live'], true);
  try {
    assert.equal(again.config.auth.pepper, readFileSync(pepperFile, 'utf8').trim(), 'the same pepper');
    assert.ok(await again.keys!.authenticate(key), 'a key made before the restart still authenticates');
  } finally {
    await again.stop();
  }
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TABLES, createLogger, createStore, migrate, type Store } from '@afterglow/core';
import { SecretBox, isSealed } from './secrets.js';
import { TriggerStore, type StoredRule } from './store.js';

test('secret box: AES-256-GCM, a fresh IV each time, bound to its tenant and rule, refused under another key', () => {
  const key = randomBytes(32);
  const box = new SecretBox(key);
  const a = box.seal('whsec-a-secret-of-some-length', 't1', 'r1');
  const b = box.seal('whsec-a-secret-of-some-length', 't1', 'r1');
  assert.ok(isSealed(a) && a.startsWith('v1:'));
  assert.notEqual(a, b, 'a fresh IV per seal');
  assert.ok(!a.includes('whsec'), 'the clear secret is not in the sealed value');
  assert.equal(box.open(a, 't1', 'r1'), 'whsec-a-secret-of-some-length');
  assert.throws(() => box.open(a, 't2', 'r1'), 'another tenant\'s rule cannot take it');
  assert.throws(() => box.open(a, 't1', 'r2'));
  assert.throws(() => new SecretBox(randomBytes(32)).open(a, 't1', 'r1'), 'another key cannot open it');
  const tampered = `${a.slice(0, -2)}${a.endsWith('A') ? 'B' : 'A'}${a.slice(-1)}`;
  assert.throws(() => box.open(tampered, 't1', 'r1'), 'tampering is detected');
  assert.throws(() => new SecretBox(randomBytes(16)), RangeError);
});

let dir: string;
let store: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'afterglow-trigger-secrets-'));
  store = await createStore({ kind: 'chdb', path: path.join(dir, 'chdb'), database: 'afterglow_trigger_secrets' });
  await migrate(store);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const rule = (id: string, secret: string | null): StoredRule => ({
  rule_id: id,
  tenant_id: 'acme',
  campaign_id: null,
  kind: 'fatigue',
  params: {},
  cooldown_ms: 60_000,
  enabled: true,
  webhook_url: 'https://hooks.example/x',
  webhook_secret: secret,
  webhook_secret_set: secret !== null,
  updated_at: Date.now(),
});

async function stored(id: string): Promise<string> {
  const rs = await store.client.query({
    query: `SELECT webhook_secret FROM ${store.table(TABLES.triggerRules)} FINAL WHERE rule_id = {id:String}`,
    query_params: { id },
    format: 'JSONEachRow',
  });
  return (await rs.json<{ webhook_secret: string }>())[0]!.webhook_secret;
}

test('trigger store: secrets go to ClickHouse sealed and come back clear; older clear-text rows are still read, and said so', async () => {
  const key = randomBytes(32);
  const lines: string[] = [];
  const log = createLogger('warn');
  log.warn = ((_o: unknown, msg: string) => void lines.push(msg)) as typeof log.warn;
  log.error = ((_o: unknown, msg: string) => void lines.push(msg)) as typeof log.error;
  const sealed = new TriggerStore(store, { secretKey: key, log });
  await sealed.putRule(rule('sealed', 'a-webhook-secret-0123456789'));
  const raw = await stored('sealed');
  assert.ok(raw.startsWith('v1:') && !raw.includes('a-webhook-secret'), raw);
  assert.equal((await sealed.rules({ ruleId: 'sealed' }))[0]!.webhook_secret, 'a-webhook-secret-0123456789');

  // A row written before the key existed: read in clear, with one log line (not one per refresh).
  await new TriggerStore(store).putRule(rule('legacy', 'an-older-clear-secret-0123'));
  assert.equal(await stored('legacy'), 'an-older-clear-secret-0123');
  assert.equal((await sealed.rules({ ruleId: 'legacy' }))[0]!.webhook_secret, 'an-older-clear-secret-0123');
  await sealed.rules({ ruleId: 'legacy' });
  assert.equal(lines.filter((l) => /stored in clear/.test(l)).length, 1);
  // Saved again through a keyed store, it is sealed.
  const [legacy] = await sealed.rules({ ruleId: 'legacy' });
  await sealed.putRule({ ...legacy!, updated_at: Date.now() });
  assert.ok((await stored('legacy')).startsWith('v1:'));

  // Under another key (or none) a sealed secret is unreadable: no webhook, an error line, no crash.
  const wrong = new TriggerStore(store, { secretKey: randomBytes(32), log });
  const [r] = await wrong.rules({ ruleId: 'sealed' });
  assert.equal(r!.webhook_secret, null);
  assert.equal(r!.webhook_secret_set, true);
  assert.ok(lines.some((l) => /cannot be decrypted/.test(l)));
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runKeysCommand } from './keys-cli.js';

/** `afterglow keys` on the store the environment names (embedded chDB here). */
test('afterglow keys: create prints the key once, list shows it without the secret, rotate and revoke change its status', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'afterglow-keys-cli-'));
  const saved = { dir: process.env.AFTERGLOW_DATA_DIR, ch: process.env.CLICKHOUSE_URL, pepper: process.env.AUTH_KEY_PEPPER };
  process.env.AFTERGLOW_DATA_DIR = dir;
  delete process.env.CLICKHOUSE_URL;
  delete process.env.AUTH_KEY_PEPPER;
  const lines: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  console.error = (...a: unknown[]) => void lines.push(`ERR ${a.join(' ')}`);
  const run = async (...argv: string[]) => {
    lines.length = 0;
    const code = await runKeysCommand(argv);
    return { code, out: lines.join('\n') };
  };
  try {
    // Without the servers' pepper the keys would never authenticate: refused, naming the variable.
    const unpeppered = await run('create', '--tenant', 'acme', '--scopes', 'read');
    assert.equal(unpeppered.code, 1);
    assert.match(unpeppered.out, /AUTH_KEY_PEPPER/);
    process.env.AUTH_KEY_PEPPER = 'a-test-pepper-of-some-length';
    const created = await run('create', '--tenant', 'acme', '--scopes', 'read,admin', '--name', 'dash', '--json');
    assert.equal(created.code, 0);
    const { key, info } = JSON.parse(created.out) as { key: string; info: { key_id: string } };
    assert.match(key, /^ag_k[0-9a-f]{16}\./);
    const listed = await run('list', '--tenant', 'acme');
    assert.match(listed.out, new RegExp(`${info.key_id}\\s+active\\s+admin,read\\s+dash`));
    assert.ok(!listed.out.includes(key.split('.')[1]!), 'the secret is never listed');
    const rotated = await run('rotate', '--tenant', 'acme', '--id', info.key_id, '--grace-ms', '0');
    assert.equal(rotated.code, 0);
    assert.match(rotated.out, /key \(shown once/);
    assert.match((await run('list', '--tenant', 'acme')).out, new RegExp(`${info.key_id}\\s+expired`));
    const other = await run('revoke', '--tenant', 'beta', '--id', info.key_id);
    assert.equal(other.code, 1);
    assert.match(other.out, /no such key/);
    // A web key for the browser SDK: origins listed, ingest only.
    const web = await run('create', '--tenant', 'acme', '--scopes', 'ingest', '--name', 'site', '--origins', 'https://shop.example, http://127.0.0.1:8080');
    assert.equal(web.code, 0);
    assert.match(web.out, /ingest\s+site\s+origins=http:\/\/127\.0\.0\.1:8080,https:\/\/shop\.example/);
    const readable = await run('create', '--tenant', 'acme', '--scopes', 'ingest,read', '--origins', 'https://shop.example');
    assert.equal(readable.code, 1);
    assert.match(readable.out, /only scope is ingest/);
    assert.equal((await run('create', '--tenant', 'acme', '--scopes', 'ingest', '--origins', 'https://shop.example/')).code, 1);
    assert.equal((await run('create', '--tenant', 'acme', '--scopes', 'root')).code, 1);
    assert.equal((await run('create', '--scopes', 'read')).code, 2);
    assert.equal((await run('launch')).code, 2);
  } finally {
    console.log = log;
    console.error = error;
    if (saved.dir === undefined) delete process.env.AFTERGLOW_DATA_DIR;
    else process.env.AFTERGLOW_DATA_DIR = saved.dir;
    if (saved.ch !== undefined) process.env.CLICKHOUSE_URL = saved.ch;
    if (saved.pepper === undefined) delete process.env.AUTH_KEY_PEPPER;
    else process.env.AUTH_KEY_PEPPER = saved.pepper;
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * `npm start` (the embedded demo) makes keys for its tenant. They must not go to the log stream
 * or stdout (shipped, kept, read by others): only into a 0600 file, whose path is printed.
 * Runs the real CLI entry point (the ingest role with the demo on) as a child process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

test('the demo writes its keys to a 0600 file and prints only the path; no key reaches stdout or the log', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-sec-demo-keys-'));
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', path.join(ROOT, 'cli/src/main.ts'), 'ingest'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      // Every line the process logs, at the most verbose level it has.
      LOG_LEVEL: 'trace',
      AFTERGLOW_DATA_DIR: dataDir,
      AFTERGLOW_DEMO: '1',
      AUTH_MODE: 'keys',
      AUTH_KEY_PEPPER: '',
      KAFKA_BROKERS: '',
      REDIS_URL: '',
      NATS_URL: '',
      CLICKHOUSE_URL: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const file = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no demo keys line in time:\n${out.slice(-2000)}`)), 120_000);
      const check = () => {
        const m = /are in (\S+demo-keys\.json) /.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout.on('data', check);
      child.once('exit', (code) => reject(new Error(`exited ${code}:\n${out.slice(-2000)}`)));
    });
    assert.equal(file, path.join(dataDir, 'demo-keys.json'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const keys = JSON.parse(readFileSync(file, 'utf8')) as { dashboard_url: string; read_admin_key: string; ingest_key: string };
    assert.match(keys.read_admin_key, /^ag_k[0-9a-f]{16}\./);
    assert.match(keys.ingest_key, /^ag_k[0-9a-f]{16}\./);
    assert.ok(keys.dashboard_url.endsWith(`#key=${keys.read_admin_key}`));
    const url = /is running at (http:\/\/[^/\s]+)/.exec(out)![1]!;
    const who = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${keys.read_admin_key}` } });
    assert.equal(who.status, 200, 'the key in the file works');
    // Let the demo post a few batches (more log lines), then look at everything printed.
    await new Promise((r) => setTimeout(r, 1_500));
    for (const k of [keys.read_admin_key, keys.ingest_key]) {
      const secret = k.split('.')[1]!;
      assert.ok(!out.includes(secret), 'a key secret reached stdout/stderr');
    }
    assert.match(out, /demo keys written/, 'the log line names the file');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runBlobStoreContract } from '@afterglow/testkit/contracts';
import { LocalBlobStore } from './local.js';

runBlobStoreContract('local', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-blobs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new LocalBlobStore(dir);
});

test('local blob store: a blob whose bytes changed on disk is refused as corrupt, and no temp files are left', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-blobs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new LocalBlobStore(dir);
  const { key } = await store.put(Buffer.from('original bytes'));
  const file = path.join(dir, key.slice(0, 2), key.slice(2, 4), key);
  assert.deepEqual(readdirSync(path.dirname(file)), [key], 'only the blob itself in its directory');
  writeFileSync(file, 'tampered bytes');
  await assert.rejects(store.get(key), { code: 'blob_corrupt' });
});

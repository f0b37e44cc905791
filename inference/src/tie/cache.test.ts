import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DiskEmbeddingCache, DiskFeatureCache } from './cache.js';

test('disk caches: embeddings and ORB features round-trip by key, across instances', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-tie-cache-'));
  try {
    const e = new DiskEmbeddingCache(dir);
    const v = Float32Array.from([0.5, -0.25, 1e-3]);
    e.set('mobilenet_v2:fill:abc@0,0,10,10', v);
    assert.deepEqual(new DiskEmbeddingCache(dir).get('mobilenet_v2:fill:abc@0,0,10,10'), v);
    assert.equal(new DiskEmbeddingCache(dir).get('other'), undefined);
    const f = new DiskFeatureCache(dir);
    const feats = { n: 2, xy: Float32Array.from([1, 2, 3, 4]), desc: Uint8Array.from({ length: 64 }, (_, i) => i), width: 640, height: 480 };
    f.set('orb:v1:abc', feats);
    assert.deepEqual(new DiskFeatureCache(dir).get('orb:v1:abc'), feats);
    assert.equal(f.get('orb:v1:none'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

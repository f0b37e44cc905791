import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { blobKey, type BlobStore } from '@afterglow/core';

/**
 * The behaviour every BlobStore adapter must show, run by local.test.ts and s3.test.ts alike.
 * `make` returns undefined when the adapter cannot run here (the test is then skipped).
 */
export function runBlobStoreContract(adapter: string, make: (t: TestContext) => Promise<BlobStore | undefined>): void {
  test(`${adapter} blob store: content-addressed put/get/has/delete`, async (t) => {
    const store = await make(t);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!store) return;
    t.after(() => store.close());
    const bytes = new Uint8Array(randomBytes(100_000));
    const key = blobKey(bytes);
    assert.equal(await store.has(key), false);
    assert.equal(await store.get(key), undefined, 'absent blob reads as undefined');

    const first = await store.put(bytes, { contentType: 'image/jpeg' });
    assert.deepEqual(first, { key, bytes: bytes.byteLength, created: true });
    assert.equal(await store.has(key), true);
    assert.deepEqual(Buffer.from((await store.get(key))!), Buffer.from(bytes));

    // Ranges: inclusive ends, an end past the blob cut at it, a start past it empty, absent blobs undefined.
    assert.deepEqual(Buffer.from((await store.getRange(key, 10, 19))!), Buffer.from(bytes.subarray(10, 20)));
    assert.deepEqual(Buffer.from((await store.getRange(key, 99_990, 200_000))!), Buffer.from(bytes.subarray(99_990)));
    assert.equal((await store.getRange(key, 100_000, 100_010))!.byteLength, 0);
    assert.equal(await store.getRange(blobKey(new Uint8Array([1, 2, 3])), 0, 1), undefined);
    await assert.rejects(store.getRange('../../etc/passwd', 0, 1), { code: 'invalid_blob_key' });

    const again = await store.put(bytes);
    assert.equal(again.created, false, 'same bytes twice: stored once');
    assert.equal(again.key, key);

    const other = new Uint8Array(randomBytes(10));
    const otherKey = (await store.put(other)).key;
    assert.notEqual(otherKey, key);
    assert.deepEqual(Buffer.from((await store.get(otherKey))!), Buffer.from(other));

    await store.delete(key);
    assert.equal(await store.has(key), false);
    assert.equal(await store.get(key), undefined);
    await store.delete(key); // idempotent
    assert.equal(await store.has(otherKey), true, 'delete removes only its blob');
    await store.delete(otherKey);
  });

  test(`${adapter} blob store: concurrent puts of the same bytes agree; keys are checked`, async (t) => {
    const store = await make(t);
    // not-a-skip: the adapter's factory returns undefined only after serviceUrl/requireOrSkip skipped (fails under CI)
    if (!store) return;
    t.after(() => store.close());
    const bytes = new Uint8Array(randomBytes(50_000));
    const results = await Promise.all(Array.from({ length: 8 }, () => store.put(bytes)));
    assert.ok(results.every((r) => r.key === blobKey(bytes)));
    assert.deepEqual(Buffer.from((await store.get(blobKey(bytes)))!), Buffer.from(bytes));
    await assert.rejects(store.get('../../etc/passwd'), { code: 'invalid_blob_key' });
    await assert.rejects(store.has('ABC'), { code: 'invalid_blob_key' });
    const empty = await store.put(new Uint8Array(0));
    assert.deepEqual(Buffer.from((await store.get(empty.key))!), Buffer.alloc(0), 'an empty blob is a blob');
    await store.delete(blobKey(bytes));
    await store.delete(empty.key);
  });
}

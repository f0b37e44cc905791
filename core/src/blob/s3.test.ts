import { runBlobStoreContract } from '@afterglow/testkit/contracts';
import { S3BlobStore } from './s3.js';

/**
 * The S3 adapter against a real S3-compatible server: runs only when BLOB_S3_ENDPOINT and
 * BLOB_S3_BUCKET name one (e.g. MinIO: BLOB_S3_ENDPOINT=http://127.0.0.1:9000 BLOB_S3_BUCKET=afterglow-test
 * BLOB_S3_ACCESS_KEY_ID=... BLOB_S3_SECRET_ACCESS_KEY=...); skipped otherwise.
 */
runBlobStoreContract('s3', async (t) => {
  const endpoint = process.env.BLOB_S3_ENDPOINT;
  const bucket = process.env.BLOB_S3_BUCKET;
  if (!endpoint || !bucket) {
    t.skip('BLOB_S3_ENDPOINT / BLOB_S3_BUCKET not set: no S3-compatible server to test against');
    return undefined;
  }
  return new S3BlobStore({
    bucket,
    endpoint,
    region: process.env.BLOB_S3_REGION ?? 'us-east-1',
    accessKeyId: process.env.BLOB_S3_ACCESS_KEY_ID,
    secretAccessKey: process.env.BLOB_S3_SECRET_ACCESS_KEY,
    prefix: `contract-${Date.now().toString(36)}/`,
    forcePathStyle: true,
  });
});

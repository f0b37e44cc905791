import { skipOrFail } from '@afterglow/testkit/services';
import { runBlobStoreContract } from '@afterglow/testkit/contracts';
import { S3BlobStore } from './s3.js';

/**
 * The S3 adapter against a real S3-compatible server: deploy/local/up.sh starts one (moto's server,
 * deploy/local/s3.sh) and env.sh names it in BLOB_S3_ENDPOINT / S3_TEST_BUCKET (BLOB_S3_BUCKET wins
 * when set); any other S3 works the same way. Without them the test skips locally and fails under CI.
 */
runBlobStoreContract('s3', async (t) => {
  const endpoint = process.env.BLOB_S3_ENDPOINT;
  const bucket = process.env.BLOB_S3_BUCKET ?? process.env.S3_TEST_BUCKET;
  if (!endpoint || !bucket) {
    skipOrFail(t, 'BLOB_S3_ENDPOINT / S3_TEST_BUCKET not set: no S3-compatible server (deploy/local/up.sh, then source deploy/local/env.sh)');
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

import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { BlobSettings } from '../config.js';
import { blobKey, BlobUnavailableError, checkBlobKey, verified, type BlobStore, type PutResult } from './types.js';

/** The `s3` blob settings of the config (core/src/config.ts BlobSettings). */
export type S3BlobStoreOptions = Omit<Extract<BlobSettings, { kind: 's3' }>, 'kind'>;

/** Blobs as objects `<prefix><sha256>` in one bucket, through @aws-sdk/client-s3. */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;

  constructor(private readonly options: S3BlobStoreOptions) {
    this.client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.accessKeyId && options.secretAccessKey
        ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
        : {}),
    });
  }

  private objectKey(key: string): string {
    return `${this.options.prefix}${checkBlobKey(key)}`;
  }

  async put(bytes: Uint8Array, options: { contentType?: string } = {}): Promise<PutResult> {
    const key = blobKey(bytes);
    if (await this.has(key)) return { key, bytes: bytes.byteLength, created: false };
    await this.call('put', () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: this.objectKey(key),
          Body: bytes,
          ContentType: options.contentType ?? 'application/octet-stream',
          // The server checks the upload against the key (S3 additional checksums).
          ChecksumSHA256: Buffer.from(key, 'hex').toString('base64'),
        }),
      ),
    );
    return { key, bytes: bytes.byteLength, created: true };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
      if (!res.Body) return undefined;
      return verified(key, await res.Body.transformToByteArray());
    } catch (err) {
      if (notFound(err)) return undefined;
      if (err instanceof Error && (err as { code?: string }).code === 'blob_corrupt') throw err;
      throw new BlobUnavailableError(`blob store get ${key} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: objectKey, Range: `bytes=${start}-${end}` }));
      return res.Body ? await res.Body.transformToByteArray() : undefined;
    } catch (err) {
      if (notFound(err)) return undefined;
      // A start past the end of the object (S3 answers 416): nothing in range.
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return new Uint8Array(0);
      throw new BlobUnavailableError(`blob store get ${key} (range) failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async has(key: string): Promise<boolean> {
    const objectKey = this.objectKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
      return true;
    } catch (err) {
      if (notFound(err)) return false;
      throw new BlobUnavailableError(`blob store head ${key} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    await this.call('delete', () => this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: objectKey })));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new BlobUnavailableError(`blob store ${what} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}

function notFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

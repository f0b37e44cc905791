import { createHash } from 'node:crypto';
import { AfterglowError, BadRequestError } from '../errors.js';

/**
 * The blob store port: immutable bytes addressed by their sha256 (lower-case hex). Originals of
 * registered images and their thumbnails live here; rows in ClickHouse refer to them by hash. Two
 * adapters: a local directory (embedded default, under AFTERGLOW_DATA_DIR) and an S3-compatible
 * bucket (production). Writing the same bytes twice is a no-op; a read verifies the content against
 * its key, so a corrupt blob is an error rather than wrong pixels.
 */
export interface BlobStore {
  readonly kind: 'local' | 's3';
  /** Stores `bytes` under sha256(bytes); `created` is false when the blob was already there. */
  put(bytes: Uint8Array, options?: { contentType?: string }): Promise<PutResult>;
  /** The bytes, or undefined when no blob has this key. Throws BlobCorruptError when they do not match it. */
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Bytes `start`..`end` (inclusive) of a blob, or undefined when no blob has this key; a range past
   * the end is cut at the end. Read without the whole blob (a video player seeks with many of these),
   * hence not verified against the key: callers serve it only where the whole was verified on put.
   */
  getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined>;
  has(key: string): Promise<boolean>;
  /** Removes the blob (no-op when absent). */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

export interface PutResult {
  key: string;
  bytes: number;
  created: boolean;
}

const KEY = /^[0-9a-f]{64}$/;

/** The key of `bytes`: sha256, lower-case hex. */
export function blobKey(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Refuses anything but a sha256 hex key (keys become file names and object keys). */
export function checkBlobKey(key: string): string {
  if (!KEY.test(key)) throw new BadRequestError('invalid_blob_key', 'a blob key is a sha256 in lower-case hex');
  return key;
}

/** A stored blob's bytes no longer hash to its key. */
export class BlobCorruptError extends AfterglowError {
  constructor(key: string, actual: string) {
    super('blob_corrupt', `blob ${key} is corrupt (its bytes hash to ${actual})`);
  }
}

/** The blob store could not be reached or refused the operation. */
export class BlobUnavailableError extends AfterglowError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('blob_unavailable', message, options);
  }
}

/** Verifies bytes read back against their key. */
export function verified(key: string, bytes: Uint8Array): Uint8Array {
  const actual = blobKey(bytes);
  if (actual !== key) throw new BlobCorruptError(key, actual);
  return bytes;
}

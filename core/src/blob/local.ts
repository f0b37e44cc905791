import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { blobKey, checkBlobKey, verified, type BlobStore, type PutResult } from './types.js';

/**
 * Blobs as files under one directory: `<dir>/<2 hex>/<2 hex>/<sha256>`. Writes go to a temp file in
 * the same directory and are renamed into place, so a reader never sees half a blob and two
 * processes writing the same blob are safe (same name, same bytes).
 */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local' as const;

  constructor(readonly dir: string) {}

  private file(key: string): string {
    checkBlobKey(key);
    return path.join(this.dir, key.slice(0, 2), key.slice(2, 4), key);
  }

  async put(bytes: Uint8Array): Promise<PutResult> {
    const key = blobKey(bytes);
    const file = this.file(key);
    if (await exists(file)) return { key, bytes: bytes.byteLength, created: false };
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, bytes, { flush: true });
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { key, bytes: bytes.byteLength, created: true };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    let buf: Buffer;
    try {
      buf = await readFile(this.file(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return verified(key, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.file(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const size = (await handle.stat()).size;
      const last = Math.min(end, size - 1);
      if (start > last) return new Uint8Array(0);
      const buf = Buffer.alloc(last - start + 1);
      const { bytesRead } = await handle.read(buf, 0, buf.length, start);
      return new Uint8Array(buf.buffer, buf.byteOffset, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async has(key: string): Promise<boolean> {
    return exists(this.file(key));
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }

  async close(): Promise<void> {}
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

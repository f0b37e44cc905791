/**
 * On-disk caches keyed by content: embeddings (an `EmbeddingCache` for the embedder, whose keys are
 * `${model}:${fit}:${sha256}[@crop]`) and ORB features of masters (`orb:${sha256}:${params}`), so a
 * second `afterglow tie` over the same folders skips the models. One small file per entry under
 * `<dir>/<2 hex>/<sha256 of the key>`; writes go to a temp file and are renamed (safe for concurrent
 * processes). Entries are never stale: the key says what the content is.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { EmbeddingCache } from '../models/types.js';
import type { Features } from './orb.js';

class DiskStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private file(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return path.join(this.dir, h.slice(0, 2), h);
  }

  read(key: string): Buffer | undefined {
    try {
      return readFileSync(this.file(key));
    } catch {
      return undefined;
    }
  }

  write(key: string, data: Uint8Array): void {
    const f = this.file(key);
    try {
      mkdirSync(path.dirname(f), { recursive: true });
      const tmp = `${f}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      writeFileSync(tmp, data);
      renameSync(tmp, f);
    } catch {
      /* a cache that cannot write is only slower */
    }
  }
}

/** Embeddings on disk, with a small in-memory map in front (the embedder copies what it returns). */
export class DiskEmbeddingCache implements EmbeddingCache {
  private readonly store: DiskStore;
  private readonly mem = new Map<string, Float32Array>();
  constructor(dir: string, private readonly memEntries = 4096) {
    this.store = new DiskStore(path.join(dir, 'embeddings'));
  }

  get size(): number {
    return this.mem.size;
  }

  get(key: string): Float32Array | undefined {
    const hit = this.mem.get(key);
    if (hit) return hit;
    const b = this.store.read(key);
    if (!b || b.byteLength % 4 !== 0 || b.byteLength === 0) return undefined;
    const v = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    this.remember(key, v);
    return v;
  }

  set(key: string, value: Float32Array): void {
    this.remember(key, value);
    this.store.write(key, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }

  private remember(key: string, v: Float32Array): void {
    if (this.mem.size >= this.memEntries) this.mem.delete(this.mem.keys().next().value as string);
    this.mem.set(key, v);
  }
}

/** Cache of ORB features (masters). */
export interface FeatureCache {
  get(key: string): Features | undefined;
  set(key: string, f: Features): void;
}

export class DiskFeatureCache implements FeatureCache {
  private readonly store: DiskStore;
  constructor(dir: string) {
    this.store = new DiskStore(path.join(dir, 'orb'));
  }

  get(key: string): Features | undefined {
    const b = this.store.read(key);
    if (!b || b.byteLength < 12) return undefined;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const n = dv.getUint32(0, true);
    const width = dv.getUint32(4, true);
    const height = dv.getUint32(8, true);
    if (b.byteLength !== 12 + n * 8 + n * 32) return undefined;
    const xy = new Float32Array(b.buffer.slice(b.byteOffset + 12, b.byteOffset + 12 + n * 8));
    const desc = new Uint8Array(b.buffer.slice(b.byteOffset + 12 + n * 8, b.byteOffset + b.byteLength));
    return { n, xy, desc, width, height };
  }

  set(key: string, f: Features): void {
    const out = new Uint8Array(12 + f.n * 8 + f.n * 32);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, f.n, true);
    dv.setUint32(4, f.width, true);
    dv.setUint32(8, f.height, true);
    out.set(new Uint8Array(f.xy.buffer, f.xy.byteOffset, f.n * 8), 12);
    out.set(f.desc.subarray(0, f.n * 32), 12 + f.n * 8);
    this.store.write(key, out);
  }
}

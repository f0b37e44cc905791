/** The default embedding cache: an LRU over a Map, bounded by the bytes of the vectors it holds. */
import type { EmbeddingCache } from './types.js';

export class LruEmbeddingCache implements EmbeddingCache {
  private readonly map = new Map<string, Float32Array>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.map.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get(key: string): Float32Array | undefined {
    const v = this.map.get(key);
    if (v) {
      // Most recently used goes to the end.
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: Float32Array): void {
    const cost = value.byteLength + key.length * 2;
    if (cost > this.maxBytes) return;
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.bytes -= old.byteLength + key.length * 2;
    }
    this.map.set(key, value);
    this.bytes += cost;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.maxBytes) break;
      this.map.delete(k);
      this.bytes -= v.byteLength + k.length * 2;
    }
  }
}

/**
 * Candidate retrieval by local features, beside the embeddings: every master's ORB descriptors go
 * into a multi-index hash (the 256-bit descriptor cut into 16 substrings of 16 bits, one table per
 * substring: two descriptors within Hamming distance r < 16 share at least one substring exactly).
 * An ad's descriptors (as is and flipped) look up their buckets, keep the nearest master descriptor
 * (ratio test against the second nearest) and vote for its master. The masters with the most votes
 * are verified with RANSAC like the embedding's top candidates: this finds masters the global
 * embedding misses (small crops, heavy overlays) at a cost of milliseconds per ad.
 */
import type { Features } from './orb.js';

const TABLES = 16;
function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export interface VoteOptions {
  /** Nearest descriptor must be within this Hamming distance (of 256 bits). Default 64. */
  maxDistance?: number;
  /** Lowe's ratio test between the nearest and second-nearest descriptor found. Default 0.8. */
  ratio?: number;
  /** Buckets bigger than this are skipped (uninformative, e.g. flat-region descriptors). Default 48. */
  maxBucket?: number;
}

export class OrbVoteIndex {
  private desc = new Uint8Array(1 << 16);
  private owner = new Int32Array(1 << 11);
  private count = 0;
  private readonly tables: Array<Map<number, number[]>> = Array.from({ length: TABLES }, () => new Map());
  private masters = 0;

  get descriptors(): number {
    return this.count;
  }

  /** Adds master `index`'s descriptors (masters must be added with increasing indices from 0). */
  add(index: number, f: Features): void {
    this.masters = Math.max(this.masters, index + 1);
    const need = (this.count + f.n) * 32;
    if (need > this.desc.length) {
      const d = new Uint8Array(Math.max(need, this.desc.length * 2));
      d.set(this.desc);
      this.desc = d;
    }
    if (this.count + f.n > this.owner.length) {
      const o = new Int32Array(Math.max(this.count + f.n, this.owner.length * 2));
      o.set(this.owner);
      this.owner = o;
    }
    for (let k = 0; k < f.n; k++) {
      const id = this.count++;
      this.desc.set(f.desc.subarray(k * 32, k * 32 + 32), id * 32);
      this.owner[id] = index;
      for (let t = 0; t < TABLES; t++) {
        const key = f.desc[k * 32 + 2 * t]! | (f.desc[k * 32 + 2 * t + 1]! << 8);
        const table = this.tables[t]!;
        const b = table.get(key);
        if (b) b.push(id);
        else table.set(key, [id]);
      }
    }
  }

  /** Votes per master (index order) from an ad's descriptors; with `flipped`, the better orientation per master. */
  vote(ad: Features, flipped: Features | undefined, options: VoteOptions = {}): Float32Array {
    const a = this.voteOne(ad, options);
    if (!flipped) return a;
    const b = this.voteOne(flipped, options);
    for (let i = 0; i < a.length; i++) a[i] = Math.max(a[i]!, b[i]!);
    return a;
  }

  private voteOne(f: Features, options: VoteOptions): Float32Array {
    const maxD = options.maxDistance ?? 64;
    const ratio = options.ratio ?? 0.8;
    const maxBucket = options.maxBucket ?? 48;
    const votes = new Float32Array(this.masters);
    const seen = new Int32Array(this.count).fill(-1);
    // Distances on 32-bit words (8 popcounts per pair instead of 32 table lookups).
    const desc = new Uint32Array(this.desc.buffer, 0, this.count * 8);
    const qd = new Uint32Array(f.n * 8);
    new Uint8Array(qd.buffer).set(f.desc.subarray(0, f.n * 32));
    for (let k = 0; k < f.n; k++) {
      const q = k * 32;
      const qw = k * 8;
      let d1 = 257;
      let d2 = 257;
      let best = -1;
      for (let t = 0; t < TABLES; t++) {
        const bucket = this.tables[t]!.get(f.desc[q + 2 * t]! | (f.desc[q + 2 * t + 1]! << 8));
        if (!bucket || bucket.length > maxBucket) continue;
        for (const id of bucket) {
          if (seen[id] === k) continue;
          seen[id] = k;
          const o = id * 8;
          let d = 0;
          for (let j = 0; j < 8; j++) d += popcount32(qd[qw + j]! ^ desc[o + j]!);
          if (d < d1) {
            // The second nearest must belong to another master for the ratio test to mean "ambiguous".
            if (best >= 0 && this.owner[best] !== this.owner[id]) d2 = d1;
            d1 = d;
            best = id;
          } else if (d < d2 && this.owner[id] !== this.owner[best]) d2 = d;
        }
      }
      if (best >= 0 && d1 <= maxD && d1 < ratio * d2) {
        const m = this.owner[best]!;
        votes[m] = votes[m]! + 1;
      }
    }
    return votes;
  }
}

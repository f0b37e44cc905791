/**
 * Exact top-K retrieval of masters for ads by "best over the six views" (Knot-Tie, section III):
 *
 *   cosine(ad, master)    = max over the ad's views v of  cos(e_v, e_m)
 *   euclidean(ad, master) = min over the ad's views v of  |x_v - x_m|
 *
 * Embeddings are stored L2-normalized (unit rows) with their original norms beside them, so one matrix
 * product gives both: |x_v - x_m|^2 = n_v^2 + n_m^2 - 2 n_v n_m cos. With unit norms (what the
 * embedder returns: signed-sqrt + L2) the euclidean distance is sqrt(2 - 2 cos) and the two lists
 * coincide; with raw norms they differ, as in the paper's interface.
 *
 * The product is computed exactly in blocks (query rows x master rows) with a register-blocked
 * Float32Array kernel (about 2 GMAC/s per core on V8), then top-K is kept per ad in bounded heaps:
 * memory O(K) per ad, time O(views * masters * dims) per ad. See `README.md` for where an ANN index
 * should take over.
 */

/** Row-major unit vectors (optionally with their original norms). */
export interface VectorSet {
  dims: number;
  count: number;
  /** count * dims floats; rows are expected to be L2-normalized. */
  data: Float32Array;
  /** Original norm of each row (default: all 1). */
  norms?: Float32Array;
}

/** A ranked list, best first. */
export interface Ranked {
  /** Master row indices. */
  index: Int32Array;
  /** Cosine similarity (descending) or euclidean distance (ascending). */
  value: Float32Array;
  /** The ad view (0..views-1) that gave each value. */
  view: Uint8Array;
}

export interface AdRanking {
  cosine: Ranked;
  euclidean: Ranked;
}

export interface SearchOptions {
  /** Master rows per block (default 1024). */
  blockMasters?: number;
  /** Ads per block (default 16). */
  blockAds?: number;
  /**
   * Consecutive master rows that belong to one master (its views, e.g. whole + centre crop); the
   * master's similarity is the best over ad views x master views. Default 1.
   */
  viewsPerMaster?: number;
}

/** L2-normalizes `v` in place and returns its original norm (0 stays 0). */
export function normalizeInPlace(v: Float32Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
  return n;
}

/** Packs vectors into one row-major VectorSet, normalizing copies of them (originals untouched). */
export function packVectors(vectors: readonly Float32Array[], dims?: number): VectorSet {
  const d = dims ?? vectors[0]?.length ?? 0;
  const data = new Float32Array(vectors.length * d);
  const norms = new Float32Array(vectors.length);
  vectors.forEach((v, i) => {
    if (v.length !== d) throw new RangeError(`vector ${i} has ${v.length} dims, expected ${d}`);
    const row = data.subarray(i * d, (i + 1) * d);
    row.set(v);
    norms[i] = normalizeInPlace(row);
  });
  return { dims: d, count: vectors.length, data, norms };
}

/**
 * Top-`k` masters per ad, by cosine and by euclidean distance, best over `viewsPerAd` consecutive query
 * rows per ad (and `viewsPerMaster` rows per master). Exact: equal to sorting all masters (ties broken
 * by the lower master index).
 */
export function searchTopK(masters: VectorSet, queries: VectorSet, viewsPerAd: number, k: number, options: SearchOptions = {}): AdRanking[] {
  if (masters.dims !== queries.dims) throw new RangeError(`dims differ: masters ${masters.dims}, queries ${queries.dims}`);
  if (!(viewsPerAd >= 1) || queries.count % viewsPerAd !== 0) throw new RangeError(`${queries.count} query rows are not a multiple of ${viewsPerAd} views`);
  const vpm = options.viewsPerMaster ?? 1;
  if (!(vpm >= 1) || masters.count % vpm !== 0) throw new RangeError(`${masters.count} master rows are not a multiple of ${vpm} views`);
  const d = masters.dims;
  const nAds = queries.count / viewsPerAd;
  const M = masters.count / vpm;
  const K = Math.max(0, Math.min(k, M));
  // Master rows per block: whole masters, an even number of rows.
  let blockM = Math.max(1, Math.floor((options.blockMasters ?? 1024) / vpm)) * vpm;
  if (blockM % 2 === 1) blockM *= 2;
  const blockA = Math.max(1, options.blockAds ?? 16);
  const mNorm = masters.norms;
  const qNorm = queries.norms;
  const out: AdRanking[] = [];
  const dots = new Float32Array(Math.ceil((blockA * viewsPerAd) / 4) * 4 * blockM);

  for (let a0 = 0; a0 < nAds; a0 += blockA) {
    const a1 = Math.min(nAds, a0 + blockA);
    const r0 = a0 * viewsPerAd;
    const rows = (a1 - a0) * viewsPerAd;
    const cosHeaps = Array.from({ length: a1 - a0 }, () => new TopHeap(K, true));
    const eucHeaps = Array.from({ length: a1 - a0 }, () => new TopHeap(K, false));
    const rowsTotal = masters.count;
    for (let m0 = 0; m0 < rowsTotal; m0 += blockM) {
      const m1 = Math.min(rowsTotal, m0 + blockM);
      const cols = m1 - m0;
      dotBlock(queries.data, r0, rows, masters.data, m0, cols, d, dots);
      for (let a = 0; a < a1 - a0; a++) {
        const ch = cosHeaps[a]!;
        const eh = eucHeaps[a]!;
        const base = a * viewsPerAd;
        for (let j = 0; j < cols; j += vpm) {
          const mi = (m0 + j) / vpm;
          let bestCos = -Infinity;
          let bestCosView = 0;
          let bestD2 = Infinity;
          let bestD2View = 0;
          for (let u = 0; u < vpm; u++) {
            const nm = mNorm ? mNorm[m0 + j + u]! : 1;
            for (let v = 0; v < viewsPerAd; v++) {
              const c = dots[(base + v) * cols + j + u]!;
              if (c > bestCos) {
                bestCos = c;
                bestCosView = v;
              }
              const nq = qNorm ? qNorm[r0 + base + v]! : 1;
              const d2 = nq * nq + nm * nm - 2 * nq * nm * c;
              if (d2 < bestD2) {
                bestD2 = d2;
                bestD2View = v;
              }
            }
          }
          ch.push(mi, bestCos, bestCosView);
          eh.push(mi, Math.sqrt(Math.max(0, bestD2)), bestD2View);
        }
      }
    }
    for (let a = 0; a < a1 - a0; a++) out.push({ cosine: cosHeaps[a]!.sorted(), euclidean: eucHeaps[a]!.sorted() });
  }
  return out;
}

/**
 * The top `k` of two rankings of the same masters by different view sets (e.g. an ad's views against
 * masters' whole views, and some of its views against masters' strips): a master's value is the better
 * of its two. Exact when both inputs are exact top-`k` lists: a master in the true top-`k` of the better
 * value is in the top-`k` of the list its better value came from. `viewMap` renames the second
 * ranking's view indices (its queries were a subset of the ad's views).
 */
export function mergeRankings(a: AdRanking, b: AdRanking, k: number, viewMap?: readonly number[]): AdRanking {
  const merge = (x: Ranked, y: Ranked, higherIsBetter: boolean): Ranked => {
    const best = new Map<number, { value: number; view: number }>();
    const offer = (r: Ranked, map?: readonly number[]) => {
      for (let i = 0; i < r.index.length; i++) {
        const m = r.index[i]!;
        const v = r.value[i]!;
        const cur = best.get(m);
        if (!cur || (higherIsBetter ? v > cur.value : v < cur.value)) best.set(m, { value: v, view: map ? map[r.view[i]!]! : r.view[i]! });
      }
    };
    offer(x);
    offer(y, viewMap);
    const sorted = [...best].sort((p, q) => (higherIsBetter ? q[1].value - p[1].value : p[1].value - q[1].value) || p[0] - q[0]).slice(0, Math.max(0, k));
    return {
      index: Int32Array.from(sorted, (e) => e[0]),
      value: Float32Array.from(sorted, (e) => e[1].value),
      view: Uint8Array.from(sorted, (e) => e[1].view),
    };
  };
  return { cosine: merge(a.cosine, b.cosine, true), euclidean: merge(a.euclidean, b.euclidean, false) };
}

/**
 * dots[r * cols + j] = <q[r0 + r], m[m0 + j]> for r < rows, j < cols. Four query rows against two
 * master rows per inner loop: each loaded float is used four or two times (register blocking).
 */
export function dotBlock(q: Float32Array, r0: number, rows: number, m: Float32Array, m0: number, cols: number, d: number, dots: Float32Array): void {
  const rows4 = rows - (rows % 4);
  const cols2 = cols - (cols % 2);
  for (let j = 0; j < cols2; j += 2) {
    const mo = (m0 + j) * d;
    const mo2 = mo + d;
    for (let i = 0; i < rows4; i += 4) {
      const q0 = (r0 + i) * d;
      const q1 = q0 + d;
      const q2 = q1 + d;
      const q3 = q2 + d;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0; // prettier-ignore
      for (let t = 0; t < d; t++) {
        const a = m[mo + t]!;
        const b = m[mo2 + t]!;
        const x0 = q[q0 + t]!;
        const x1 = q[q1 + t]!;
        const x2 = q[q2 + t]!;
        const x3 = q[q3 + t]!;
        s0 += x0 * a;
        s1 += x1 * a;
        s2 += x2 * a;
        s3 += x3 * a;
        t0 += x0 * b;
        t1 += x1 * b;
        t2 += x2 * b;
        t3 += x3 * b;
      }
      dots[i * cols + j] = s0;
      dots[(i + 1) * cols + j] = s1;
      dots[(i + 2) * cols + j] = s2;
      dots[(i + 3) * cols + j] = s3;
      dots[i * cols + j + 1] = t0;
      dots[(i + 1) * cols + j + 1] = t1;
      dots[(i + 2) * cols + j + 1] = t2;
      dots[(i + 3) * cols + j + 1] = t3;
    }
    for (let i = rows4; i < rows; i++) {
      const qo = (r0 + i) * d;
      let s = 0;
      let t2 = 0;
      for (let t = 0; t < d; t++) {
        const x = q[qo + t]!;
        s += x * m[mo + t]!;
        t2 += x * m[mo2 + t]!;
      }
      dots[i * cols + j] = s;
      dots[i * cols + j + 1] = t2;
    }
  }
  for (let j = cols2; j < cols; j++) {
    const mo = (m0 + j) * d;
    for (let i = 0; i < rows; i++) {
      const qo = (r0 + i) * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += q[qo + t]! * m[mo + t]!;
      dots[i * cols + j] = s;
    }
  }
}

/**
 * Bounded heap keeping the best `cap` (index, value) pairs: the largest values when `max`, the smallest
 * otherwise; ties prefer the lower index. Its root is the worst kept entry.
 */
export class TopHeap {
  private readonly idx: Int32Array;
  private readonly val: Float64Array;
  private readonly vw: Uint8Array;
  private n = 0;
  constructor(
    private readonly cap: number,
    private readonly max: boolean,
  ) {
    this.idx = new Int32Array(cap);
    this.val = new Float64Array(cap);
    this.vw = new Uint8Array(cap);
  }

  /** True when (v1, i1) ranks better than (v2, i2). */
  private better(v1: number, i1: number, v2: number, i2: number): boolean {
    if (v1 !== v2) return this.max ? v1 > v2 : v1 < v2;
    return i1 < i2;
  }

  get size(): number {
    return this.n;
  }

  push(index: number, value: number, view = 0): void {
    if (this.cap === 0 || Number.isNaN(value)) return;
    if (this.n < this.cap) {
      let i = this.n++;
      // sift up: the root is the worst
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.better(this.val[p]!, this.idx[p]!, value, index)) break;
        this.idx[i] = this.idx[p]!;
        this.val[i] = this.val[p]!;
        this.vw[i] = this.vw[p]!;
        i = p;
      }
      this.idx[i] = index;
      this.val[i] = value;
      this.vw[i] = view;
      return;
    }
    if (!this.better(value, index, this.val[0]!, this.idx[0]!)) return;
    // replace the root, sift down
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.n) break;
      const r = l + 1;
      let w = l;
      if (r < this.n && this.better(this.val[l]!, this.idx[l]!, this.val[r]!, this.idx[r]!)) w = r;
      if (!this.better(value, index, this.val[w]!, this.idx[w]!)) break;
      this.idx[i] = this.idx[w]!;
      this.val[i] = this.val[w]!;
      this.vw[i] = this.vw[w]!;
      i = w;
    }
    this.idx[i] = index;
    this.val[i] = value;
    this.vw[i] = view;
  }

  /** Entries best first. */
  sorted(): Ranked {
    const order = Array.from({ length: this.n }, (_, i) => i).sort((a, b) =>
      this.better(this.val[a]!, this.idx[a]!, this.val[b]!, this.idx[b]!) ? -1 : this.better(this.val[b]!, this.idx[b]!, this.val[a]!, this.idx[a]!) ? 1 : 0,
    );
    return {
      index: Int32Array.from(order, (o) => this.idx[o]!),
      value: Float32Array.from(order, (o) => this.val[o]!),
      view: Uint8Array.from(order, (o) => this.vw[o]!),
    };
  }
}

/**
 * PCA whitening of descriptors, learned without labels on the images being tied (masters and a sample
 * of ads' views): centre, project on the top `dims` principal axes, divide each axis by
 * sqrt(eigenvalue + shrinkage x mean eigenvalue), L2-normalize. It down-weights the directions every
 * image shares (and, fitted with ad views, what banners share: brand colours, text panels) and lifts
 * the rarer ones that tell one photo from another. Classic for CNN descriptors (Jégou & Chum 2012;
 * Radenović et al. 2018 learn it with labels; here it is unsupervised).
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

export interface Whitening {
  /** Input width. */
  inDims: number;
  /** Output width. */
  dims: number;
  mean: Float32Array;
  /** Row-major inDims x dims. */
  projection: Float32Array;
  /** Rows it was fitted on. */
  fittedOn: number;
}

export interface WhiteningOptions {
  /** Output width (capped by the input width and the number of rows - 1). */
  dims: number;
  /** Eigenvalue shrinkage, as a fraction of the mean kept eigenvalue (default 0.1). */
  shrinkage?: number;
}

/** Fits a whitening on `rows` (each `inDims` wide). */
export function fitWhitening(rows: readonly Float32Array[], inDims: number, options: WhiteningOptions): Whitening {
  const n = rows.length;
  if (n < 2) throw new RangeError('whitening needs at least 2 rows');
  const dims = Math.max(1, Math.min(options.dims, inDims, n - 1));
  const shrink = options.shrinkage ?? 0.1;
  const mean = new Float64Array(inDims);
  for (const r of rows) for (let j = 0; j < inDims; j++) mean[j]! += r[j]!;
  for (let j = 0; j < inDims; j++) mean[j]! /= n;
  // Covariance (inDims x inDims), upper triangle accumulated then mirrored.
  const cov = new Float64Array(inDims * inDims);
  const x = new Float64Array(inDims);
  for (const r of rows) {
    for (let j = 0; j < inDims; j++) x[j] = r[j]! - mean[j]!;
    for (let a = 0; a < inDims; a++) {
      const xa = x[a]!;
      if (xa === 0) continue;
      const off = a * inDims;
      for (let b = a; b < inDims; b++) cov[off + b]! += xa * x[b]!;
    }
  }
  const m = new Matrix(inDims, inDims);
  for (let a = 0; a < inDims; a++) {
    for (let b = a; b < inDims; b++) {
      const v = cov[a * inDims + b]! / (n - 1);
      m.set(a, b, v);
      m.set(b, a, v);
    }
  }
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const vectors = evd.eigenvectorMatrix;
  const order = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]!).slice(0, dims);
  const meanEig = order.reduce((s, i) => s + Math.max(0, values[i]!), 0) / dims;
  const projection = new Float32Array(inDims * dims);
  order.forEach((col, k) => {
    const scale = 1 / Math.sqrt(Math.max(0, values[col]!) + shrink * meanEig + 1e-12);
    for (let j = 0; j < inDims; j++) projection[j * dims + k] = vectors.get(j, col) * scale;
  });
  return { inDims, dims, mean: Float32Array.from(mean), projection, fittedOn: n };
}

/** Whitens one vector (or `count` consecutive ones) into unit-norm rows of `w.dims`. */
export function applyWhitening(w: Whitening, data: Float32Array, count = data.length / w.inDims): Float32Array {
  const { inDims, dims, mean, projection } = w;
  if (data.length !== count * inDims) throw new RangeError(`expected ${count} x ${inDims} values, got ${data.length}`);
  const out = new Float32Array(count * dims);
  const acc = new Float64Array(dims);
  for (let r = 0; r < count; r++) {
    acc.fill(0);
    const off = r * inDims;
    for (let j = 0; j < inDims; j++) {
      const v = data[off + j]! - mean[j]!;
      if (v === 0) continue;
      const p = j * dims;
      for (let k = 0; k < dims; k++) acc[k]! += v * projection[p + k]!;
    }
    let ss = 0;
    for (let k = 0; k < dims; k++) ss += acc[k]! * acc[k]!;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < dims; k++) out[r * dims + k] = acc[k]! * inv;
  }
  return out;
}

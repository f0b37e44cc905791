import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyWhitening, fitWhitening } from './whitening.js';

/** Deterministic pseudo-random rows: a large offset every row shares on axis 0, plus per-row noise. */
function rows(n: number, d: number, seed = 7): Float32Array[] {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  return Array.from({ length: n }, () => {
    const shared = 10 + rnd();
    return Float32Array.from({ length: d }, (_, j) => (j === 0 ? shared : 0) + rnd());
  });
}

describe('whitening', () => {
  it('decorrelates to unit variance on the fitted axes and returns unit rows', () => {
    const d = 8;
    const data = rows(400, d);
    const w = fitWhitening(data, d, { dims: 4, shrinkage: 0 });
    assert.equal(w.dims, 4);
    // Unnormalized projections: variance ~1 per axis (check before L2 by projecting centred data).
    const proj = data.map((r) => {
      const out = new Float64Array(4);
      for (let j = 0; j < d; j++) for (let k = 0; k < 4; k++) out[k]! += (r[j]! - w.mean[j]!) * w.projection[j * 4 + k]!;
      return out;
    });
    for (let k = 0; k < 4; k++) {
      const v = proj.reduce((s, p) => s + p[k]! * p[k]!, 0) / (proj.length - 1);
      assert.ok(Math.abs(v - 1) < 1e-3, `axis ${k} variance ${v}`);
    }
    const cov01 = proj.reduce((s, p) => s + p[0]! * p[1]!, 0) / (proj.length - 1);
    assert.ok(Math.abs(cov01) < 1e-3, `axes 0 and 1 covary ${cov01}`);
    const flat = new Float32Array(3 * d);
    data.slice(0, 3).forEach((r, i) => flat.set(r, i * d));
    const out = applyWhitening(w, flat, 3);
    assert.equal(out.length, 12);
    for (let i = 0; i < 3; i++) {
      const n = Math.hypot(...out.subarray(i * 4, i * 4 + 4));
      assert.ok(Math.abs(n - 1) < 1e-5);
    }
  });

  it('down-weights the direction every row shares: near-copies end up closer than before', () => {
    const d = 6;
    const data = rows(300, d, 3);
    const w = fitWhitening(data, d, { dims: d });
    const a = data[0]!;
    const b = Float32Array.from(a, (x, j) => x + (j === 3 ? 0.05 : 0)); // a near-copy of a
    const c = data[1]!; // another row: alike only by the offset every row shares
    const cos = (x: Float32Array, y: Float32Array) => {
      let s = 0;
      for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
      return s / (Math.hypot(...x) * Math.hypot(...y));
    };
    const [wa, wb, wc] = [a, b, c].map((v) => applyWhitening(w, v));
    assert.ok(cos(wa!, wb!) > 0.99);
    assert.ok(cos(a, c) > 0.9, `raw rows look alike (cos ${cos(a, c)})`);
    assert.ok(cos(wa!, wc!) < 0.8, `whitened, they should not (cos ${cos(wa!, wc!)})`);
  });

  it('refuses too little data and a wrong width', () => {
    assert.throws(() => fitWhitening(rows(1, 4), 4, { dims: 2 }), RangeError);
    const w = fitWhitening(rows(10, 4), 4, { dims: 2 });
    assert.throws(() => applyWhitening(w, new Float32Array(5), 1), RangeError);
  });
});

/**
 * A compact histogram gradient-boosted regression tree learner (squared loss), in the XGBoost /
 * LightGBM style: features are bucketed once into at most `maxBins` quantile bins, each node's split
 * is found from per-bin gradient sums (the larger child's histogram by subtraction), leaves are
 * Newton steps with L2 regularisation (-G / (H + lambda)), shrunk by the learning rate, with row and
 * column subsampling and early stopping on a validation set.
 *
 * Why our own code: the npm candidates were checked (Nov 2026). `ml-xgboost` is an emscripten build
 * of XGBoost 0.x from 2017-19 that can train and predict but cannot dump its trees (only an opaque
 * binary blob), so the model could not be exported to ONNX and served by onnxruntime; `ml-cart` /
 * `ml-random-forest` are CART / bagging without boosting; `decision-tree` and `xgboost-js` are young
 * single-author packages (the latter classification only). The learner below is ~250 lines, fully
 * deterministic for a seed, and its trees map one-to-one onto ONNX-ML TreeEnsembleRegressor nodes
 * (./onnx-trees.ts), which is what the workers run.
 *
 * Split rule everywhere (here, in ONNX, in `predictTree`): go left iff float32(x) <= threshold,
 * thresholds being float32 values, so onnxruntime (float input) and JS agree exactly on the path.
 */
import { mulberry32 } from '@afterglow/core';

export interface GbtParams {
  /** Boosting rounds (trees), at most. */
  rounds: number;
  learningRate: number;
  maxDepth: number;
  /** Fewest training rows in a leaf. */
  minLeaf: number;
  /** L2 regularisation of leaf values. */
  lambda: number;
  /** Minimum loss reduction to split. */
  gamma: number;
  /** Share of rows sampled per tree (without replacement). */
  subsample: number;
  /** Share of features sampled per tree. */
  colsample: number;
  maxBins: number;
  /** Stop when the validation loss has not improved for this many rounds (0 = never). */
  earlyStopping: number;
  seed: number;
}

export const DEFAULT_GBT_PARAMS: GbtParams = {
  rounds: 400,
  learningRate: 0.05,
  maxDepth: 4,
  minLeaf: 3,
  lambda: 1,
  gamma: 0,
  subsample: 0.8,
  colsample: 0.8,
  maxBins: 64,
  earlyStopping: 60,
  seed: 1,
};

/** One tree, as flat arrays (node 0 is the root). A leaf has feature -1. */
export interface Tree {
  feature: number[];
  threshold: number[];
  left: number[];
  right: number[];
  /** Leaf values (already multiplied by the learning rate); 0 for internal nodes. */
  value: number[];
}

export interface GbtModel {
  kind: 'gbt-regressor';
  nFeatures: number;
  base: number;
  trees: Tree[];
  /** Total gain of the splits on each feature (importance). */
  gain: number[];
}

/** A dense row-major matrix. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

export function matrix(rows: readonly ArrayLike<number>[], cols?: number): Matrix {
  const c = cols ?? rows[0]?.length ?? 0;
  const data = new Float32Array(rows.length * c);
  rows.forEach((r, i) => {
    if (r.length !== c) throw new Error(`row ${i} has ${r.length} features, expected ${c}`);
    for (let j = 0; j < c; j++) data[i * c + j] = r[j]!;
  });
  return { rows: rows.length, cols: c, data };
}

export interface TrainProgress {
  round: number;
  rounds: number;
  trainLoss: number;
  validLoss: number | undefined;
}

export interface TrainResult {
  model: GbtModel;
  bestRound: number;
  trainLoss: number;
  validLoss: number | undefined;
}

/** Quantile bin edges per feature: float32 thresholds between distinct values. */
function binEdges(x: Matrix, maxBins: number): Float32Array[] {
  const edges: Float32Array[] = [];
  const col = new Float32Array(x.rows);
  for (let j = 0; j < x.cols; j++) {
    for (let i = 0; i < x.rows; i++) col[i] = x.data[i * x.cols + j]!;
    // Missing values (NaN) take the right branch at every split (as in onnxruntime with
    // missing_value_tracks_true = 0), so they get no edges and fall in the last bin.
    const sorted = Float32Array.from(col.filter((v) => !Number.isNaN(v))).sort();
    const distinct: number[] = [];
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) distinct.push(sorted[i]!);
    const out: number[] = [];
    if (distinct.length <= maxBins) {
      for (let i = 0; i + 1 < distinct.length; i++) out.push(Math.fround((distinct[i]! + distinct[i + 1]!) / 2));
    } else {
      for (let b = 1; b < maxBins; b++) {
        const v = sorted[Math.floor((b * sorted.length) / maxBins)]!;
        // Edge just below v: values < v go left. Use the midpoint to the previous distinct value.
        const k = lowerIndex(distinct, v);
        if (k > 0) {
          const t = Math.fround((distinct[k - 1]! + distinct[k]!) / 2);
          if (out.length === 0 || t > out[out.length - 1]!) out.push(t);
        }
      }
    }
    // A midpoint can round (float32) onto the lower value; that still splits the same way (x <= t).
    edges.push(Float32Array.from(out));
  }
  return edges;
}

function lowerIndex(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Bin of x: the first edge with x <= edge, else edges.length. */
function binOf(edges: Float32Array, x: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= edges[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function predictTree(t: Tree, row: ArrayLike<number>, offset = 0): number {
  let n = 0;
  while (t.feature[n]! >= 0) n = Math.fround(row[offset + t.feature[n]!]!) <= t.threshold[n]! ? t.left[n]! : t.right[n]!;
  return t.value[n]!;
}

/** Predictions for every row (float64 sums of the tree outputs). */
export function predict(model: GbtModel, x: Matrix): Float64Array {
  if (x.cols !== model.nFeatures) throw new Error(`model expects ${model.nFeatures} features, got ${x.cols}`);
  const out = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) {
    let s = model.base;
    for (const t of model.trees) s += predictTree(t, x.data, i * x.cols);
    out[i] = s;
  }
  return out;
}

const mse = (p: ArrayLike<number>, y: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += (p[i]! - y[i]!) ** 2;
  return y.length ? s / y.length : 0;
};

export function trainGbt(
  x: Matrix,
  y: ArrayLike<number>,
  options: { params?: Partial<GbtParams>; valid?: { x: Matrix; y: ArrayLike<number> }; onProgress?: (p: TrainProgress) => void } = {},
): TrainResult {
  const p = { ...DEFAULT_GBT_PARAMS, ...options.params };
  const n = x.rows;
  const f = x.cols;
  if (n === 0) throw new Error('no training rows');
  if (y.length !== n) throw new Error(`${n} rows but ${y.length} labels`);
  const rng = mulberry32(p.seed);
  const edges = binEdges(x, p.maxBins);
  const nb = edges.map((e) => e.length + 1);
  const maxB = Math.max(...nb);
  // Column-major bins: bins[j * n + i].
  const bins = new Uint8Array(n * f);
  for (let j = 0; j < f; j++) for (let i = 0; i < n; i++) bins[j * n + i] = binOf(edges[j]!, x.data[i * f + j]!);

  let base = 0;
  for (let i = 0; i < n; i++) base += y[i]!;
  base = Math.fround(base / n);
  const pred = new Float64Array(n).fill(base);
  const grad = new Float64Array(n);
  const validPred = options.valid ? new Float64Array(options.valid.x.rows).fill(base) : undefined;
  const trees: Tree[] = [];
  const gain = new Array<number>(f).fill(0);
  let best = { round: 0, loss: Infinity };
  let lastTrain = mse(pred, y);
  let lastValid: number | undefined;

  const histG = new Float64Array(maxB);
  const histC = new Uint32Array(maxB);
  for (let round = 0; round < p.rounds; round++) {
    for (let i = 0; i < n; i++) grad[i] = pred[i]! - y[i]!;
    let rows: number[] = [];
    for (let i = 0; i < n; i++) if (p.subsample >= 1 || rng() < p.subsample) rows.push(i);
    if (rows.length < 2 * p.minLeaf) rows = [...Array(n).keys()];
    const feats: number[] = [];
    for (let j = 0; j < f; j++) if (p.colsample >= 1 || rng() < p.colsample) feats.push(j);
    if (feats.length === 0) feats.push(Math.floor(rng() * f));

    const tree: Tree = { feature: [], threshold: [], left: [], right: [], value: [] };
    const grow = (idx: number[], depth: number): number => {
      const node = tree.feature.length;
      tree.feature.push(-1);
      tree.threshold.push(0);
      tree.left.push(-1);
      tree.right.push(-1);
      tree.value.push(0);
      let G = 0;
      for (const i of idx) G += grad[i]!;
      const H = idx.length;
      const leafValue = Math.fround((-G / (H + p.lambda)) * p.learningRate);
      if (depth >= p.maxDepth || H < 2 * p.minLeaf) {
        tree.value[node] = leafValue;
        return node;
      }
      const parentScore = (G * G) / (H + p.lambda);
      let bestGain = p.gamma;
      let bestFeat = -1;
      let bestBin = -1;
      for (const j of feats) {
        const b = nb[j]!;
        if (b < 2) continue;
        histG.fill(0, 0, b);
        histC.fill(0, 0, b);
        const off = j * n;
        for (const i of idx) {
          const k = bins[off + i]!;
          histG[k]! += grad[i]!;
          histC[k]!++;
        }
        let gl = 0;
        let cl = 0;
        for (let k = 0; k < b - 1; k++) {
          gl += histG[k]!;
          cl += histC[k]!;
          if (cl < p.minLeaf) continue;
          const cr = H - cl;
          if (cr < p.minLeaf) break;
          const gr = G - gl;
          const g = (gl * gl) / (cl + p.lambda) + (gr * gr) / (cr + p.lambda) - parentScore;
          if (g > bestGain + 1e-12) {
            bestGain = g;
            bestFeat = j;
            bestBin = k;
          }
        }
      }
      if (bestFeat < 0) {
        tree.value[node] = leafValue;
        return node;
      }
      const off = bestFeat * n;
      const li: number[] = [];
      const ri: number[] = [];
      for (const i of idx) (bins[off + i]! <= bestBin ? li : ri).push(i);
      gain[bestFeat]! += bestGain;
      tree.feature[node] = bestFeat;
      tree.threshold[node] = edges[bestFeat]![bestBin]!;
      const l = grow(li, depth + 1);
      const r = grow(ri, depth + 1);
      tree.left[node] = l;
      tree.right[node] = r;
      return node;
    };
    grow(rows, 0);
    trees.push(tree);
    // Update every training row (sampled or not) through the tree itself.
    for (let i = 0; i < n; i++) pred[i]! += predictTree(tree, x.data, i * f);
    lastTrain = mse(pred, y);
    if (options.valid && validPred) {
      const vx = options.valid.x;
      for (let i = 0; i < vx.rows; i++) validPred[i]! += predictTree(tree, vx.data, i * vx.cols);
      lastValid = mse(validPred, options.valid.y);
      if (lastValid < best.loss - 1e-12) best = { round: round + 1, loss: lastValid };
      else if (p.earlyStopping > 0 && round + 1 - best.round >= p.earlyStopping) {
        options.onProgress?.({ round: round + 1, rounds: p.rounds, trainLoss: lastTrain, validLoss: lastValid });
        break;
      }
    }
    options.onProgress?.({ round: round + 1, rounds: p.rounds, trainLoss: lastTrain, validLoss: lastValid });
  }
  const keep = options.valid && best.round > 0 ? best.round : trees.length;
  return {
    model: { kind: 'gbt-regressor', nFeatures: f, base, trees: trees.slice(0, keep), gain },
    bestRound: keep,
    trainLoss: lastTrain,
    validLoss: options.valid ? best.loss : undefined,
  };
}

export interface RegressionMetrics {
  rmse: number;
  mae: number;
  r2: number;
  n: number;
}

export function regressionMetrics(pred: ArrayLike<number>, y: ArrayLike<number>): RegressionMetrics {
  const n = y.length;
  if (n === 0) return { rmse: NaN, mae: NaN, r2: NaN, n: 0 };
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i]!;
  mean /= n;
  let ss = 0;
  let st = 0;
  let ae = 0;
  for (let i = 0; i < n; i++) {
    const e = pred[i]! - y[i]!;
    ss += e * e;
    ae += Math.abs(e);
    st += (y[i]! - mean) ** 2;
  }
  return { rmse: Math.sqrt(ss / n), mae: ae / n, r2: st > 0 ? 1 - ss / st : NaN, n };
}

/**
 * A bag of boosted ensembles, each fitted on a cluster bootstrap of the rows (clusters drawn with
 * replacement: e.g. every ad of one master goes in or out together, since they share the photo and
 * so its unexplained engagement). The bag's mean is the prediction; the spread of its members is
 * the model (training-data) uncertainty that the attribution intervals carry.
 */
export interface GbtBag {
  kind: 'gbt-bag';
  nFeatures: number;
  members: GbtModel[];
}

export function trainBag(
  x: Matrix,
  y: ArrayLike<number>,
  groups: readonly string[],
  options: { members: number; params?: Partial<GbtParams>; onMember?: (done: number, of: number) => void },
): GbtBag {
  const seed = options.params?.seed ?? DEFAULT_GBT_PARAMS.seed;
  const rng = mulberry32(seed * 7919 + 17);
  const byGroup = new Map<string, number[]>();
  groups.forEach((g, i) => (byGroup.get(g) ?? byGroup.set(g, []).get(g)!).push(i));
  const clusters = [...byGroup.values()];
  const members: GbtModel[] = [];
  for (let m = 0; m < options.members; m++) {
    const idx: number[] = [];
    if (options.members === 1) idx.push(...Array(x.rows).keys());
    else for (let c = 0; c < clusters.length; c++) idx.push(...clusters[Math.floor(rng() * clusters.length)]!);
    const sub: Matrix = { rows: idx.length, cols: x.cols, data: new Float32Array(idx.length * x.cols) };
    idx.forEach((i, k) => sub.data.set(x.data.subarray(i * x.cols, (i + 1) * x.cols), k * x.cols));
    const res = trainGbt(sub, idx.map((i) => y[i]!), { params: { ...options.params, seed: seed + m, earlyStopping: 0 } });
    members.push(res.model);
    options.onMember?.(m + 1, options.members);
  }
  return { kind: 'gbt-bag', nFeatures: x.cols, members };
}

/** Per-member predictions: out[m][i]. */
export function predictMembers(bag: GbtBag, x: Matrix): Float64Array[] {
  return bag.members.map((m) => predict(m, x));
}

/** The bag's prediction (mean over members). */
export function predictBag(bag: GbtBag, x: Matrix): Float64Array {
  const per = predictMembers(bag, x);
  const out = new Float64Array(x.rows);
  for (const p of per) for (let i = 0; i < x.rows; i++) out[i]! += p[i]! / per.length;
  return out;
}

/**
 * Evaluation of the tie engine on a generated set (./dataset/generate.ts), with the baselines beside
 * it: pHash (64-bit DCT hash, Hamming distance; whole ad, and best over the six views) and ORB only
 * (keypoint inliers against every master, no embeddings). Used by `bench/tie.ts` and by
 * `--calibrate`, which refits the calibration from the engine's evidence.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import {
  AUTO_TIE_MAX_COSINE_GAP,
  AUTO_TIE_MIN_INLIERS,
  autoTieOf,
  autoTiePolicy,
  bestCosine,
  candidateFeatures,
  chooseAutoTie,
  FEATURE_NAMES,
  fitLogistic,
  scoreCandidates,
  decodeImage,
  DEFAULT_IMAGE_LIMITS,
  hammingDistance,
  phash,
  retrievalReport,
  DEFAULT_ORB_PARAMS,
  describeSize,
  OrbPool,
  adViews,
  TieEngine,
  type AutoTieChoice,
  type Calibration,
  type Embedder,
  type EmbeddingModelId,
  type TieEngineOptions,
  type TieResult,
  type RankedPrediction,
  type RetrievalReport,
  type Features,
  type OrbParams,
} from '@afterglow/inference';
import type { TieDataset } from './dataset.js';

/** What the evaluation needs of a set: either family's dataset. */
export interface TieSet {
  mastersDir: string;
  adsDir: string;
  masters: ReadonlyArray<{ file: string }>;
  ads: ReadonlyArray<{ file: string }>;
  /** Ads with one true master -> it. */
  truth: ReadonlyMap<string, string>;
  /** Ads with no true master (family B): any auto-tie of one is wrong. */
  noMaster?: ReadonlySet<string>;
}

export interface SetReport extends RetrievalReport {
  /** Ads without a master scored, and auto-ties made on them (all wrong; counted in autoTies). */
  noMasterAds: number;
  noMasterAutoTies: number;
}

/**
 * Retrieval figures over the ads that have a master (ads in neither `truth` nor `noMaster`, e.g.
 * collages, are left out); an auto-tie of a no-master ad counts as a wrong auto-tie. Coverage is the
 * share of ads with a master that were auto-tied.
 */
export function setReport(preds: readonly RankedPrediction[], truth: ReadonlyMap<string, string>, noMaster: ReadonlySet<string> = new Set()): SetReport {
  const withTruth = preds.filter((p) => truth.has(p.ad));
  const orphans = preds.filter((p) => noMaster.has(p.ad));
  const base = retrievalReport(withTruth, truth);
  const wrong = orphans.filter((p) => p.autoTie).length;
  const autoTies = base.autoTies + wrong;
  return { ...base, autoTies, autoTiePrecision: autoTies > 0 ? base.autoTiesCorrect / autoTies : undefined, noMasterAds: orphans.length, noMasterAutoTies: wrong };
}

/** `setReport` per group of ads (format, layout, ...), groups in first-seen order. */
export function reportBy<A extends { file: string }>(
  preds: readonly RankedPrediction[],
  ads: readonly A[],
  key: (ad: A) => string,
  truth: ReadonlyMap<string, string>,
  noMaster: ReadonlySet<string> = new Set(),
): Array<{ group: string; report: SetReport }> {
  const groupOf = new Map(ads.map((a) => [a.file, key(a)]));
  const groups = new Map<string, RankedPrediction[]>();
  for (const p of preds) {
    const g = groupOf.get(p.ad);
    if (g === undefined) continue;
    groups.set(g, [...(groups.get(g) ?? []), p]);
  }
  return [...groups.entries()].map(([group, ps]) => ({ group, report: setReport(ps, truth, noMaster) }));
}

export interface EngineRun {
  results: TieResult[];
  report: SetReport;
  /** Embedding-only ranking (cosine list) of the same run. */
  embeddingOnly: SetReport;
  mastersS: number;
  adsS: number;
  totalS: number;
  timings: TieEngine['timings'];
}

export function datasetRefs(ds: TieSet): { masters: Array<{ name: string; path: string }>; ads: Array<{ name: string; path: string }> } {
  return {
    masters: ds.masters.map((m) => ({ name: m.file, path: path.join(ds.mastersDir, m.file) })),
    ads: ds.ads.map((a) => ({ name: a.file, path: path.join(ds.adsDir, a.file) })),
  };
}

/** Runs the engine over the dataset (masters, then ads) and scores it. */
export async function runEngine(ds: TieSet, embedder: Embedder, options: Omit<TieEngineOptions, 'embedder'> = {}, onProgress?: (phase: string, done: number, total: number) => void): Promise<EngineRun> {
  const refs = datasetRefs(ds);
  const engine = new TieEngine({ ...options, embedder });
  try {
    const t0 = performance.now();
    const added = await engine.addMasters(refs.masters, (p) => onProgress?.(p.phase, p.done, p.total));
    if (added.failed.length) throw new Error(`masters failed: ${added.failed.map((f) => `${f.name}: ${f.error}`).join('; ')}`);
    const t1 = performance.now();
    const results = await engine.tieAds(refs.ads, undefined, (p) => onProgress?.(p.phase, p.done, p.total));
    const t2 = performance.now();
    const failed = results.filter((r) => r.error);
    if (failed.length) throw new Error(`ads failed: ${failed.map((f) => `${f.ad}: ${f.error}`).join('; ')}`);
    return {
      results,
      report: setReport(toPredictions(results), ds.truth, ds.noMaster),
      embeddingOnly: setReport(
        results.map((r) => ({ ad: r.ad, masters: r.byCosine.map((c) => c.master) })),
        ds.truth,
        ds.noMaster,
      ),
      mastersS: (t1 - t0) / 1000,
      adsS: (t2 - t1) / 1000,
      totalS: (t2 - t0) / 1000,
      timings: { ...engine.timings },
    };
  } finally {
    await engine.close();
  }
}

export function toPredictions(results: readonly TieResult[]): RankedPrediction[] {
  return results.map((r) => ({ ad: r.ad, masters: r.candidates.map((c) => c.master), scores: r.candidates.map((c) => c.score), autoTie: r.autoTie }));
}

/** Re-scores results with another calibration (same evidence), e.g. a freshly fitted one. */
export function rescore(results: readonly TieResult[], cal: Calibration, threshold = cal.autoTieThreshold, top = 20): TieResult[] {
  return results.map((r) => {
    const scores = scoreCandidates(cal, r.candidates);
    const order = r.candidates.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]! || r.candidates[b]!.cosine - r.candidates[a]!.cosine);
    const candidates = order.slice(0, top).map((i) => ({ ...r.candidates[i]!, score: scores[i]! }));
    // The best cosine over every candidate, not only the `top` kept.
    const auto = autoTieOf(autoTiePolicy(cal, { threshold }), candidates, bestCosine(r.candidates));
    return { ...r, candidates, autoTie: auto ? candidates[0]!.master : null };
  });
}

/**
 * Fits the calibration on engine results (which must hold every scored candidate: run the engine with
 * `candidates` large), and picks the auto-tie threshold for `targetPrecision`.
 */
export function fitCalibration(runs: ReadonlyArray<{ results: readonly TieResult[]; truth: ReadonlyMap<string, string> }>, targetPrecision: number, info: Record<string, unknown> = {}): { calibration: Calibration; threshold: AutoTieChoice; samples: number; positives: number } {
  const X: number[][] = [];
  const y: number[] = [];
  for (const run of runs) {
    for (const r of run.results) {
      const t = run.truth.get(r.ad);
      const feats = candidateFeatures(r.candidates);
      r.candidates.forEach((c, i) => {
        X.push(feats[i]!);
        y.push(c.master === t ? 1 : 0);
      });
    }
  }
  const fit = fitLogistic(X, y, { monotone: true, l2: 1e-4 });
  const cal: Calibration = { version: 1, features: [...FEATURE_NAMES], weights: fit.weights.map((w) => round(w, 5)), bias: round(fit.bias, 5), autoTieThreshold: 1, targetPrecision };
  const top: Array<{ score: number; second: number; correct: boolean; inliers: number; cosineGap: number }> = [];
  for (const run of runs) {
    const best = new Map(run.results.map((r) => [r.ad, bestCosine(r.candidates)]));
    for (const r of rescore(run.results, cal, 1.0001, 2)) {
      const c = r.candidates[0];
      if (c) top.push({ score: c.score, second: r.candidates[1]?.score ?? 0, correct: c.master === run.truth.get(r.ad), inliers: c.inliers, cosineGap: best.get(r.ad)! - c.cosine });
    }
  }
  const threshold = chooseAutoTie(top, targetPrecision, AUTO_TIE_MIN_INLIERS, AUTO_TIE_MAX_COSINE_GAP);
  cal.autoTieThreshold = round(Math.min(1.0001, threshold.threshold), 6);
  cal.autoTieMargin = threshold.margin;
  cal.autoTieMinInliers = threshold.minInliers;
  cal.autoTieMaxCosineGap = threshold.maxCosineGap;
  cal.fittedOn = { ...info, samples: X.length, positives: y.reduce((a, b) => a + b, 0), ads: top.length, thresholdPrecision: round(threshold.precision, 4), thresholdCoverage: round(threshold.coverage, 4) };
  return { calibration: cal, threshold, samples: X.length, positives: y.reduce((a, b) => a + b, 0) };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------------
// Baselines

export interface BaselineRun {
  report: RetrievalReport;
  seconds: number;
  ads: number;
}

/** pHash baseline: Hamming distance of 64-bit DCT hashes; `views`: best over the six views instead of the whole ad. */
export async function runPhashBaseline(ds: TieDataset, views: boolean): Promise<BaselineRun> {
  const t0 = performance.now();
  const refs = datasetRefs(ds);
  const mh = await mapLimit(refs.masters, 4, async (m) => phash(new Uint8Array(await readFile(m.path))));
  const preds = await mapLimit(refs.ads, 4, async (a) => {
    const bytes = new Uint8Array(await readFile(a.path));
    let hashes: bigint[];
    if (views) {
      const raw = await decodeImage(bytes, DEFAULT_IMAGE_LIMITS, { maxSide: 1024 });
      hashes = await Promise.all(adViews(raw.width, raw.height).map((v) => phash({ raw, crop: v.rect })));
    } else hashes = [await phash(bytes)];
    const dist = mh.map((h, i) => ({ i, d: Math.min(...hashes.map((x) => hammingDistance(x, h))) }));
    dist.sort((x, y) => x.d - y.d || x.i - y.i);
    return { ad: a.name, masters: dist.slice(0, 20).map((x) => refs.masters[x.i]!.name), scores: dist.slice(0, 20).map((x) => 1 - x.d / 64) };
  });
  return { report: retrievalReport(preds, ds.truth), seconds: (performance.now() - t0) / 1000, ads: preds.length };
}

/**
 * ORB-only baseline: every ad (or the first `sampleAds`) matched against every master, ranked by
 * RANSAC inliers (then ratio-test matches). Quadratic: the reason embeddings come first.
 */
export async function runOrbBaseline(ds: TieDataset, sampleAds: number | undefined, workers: number, params: OrbParams = DEFAULT_ORB_PARAMS): Promise<BaselineRun> {
  const t0 = performance.now();
  const pool = new OrbPool(workers);
  try {
    const refs = datasetRefs(ds);
    const describe = async (p: string, role: 'master' | 'ad') => {
      const raw = await decodeImage(new Uint8Array(await readFile(p)), DEFAULT_IMAGE_LIMITS, { maxSide: 1024 });
      const { width, height } = describeSize(raw.width, raw.height, role, params);
      const g = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: 3 } }).resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).greyscale().raw().toBuffer();
      return pool.features(new Uint8Array(g.buffer, g.byteOffset, g.byteLength), width, height, params, role === 'ad');
    };
    const masters: Features[] = (await mapLimit(refs.masters, 4, (m) => describe(m.path, 'master'))).map((f) => f.features);
    const ads = sampleAds === undefined ? refs.ads : refs.ads.slice(0, sampleAds);
    const preds = await mapLimit(ads, workers * 2, async (a) => {
      const f = await describe(a.path, 'ad');
      const res = await pool.match(f.features, f.flipped, masters, params);
      const order = res.map((r, i) => ({ i, s: r.inliers + r.matches / 1000 })).sort((x, y) => y.s - x.s || x.i - y.i);
      return { ad: a.name, masters: order.slice(0, 20).map((o) => refs.masters[o.i]!.name), scores: order.slice(0, 20).map((o) => o.s) };
    });
    return { report: retrievalReport(preds, ds.truth), seconds: (performance.now() - t0) / 1000, ads: preds.length };
  } finally {
    await pool.close();
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

export type { EmbeddingModelId };

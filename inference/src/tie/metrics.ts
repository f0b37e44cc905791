/**
 * Retrieval figures for the tie evaluation. Each ad has exactly one true master, so the average
 * precision of one ad's ranking is 1 / rank of that master (0 when absent) and mAP is the mean of
 * that; `pairAp` is the other reading (Knot-Tie table I): average precision of all (ad, candidate)
 * pairs ranked by score, i.e. how well one global threshold separates true pairs from false ones.
 */

export interface RankedPrediction {
  ad: string;
  /** Ranked best first. */
  masters: readonly string[];
  /** Scores aligned with `masters` (for pairAp and auto-tie); optional. */
  scores?: readonly number[];
  autoTie?: string | null;
}

export interface RetrievalReport {
  ads: number;
  recallAt1: number;
  recallAt5: number;
  recallAt20: number;
  mAP: number;
  /** Average precision over all scored pairs (needs scores). */
  pairAp: number | undefined;
  /** Auto-ties made, of them correct; precision = correct / made; coverage = made / ads. */
  autoTies: number;
  autoTiesCorrect: number;
  autoTiePrecision: number | undefined;
  autoTieCoverage: number;
}

export function rankOf(pred: RankedPrediction, truth: string): number {
  const i = pred.masters.indexOf(truth);
  return i < 0 ? Infinity : i + 1;
}

export function retrievalReport(preds: readonly RankedPrediction[], truth: ReadonlyMap<string, string>): RetrievalReport {
  let r1 = 0;
  let r5 = 0;
  let r20 = 0;
  let ap = 0;
  let ties = 0;
  let tiesOk = 0;
  const pairs: Array<{ s: number; pos: boolean }> = [];
  let scored = true;
  let positives = 0;
  for (const p of preds) {
    const t = truth.get(p.ad);
    if (t === undefined) throw new Error(`no ground truth for ad ${p.ad}`);
    positives++;
    const r = rankOf(p, t);
    if (r <= 1) r1++;
    if (r <= 5) r5++;
    if (r <= 20) r20++;
    if (Number.isFinite(r)) ap += 1 / r;
    if (p.autoTie) {
      ties++;
      if (p.autoTie === t) tiesOk++;
    }
    if (p.scores) p.masters.forEach((m, i) => pairs.push({ s: p.scores![i]!, pos: m === t }));
    else scored = false;
  }
  const n = preds.length || 1;
  return {
    ads: preds.length,
    recallAt1: r1 / n,
    recallAt5: r5 / n,
    recallAt20: r20 / n,
    mAP: ap / n,
    pairAp: scored && preds.length > 0 ? averagePrecision(pairs, positives) : undefined,
    autoTies: ties,
    autoTiesCorrect: tiesOk,
    autoTiePrecision: ties > 0 ? tiesOk / ties : undefined,
    autoTieCoverage: ties / n,
  };
}

/**
 * Average precision of scored pairs against `totalPositives` (positives never scored count as missed):
 * mean over positives of the precision at their position in the score order.
 */
export function averagePrecision(pairs: ReadonlyArray<{ s: number; pos: boolean }>, totalPositives: number): number {
  if (totalPositives === 0) return 0;
  const sorted = [...pairs].sort((a, b) => b.s - a.s || Number(a.pos) - Number(b.pos)); // ties: pessimistic
  let tp = 0;
  let sum = 0;
  sorted.forEach((p, i) => {
    if (p.pos) {
      tp++;
      sum += tp / (i + 1);
    }
  });
  return sum / totalPositives;
}

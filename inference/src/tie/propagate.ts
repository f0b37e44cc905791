/**
 * Knot-Tie's propagation of a human decision (section III, step 8): when a person ties an ad to a
 * master, every other ad whose top-N candidates (default 5) hold that master with a score above a
 * minimum (default 0.60) is tied to it too. Pure: the API decides which ads are eligible (e.g. not
 * already tied by a person, not marked "No sim") and stores the resulting ties.
 */

export interface RankedAd {
  ad: string;
  /** Candidates with calibrated scores; ranked by score (descending) whatever order they come in. */
  candidates: ReadonlyArray<{ master: string; score: number }>;
}

export interface PropagationRule {
  /** How deep in an ad's ranking the master may be (1-based rank <= topN). Default 5. */
  topN: number;
  /** Strictly greater than this. Default 0.60. */
  minScore: number;
}

export const DEFAULT_PROPAGATION_RULE: Readonly<PropagationRule> = Object.freeze({ topN: 5, minScore: 0.6 });

export interface PropagatedTie {
  ad: string;
  master: string;
  /** The master's score in that ad's ranking. */
  score: number;
  /** Its 1-based rank there. */
  rank: number;
}

/**
 * The ties that follow from a person tying `tiedAd` to `master`: one per other eligible ad whose
 * top-`topN` holds `master` with score > `minScore`, in input order. `tiedAd` itself is never returned.
 */
export function propagateHumanTie(
  tiedAd: string,
  master: string,
  ads: Iterable<RankedAd>,
  rule: Partial<PropagationRule> = {},
  isEligible: (ad: string) => boolean = () => true,
): PropagatedTie[] {
  const topN = rule.topN ?? DEFAULT_PROPAGATION_RULE.topN;
  const minScore = rule.minScore ?? DEFAULT_PROPAGATION_RULE.minScore;
  if (!(Number.isInteger(topN) && topN >= 1)) throw new RangeError(`topN must be a positive integer, got ${topN}`);
  if (!(minScore >= 0 && minScore <= 1)) throw new RangeError(`minScore must be in [0, 1], got ${minScore}`);
  const out: PropagatedTie[] = [];
  for (const a of ads) {
    if (a.ad === tiedAd || !isEligible(a.ad)) continue;
    // Stable rank by score: equal scores keep their given order.
    const ranked = a.candidates.map((c, i) => ({ c, i })).sort((x, y) => y.c.score - x.c.score || x.i - y.i);
    const at = ranked.slice(0, topN).findIndex((r) => r.c.master === master);
    if (at < 0) continue;
    const score = ranked[at]!.c.score;
    if (score > minScore) out.push({ ad: a.ad, master, score, rank: at + 1 });
  }
  return out;
}

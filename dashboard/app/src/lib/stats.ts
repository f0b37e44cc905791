/**
 * Proportions and their comparison, for range reads and the compare view. The 95% Wilson score
 * interval is the one the live leaderboard's rates carry (stream/live/src/live/rates.ts), so a CTR reads
 * the same everywhere; the leaderboard calls two creatives tied when their intervals overlap, and
 * the compare view shows that too, next to a two-proportion z-test of the difference. Pure.
 */

export const Z95 = 1.959963984540054;

export interface Interval {
  value: number;
  low: number;
  high: number;
}

export function wilson(successes: number, trials: number, z = Z95): Interval {
  if (trials <= 0) return { value: 0, low: 0, high: 1 };
  const x = Math.min(successes, trials);
  const p = x / trials;
  const z2 = z * z;
  const denom = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denom;
  return { value: p, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/** Standard normal CDF (Abramowitz & Stegun 26.2.17, |error| < 7.5e-8). */
export function normalCdf(x: number): number {
  const t = 1 / (1 + 0.2316419 * Math.abs(x));
  const d = 0.3989422804014327 * Math.exp((-x * x) / 2);
  const q = d * t * (0.31938153 + t * (-0.356563782 + t * (1.781477937 + t * (-1.821255978 + t * 1.330274429))));
  return x >= 0 ? 1 - q : q;
}

export interface ZTest {
  /** pA - pB. */
  diff: number;
  z: number;
  /** Two-sided. */
  p: number;
}

/** Two-proportion z-test (pooled): is rate A different from rate B? null when either has no trials or both rates are 0 or 1. */
export function twoProportionZ(xA: number, nA: number, xB: number, nB: number): ZTest | null {
  if (nA <= 0 || nB <= 0) return null;
  const pA = Math.min(xA, nA) / nA;
  const pB = Math.min(xB, nB) / nB;
  const pooled = (Math.min(xA, nA) + Math.min(xB, nB)) / (nA + nB);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / nA + 1 / nB));
  if (se === 0) return null;
  const z = (pA - pB) / se;
  return { diff: pA - pB, z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

export function overlaps(a: Interval, b: Interval): boolean {
  return a.low <= b.high && b.low <= a.high;
}

export interface PairVerdict {
  a: string;
  b: string;
  test: ZTest | null;
  /** Significant at 95% after Bonferroni correction for the number of pairs compared. */
  significant: boolean;
  /** The leaderboard's rule: overlapping 95% intervals rank as a tie. */
  intervalsOverlap: boolean;
}

/** Every pair of `items` (2-4 creatives: at most 6 pairs), each tested at 0.05 / pairs. */
export function comparePairs(items: { id: string; x: number; n: number }[]): PairVerdict[] {
  const pairs: PairVerdict[] = [];
  const m = (items.length * (items.length - 1)) / 2;
  for (let i = 0; i < items.length; i++)
    for (let j = i + 1; j < items.length; j++) {
      const A = items[i]!;
      const B = items[j]!;
      const test = twoProportionZ(A.x, A.n, B.x, B.n);
      pairs.push({ a: A.id, b: B.id, test, significant: test !== null && test.p < 0.05 / m, intervalsOverlap: overlaps(wilson(A.x, A.n), wilson(B.x, B.n)) });
    }
  return pairs;
}

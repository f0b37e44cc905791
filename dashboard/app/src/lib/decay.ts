import type { DecayFitJson } from './api.ts';

/**
 * What the decay panel states, from the same data it plots (pure). The server's peak_rate_per_min
 * is the fit's start (a running median, robust to one burst), which sits below the highest observed
 * points: shown as PEAK next to a chart with higher points it read as a contradiction.
 */

/** The highest observed point of the plotted curve (the first of equals). */
export function plottedPeak(curve: DecayFitJson['curve']): { t: number; perMin: number } | null {
  let best: { t: number; perMin: number } | null = null;
  for (const p of curve ?? []) if (Number.isFinite(p.observed_per_min) && (!best || p.observed_per_min > best.perMin)) best = { t: p.t, perMin: p.observed_per_min };
  return best;
}

/** "Engagements fitted" only when a curve was fitted to them; otherwise what was observed so far. */
export function eventsLabel(status: DecayFitJson['status']): string {
  return status === 'insufficient_data' ? 'Engagements so far' : 'Engagements fitted';
}

/**
 * Adjacent axis labels that overlap, given their centres and widths (px): the panel reports it on
 * the chart (data-label-overlaps), and chooses its tick spacing so that it stays 0.
 */
export function overlappingLabels(centres: readonly number[], widths: readonly number[], gap = 4): number {
  let n = 0;
  for (let i = 1; i < centres.length; i++) if (centres[i]! - centres[i - 1]! < (widths[i]! + widths[i - 1]!) / 2 + gap) n++;
  return n;
}

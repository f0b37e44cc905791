import type { ModelJson } from './api.ts';

/**
 * Whether a scoring model is good enough for its attributions to be shown as findings. Below this
 * validation R² the model explains (almost) nothing of the held-out creatives' engagement, so what
 * it attributes to an image element is noise presented as insight.
 */
export const WEAK_R2 = 0.1;

export interface ModelFit {
  weak: boolean;
  r2: number | null;
  /** One sentence for the page. */
  note: string;
}

export function modelFit(m: Pick<ModelJson, 'metrics'> | null | undefined): ModelFit | null {
  if (!m) return null;
  const r2 = typeof m.metrics?.r2 === 'number' && Number.isFinite(m.metrics.r2) ? m.metrics.r2 : null;
  if (r2 === null) return { weak: true, r2, note: 'Its validation R² is unknown, so its attributions are not shown as findings.' };
  if (r2 < WEAK_R2)
    return {
      weak: true,
      r2,
      note: `Weak model: validation R² ${fmtR2(r2)} (below ${WEAK_R2}) — it ${r2 < 0 ? 'predicts held-out creatives worse than their average does' : 'explains almost none of the held-out creatives’ engagement'}, so what it attributes to image elements is likely noise.`,
    };
  return { weak: false, r2, note: `Validation R² ${fmtR2(r2)}.` };
}

/** −1.69, 0.38 (a real minus sign). */
export function fmtR2(r2: number): string {
  return r2.toFixed(2).replace('-', '−');
}

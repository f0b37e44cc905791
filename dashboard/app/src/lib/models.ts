import { listModels, type ModelJson } from './api.ts';
import { fmtNum } from './format.ts';

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
  return fmtNum(r2, 2).replace('-', '−');
}

// One request per tenant for every panel of a page (cached 30 s).
const cache = new Map<string, { at: number; models: Promise<ModelJson[]> }>();

export function tenantModels(tenant: string): Promise<ModelJson[]> {
  const hit = cache.get(tenant);
  if (hit && Date.now() - hit.at < 30_000) return hit.models;
  const models = listModels(tenant).then((r) => r.models);
  cache.set(tenant, { at: Date.now(), models });
  models.catch(() => cache.delete(tenant));
  return models;
}

/** The fit of the model `version` of the tenant; null when it is not listed (or models are not served). */
export async function fitOf(tenant: string, version: string): Promise<ModelFit | null> {
  try {
    return modelFit((await tenantModels(tenant)).find((m) => m.version === version));
  } catch {
    return null;
  }
}

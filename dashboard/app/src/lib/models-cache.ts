import { listModels, type ModelJson } from './api.ts';
import { modelFit, type ModelFit } from './models.ts';

// One request per tenant for every panel of a page (cached 30 s).
const cache = new Map<string, { at: number; models: Promise<ModelJson[]> }>();

export function tenantModels(tenant: string, fresh = false): Promise<ModelJson[]> {
  const hit = cache.get(tenant);
  if (hit && !fresh && Date.now() - hit.at < 30_000) return hit.models;
  const models = listModels(tenant).then((r) => r.models);
  cache.set(tenant, { at: Date.now(), models });
  models.catch(() => cache.delete(tenant));
  return models;
}

/** The fit of the model `version` of the tenant; null when it is not listed (or models are not served). */
export async function fitOf(tenant: string, version: string): Promise<ModelFit | null> {
  try {
    // A version the cached list does not have yet (trained since): ask again once.
    const find = async (fresh: boolean) => (await tenantModels(tenant, fresh)).find((m) => m.version === version);
    return modelFit((await find(false)) ?? (await find(true)));
  } catch {
    return null;
  }
}

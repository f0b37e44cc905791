/**
 * The API's Asset (see /v1/assets in README.md): the stored row plus the ad's current tie, which is
 * its latest decision. A `duplicate` decision shows the master of the ad it duplicates (one level).
 */
import type { TieDecision } from '@afterglow/core';
import type { AssetRecord, AssetRepository, StoredDecision } from './repository.js';

export interface TieSummary {
  /** The master the ad is tied to now (null after untie / no_sim, or a duplicate of an untied ad). */
  master_asset_id: string | null;
  action: TieDecision['action'];
  /** For `duplicate`: the ad it duplicates. */
  duplicate_of?: string;
  decided_by: string;
  decided_at: number;
  auto: boolean;
  decision_id: string;
}

export interface ApiAsset {
  asset_id: string;
  tenant_id: string;
  role: AssetRecord['role'];
  campaign_id: string | null;
  name: string;
  channel: string;
  content_hash: string;
  format: string;
  bytes: number;
  width: number;
  height: number;
  created_at: number;
  tie: TieSummary | null;
}

export function apiAsset(a: AssetRecord, tie: TieSummary | null = null): ApiAsset {
  return {
    asset_id: a.asset_id,
    tenant_id: a.tenant_id,
    role: a.role,
    campaign_id: a.campaign_id || null,
    name: a.name,
    channel: a.channel,
    content_hash: a.content_hash,
    format: a.format,
    bytes: a.bytes,
    width: a.width,
    height: a.height,
    created_at: a.created_at,
    tie: a.role === 'ad' ? tie : null,
  };
}

/** The master a decision ties its ad to, without following duplicates. */
export function directMaster(d: StoredDecision | undefined): string | null {
  return d?.action === 'tie' ? (d.target_asset_id ?? null) : null;
}

/** Tie summaries of `decisions` (ad -> latest decision), resolving duplicates through `lookup`. */
export function tieSummaries(decisions: ReadonlyMap<string, StoredDecision>, lookup: ReadonlyMap<string, StoredDecision>): Map<string, TieSummary> {
  const out = new Map<string, TieSummary>();
  for (const [ad, d] of decisions) {
    let master = directMaster(d);
    if (d.action === 'duplicate' && d.target_asset_id) master = directMaster(lookup.get(d.target_asset_id) ?? decisions.get(d.target_asset_id));
    out.set(ad, {
      master_asset_id: master,
      action: d.action,
      ...(d.action === 'duplicate' && d.target_asset_id ? { duplicate_of: d.target_asset_id } : {}),
      decided_by: d.decided_by,
      decided_at: d.decided_at,
      auto: d.auto,
      decision_id: d.decision_id,
    });
  }
  return out;
}

/** API assets for `records`, with their current ties read from the store. */
export async function withTies(repo: AssetRepository, tenant: string, records: readonly AssetRecord[]): Promise<ApiAsset[]> {
  const ads = records.filter((r) => r.role === 'ad').map((r) => r.asset_id);
  const latest = ads.length ? await repo.latestDecisions(tenant, ads) : new Map<string, StoredDecision>();
  const dupTargets = [...latest.values()].filter((d) => d.action === 'duplicate' && d.target_asset_id && !latest.has(d.target_asset_id)).map((d) => d.target_asset_id!);
  const lookup = dupTargets.length ? await repo.latestDecisions(tenant, dupTargets) : new Map<string, StoredDecision>();
  const ties = tieSummaries(latest, lookup);
  return records.map((r) => apiAsset(r, ties.get(r.asset_id) ?? null));
}

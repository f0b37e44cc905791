/**
 * The API's Asset (see /v1/assets in README.md): the stored row plus the ad's current tie, which is
 * its latest decision. A `duplicate` decision shows the master the ad it duplicates counts for now.
 */
import type { TieDecision } from '@afterglow/core';
import type { AssetRecord, AssetRepository, StoredDecision, VideoRecord, VideoShotRecord } from './repository.js';

export interface TieSummary {
  /** The master the ad counts for now (null after untie / no_sim, or as a duplicate of an ad with none); see resolveMaster. */
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

/** Longest chain of duplicates followed (a longer one, or a cycle, resolves to no master). */
export const MAX_DUPLICATE_DEPTH = 16;

/**
 * The master an ad counts for now, from each ad's latest decision: `tie` -> its target; `duplicate`
 * -> whatever the ad it duplicates counts for now (followed through chains, so a duplicate follows a
 * later re-tie or untie of its original); `untie` / `no_sim` / no decision -> none. The live role
 * (stream/live/src/live/ties.ts) applies the same rule to the same decisions, so the registry, the live
 * roll-ups, the master page and the trigger log name the same master.
 */
export function resolveMaster(ad: string, latest: (ad: string) => StoredDecision | undefined): string | null {
  const seen = new Set<string>();
  for (let at = ad; seen.size <= MAX_DUPLICATE_DEPTH; ) {
    seen.add(at);
    const d = latest(at);
    if (!d) return null;
    if (d.action === 'tie') return d.target_asset_id ?? null;
    if (d.action !== 'duplicate' || !d.target_asset_id || seen.has(d.target_asset_id)) return null;
    at = d.target_asset_id;
  }
  return null;
}

/** Tie summaries of the ads in `ads` (default: every ad of `latest`), resolved through `latest`. */
export function tieSummaries(latest: ReadonlyMap<string, StoredDecision>, ads: Iterable<string> = latest.keys()): Map<string, TieSummary> {
  const out = new Map<string, TieSummary>();
  for (const ad of ads) {
    const d = latest.get(ad);
    if (!d) continue;
    out.set(ad, {
      master_asset_id: resolveMaster(ad, (id) => latest.get(id)),
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

/** The latest decisions of `ads` and of every ad their duplicate chains lead to. */
export async function latestWithChains(repo: AssetRepository, tenant: string, ads: readonly string[]): Promise<Map<string, StoredDecision>> {
  const latest = ads.length ? await repo.latestDecisions(tenant, ads) : new Map<string, StoredDecision>();
  const asked = new Set(ads);
  for (let depth = 0; depth < MAX_DUPLICATE_DEPTH; depth++) {
    const next = [...latest.values()].filter((d) => d.action === 'duplicate' && d.target_asset_id && !asked.has(d.target_asset_id)).map((d) => d.target_asset_id!);
    if (next.length === 0) break;
    for (const id of next) asked.add(id);
    for (const [id, d] of await repo.latestDecisions(tenant, next)) latest.set(id, d);
  }
  return latest;
}

/** API assets for `records`, with their current ties read from the store. */
export async function withTies(repo: AssetRepository, tenant: string, records: readonly AssetRecord[]): Promise<ApiAsset[]> {
  const ads = records.filter((r) => r.role === 'ad').map((r) => r.asset_id);
  const ties = tieSummaries(await latestWithChains(repo, tenant, ads), ads);
  return records.map((r) => apiAsset(r, ties.get(r.asset_id) ?? null));
}

/** A video as the API shows it: times in seconds, keyframes by frame (blobs behind /keyframes/:shot/:k). */
export function videoView(v: VideoRecord) {
  return {
    container: v.container,
    codec: v.codec,
    duration_s: v.duration_s,
    fps: v.fps,
    frames: v.frames,
    audio: v.audio,
    poster_frame: v.poster_frame,
    shots: v.shots.map(shotView),
  };
}

/** One shot as the API shows it (the video's answer and a shot review's): keyframes by frame, never by blob key. */
export function shotView(s: VideoShotRecord) {
  return {
    index: s.index,
    start: s.start,
    end: s.end,
    start_frame: s.start_frame,
    end_frame: s.end_frame,
    transition: s.transition,
    keyframes: s.keyframes.map((k) => k.frame),
    ...(s.candidates ? { candidates: s.candidates } : {}),
    ...(s.auto_tie !== undefined ? { auto_tie: s.auto_tie } : {}),
    ...(s.review ? { review: s.review } : {}),
  };
}

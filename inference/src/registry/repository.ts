/**
 * The asset registry's rows in ClickHouse (migration 2): assets, tie decisions and each ad's stored
 * rankings. ClickHouse is the source of truth, so the registry and the review API survive restarts
 * and several inference processes share one view. Reads fold versions (FINAL / argMax); writes
 * are plain inserts.
 */
import { TABLES, type AssetRole, type Store, type TieDecision } from '@afterglow/core';

/** One asset as stored (times epoch ms). */
export interface AssetRecord {
  tenant_id: string;
  asset_id: string;
  role: AssetRole;
  /** '' for masters. */
  campaign_id: string;
  name: string;
  channel: string;
  content_hash: string;
  thumbnail_hash: string;
  format: string;
  bytes: number;
  width: number;
  height: number;
  created_at: number;
  updated_at: number;
}

/** One shot of a stored video: times, how it begins, its keyframes (frame and JPEG blob) and, once ranked, its masters. */
export interface VideoShotRecord {
  index: number;
  start: number;
  end: number;
  start_frame: number;
  end_frame: number;
  transition: 'start' | 'cut' | 'fade' | 'dissolve';
  keyframes: Array<{ frame: number; hash: string }>;
  /** Best masters of this shot (calibrated score), best first; absent until ranked. `master_shot`: the shot of a video master it matched. */
  candidates?: Array<{ master_asset_id: string; score: number; master_shot?: number }>;
  /** The master this shot was cut from when its best candidate clears the auto-tie threshold; null = ranked, none clears it. */
  auto_tie?: string | null;
  /** A person's word on this shot: cut from `master_asset_id` (tie), or from no master (no_sim: B-roll, end card). */
  review?: ShotReview;
}

export const SHOT_REVIEW_ACTIONS = ['tie', 'no_sim', 'untie'] as const;
export interface ShotReview {
  action: 'tie' | 'no_sim';
  master_asset_id: string | null;
  /** The shot's score for that master when it was among the shot's candidates. */
  score: number | null;
  decided_by: string;
  decided_at: number;
}

/** What the registry stores about a video asset beside its `assets` row. */
export interface VideoRecord {
  tenant_id: string;
  asset_id: string;
  container: string;
  codec: string;
  duration_s: number;
  fps: number;
  frames: number;
  audio: boolean;
  poster_hash: string;
  poster_frame: number;
  storyboard_hash: string;
  shots: VideoShotRecord[];
}

/** A stored decision: the bus contract plus its id (always set here). */
export type StoredDecision = TieDecision & { decision_id: string };

/** One calibrated candidate of an ad, by asset id. */
export interface StoredCandidate {
  master_asset_id: string;
  score: number;
  cosine: number;
  euclidean: number;
  verified: boolean;
  inliers: number;
  /** Dense check (the ad's pixels located in the master, normalized cross-correlation in [-1, 1]), when the engine ran it for this candidate. */
  dense?: number;
}

/** An ad's rankings as computed by the tie engine against `masters` masters. */
export interface RankingRecord {
  tenant_id: string;
  ad_asset_id: string;
  computed_at: number;
  masters: number;
  /** '' when there is no candidate. */
  best_master: string;
  best_score: number;
  /** The master the engine would tie without a human ('' for none). */
  auto_tie: string;
  candidates: StoredCandidate[];
  by_cosine: Array<{ master_asset_id: string; value: number }>;
  by_euclidean: Array<{ master_asset_id: string; value: number }>;
  /** '' when ranking worked. */
  error: string;
}

const ASSET_COLUMNS = `tenant_id, asset_id, toString(role) AS role, campaign_id, name, channel, content_hash, thumbnail_hash, format,
  bytes, width, height, toUnixTimestamp64Milli(created_at) AS created_at, toUnixTimestamp64Milli(updated_at) AS updated_at`;

const DECISION_COLUMNS = `decision_id, tenant_id, ad_asset_id, toString(action) AS action, target_asset_id, score, auto, decided_by,
  toUnixTimestamp64Milli(decided_at) AS decided_at, because_of`;

/** Strictly increasing per process, so two writes of one row in the same millisecond still order. */
let lastVersion = 0;
export function nextVersion(now = Date.now()): number {
  lastVersion = Math.max(lastVersion + 1, now * 1000);
  return lastVersion;
}

let lastDecidedAt = 0;
/** Decision times strictly increase within a process: an ad's latest decision is never ambiguous. */
export function nextDecisionTime(now = Date.now()): number {
  lastDecidedAt = Math.max(lastDecidedAt + 1, now);
  return lastDecidedAt;
}

export class AssetRepository {
  constructor(private readonly store: Store) {}

  private t(name: string): string {
    return this.store.table(name);
  }

  private async rows<T>(query: string, query_params: Record<string, unknown>): Promise<T[]> {
    const rs = await this.store.client.query({ query, query_params, format: 'JSONEachRow' });
    return rs.json<T>();
  }

  // ---- assets -----------------------------------------------------------------------------------

  async insertAsset(a: AssetRecord): Promise<void> {
    await this.store.client.insert({
      table: this.t(TABLES.assets),
      values: [{ ...a, version: nextVersion(), deleted: 0 }],
      format: 'JSONEachRow',
    });
  }

  async getAssets(tenant: string, ids: readonly string[]): Promise<Map<string, AssetRecord>> {
    const out = new Map<string, AssetRecord>();
    if (ids.length === 0) return out;
    const rows = await this.rows<RawAsset>(
      `SELECT ${ASSET_COLUMNS} FROM ${this.t(TABLES.assets)} FINAL WHERE tenant_id = {tenant:String} AND asset_id IN {ids:Array(String)}`,
      { tenant, ids: [...new Set(ids)] },
    );
    for (const r of rows) out.set(r.asset_id, asset(r));
    return out;
  }

  async getAsset(tenant: string, id: string): Promise<AssetRecord | undefined> {
    return (await this.getAssets(tenant, [id])).get(id);
  }

  /** An asset's latest content hash, campaign and channel, deleted or not (the scoring workers' image source). */
  async latestContent(tenant: string, id: string): Promise<{ content_hash: string; campaign_id: string; channel: string; deleted: number } | undefined> {
    const [row] = await this.rows<{ content_hash: string; campaign_id: string; channel: string; deleted: number }>(
      `SELECT argMax(content_hash, version) AS content_hash, argMax(campaign_id, version) AS campaign_id, argMax(channel, version) AS channel, argMax(deleted, version) AS deleted
                FROM ${this.t(TABLES.assets)} WHERE tenant_id = {tenant:String} AND asset_id = {asset:String} GROUP BY asset_id`,
      { tenant, asset: id },
    );
    return row;
  }

  /** Assets in asset_id order after `cursor`. */
  async listAssets(tenant: string, filter: { role?: AssetRole; campaign?: string; cursor?: string; limit: number }): Promise<AssetRecord[]> {
    const where = ['tenant_id = {tenant:String}'];
    if (filter.role) where.push('role = {role:String}');
    if (filter.campaign !== undefined) where.push('campaign_id = {campaign:String}');
    if (filter.cursor !== undefined) where.push('asset_id > {cursor:String}');
    const rows = await this.rows<RawAsset>(
      `SELECT ${ASSET_COLUMNS} FROM ${this.t(TABLES.assets)} FINAL WHERE ${where.join(' AND ')} ORDER BY asset_id LIMIT {limit:UInt32}`,
      { tenant, role: filter.role ?? '', campaign: filter.campaign ?? '', cursor: filter.cursor ?? '', limit: filter.limit },
    );
    return rows.map(asset);
  }

  /** Every asset matching the filter (read in pages of 5000). */
  async allAssets(tenant: string, filter: { role?: AssetRole; campaign?: string } = {}): Promise<AssetRecord[]> {
    const out: AssetRecord[] = [];
    for (let cursor: string | undefined; ; ) {
      const page = await this.listAssets(tenant, { ...filter, limit: 5000, ...(cursor ? { cursor } : {}) });
      out.push(...page);
      if (page.length < 5000) return out;
      cursor = page[page.length - 1]!.asset_id;
    }
  }

  // ---- videos ------------------------------------------------------------------------------------

  async insertVideo(v: VideoRecord): Promise<void> {
    await this.store.client.insert({
      table: this.t(TABLES.assetVideos),
      values: [{ ...v, shots: JSON.stringify(v.shots), version: nextVersion() }],
      format: 'JSONEachRow',
    });
  }

  async getVideos(tenant: string, ids: readonly string[]): Promise<Map<string, VideoRecord>> {
    const out = new Map<string, VideoRecord>();
    if (ids.length === 0) return out;
    const rows = await this.rows<Record<string, unknown>>(
      `SELECT tenant_id, asset_id, container, codec, duration_s, fps, frames, audio, poster_hash, poster_frame, storyboard_hash, shots
       FROM ${this.t(TABLES.assetVideos)} FINAL WHERE tenant_id = {tenant:String} AND asset_id IN {ids:Array(String)}`,
      { tenant, ids: [...new Set(ids)] },
    );
    for (const r of rows) {
      out.set(String(r.asset_id), {
        tenant_id: String(r.tenant_id),
        asset_id: String(r.asset_id),
        container: String(r.container),
        codec: String(r.codec),
        duration_s: Number(r.duration_s),
        fps: Number(r.fps),
        frames: Number(r.frames),
        audio: r.audio === true || r.audio === 1,
        poster_hash: String(r.poster_hash),
        poster_frame: Number(r.poster_frame),
        storyboard_hash: String(r.storyboard_hash),
        shots: JSON.parse(String(r.shots)) as VideoShotRecord[],
      });
    }
    return out;
  }

  async getVideo(tenant: string, id: string): Promise<VideoRecord | undefined> {
    return (await this.getVideos(tenant, [id])).get(id);
  }

  async tenantsWithMasters(): Promise<string[]> {
    const rows = await this.rows<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM ${this.t(TABLES.assets)} FINAL WHERE role = 'master' ORDER BY tenant_id`, {});
    return rows.map((r) => r.tenant_id);
  }

  // ---- decisions --------------------------------------------------------------------------------

  async insertDecisions(ds: readonly StoredDecision[]): Promise<void> {
    if (ds.length === 0) return;
    await this.store.client.insert({
      table: this.t(TABLES.tieDecisions),
      values: ds.map((d) => ({
        tenant_id: d.tenant_id,
        ad_asset_id: d.ad_asset_id,
        decided_at: d.decided_at,
        decision_id: d.decision_id,
        action: d.action,
        target_asset_id: d.target_asset_id ?? '',
        score: d.score ?? null,
        auto: d.auto,
        decided_by: d.decided_by,
        because_of: d.because_of ?? '',
      })),
      format: 'JSONEachRow',
    });
  }

  /** Each ad's latest decision (all of the tenant's ads, or those in `ads`). */
  async latestDecisions(tenant: string, ads?: readonly string[]): Promise<Map<string, StoredDecision>> {
    const cols = ['decision_id', 'action', 'target_asset_id', 'score', 'auto', 'decided_by', 'decided_at', 'because_of'];
    // Aliases must not shadow the columns the other aggregates order by.
    const pick = cols.map((c) => `argMax(${c === 'action' ? 'toString(action)' : c === 'decided_at' ? 'toUnixTimestamp64Milli(decided_at)' : c}, (decided_at, decision_id)) AS l_${c}`);
    const rows = await this.rows<Record<string, unknown>>(
      `SELECT tenant_id, ad_asset_id, ${pick.join(', ')} FROM ${this.t(TABLES.tieDecisions)}
       WHERE tenant_id = {tenant:String} ${ads ? 'AND ad_asset_id IN {ads:Array(String)}' : ''} GROUP BY tenant_id, ad_asset_id`,
      { tenant, ads: ads ? [...new Set(ads)] : [] },
    );
    return new Map(
      rows.map((r) => {
        const raw = Object.fromEntries(Object.entries(r).map(([k, v]) => [k.replace(/^l_/, ''), v])) as unknown as RawDecision;
        return [raw.ad_asset_id, decision(raw)];
      }),
    );
  }

  /** Decisions newest first, of one ad and/or naming one target. */
  async decisions(tenant: string, filter: { ad?: string; target?: string; limit: number }): Promise<StoredDecision[]> {
    const where = ['tenant_id = {tenant:String}'];
    if (filter.ad !== undefined) where.push('ad_asset_id = {ad:String}');
    if (filter.target !== undefined) where.push('target_asset_id = {target:String}');
    const rows = await this.rows<RawDecision>(
      `SELECT ${DECISION_COLUMNS} FROM ${this.t(TABLES.tieDecisions)} FINAL WHERE ${where.join(' AND ')}
       ORDER BY decided_at DESC, decision_id DESC LIMIT {limit:UInt32}`,
      { tenant, ad: filter.ad ?? '', target: filter.target ?? '', limit: filter.limit },
    );
    return rows.map(decision);
  }

  /** Decisions of the ads in `ads`, oldest first (at most `limit`). */
  async decisionsOf(tenant: string, ads: readonly string[], limit: number): Promise<StoredDecision[]> {
    if (ads.length === 0) return [];
    const rows = await this.rows<RawDecision>(
      `SELECT ${DECISION_COLUMNS} FROM ${this.t(TABLES.tieDecisions)} FINAL WHERE tenant_id = {tenant:String} AND ad_asset_id IN {ads:Array(String)}
       ORDER BY decided_at, decision_id LIMIT {limit:UInt32}`,
      { tenant, ads: [...new Set(ads)], limit },
    );
    return rows.map(decision);
  }

  // ---- activity (the event rollups) -------------------------------------------------------------

  /** Per asset, its hours with events (each with its first active minute, epoch ms), oldest first. */
  async activeHours(tenant: string, assets: readonly string[], limit = 50_000): Promise<Array<{ asset_id: string; hour: number; first: number }>> {
    if (assets.length === 0) return [];
    const rows = await this.rows<{ asset_id: string; hour: Num; first: Num }>(
      `SELECT asset_id, toUnixTimestamp(toStartOfHour(minute)) * 1000 AS hour, toUnixTimestamp(min(minute)) * 1000 AS first
       FROM ${this.t(TABLES.assetMinute)} WHERE tenant_id = {tenant:String} AND asset_id IN {assets:Array(String)}
       GROUP BY asset_id, hour HAVING sum(events) > 0 ORDER BY hour, asset_id LIMIT {limit:UInt32}`,
      { tenant, assets: [...new Set(assets)], limit },
    );
    return rows.map((r) => ({ asset_id: r.asset_id, hour: Number(r.hour), first: Number(r.first) }));
  }

  // ---- rankings ---------------------------------------------------------------------------------

  async putRankings(rows: ReadonlyArray<RankingRecord & { embedding: Float32Array | undefined }>): Promise<void> {
    if (rows.length === 0) return;
    await this.store.client.insert({
      table: this.t(TABLES.tieCandidates),
      values: rows.map((r) => ({
        tenant_id: r.tenant_id,
        ad_asset_id: r.ad_asset_id,
        version: nextVersion(),
        computed_at: r.computed_at,
        masters: r.masters,
        best_master: r.best_master,
        best_score: r.best_score,
        auto_tie: r.auto_tie,
        candidates: JSON.stringify(r.candidates),
        by_cosine: JSON.stringify(r.by_cosine),
        by_euclidean: JSON.stringify(r.by_euclidean),
        embedding: r.embedding ? Buffer.from(r.embedding.buffer, r.embedding.byteOffset, r.embedding.byteLength).toString('base64') : '',
        error: r.error,
      })),
      format: 'JSONEachRow',
    });
  }

  /** Rankings of the tenant's ads (all, or those in `ads`); `full` adds the two raw lists. */
  async rankings(tenant: string, options: { ads?: readonly string[]; full?: boolean } = {}): Promise<Map<string, RankingRecord>> {
    const lists = options.full ? 'by_cosine, by_euclidean' : `'[]' AS by_cosine, '[]' AS by_euclidean`;
    const rows = await this.rows<RawRanking>(
      `SELECT tenant_id, ad_asset_id, toUnixTimestamp64Milli(computed_at) AS computed_at, masters, best_master, best_score, auto_tie,
              candidates, ${lists}, error
       FROM ${this.t(TABLES.tieCandidates)} FINAL
       WHERE tenant_id = {tenant:String} ${options.ads ? 'AND ad_asset_id IN {ads:Array(String)}' : ''}`,
      { tenant, ads: options.ads ? [...new Set(options.ads)] : [] },
    );
    return new Map(rows.map((r) => [r.ad_asset_id, ranking(r)]));
  }

  /** The ads' whole-view embeddings (for duplicate search). */
  async embeddings(tenant: string): Promise<Map<string, Float32Array>> {
    const rows = await this.rows<{ ad_asset_id: string; embedding: string }>(
      `SELECT ad_asset_id, embedding FROM ${this.t(TABLES.tieCandidates)} FINAL WHERE tenant_id = {tenant:String} AND embedding != ''`,
      { tenant },
    );
    return new Map(rows.map((r) => [r.ad_asset_id, decodeVector(r.embedding)]));
  }
}

export function decodeVector(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

type Num = number | string;
interface RawAsset extends Omit<AssetRecord, 'bytes' | 'width' | 'height' | 'created_at' | 'updated_at'> {
  bytes: Num;
  width: Num;
  height: Num;
  created_at: Num;
  updated_at: Num;
}
interface RawDecision {
  decision_id: string;
  tenant_id: string;
  ad_asset_id: string;
  action: TieDecision['action'];
  target_asset_id: string;
  score: number | null;
  auto: boolean | number;
  decided_by: string;
  decided_at: Num;
  because_of: string;
}
interface RawRanking {
  tenant_id: string;
  ad_asset_id: string;
  computed_at: Num;
  masters: Num;
  best_master: string;
  best_score: number;
  auto_tie: string;
  candidates: string;
  by_cosine: string;
  by_euclidean: string;
  error: string;
}

function asset(r: RawAsset): AssetRecord {
  return { ...r, bytes: Number(r.bytes), width: Number(r.width), height: Number(r.height), created_at: Number(r.created_at), updated_at: Number(r.updated_at) };
}

function decision(r: RawDecision): StoredDecision {
  return {
    decision_id: r.decision_id,
    action: r.action,
    tenant_id: r.tenant_id,
    ad_asset_id: r.ad_asset_id,
    ...(r.target_asset_id ? { target_asset_id: r.target_asset_id } : {}),
    ...(r.score !== null && r.score !== undefined ? { score: Number(r.score) } : {}),
    auto: r.auto === true || r.auto === 1,
    decided_by: r.decided_by,
    decided_at: Number(r.decided_at),
    ...(r.because_of ? { because_of: r.because_of } : {}),
  };
}

function ranking(r: RawRanking): RankingRecord {
  return {
    tenant_id: r.tenant_id,
    ad_asset_id: r.ad_asset_id,
    computed_at: Number(r.computed_at),
    masters: Number(r.masters),
    best_master: r.best_master,
    best_score: Number(r.best_score),
    auto_tie: r.auto_tie,
    candidates: JSON.parse(r.candidates) as StoredCandidate[],
    by_cosine: JSON.parse(r.by_cosine) as RankingRecord['by_cosine'],
    by_euclidean: JSON.parse(r.by_euclidean) as RankingRecord['by_euclidean'],
    error: r.error,
  };
}

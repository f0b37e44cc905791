/**
 * One tie engine per tenant (../tie/engine.ts), fed from the registry:
 *
 * - masters: loaded from the registry rows + blob store when the tenant is first needed (and for
 *   every tenant with masters at start, in the background); a master registered later is added
 *   to the running engine. Embeddings and keypoints are cached by content hash on disk, so a
 *   restart re-reads cached vectors instead of running the models again.
 * - ads: registrations queue up and are ranked in batches (the engine pipelines a batch: the
 *   embedder batches views across ads while ORB workers verify earlier ones). Each result goes to
 *   `onRanked` (stored, auto-tied) before its waiter is told.
 * - when masters were added, every ad of the tenant is ranked again once no master arrived for
 *   `rerankDebounceMs` (a bulk import of masters costs one re-ranking, not one per master).
 *
 * All work on one engine runs one operation at a time (masters and ad batches never interleave);
 * model inference and keypoints run in worker threads, never on the event loop.
 */
import type { BlobStore, Logger } from '@afterglow/core';
import type { Embedder } from '../models/types.js';
import { TieEngine, type TieEngineOptions, type TieResult } from '../tie/engine.js';
import type { AssetRecord, AssetRepository, RankingRecord, VideoRecord } from '../registry/repository.js';
import { VIDEO_FORMATS } from '../registry/service.js';
import { adShotKeyframes, collapseMasterShots, foldKeyframeResults, foldShotResults, masterShotKeyframes, masterViewName, shotQueryName } from './video-ties.js';

export interface Ranked {
  ad: AssetRecord;
  ranking: RankingRecord;
  embedding: Float32Array | undefined;
}

export interface TieTiersOptions {
  repo: AssetRepository;
  blobs: BlobStore;
  embedder: Embedder;
  engine: Omit<TieEngineOptions, 'embedder'>;
  log: Logger;
  rerankDebounceMs: number;
  /** Called with each batch of fresh rankings, before the waiters are released. */
  onRanked: (tenant: string, ranked: Ranked[]) => Promise<void>;
  clock?: () => number;
}

interface PendingAd {
  ad: AssetRecord;
  waiters: Array<{ resolve: (r: RankingRecord) => void; reject: (e: Error) => void }>;
}

class TenantTier {
  readonly engine: TieEngine;
  private readonly inEngine = new Set<string>();
  private lock: Promise<unknown> = Promise.resolve();
  private pendingMasters: Array<{ asset: AssetRecord; resolve: () => void; reject: (e: Error) => void; rerank: boolean }> = [];
  private pendingAds = new Map<string, PendingAd>();
  private mastersScheduled = false;
  private adsScheduled = false;
  private rerankTimer: NodeJS.Timeout | undefined;
  private reranking = 0;
  private closed = false;
  readonly loaded: Promise<void>;

  constructor(
    readonly tenant: string,
    private readonly o: TieTiersOptions,
  ) {
    this.engine = new TieEngine({ ...o.engine, embedder: o.embedder });
    this.loaded = this.exclusive(() => this.loadMasters());
    this.loaded.catch((err) => o.log.error({ err, tenant }, 'loading the masters of a tenant failed'));
  }

  get masterCount(): number {
    return this.inEngine.size;
  }

  /** Runs `fn` after every operation queued before it. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async loadMasters(): Promise<void> {
    const t0 = performance.now();
    const masters = await this.o.repo.allAssets(this.tenant, { role: 'master' });
    if (masters.length === 0) return;
    await this.add(masters);
    this.o.log.info({ tenant: this.tenant, masters: this.inEngine.size, ms: Math.round(performance.now() - t0) }, 'tie engine loaded');
  }

  private async add(masters: readonly AssetRecord[]): Promise<void> {
    const fresh = masters.filter((m) => !this.inEngine.has(m.asset_id));
    if (fresh.length === 0) return;
    // A video master enters the engine as one view per shot (its middle keyframe), named `id#shot`;
    // results are folded back to asset ids (collapseMasterShots) before anything sees them.
    const videos = await this.videosOf(fresh);
    const refs = await Promise.all(
      fresh.map(async (m) => {
        const video = videos.get(m.asset_id);
        const keys = video ? masterShotKeyframes(video).map((k) => ({ name: masterViewName(m.asset_id, k.shot), key: k.hash })) : VIDEO_FORMATS.has(m.format) ? [] : [{ name: m.asset_id, key: m.content_hash }];
        const got = await Promise.all(keys.map(async (k) => ({ name: k.name, bytes: await this.o.blobs.get(k.key) })));
        return got.filter((g): g is { name: string; bytes: Uint8Array } => g.bytes !== undefined);
      }),
    );
    const missing = fresh.filter((_, i) => refs[i]!.length === 0);
    if (missing.length) this.o.log.error({ tenant: this.tenant, masters: missing.map((m) => m.asset_id) }, 'master originals missing from the blob store; not tied against');
    const { failed } = await this.engine.addMasters(refs.flat());
    const failedViews = new Set(failed.map((f) => f.name));
    for (const f of failed) this.o.log.error({ tenant: this.tenant, master: f.name, error: f.error }, 'master could not be embedded');
    fresh.forEach((m, i) => {
      if (refs[i]!.some((r) => !failedViews.has(r.name))) this.inEngine.add(m.asset_id);
    });
  }

  private async videosOf(assets: readonly AssetRecord[]): Promise<Map<string, VideoRecord>> {
    const ids = assets.filter((a) => VIDEO_FORMATS.has(a.format)).map((a) => a.asset_id);
    return ids.length ? this.o.repo.getVideos(this.tenant, ids) : new Map();
  }

  /** Whether the master is in the engine or on its way there. */
  knows(masterId: string): boolean {
    return this.inEngine.has(masterId) || this.pendingMasters.some((p) => p.asset.asset_id === masterId);
  }

  /**
   * Adds a registered master; resolves once ads can be ranked against it. `rerank` (default): the
   * tenant's ads are ranked again afterwards (the process that registered it does this; others
   * that only learn of it from `assets.changes` just add it).
   */
  addMaster(asset: AssetRecord, rerank = true): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pendingMasters.push({ asset, resolve, reject, rerank });
      if (!this.mastersScheduled) {
        this.mastersScheduled = true;
        void this.exclusive(async () => {
          this.mastersScheduled = false;
          const batch = this.pendingMasters;
          this.pendingMasters = [];
          try {
            await this.add(batch.map((b) => b.asset));
            for (const b of batch) b.resolve();
            // New masters change every ad's ranking (also when the initial load already held them).
            if (batch.some((b) => b.rerank)) this.scheduleRerank();
          } catch (err) {
            for (const b of batch) b.reject(err as Error);
          }
        });
      }
    });
  }

  /** Ranks an ad (queued with others); resolves with its stored ranking. */
  rankAd(ad: AssetRecord): Promise<RankingRecord> {
    return new Promise<RankingRecord>((resolve, reject) => {
      const p = this.pendingAds.get(ad.asset_id) ?? { ad, waiters: [] };
      p.waiters.push({ resolve, reject });
      this.pendingAds.set(ad.asset_id, p);
      this.scheduleAds();
    });
  }

  private scheduleAds(): void {
    if (this.adsScheduled || this.closed) return;
    this.adsScheduled = true;
    void this.exclusive(async () => {
      this.adsScheduled = false;
      const batch = [...this.pendingAds.values()];
      this.pendingAds.clear();
      if (batch.length) await this.rankBatch(batch);
    });
  }

  private async rankBatch(batch: PendingAd[]): Promise<void> {
    const fail = (p: PendingAd, err: Error) => p.waiters.forEach((w) => w.reject(err));
    try {
      // A video ad is one query per keyframe of each shot, folded into shots, then into one result below.
      const videos = await this.videosOf(batch.map((p) => p.ad));
      const queries = batch.flatMap((p) => {
        const video = videos.get(p.ad.asset_id);
        if (!video) return [{ name: p.ad.asset_id, key: VIDEO_FORMATS.has(p.ad.format) ? undefined : p.ad.content_hash, ad: p.ad.asset_id, shot: -1 }];
        return adShotKeyframes(video).map((k) => ({ name: shotQueryName(p.ad.asset_id, k.shot, k.keyframe), key: k.hash, ad: p.ad.asset_id, shot: k.shot }));
      });
      const refs = await Promise.all(queries.map(async (q) => ({ name: q.name, bytes: q.key ? await this.o.blobs.get(q.key) : undefined })));
      const now = (this.o.clock ?? Date.now)();
      const raw = (await this.engine.tieAds(refs.map((r) => (r.bytes ? { name: r.name, bytes: r.bytes } : { name: r.name })))).map((r) => collapseMasterShots(r));
      const results = batch.map((p) => {
        const video = videos.get(p.ad.asset_id);
        const mine = queries.map((q, i) => ({ q, r: raw[i]! })).filter((x) => x.q.ad === p.ad.asset_id);
        if (!video) return { result: mine[0]?.r ?? { ad: p.ad.asset_id, candidates: [], autoTie: null, byCosine: [], byEuclidean: [], error: 'no image to rank' } };
        const byShot = new Map<number, TieResult[]>();
        for (const x of mine) byShot.set(x.q.shot, [...(byShot.get(x.q.shot) ?? []), x.r]);
        const shots = new Map([...byShot].map(([shot, rs]) => [shot, foldKeyframeResults(rs)]));
        const folded = foldShotResults(p.ad.asset_id, video, shots, this.o.engine.candidates ?? 20);
        return { result: folded.result, video: { ...video, shots: folded.shots } };
      });
      const ranked: Ranked[] = results.map(({ result: r }, i) => ({ ad: batch[i]!.ad, ranking: toRanking(this.tenant, r, now, this.inEngine.size), embedding: r.embedding }));
      // Each shot's masters are stored with the video before the ranking is published.
      // A shot review made while this batch ranked is kept: read again just before writing.
      const fresh = await this.videosOf(batch.map((p) => p.ad));
      const keepReviews = (v: VideoRecord): VideoRecord => {
        const reviewed = new Map((fresh.get(v.asset_id)?.shots ?? []).flatMap((s) => (s.review ? [[s.index, s.review] as const] : [])));
        return { ...v, shots: v.shots.map(({ review: _stale, ...s }) => (reviewed.has(s.index) ? { ...s, review: reviewed.get(s.index)! } : s)) };
      };
      await Promise.all(results.flatMap((r) => (r.video ? [this.o.repo.insertVideo(keepReviews(r.video))] : [])));
      await this.o.onRanked(this.tenant, ranked);
      ranked.forEach((r, i) => batch[i]!.waiters.forEach((w) => w.resolve(r.ranking)));
    } catch (err) {
      this.o.log.error({ err, tenant: this.tenant, ads: batch.length }, 'ranking ads failed');
      for (const p of batch) fail(p, err as Error);
    }
  }

  private scheduleRerank(): void {
    if (this.closed) return;
    if (this.rerankTimer) clearTimeout(this.rerankTimer);
    this.rerankTimer = setTimeout(() => {
      this.rerankTimer = undefined;
      this.reranking++;
      void this.rerankAll()
        .catch((err) => this.o.log.error({ err, tenant: this.tenant }, 're-ranking after new masters failed'))
        .finally(() => this.reranking--);
    }, this.o.rerankDebounceMs);
    this.rerankTimer.unref?.();
  }

  /** Ranks every ad of the tenant again (after masters were added). */
  async rerankAll(): Promise<number> {
    const ads = await this.o.repo.allAssets(this.tenant, { role: 'ad' });
    if (ads.length === 0) return 0;
    const t0 = performance.now();
    await Promise.allSettled(ads.map((a) => this.rankAd(a)));
    this.o.log.info({ tenant: this.tenant, ads: ads.length, masters: this.inEngine.size, ms: Math.round(performance.now() - t0) }, 'ads re-ranked after new masters');
    return ads.length;
  }

  /** Resolves when nothing is queued or running (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const lock = this.lock;
      await lock;
      const busy = this.rerankTimer !== undefined || this.reranking > 0 || this.pendingAds.size > 0 || this.pendingMasters.length > 0;
      if (!busy && lock === this.lock) return;
      if (lock === this.lock) await new Promise((r) => setTimeout(r, 20));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.rerankTimer) clearTimeout(this.rerankTimer);
    this.rerankTimer = undefined;
    await this.lock;
    await this.engine.close();
  }
}

function toRanking(tenant: string, r: TieResult, now: number, masters: number): RankingRecord {
  const best = r.candidates[0];
  return {
    tenant_id: tenant,
    ad_asset_id: r.ad,
    computed_at: now,
    masters,
    best_master: best?.master ?? '',
    best_score: best?.score ?? 0,
    auto_tie: r.autoTie ?? '',
    candidates: r.candidates.map((c) => ({ master_asset_id: c.master, score: c.score, cosine: c.cosine, euclidean: c.euclidean, verified: c.verified, inliers: c.inliers, ...(c.dense !== undefined ? { dense: c.dense } : {}) })),
    by_cosine: r.byCosine.map((c) => ({ master_asset_id: c.master, value: c.value })),
    by_euclidean: r.byEuclidean.map((c) => ({ master_asset_id: c.master, value: c.value })),
    error: r.error ?? '',
  };
}

/** The per-tenant engines of one process. */
export class TieTiers {
  private readonly tiers = new Map<string, TenantTier>();
  private closed = false;

  constructor(private readonly options: TieTiersOptions) {}

  private tier(tenant: string): TenantTier {
    if (this.closed) throw new Error('tie engines are closed');
    let t = this.tiers.get(tenant);
    if (!t) {
      t = new TenantTier(tenant, this.options);
      this.tiers.set(tenant, t);
    }
    return t;
  }

  /** Starts loading every tenant that has masters (background; errors are logged). */
  async warm(): Promise<void> {
    for (const tenant of await this.options.repo.tenantsWithMasters()) this.tier(tenant);
  }

  addMaster(asset: AssetRecord): Promise<void> {
    return this.tier(asset.tenant_id).addMaster(asset);
  }

  /**
   * A master registered by another process (seen on `assets.changes`): added to this process's
   * engine when the tenant's engine is loaded here and lacks it (no re-ranking: the registering
   * process does that). Tenants not loaded here read it from the registry when they load.
   */
  async noteMaster(tenant: string, masterId: string): Promise<boolean> {
    const t = this.tiers.get(tenant);
    if (!t || t.knows(masterId)) return false;
    await t.loaded.catch(() => undefined);
    if (t.knows(masterId)) return false;
    const asset = await this.options.repo.getAsset(tenant, masterId);
    if (asset?.role !== 'master') return false;
    await t.addMaster(asset, false);
    return true;
  }

  rankAd(ad: AssetRecord): Promise<RankingRecord> {
    return this.tier(ad.tenant_id).rankAd(ad);
  }

  async rerankAll(tenant: string): Promise<number> {
    return this.tier(tenant).rerankAll();
  }

  masterCount(tenant: string): number {
    return this.tiers.get(tenant)?.masterCount ?? 0;
  }

  async idle(tenant?: string): Promise<void> {
    const list = tenant ? [this.tiers.get(tenant)].filter((t): t is TenantTier => !!t) : [...this.tiers.values()];
    await Promise.all(list.map((t) => t.idle()));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.tiers.values()].map((t) => t.close()));
    this.tiers.clear();
  }
}

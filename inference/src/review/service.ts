/**
 * Human-in-the-loop tying (Knot-Tie, section III step 8 and III.C): what the review screen shows
 * (an ad's two top-20 lists, calibrated candidates, similar ads for duplicate ties, a suggestion),
 * the review queue, and decisions. Every decision is stored (ClickHouse, append-only) and published
 * on `assets.ties`; the live role turns them into master roll-ups. A person's tie propagates
 * (../tie/propagate.ts): every other eligible ad whose top-N holds that master above the minimum
 * score is tied to it automatically, each auto-tie naming the decision that caused it. An ad ranked
 * above the calibrated high-precision threshold is tied with no human at all.
 */
import {
  BadRequestError,
  TOPICS,
  tieDecisionSchema,
  ulid,
  type BusProducer,
  type Logger,
  type TieDecision,
} from '@afterglow/core';
import { propagateHumanTie } from '../tie/propagate.js';
import type { AssetRecord, AssetRepository, RankingRecord, StoredCandidate, StoredDecision, VideoShotRecord } from '../registry/repository.js';
import { SHOT_REVIEW_ACTIONS, nextDecisionTime } from '../registry/repository.js';
import { apiAsset, latestWithChains, resolveMaster, shotView, tieSummaries, withTies, type ApiAsset } from '../registry/views.js';
import { ID_PATTERN } from '../registry/service.js';
import type { Ranked } from './tiers.js';

export const TIE_ACTIONS = ['tie', 'untie', 'no_sim', 'duplicate'] as const;
export const QUEUE_STATUSES = ['untied', 'tied', 'no_sim', 'all'] as const;
export type QueueStatus = (typeof QUEUE_STATUSES)[number];
/** Where similar ads (duplicate candidates) come from: the ad's own campaign, unless all campaigns are asked for. */
export const SIMILAR_SCOPES = ['campaign', 'all'] as const;
export type SimilarScope = (typeof SIMILAR_SCOPES)[number];

export interface ReviewServiceOptions {
  repo: AssetRepository;
  producer: BusProducer;
  log: Logger;
  propagate: { topN: number; minScore: number };
  /** Re-read the ads' embeddings from the store after this long (default 30 s). */
  vectorsTtlMs?: number;
  clock?: () => number;
}

export interface DecideInput {
  ad_asset_id: string;
  action: string;
  target_asset_id?: string | undefined;
  decided_by: string;
  /** A duplicate in another campaign than its target's is refused unless this is true. */
  across_campaigns?: boolean | undefined;
}

export interface CandidatesView {
  ad: ApiAsset;
  /** 'ready', or 'pending' while the ad has not been ranked yet. */
  status: 'ready' | 'pending' | 'failed';
  error?: string;
  computed_at: number | null;
  masters_compared: number;
  cosine: Array<{ master: ApiAsset; value: number; score: number | null }>;
  euclidean: Array<{ master: ApiAsset; value: number; score: number | null }>;
  candidates: StoredCandidate[];
  similar_ads: Array<{ ad: ApiAsset; cosine: number }>;
  /** The campaign(s) similar_ads were drawn from. */
  similar_scope: SimilarScope;
  suggestion: { master_asset_id: string; score: number; auto_tie: boolean } | null;
  tie: StoredDecision | null;
}

export class ReviewService {
  private readonly clock: () => number;
  /**
   * Per tenant: the ads' whole-view embeddings, read from the store and kept current with this
   * process's rankings; re-read after `vectorsTtlMs` (ads ranked by other processes).
   */
  private readonly vectors = new Map<string, { at: number; map: Promise<Map<string, Float32Array>> }>();
  /** Per tenant and video ad: the shot review in progress (reviews of one video run one after another). */
  private readonly shotLocks = new Map<string, Promise<void>>();

  constructor(private readonly o: ReviewServiceOptions) {
    this.clock = o.clock ?? Date.now;
  }

  // ---- rankings arriving from the engines -----------------------------------------------------

  /** Stores fresh rankings, and ties (auto:threshold) the undecided ads the engine is sure about. */
  async onRanked(tenant: string, ranked: readonly Ranked[]): Promise<void> {
    if (ranked.length === 0) return;
    await this.o.repo.putRankings(ranked.map((r) => ({ ...r.ranking, embedding: r.embedding })));
    const vectors = this.vectors.get(tenant);
    if (vectors) {
      const map = await vectors.map;
      for (const r of ranked) if (r.embedding) map.set(r.ad.asset_id, r.embedding);
    }
    const sure = ranked.filter((r) => r.ranking.auto_tie);
    if (sure.length === 0) return;
    const latest = await this.o.repo.latestDecisions(tenant, sure.map((r) => r.ad.asset_id));
    const autos: StoredDecision[] = [];
    for (const r of sure) {
      if (latest.has(r.ad.asset_id)) continue; // a decision exists (human or automatic): keep it
      const c = r.ranking.candidates.find((x) => x.master_asset_id === r.ranking.auto_tie);
      autos.push(this.decision(tenant, { ad_asset_id: r.ad.asset_id, action: 'tie', target_asset_id: r.ranking.auto_tie, decided_by: 'auto:threshold' }, true, c?.score));
    }
    await this.commit(autos);
    if (autos.length) this.o.log.info({ tenant, auto_ties: autos.length }, 'ads auto-tied above the calibrated threshold');
  }

  // ---- reads ----------------------------------------------------------------------------------

  async candidates(tenant: string, adId: string, options: { similarScope?: SimilarScope } = {}): Promise<CandidatesView> {
    const scope = options.similarScope ?? 'campaign';
    const ad = await this.o.repo.getAsset(tenant, adId);
    if (!ad) throw notFound(adId);
    if (ad.role !== 'ad') throw new BadRequestError('not_an_ad', `asset ${adId} is a master; candidates are ranked for ads`, 400);
    const [rankings, latest, similar] = await Promise.all([
      this.o.repo.rankings(tenant, { ads: [adId], full: true }),
      this.o.repo.latestDecisions(tenant, [adId]),
      this.similarAds(tenant, adId, 10, scope === 'campaign' ? { campaign: ad.campaign_id } : {}),
    ]);
    const r = rankings.get(adId);
    const ids = new Set<string>(similar.map((s) => s.id));
    if (r) for (const list of [r.by_cosine, r.by_euclidean, r.candidates]) for (const c of list) ids.add(c.master_asset_id);
    const decision = latest.get(adId) ?? null;
    if (decision?.target_asset_id) ids.add(decision.target_asset_id);
    const records = await this.o.repo.getAssets(tenant, [...ids]);
    const adViews = await withTies(this.o.repo, tenant, [ad, ...similar.map((s) => records.get(s.id)).filter((x): x is AssetRecord => !!x)]);
    const byId = new Map(adViews.map((a) => [a.asset_id, a]));
    const scoreOf = new Map(r?.candidates.map((c) => [c.master_asset_id, c.score]) ?? []);
    const list = (l: RankingRecord['by_cosine']) =>
      l.flatMap((c) => {
        const m = records.get(c.master_asset_id);
        return m ? [{ master: apiAsset(m), value: c.value, score: scoreOf.get(c.master_asset_id) ?? null }] : [];
      });
    const best = r?.candidates[0];
    return {
      ad: byId.get(adId)!,
      status: !r ? 'pending' : r.error ? 'failed' : 'ready',
      ...(r?.error ? { error: r.error } : {}),
      computed_at: r?.computed_at ?? null,
      masters_compared: r?.masters ?? 0,
      cosine: r ? list(r.by_cosine) : [],
      euclidean: r ? list(r.by_euclidean) : [],
      candidates: r?.candidates ?? [],
      similar_scope: scope,
      similar_ads: similar.flatMap((s) => (byId.has(s.id) ? [{ ad: byId.get(s.id)!, cosine: s.cosine }] : [])),
      suggestion: best ? { master_asset_id: best.master_asset_id, score: best.score, auto_tie: r!.auto_tie === best.master_asset_id } : null,
      tie: decision,
    };
  }

  /**
   * The ads most like `adId` (whole-view cosine), for duplicate ties; with `campaign`, only that
   * campaign's ads (ads of one brand's shoot sit at cosine 0.97+ across campaigns, so an unscoped
   * list would offer other campaigns' ads as duplicates).
   */
  async similarAds(tenant: string, adId: string, k: number, filter: { campaign?: string } = {}): Promise<Array<{ id: string; cosine: number }>> {
    let entry = this.vectors.get(tenant);
    const now = this.clock();
    if (!entry || now - entry.at > (this.o.vectorsTtlMs ?? 30_000)) {
      const map = this.o.repo.embeddings(tenant);
      const fresh = { at: now, map };
      this.vectors.set(tenant, fresh);
      map.catch(() => this.vectors.get(tenant) === fresh && this.vectors.delete(tenant));
      entry = fresh;
    }
    const map = await entry.map;
    const q = map.get(adId);
    if (!q) return [];
    const inScope = filter.campaign !== undefined ? new Set((await this.o.repo.allAssets(tenant, { role: 'ad', campaign: filter.campaign })).map((a) => a.asset_id)) : undefined;
    const norm = (v: Float32Array) => Math.sqrt(v.reduce((acc, x) => acc + x * x, 0)) || 1;
    const qn = norm(q);
    const out: Array<{ id: string; cosine: number }> = [];
    for (const [id, v] of map) {
      if (id === adId || v.length !== q.length || (inScope && !inScope.has(id))) continue; // itself, another model's vector, another campaign
      let dot = 0;
      for (let i = 0; i < q.length; i++) dot += q[i]! * v[i]!;
      out.push({ id, cosine: dot / (qn * norm(v)) });
    }
    return out.sort((a, b) => b.cosine - a.cosine || (a.id < b.id ? -1 : 1)).slice(0, k);
  }

  async queue(tenant: string, filter: { campaign?: string | undefined; status: QueueStatus; limit: number }) {
    const ads = await this.o.repo.allAssets(tenant, { role: 'ad', ...(filter.campaign ? { campaign: filter.campaign } : {}) });
    const [rankings, latest] = await Promise.all([this.o.repo.rankings(tenant), this.o.repo.latestDecisions(tenant)]);
    const ties = tieSummaries(latest);
    const items = ads.map((a) => {
      const tie = ties.get(a.asset_id);
      const r = rankings.get(a.asset_id);
      // Tied means counting for a master now: a duplicate of an ad with no master is not tied.
      const status: Exclude<QueueStatus, 'all'> = tie?.master_asset_id ? 'tied' : tie?.action === 'no_sim' ? 'no_sim' : 'untied';
      return {
        ad: apiAsset(a, ties.get(a.asset_id) ?? null),
        best: r?.best_master ? { master_asset_id: r.best_master, score: r.best_score } : null,
        status,
        ranked: r !== undefined,
      };
    });
    const rank = (s: string) => (s === 'untied' ? 0 : s === 'tied' ? 1 : 2);
    return {
      items: items
        .filter((i) => filter.status === 'all' || i.status === filter.status)
        .sort((a, b) => rank(a.status) - rank(b.status) || (b.best?.score ?? -1) - (a.best?.score ?? -1) || (a.ad.asset_id < b.ad.asset_id ? -1 : 1))
        .slice(0, filter.limit),
    };
  }

  async decisions(tenant: string, filter: { ad?: string | undefined; master?: string | undefined; limit: number }): Promise<StoredDecision[]> {
    return this.o.repo.decisions(tenant, { limit: filter.limit, ...(filter.ad ? { ad: filter.ad } : {}), ...(filter.master ? { target: filter.master } : {}) });
  }

  /** The ads whose current tie is `masterId` (directly, or as a duplicate of such an ad). */
  async masterAds(tenant: string, masterId: string): Promise<{ master: ApiAsset; ads: Array<{ ad: ApiAsset; decision: StoredDecision }> }> {
    const master = await this.o.repo.getAsset(tenant, masterId);
    if (!master) throw notFound(masterId);
    if (master.role !== 'master') throw new BadRequestError('not_a_master', `asset ${masterId} is an ad`, 400);
    const latest = await this.o.repo.latestDecisions(tenant);
    const ties = tieSummaries(latest);
    const adIds = [...ties].filter(([, t]) => t.master_asset_id === masterId).map(([ad]) => ad);
    const records = await this.o.repo.getAssets(tenant, adIds);
    return {
      master: apiAsset(master),
      ads: adIds
        .filter((id) => records.has(id))
        .sort()
        .map((id) => ({ ad: apiAsset(records.get(id)!, ties.get(id)!), decision: latest.get(id)! })),
    };
  }

  // ---- decisions ------------------------------------------------------------------------------

  async decide(tenant: string, input: DecideInput): Promise<{ decision: StoredDecision; auto_ties: StoredDecision[] }> {
    if (!(TIE_ACTIONS as readonly string[]).includes(input.action)) throw new BadRequestError('invalid_action', `action must be one of ${TIE_ACTIONS.join(', ')}`);
    const action = input.action as TieDecision['action'];
    const by = (input.decided_by ?? '').trim();
    if (!by || by.length > 128) throw new BadRequestError('invalid_decided_by', 'decided_by (who decided) is required, at most 128 characters');
    if (by.startsWith('auto:')) throw new BadRequestError('invalid_decided_by', "decided_by may not start with 'auto:' (reserved for the system)");
    if (!ID_PATTERN.test(input.ad_asset_id)) throw new BadRequestError('invalid_asset_id', 'ad_asset_id must be an asset id');
    const target = input.target_asset_id || undefined;
    if (target !== undefined && !ID_PATTERN.test(target)) throw new BadRequestError('invalid_asset_id', 'target_asset_id must be an asset id');
    const ids = [input.ad_asset_id, ...(target ? [target] : [])];
    const records = await this.o.repo.getAssets(tenant, ids);
    const ad = records.get(input.ad_asset_id);
    if (!ad) throw notFound(input.ad_asset_id);
    if (ad.role !== 'ad') throw new BadRequestError('not_an_ad', `asset ${ad.asset_id} is a master; decisions are about ads`, 400);
    let score: number | undefined;
    switch (action) {
      case 'tie':
      case 'duplicate': {
        if (!target) throw new BadRequestError('target_required', `${action} needs target_asset_id`);
        const t = records.get(target);
        if (!t) throw notFound(target);
        const want = action === 'tie' ? 'master' : 'ad';
        if (t.role !== want) throw new BadRequestError('invalid_target', `${action} needs a${want === 'ad' ? 'n ad' : ' master'} as target; ${target} is a${t.role === 'ad' ? 'n ad' : ' master'}`);
        if (target === ad.asset_id) throw new BadRequestError('invalid_target', 'an ad cannot duplicate itself');
        if (action === 'duplicate') await this.checkDuplicate(tenant, ad, t, input.across_campaigns === true);
        if (action === 'tie') score = (await this.o.repo.rankings(tenant, { ads: [ad.asset_id] })).get(ad.asset_id)?.candidates.find((c) => c.master_asset_id === target)?.score;
        break;
      }
      case 'untie': {
        if (target) {
          const t = records.get(target);
          if (!t) throw notFound(target);
          // An untie names what it undoes: the ad's master now, or the ad it duplicates.
          const latest = await latestWithChains(this.o.repo, tenant, [ad.asset_id]);
          const current = latest.get(ad.asset_id);
          if (target !== resolveMaster(ad.asset_id, (id) => latest.get(id)) && !(current?.action === 'duplicate' && current.target_asset_id === target))
            throw new BadRequestError('not_tied_to_target', `ad ${ad.asset_id} is not tied to ${target}; untie without target_asset_id, or name its master`, 409);
        }
        break;
      }
      case 'no_sim':
        if (target) throw new BadRequestError('invalid_target', 'no_sim takes no target_asset_id');
        break;
    }
    const decision = this.decision(tenant, { ad_asset_id: ad.asset_id, action, target_asset_id: target, decided_by: by }, false, score);
    const autoTies = action === 'tie' ? await this.propagation(tenant, decision) : [];
    await this.commit([decision, ...autoTies]);
    this.o.log.info({ tenant, ad: ad.asset_id, action, target, by, auto_ties: autoTies.length }, 'tie decision');
    return { decision, auto_ties: autoTies };
  }

  /**
   * A person's word on one shot of a video ad: cut from master `target_asset_id` (tie), from no
   * master (no_sim: B-roll, end card), or neither any more (untie). Kept with the shot (the ad's own
   * tie stays what POST /v1/ties says); one shot's review at a time per ad in this process, so two
   * reviewers of different shots do not overwrite each other.
   */
  async decideShot(tenant: string, adId: string, shot: number, input: { action: string; target_asset_id?: string | undefined; decided_by: string }): Promise<{ shot: ReturnType<typeof shotView> }> {
    if (!(SHOT_REVIEW_ACTIONS as readonly string[]).includes(input.action)) throw new BadRequestError('invalid_action', `action must be one of ${SHOT_REVIEW_ACTIONS.join(', ')}`);
    const by = (input.decided_by ?? '').trim();
    if (!by || by.length > 128) throw new BadRequestError('invalid_decided_by', 'decided_by (who decided) is required, at most 128 characters');
    if (by.startsWith('auto:')) throw new BadRequestError('invalid_decided_by', "decided_by may not start with 'auto:' (reserved for the system)");
    const target = input.target_asset_id || undefined;
    if (target !== undefined && !ID_PATTERN.test(target)) throw new BadRequestError('invalid_asset_id', 'target_asset_id must be an asset id');
    if (input.action === 'tie' && !target) throw new BadRequestError('target_required', 'tie needs target_asset_id');
    if (input.action !== 'tie' && target) throw new BadRequestError('invalid_target', `${input.action} takes no target_asset_id`);
    const key = `${tenant}\u0000${adId}`;
    const run = (this.shotLocks.get(key) ?? Promise.resolve()).then(async () => {
      const records = await this.o.repo.getAssets(tenant, [adId, ...(target ? [target] : [])]);
      const ad = records.get(adId);
      if (!ad) throw notFound(adId);
      if (ad.role !== 'ad') throw new BadRequestError('not_an_ad', `asset ${adId} is a master; shots are reviewed on ads`, 400);
      const video = await this.o.repo.getVideo(tenant, adId);
      if (!video) throw new BadRequestError('not_a_video', `asset ${adId} is not a video`, 404);
      const current = video.shots.find((s) => s.index === shot);
      if (!current) throw new BadRequestError('not_found', `video ${adId} has no shot ${shot}`, 404);
      if (target) {
        const t = records.get(target);
        if (!t) throw notFound(target);
        if (t.role !== 'master') throw new BadRequestError('invalid_target', `a shot is tied to a master; ${target} is an ad`);
      }
      const { review: _previous, ...rest } = current;
      const next: VideoShotRecord =
        input.action === 'untie'
          ? rest
          : {
              ...rest,
              review: {
                action: input.action as 'tie' | 'no_sim',
                master_asset_id: target ?? null,
                score: target ? (current.candidates?.find((c) => c.master_asset_id === target)?.score ?? null) : null,
                decided_by: by,
                decided_at: this.clock(),
              },
            };
      await this.o.repo.insertVideo({ ...video, shots: video.shots.map((s) => (s.index === shot ? next : s)) });
      this.o.log.info({ tenant, ad: adId, shot, action: input.action, target, by }, 'shot review');
      return { shot: shotView(next) };
    });
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.shotLocks.set(key, settled);
    void settled.then(() => this.shotLocks.get(key) === settled && this.shotLocks.delete(key));
    return run;
  }

  /** A duplicate stays in its target's campaign unless asked otherwise, and never closes a loop. */
  private async checkDuplicate(tenant: string, ad: AssetRecord, target: AssetRecord, acrossCampaigns: boolean): Promise<void> {
    if (ad.campaign_id !== target.campaign_id && !acrossCampaigns)
      throw new BadRequestError(
        'other_campaign',
        `ad ${ad.asset_id} (campaign ${ad.campaign_id}) and ${target.asset_id} (campaign ${target.campaign_id}) are in different campaigns; set across_campaigns to tie them as duplicates`,
        409,
      );
    const latest = await latestWithChains(this.o.repo, tenant, [target.asset_id]);
    for (let at: string | undefined = target.asset_id, n = 0; at && n <= latest.size; n++) {
      const d = latest.get(at);
      at = d?.action === 'duplicate' ? d.target_asset_id : undefined;
      if (at === ad.asset_id) throw new BadRequestError('duplicate_cycle', `${target.asset_id} already follows ${ad.asset_id} as a duplicate`, 409);
    }
  }

  /**
   * The auto-ties a person's tie causes: ads with no decision yet (or untied, unless from this very
   * master) whose stored ranking holds the master in its top-N above the minimum score.
   */
  private async propagation(tenant: string, human: StoredDecision): Promise<StoredDecision[]> {
    const master = human.target_asset_id!;
    const [rankings, latest] = await Promise.all([this.o.repo.rankings(tenant), this.o.repo.latestDecisions(tenant)]);
    const eligible = (ad: string) => {
      const d = latest.get(ad);
      return !d || (d.action === 'untie' && d.target_asset_id !== master);
    };
    const ranked = [...rankings.values()].map((r) => ({ ad: r.ad_asset_id, candidates: r.candidates.map((c) => ({ master: c.master_asset_id, score: c.score })) }));
    const ties = propagateHumanTie(human.ad_asset_id, master, ranked, this.o.propagate, eligible);
    return ties.map((t) =>
      this.decision(tenant, { ad_asset_id: t.ad, action: 'tie', target_asset_id: master, decided_by: 'auto:propagation' }, true, t.score, human.decision_id),
    );
  }

  private decision(
    tenant: string,
    d: { ad_asset_id: string; action: TieDecision['action']; target_asset_id: string | undefined; decided_by: string },
    auto: boolean,
    score?: number,
    becauseOf?: string,
  ): StoredDecision {
    const at = nextDecisionTime(this.clock());
    return {
      decision_id: ulid(at),
      action: d.action,
      tenant_id: tenant,
      ad_asset_id: d.ad_asset_id,
      ...(d.target_asset_id ? { target_asset_id: d.target_asset_id } : {}),
      ...(score !== undefined ? { score: Math.min(1, Math.max(0, score)) } : {}),
      auto,
      decided_by: d.decided_by,
      decided_at: at,
      ...(becauseOf ? { because_of: becauseOf } : {}),
    };
  }

  /** Store, then publish (keyed by ad, so one ad's decisions stay ordered on the bus). */
  private async commit(ds: readonly StoredDecision[]): Promise<void> {
    if (ds.length === 0) return;
    await this.o.repo.insertDecisions(ds);
    await this.o.producer.send(
      TOPICS.assetsTies,
      ds.map((d) => ({ key: d.ad_asset_id, value: Buffer.from(JSON.stringify(tieDecisionSchema.parse(d))) })),
    );
  }
}

function notFound(id: string): BadRequestError {
  return new BadRequestError('not_found', `no asset ${id} for this tenant`, 404);
}

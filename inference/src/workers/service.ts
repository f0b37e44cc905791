/**
 * The inference role's scoring workers. Two consumer groups:
 *
 * - `<groupId>` on assets.changes (score on registration/update), assets.ties (re-publish with the
 *   new master) and rescore.requests (`{ tenant_id, asset_id, attribution? }`): each record scores
 *   one asset; offsets are committed once its score is stored and published (at-least-once).
 * - `<groupId>-engagement` on engagement.events (its own group: it never slows the sink or the live
 *   aggregators): a tally of new impressions per scored asset. Every `rescoreCheckMs`, assets with
 *   enough new impressions are re-read from ClickHouse; when the live rate moved more than
 *   `rescoreShift` (relative) since the last score, or the flag would change, the asset is rescored
 *   (`engagement_shift`, attribution reused). The tally is only a hint, so its offsets are
 *   committed at once; the numbers come from ClickHouse.
 *
 * After a restart the watch set is loaded from the latest stored scores (asset_scores), so
 * engagement shifts rescore assets this process has not scored yet. The active-model registry is
 * polled (every max(rescoreCheckMs, 1 s)): a version activated elsewhere (`afterglow train` in
 * another process, another replica's HTTP activation) rescores the tenant (`model_changed`), as an
 * activation through this process's routes does at once.
 *
 * Scores go to `assets.scores` (keyed by asset_id) and the asset_scores table. The heavy work
 * (featurizing, editing, onnxruntime) runs in worker threads and libuv's pool: this event loop only
 * routes messages.
 */
import { TOPICS, assetChangeSchema, defaultConfig, readBusEvent, tieDecisionSchema, type AssetScore, type EventLimits, type Bus, type BusConsumer, type BusProducer, type DeliveredBatch, type Logger, type PredictSettings } from '@afterglow/core';
import { wilson, type ScoreRequest, type ScoringEngine } from './engine.js';

export interface WorkersDeps {
  bus: Bus;
  engine: ScoringEngine;
  log: Logger;
  settings: Pick<PredictSettings, 'groupId' | 'rescoreShift' | 'rescoreCheckMs' | 'minImpressions'>;
  /** Limits engagement records are read with (config.events; default: the settings' defaults). */
  limits?: EventLimits;
  /** Consumer group of the engagement tally (default `<groupId>-engagement`). */
  engagementGroupId?: string;
}

interface Tracked {
  tenantId: string;
  assetId: string;
  campaignId?: string;
  last: AssetScore;
  newImpressions: number;
  nextCheckAt: number;
  waits: number;
}

export class ScoringWorkers {
  private producer: BusProducer | undefined;
  private control: BusConsumer | undefined;
  private engagement: BusConsumer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly tracked = new Map<string, Tracked>();
  private modelTimer: NodeJS.Timeout | undefined;
  /** Active version per tenant as last seen (undefined until the first poll). */
  private activeVersions: Map<string, string> | undefined;
  private polling = false;
  /** Per tenant, the model-change rescore in progress (serialised: a newer change waits for it). */
  private readonly tenantRescores = new Map<string, Promise<number>>();
  private assignedResolve: (() => void) | undefined;
  /** Resolves once the engagement consumer has its partitions (tests post engagement after it). */
  readonly engagementAssigned = new Promise<void>((resolve) => (this.assignedResolve = resolve));
  private checking = false;
  private stopped = false;
  published = 0;
  /** Scores published by this instance, per reason. */
  readonly publishedByReason: Partial<Record<AssetScore['reason'], number>> = {};
  failures = 0;

  private readonly limits: EventLimits;

  constructor(private readonly deps: WorkersDeps) {
    this.limits = deps.limits ?? defaultConfig().events;
  }

  async start(): Promise<void> {
    const { bus, settings } = this.deps;
    this.producer = await bus.producer();
    await this.loadWatchSet();
    await this.pollModels();
    this.control = bus.consumer({ groupId: settings.groupId, topics: [TOPICS.assetsChanges, TOPICS.assetsTies, TOPICS.rescoreRequests] });
    await this.control.run((batch) => this.onControl(batch));
    this.engagement = bus.consumer({ groupId: this.deps.engagementGroupId ?? `${settings.groupId}-engagement`, topics: [TOPICS.events], fromBeginning: false, onAssign: () => this.assignedResolve?.() });
    await this.engagement.run((batch) => this.onEvents(batch));
    this.timer = setInterval(() => void this.check(), settings.rescoreCheckMs);
    this.timer.unref();
    this.modelTimer = setInterval(() => void this.pollModels(), Math.max(1000, settings.rescoreCheckMs));
    this.modelTimer.unref();
  }

  /** Watches every asset with a stored score (its latest), so a restart loses no live rescoring. */
  async loadWatchSet(): Promise<number> {
    try {
      const scores = await this.deps.engine.latestScores();
      for (const s of scores) {
        const k = this.key(s.tenant_id, s.asset_id);
        if (!this.tracked.has(k)) this.tracked.set(k, { tenantId: s.tenant_id, assetId: s.asset_id, campaignId: s.campaign_id, last: s, newImpressions: 0, nextCheckAt: 0, waits: 0 });
      }
      this.deps.log.info({ assets: scores.length }, 'inference worker: watching stored scores for engagement shifts');
      return scores.length;
    } catch (err) {
      this.deps.log.warn({ err }, 'inference worker: could not load stored scores; watching only what this process scores');
      return 0;
    }
  }

  /**
   * Compares every tenant's active model with the last poll and rescores the tenants whose version
   * changed (the first poll only records). Returns the tenants rescored.
   */
  async pollModels(): Promise<number> {
    if (this.polling || this.stopped) return 0;
    this.polling = true;
    try {
      const current = await this.deps.engine.activeVersions();
      if (!this.activeVersions) {
        this.activeVersions = current;
        return 0;
      }
      let n = 0;
      for (const [tenant, version] of current) {
        if (this.activeVersions.get(tenant) === version) continue;
        this.deps.log.info({ tenant, version }, 'inference worker: active model changed; rescoring the tenant');
        this.modelActivated(tenant, version);
        n++;
      }
      return n;
    } catch (err) {
      this.deps.log.warn({ err }, 'inference worker: polling the active models failed');
      return 0;
    } finally {
      this.polling = false;
    }
  }

  /** A tenant's active model is now `version`: rescore its assets (once per version seen). */
  modelActivated(tenantId: string, version: string): void {
    if (this.activeVersions?.get(tenantId) === version) return;
    this.activeVersions?.set(tenantId, version);
    const prev = this.tenantRescores.get(tenantId) ?? Promise.resolve(0);
    const next = prev.then(() => this.rescoreTenant(tenantId, 'model_changed'));
    this.tenantRescores.set(tenantId, next);
    void next.finally(() => {
      if (this.tenantRescores.get(tenantId) === next) this.tenantRescores.delete(tenantId);
    });
  }

  private key(tenant: string, asset: string): string {
    return `${tenant}\0${asset}`;
  }

  private async onControl(batch: DeliveredBatch): Promise<void> {
    for (const r of batch.records) {
      let req: ScoreRequest | undefined;
      try {
        const json = JSON.parse(r.value.toString('utf8')) as unknown;
        if (batch.topic === TOPICS.assetsChanges) {
          const c = assetChangeSchema.parse(json);
          if (c.type !== 'deleted') req = { tenantId: c.tenant_id, assetId: c.asset_id, campaignId: c.campaign_id, reason: 'registered', attribution: true };
          else this.tracked.delete(this.key(c.tenant_id, c.asset_id));
        } else if (batch.topic === TOPICS.assetsTies) {
          const d = tieDecisionSchema.parse(json);
          if (d.action === 'tie' || d.action === 'untie') {
            req = { tenantId: d.tenant_id, assetId: d.ad_asset_id, reason: 'tie_changed', ...(d.action === 'tie' && d.target_asset_id ? { masterAssetId: d.target_asset_id } : {}) };
          }
        } else {
          const q = json as { tenant_id?: unknown; asset_id?: unknown; attribution?: unknown };
          if (typeof q.tenant_id === 'string' && typeof q.asset_id === 'string') {
            req = { tenantId: q.tenant_id, assetId: q.asset_id, reason: 'rescore_request', attribution: q.attribution !== false };
          } else throw new Error('rescore request needs tenant_id and asset_id');
        }
      } catch (err) {
        // A record we cannot read is skipped (logged), never retried forever.
        this.failures++;
        this.deps.log.warn({ err, topic: batch.topic, offset: r.offset }, 'inference worker: unreadable record skipped');
      }
      if (req) await this.scoreAndPublish(req);
    }
    const last = batch.records.at(-1);
    if (last) await this.control!.commit([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
  }

  /** Scores, stores and publishes one asset; a failure (no image, no model) is logged and skipped. */
  async scoreAndPublish(req: ScoreRequest): Promise<AssetScore | undefined> {
    try {
      const out = await this.deps.engine.score(req);
      if (!out) {
        this.deps.log.debug({ tenant: req.tenantId }, 'inference worker: no active model for tenant; not scored');
        return undefined;
      }
      await this.deps.engine.storeScore(out.score, out.attribution.attribution);
      await this.producer!.send(TOPICS.assetsScores, [{ key: out.score.asset_id, value: Buffer.from(JSON.stringify(out.score)) }]);
      this.published++;
      this.publishedByReason[req.reason] = (this.publishedByReason[req.reason] ?? 0) + 1;
      const k = this.key(req.tenantId, req.assetId);
      const { attribution: _a, ...last } = out.score;
      this.tracked.set(k, { tenantId: req.tenantId, assetId: req.assetId, campaignId: out.score.campaign_id, last, newImpressions: 0, nextCheckAt: 0, waits: 0 });
      return out.score;
    } catch (err) {
      this.failures++;
      this.deps.log.warn({ err, tenant: req.tenantId, asset: req.assetId, reason: req.reason }, 'inference worker: scoring failed');
      return undefined;
    }
  }

  private async onEvents(batch: DeliveredBatch): Promise<void> {
    // Only tracked assets' impressions matter: with none tracked there is nothing to decode for.
    if (this.tracked.size > 0) this.countImpressions(batch);
    const last = batch.records.at(-1);
    if (last) await this.engagement!.commit([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
  }

  private countImpressions(batch: DeliveredBatch): void {
    for (const r of batch.records) {
      const read = readBusEvent(r.value, this.limits);
      if (!read.ok) continue; // the sink dead-letters these; here they only do not count
      const e = read.event;
      if (e.kind !== 'impression') continue;
      const t = this.tracked.get(this.key(e.tenant_id, e.asset_id));
      if (t) t.newImpressions++;
    }
  }

  /** Rescore tracked assets whose live rate shifted (see the module comment). */
  async check(): Promise<number> {
    if (this.checking || this.stopped) return 0;
    this.checking = true;
    let rescored = 0;
    try {
      for (const t of this.tracked.values()) {
        const prevImp = t.last.impressions ?? 0;
        if (t.newImpressions < Math.max(20, 0.1 * prevImp) || Date.now() < t.nextCheckAt) continue;
        const live = await this.deps.engine.actual(t.tenantId, t.assetId);
        // The sink may not have written what the tally saw yet: keep the tally, look again in a second.
        if (live.impressions < this.deps.settings.minImpressions || live.impressions - prevImp < 0.5 * t.newImpressions) {
          t.nextCheckAt = Date.now() + 1000;
          // Impressions past the horizon never show up in the outcome: stop waiting for them.
          if (++t.waits >= 10) t.newImpressions = t.waits = 0;
          continue;
        }
        t.waits = 0;
        t.newImpressions = 0;
        const w = wilson(live.engagements, live.impressions);
        const prev = t.last.actual;
        const flag = w.low > (t.last.predicted_high ?? Infinity) ? 'over' : w.high < (t.last.predicted_low ?? 0) ? 'under' : 'as_expected';
        const shifted = prev === undefined || prevImp < this.deps.settings.minImpressions || Math.abs(w.p - prev) > this.deps.settings.rescoreShift * Math.max(prev, 1e-9) || flag !== t.last.flag;
        if (!shifted) continue;
        const s = await this.scoreAndPublish({ tenantId: t.tenantId, assetId: t.assetId, campaignId: t.campaignId, reason: 'engagement_shift' });
        if (s) rescored++;
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'inference worker: rescore check failed');
    } finally {
      this.checking = false;
    }
    return rescored;
  }

  /** Rescore every asset of a tenant that has stored features (e.g. a new active model), one at a time. */
  async rescoreTenant(tenantId: string, reason: AssetScore['reason']): Promise<number> {
    let n = 0;
    try {
      for (const a of await this.deps.engine.featuredAssets(tenantId)) {
        if (this.stopped) break;
        if (await this.scoreAndPublish({ tenantId, assetId: a.assetId, campaignId: a.campaignId, reason, attribution: true })) n++;
      }
    } catch (err) {
      this.deps.log.warn({ err, tenant: tenantId }, 'inference worker: rescoring the tenant failed');
    }
    return n;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.modelTimer) clearInterval(this.modelTimer);
    // A model-change rescore stops before its next asset; let the asset in hand finish.
    await Promise.allSettled([...this.tenantRescores.values()]);
    await this.control?.stop();
    await this.engagement?.stop();
    await this.producer?.close();
  }
}

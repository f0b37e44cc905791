import {
  Counter,
  Histogram,
  SUBJECTS,
  TOPICS,
  TenantLru,
  assetChangeSchema,
  assetScoreSchema,
  attributionHint,
  offsetAfter,
  parseTriggerParams,
  subjectTokenDecode,
  tieDecisionSchema,
  reachError,
  ulid,
  utcDay,
  variantRequestSchema,
  type AssetScore,
  type Bus,
  type BusConsumer,
  type BusProducer,
  type DayCosts,
  type DeliveredBatch,
  type FanOut,
  type HotState,
  type Logger,
  type Registry,
  type Subscription,
  type TriggerSettings,
  type VariantRequest,
  type VideoDropParams,
} from '@afterglow/core';
import { DecayTracker } from '../live/decay.js';
import { hotToken, type LiveKeys } from '../live/keys.js';
import { metricsView, type CiPolicy, type MetricsView } from '../live/rates.js';
import { LiveReader } from '../live/reader.js';
import { decaySeries, type EntitySnapshot } from '../live/state.js';
import { parseTie } from '../live/ties.js';
import { addDays, costPerResult, fatigue, frequencyCap, tieAnomaly, underMedian, underPredicted, velocitySpike, type Peer, type Verdict } from './evaluate.js';
import type { CostReachSource } from './cost-source.js';
import { videoDrop, type VideoPlays } from './video-rules.js';
import { EgressPolicy } from './egress.js';
import type { SnoozeCheck } from './snooze.js';
import type { StoredRule, TriggerStore } from './store.js';
import { WebhookDispatcher } from './webhooks.js';

/**
 * The trigger engine, run by the `live` role. Every `evalMs` it evaluates the enabled rules on the
 * live state the aggregators keep in hot state: per rule's campaign (or, for tenant-wide rules,
 * every campaign whose totals were published in the last day), the campaign's most recently
 * active assets, their windows, decay fits, master roll-ups and the latest assets.scores.
 *
 * Once, not every second
 * ----------------------
 * A condition must hold for `debounce_evals` consecutive evaluations and `debounce_ms` before it
 * counts. Then the evaluator claims (rule, asset) in hot state with set-if-absent and a TTL of the
 * rule's cool-down: only the claimant fires, so several live processes evaluating the same rules
 * never fire twice, and nothing fires again for that creative within the cool-down. An episode
 * that fired is re-armed only after the condition has been false for `debounce_evals`
 * evaluations, so a creative that stays faded fires once even past the cool-down.
 *
 * A firing becomes a variant request (core triggers.ts): logged in ClickHouse, produced on
 * `creative.variant-requests` (keyed by asset), published on SUBJECTS.variantRequests(tenant) and
 * POSTed, signed, to the rule's webhook (webhooks.ts).
 *
 * Closing the loop: a consumer group on assets.changes + assets.ties records, when a newly
 * registered ad is tied to the master of a creative that fired, the link (trigger_links), so the
 * firings log and GET /v1/triggers/firings/:id show the new variant next to the one it replaces.
 */

export interface TriggerEngineOptions {
  store: TriggerStore;
  hot: HotState;
  fanout: FanOut;
  bus: Bus;
  producer: BusProducer;
  keys: LiveKeys;
  lateMs: number;
  ci: CiPolicy;
  settings: TriggerSettings;
  /** A fatigue verdict (a decay fit) is reused for this long. */
  refitMs: number;
  /** Unique per process: the assets.scores cache reads every partition in its own group. */
  processId: string;
  log: Logger;
  registry?: Registry;
  clock?: () => number;
  /** Where webhooks may go; default: a policy from settings.webhook.egress with the system resolver. */
  egress?: EgressPolicy;
  /** Snoozed rules (snooze.ts) do not fire; absent = nothing is ever snoozed. */
  snoozes?: SnoozeCheck;
  /** Daily spend and reach for the frequency and cost-per-result rules; absent = those rules never hold. */
  costs?: CostReachSource;
  /** Video plays for the hook-rate and completion rules (video-rules.ts); absent = those rules never hold. */
  video?: VideoPlays;
}

interface Debounce {
  count: number;
  since: number;
  fired: boolean;
  clear: number;
}

interface AssetRow {
  id: string;
  snap: EntitySnapshot;
  view: MetricsView;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SEP = '\u0000';
const MAX_CAMPAIGNS_PER_TENANT = 10_000;

export class TriggerEngine {
  private readonly clock: () => number;
  /** Fire decisions a snooze held back (a held condition counts once per evaluation). */
  snoozedDecisions = 0;
  private readonly reader: LiveReader;
  private byTenant = new Map<string, StoredRule[]>();
  private readonly parsed = new WeakMap<StoredRule, Record<string, unknown>>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly seen = new Map<string, Map<string, number>>();
  // Keyed by ids clients choose (assets, via events and scores): each bounded per tenant and in all,
  // so a tenant inventing ids only pushes out its own entries (TenantLru).
  private readonly states: TenantLru<Debounce>;
  private readonly scores: TenantLru<AssetScore>;
  private readonly registered: TenantLru<number>;
  private readonly fits: TenantLru<{ at: number; verdict: Verdict }>;
  private scoresConsumer: BusConsumer | undefined;
  private loopConsumer: BusConsumer | undefined;
  private evalTimer: NodeJS.Timeout | undefined;
  private rulesTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  readonly dispatcher: WebhookDispatcher;
  readonly totals = { evaluations: 0, fired: 0, suppressed: 0, links: 0 };
  private readonly metrics: { fired: Counter<'kind'>; suppressed: Counter<string>; seconds: Histogram<string>; evicted: Counter<'map' | 'reason'> };

  constructor(private readonly options: TriggerEngineOptions) {
    this.clock = options.clock ?? Date.now;
    this.reader = new LiveReader(options.hot, options.keys, options.lateMs, options.ci, 0.5);
    const { egress, ...w } = options.settings.webhook;
    this.dispatcher = new WebhookDispatcher({ ...w, egress: options.egress ?? new EgressPolicy(egress), log: options.log, record: (rows) => options.store.recordDeliveries(rows), ...(options.registry ? { registry: options.registry } : {}) });
    const registers = options.registry ? [options.registry] : [];
    this.metrics = {
      fired: new Counter({ name: 'afterglow_trigger_firings_total', help: 'Triggers fired (variant requests emitted), by kind', labelNames: ['kind'], registers }),
      suppressed: new Counter({ name: 'afterglow_trigger_suppressed_total', help: 'Conditions that held but another evaluator (or the cool-down) had the claim', registers }),
      seconds: new Histogram({ name: 'afterglow_trigger_evaluation_seconds', help: 'One evaluation pass over every enabled rule', buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers }),
      evicted: new Counter({
        name: 'afterglow_trigger_tracked_evicted_total',
        help: 'Per-asset trigger state dropped to keep memory bounded: reason "tenant" (past TRIGGERS_MAX_TRACKED_PER_TENANT) or "total" (past TRIGGERS_MAX_TRACKED, from the largest tenant)',
        labelNames: ['map', 'reason'],
        registers,
      }),
    };
    const { maxTracked, maxTrackedPerTenant } = options.settings;
    const bounded = <V>(map: string) => new TenantLru<V>(Math.min(maxTrackedPerTenant, maxTracked), maxTracked, (_t, _k, _v, reason) => this.metrics.evicted.inc({ map, reason }));
    this.states = bounded('debounce');
    this.scores = bounded('scores');
    this.registered = bounded('registered');
    this.fits = bounded('fits');
  }

  async start(): Promise<void> {
    const { bus, settings } = this.options;
    await this.refreshRules();
    this.rulesTimer = setInterval(() => void this.refreshRules().catch((err) => this.options.log.warn({ err }, 'trigger rules not refreshed')), settings.rulesRefreshMs);
    this.rulesTimer.unref();
    // Per process, re-read from the beginning on start; committing keeps the in-process log from retaining every score.
    const scores = bus.consumer({ groupId: `${settings.groupId}-scores-${this.options.processId}`, topics: [TOPICS.assetsScores], fromBeginning: true, ephemeral: true });
    this.scoresConsumer = scores;
    await scores.run(async (batch) => {
      await this.onScores(batch);
      await scores.commit(offsetAfter(batch));
    });
    this.loopConsumer = bus.consumer({ groupId: `${settings.groupId}-loop`, topics: [TOPICS.assetsChanges, TOPICS.assetsTies], fromBeginning: true });
    await this.loopConsumer.run(async (batch) => this.onLoop(batch));
    this.evalTimer = setInterval(() => void this.tick(), settings.evalMs);
    this.evalTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.evalTimer);
    clearInterval(this.rulesTimer);
    for (const s of this.subscriptions.values()) s.unsubscribe();
    this.subscriptions.clear();
    await this.running?.catch(() => undefined);
    await this.scoresConsumer?.stop();
    await this.loopConsumer?.stop();
    await this.dispatcher.stop();
  }

  /** Re-read the rules (every rulesRefreshMs, and at once after an API write in this process). */
  async refreshRules(): Promise<void> {
    const rules = await this.options.store.rules();
    const byTenant = new Map<string, StoredRule[]>();
    for (const r of rules) {
      if (!r.enabled) continue;
      try {
        this.parsed.set(r, parseTriggerParams(r.kind, r.params) as Record<string, unknown>);
      } catch (err) {
        this.options.log.warn({ rule: r.rule_id, err: String(err) }, 'trigger rule with invalid params skipped');
        continue;
      }
      const list = byTenant.get(r.tenant_id) ?? [];
      list.push(r);
      byTenant.set(r.tenant_id, list);
    }
    this.byTenant = byTenant;
    // Tenant-wide rules learn the tenant's live campaigns from the campaign totals on the fan-out.
    const wide = new Set([...byTenant].filter(([, rs]) => rs.some((r) => r.campaign_id === null)).map(([t]) => t));
    for (const [tenant, sub] of this.subscriptions) {
      if (wide.has(tenant)) continue;
      sub.unsubscribe();
      this.subscriptions.delete(tenant);
      this.seen.delete(tenant);
    }
    for (const tenant of wide) {
      if (this.subscriptions.has(tenant) || this.stopping) continue;
      // Campaigns active in the last day start the list; the fan-out adds the ones that get events.
      void this.options.store
        .activeCampaigns(tenant, this.clock() - DAY, MAX_CAMPAIGNS_PER_TENANT)
        .then((rows) => {
          for (const r of rows.reverse()) if (this.subscriptions.has(tenant)) this.sawCampaign(tenant, r.campaign_id, r.last);
        })
        .catch((err) => this.options.log.warn({ err, tenant }, 'active campaigns not read; tenant-wide rules learn them from live traffic'));
      this.subscriptions.set(
        tenant,
        this.options.fanout.subscribe(SUBJECTS.campaignTotalsAny(tenant), (_data, subject) => {
          const token = subject.split('.')[3];
          if (token !== undefined) this.sawCampaign(tenant, subjectTokenDecode(token));
        }),
      );
    }
  }

  private sawCampaign(tenant: string, campaign: string, at = this.clock()): void {
    let m = this.seen.get(tenant);
    if (!m) this.seen.set(tenant, (m = new Map()));
    if ((m.get(campaign) ?? 0) > at) return;
    m.delete(campaign);
    m.set(campaign, at);
    if (m.size > MAX_CAMPAIGNS_PER_TENANT) m.delete(m.keys().next().value!);
  }

  /** One evaluation pass (skipped when the previous one is still running). */
  tick(): Promise<void> {
    if (this.running || this.stopping) return this.running ?? Promise.resolve();
    const stop = this.metrics.seconds.startTimer();
    this.running = this.evaluate()
      .catch((err) => this.options.log.warn({ err }, 'trigger evaluation failed'))
      .finally(() => {
        stop();
        this.running = undefined;
      });
    return this.running;
  }

  private async evaluate(): Promise<void> {
    const now = this.clock();
    for (const [tenant, rules] of this.byTenant) {
      const campaigns = new Set<string>();
      for (const r of rules) if (r.campaign_id !== null) campaigns.add(r.campaign_id);
      if (rules.some((r) => r.campaign_id === null)) for (const [c, at] of this.seen.get(tenant) ?? []) if (now - at < DAY) campaigns.add(c);
      for (const campaign of campaigns) {
        if (this.stopping) return;
        const applicable = rules.filter((r) => r.campaign_id === null || r.campaign_id === campaign);
        if (applicable.length > 0) await this.evaluateCampaign(tenant, campaign, applicable, now);
      }
    }
    this.totals.evaluations++;
  }

  private async evaluateCampaign(tenant: string, campaign: string, rules: StoredRule[], now: number): Promise<void> {
    const { hot, keys, settings, ci } = this.options;
    const members = await hot.zrange(keys.campaignAssets(tenant, campaign), 0, settings.maxAssetsPerCampaign - 1, { reverse: true });
    const active = members.filter((m) => m.score >= now - 2 * HOUR).map((m) => m.member);
    const rows: AssetRow[] = [];
    for (let i = 0; i < active.length; i += 200) {
      const chunk = active.slice(i, i + 200);
      const snaps = await Promise.all(chunk.map((id) => this.reader.asset(tenant, id)));
      snaps.forEach((snap, j) => {
        if (snap && snap.meta.campaign === campaign) rows.push({ id: chunk[j]!, snap, view: metricsView([snap.buckets], now, ci) });
      });
    }
    if (rows.length === 0) return;
    const masters = new Map<string, Promise<{ view: MetricsView; ads: number } | undefined>>();
    const masterOf = (id: string) => {
      let p = masters.get(id);
      if (!p) {
        p = (async () => {
          const [shares, ads] = await Promise.all([this.reader.shares('master', tenant, id), this.reader.masterAdIds(tenant, id)]);
          return shares.length === 0 ? undefined : { view: metricsView(shares.map((s) => s.buckets), now, ci), ads: ads.length };
        })();
        masters.set(id, p);
      }
      return p;
    };
    // Daily spend and reach, read once per pass and day range for all of the campaign's rows; a
    // failed read is a verdict that does not hold (the other rules still run).
    const dailyReads = new Map<string, Promise<unknown>>();
    const daily = async <T>(key: string, read: (c: CostReachSource) => Promise<T>): Promise<T | Verdict> => {
      const costs = this.options.costs;
      if (!costs) return { holds: false, reason: 'no spend and reach source', numbers: {} };
      let p = dailyReads.get(key);
      if (!p) dailyReads.set(key, (p = read(costs)));
      try {
        return (await p) as T;
      } catch (err) {
        this.options.log.warn({ err, tenant, campaign }, 'spend or reach not read for trigger rules');
        return { holds: false, reason: 'spend or reach could not be read', numbers: {} };
      }
    };
    const peers = new Map<string, Peer[]>();
    const peersIn = (w: '15m' | '1h' | '24h') => {
      let list = peers.get(w);
      if (!list) peers.set(w, (list = rows.map((r) => ({ asset_id: r.id, window: r.view.windows[w] }))));
      return list;
    };
    for (const rule of rules) {
      const params = this.parsed.get(rule)!;
      for (const row of rows) {
        let verdict: Verdict;
        switch (rule.kind) {
          case 'fatigue': {
            const p = params as ReturnType<typeof parseTriggerParams<'fatigue'>>;
            // A decay fit costs a few milliseconds: refitted at most every refitMs per (asset, fraction).
            const key = [row.id, p.fraction, p.within_ms, p.min_events].join(SEP);
            const cached = this.fits.touch(tenant, key);
            if (cached && now - cached.at < this.options.refitMs) verdict = cached.verdict;
            else {
              const bins = decaySeries(DecayTracker.fromJSON(row.snap.decay), row.snap.buckets, now);
              const { fit: _fit, ...v } = fatigue({ bins, windows: { '15m': row.view.windows['15m'], '1h': row.view.windows['1h'] } }, p, now);
              verdict = v;
              this.fits.set(tenant, key, { at: now, verdict });
            }
            break;
          }
          case 'underperformance': {
            const p = params as ReturnType<typeof parseTriggerParams<'underperformance'>>;
            verdict =
              p.versus === 'predicted'
                ? underPredicted(row.view.windows[p.window], this.scoreOf(tenant, row.id), p)
                : underMedian(row.id, peersIn(p.window), p);
            break;
          }
          case 'velocity_spike': {
            const p = params as ReturnType<typeof parseTriggerParams<'velocity_spike'>>;
            verdict = velocitySpike(row.view.windows['1m'], row.view.windows['15m'], p);
            break;
          }
          case 'tie_anomaly': {
            const p = params as ReturnType<typeof parseTriggerParams<'tie_anomaly'>>;
            const master = row.snap.meta.master;
            const m = master ? await masterOf(master) : undefined;
            verdict = m ? tieAnomaly(row.view.windows[p.window], m.view.windows[p.window], Math.max(0, m.ads - 1), master, p) : { holds: false, reason: 'not tied', numbers: {} };
            break;
          }
          case 'frequency': {
            const p = params as ReturnType<typeof parseTriggerParams<'frequency'>>;
            const today = utcDay(now);
            const reach = await daily(`r${SEP}${p.days}`, (c) => c.reach(tenant, campaign, addDays(today, -(p.days - 1)), today));
            if (reach instanceof Map) {
              const figures = reach.get(row.id);
              verdict = frequencyCap(figures, reachError(figures?.reach ?? 0), p);
            } else verdict = reach;
            break;
          }
          case 'cost_per_result': {
            const p = params as ReturnType<typeof parseTriggerParams<'cost_per_result'>>;
            const today = utcDay(now);
            const from = addDays(today, -(p.recent_days + p.baseline_days - 1));
            const byAsset = await daily(`c${SEP}${from}`, async (c) => groupByAsset(await c.dailyCosts(tenant, campaign, from, today)));
            verdict = byAsset instanceof Map ? costPerResult(byAsset.get(row.id) ?? [], today, p) : byAsset;
            break;
          }
          case 'hook_rate_drop':
          case 'completion_drop': {
            const p = params as VideoDropParams;
            const plays = await this.options.video?.read(tenant, campaign, p, now).catch((err: unknown) => {
              this.options.log.warn({ err, tenant, campaign }, 'video plays not read for trigger rules');
              return undefined;
            });
            const metric = rule.kind === 'hook_rate_drop' ? 'hook_rate' : 'completion_rate';
            verdict = plays ? videoDrop(plays[0].get(row.id), plays[1].get(row.id), metric, p) : { holds: false, reason: 'video plays could not be read', numbers: {} };
            break;
          }
        }
        await this.settle(rule, params as { debounce_evals: number; debounce_ms: number }, tenant, campaign, row, verdict, now);
      }
    }
  }

  /** Debounce, claim, fire. */
  private async settle(rule: StoredRule, p: { debounce_evals: number; debounce_ms: number }, tenant: string, campaign: string, row: AssetRow, verdict: Verdict, now: number): Promise<void> {
    const key = rule.rule_id + SEP + row.id;
    let st = this.states.touch(tenant, key);
    if (!verdict.holds) {
      if (!st) return;
      st.count = 0;
      if (!st.fired || ++st.clear >= p.debounce_evals) this.states.delete(tenant, key);
      return;
    }
    if (!st) {
      st = { count: 0, since: now, fired: false, clear: 0 };
      this.states.set(tenant, key, st);
    }
    if (st.count === 0) st.since = now;
    st.count++;
    st.clear = 0;
    if (st.fired || st.count < p.debounce_evals || now - st.since < p.debounce_ms) return;
    // Snoozed: no firing and no claim; the episode stays armed, so it fires once the snooze ends if the condition still holds.
    if ((await this.options.snoozes?.covering(tenant, rule.rule_id, campaign, row.id, now)) != null) {
      this.snoozedDecisions++;
      return;
    }
    st.fired = true;
    const firingId = ulid(now);
    const claim = `${this.options.keys.prefix}:trig:${hotToken(tenant)}:${hotToken(rule.rule_id)}:${hotToken(row.id)}`;
    if (!(await this.options.hot.setIfAbsent(claim, firingId, rule.cooldown_ms))) {
      this.totals.suppressed++;
      this.metrics.suppressed.inc();
      return;
    }
    // The ad's tie as recorded (the live roll-ups and the registry follow the same decisions); the
    // asset hash's meta can lag a tie change by a flush.
    const master = parseTie(await this.options.hot.get(this.options.keys.tie(tenant, row.id))).master;
    await this.fire(rule, firingId, tenant, campaign, row.id, master || null, verdict, now);
  }

  private async fire(rule: StoredRule, firingId: string, tenant: string, campaign: string, asset: string, master: string | null, verdict: Verdict, now: number): Promise<VariantRequest> {
    const score = this.scoreOf(tenant, asset) ?? (master ? this.scoreOf(tenant, master) : undefined);
    const request: VariantRequest = {
      type: 'variant_request',
      request_id: firingId,
      tenant_id: tenant,
      rule_id: rule.rule_id,
      kind: rule.kind,
      asset_id: asset,
      master_asset_id: master,
      campaign_id: campaign,
      reason: verdict.reason.slice(0, 1024),
      numbers: verdict.numbers,
      hints: hintsOf(score),
      fired_at: now,
    };
    if (score?.attribution?.length) {
      request.attribution = score.attribution.slice(0, 50);
      request.model_version = score.model_version;
    }
    variantRequestSchema.parse(request);
    this.totals.fired++;
    this.metrics.fired.inc({ kind: rule.kind });
    this.options.log.info({ firing: firingId, rule: rule.rule_id, kind: rule.kind, asset, reason: request.reason }, 'trigger fired');
    const body = JSON.stringify(request);
    await this.options.store.recordFiring(request).catch((err) => this.options.log.error({ err, firing: firingId }, 'firing not logged'));
    await this.options.producer
      .send(TOPICS.variantRequests, [{ key: asset, value: Buffer.from(body) }])
      .catch((err) => this.options.log.error({ err, firing: firingId }, 'variant request not produced'));
    try {
      this.options.fanout.publish(SUBJECTS.variantRequests(tenant), Buffer.from(body));
    } catch (err) {
      this.options.log.warn({ err }, 'variant request not published on the fan-out');
    }
    if (rule.webhook_url && rule.webhook_secret) this.dispatcher.enqueue(request, rule.webhook_url, rule.webhook_secret);
    return request;
  }

  /** The latest assets.scores record of an asset this engine has read. */
  scoreOf(tenant: string, asset: string): AssetScore | undefined {
    return this.scores.get(tenant, asset);
  }

  // ---- consumers ----------------------------------------------------------------------------------

  private async onScores(batch: DeliveredBatch): Promise<void> {
    for (const record of batch.records) {
      const parsed = safeJson(record.value, assetScoreSchema);
      if (!parsed) continue;
      const known = this.scores.get(parsed.tenant_id, parsed.asset_id);
      if (known && known.scored_at > parsed.scored_at) continue;
      this.scores.set(parsed.tenant_id, parsed.asset_id, parsed);
    }
  }

  private async onLoop(batch: DeliveredBatch): Promise<void> {
    if (this.stopping || batch.records.length === 0) return;
    for (const record of batch.records) {
      if (batch.topic === TOPICS.assetsChanges) {
        const change = safeJson(record.value, assetChangeSchema);
        if (change?.type !== 'registered') continue;
        this.registered.set(change.tenant_id, change.asset_id, change.at);
        continue;
      }
      const d = safeJson(record.value, tieDecisionSchema);
      if (d?.action !== 'tie' || !d.target_asset_id) continue;
      const firings = await this.options.store.firingsOfMaster(d.tenant_id, d.target_asset_id, d.ad_asset_id, d.decided_at);
      const registeredAt = this.registered.get(d.tenant_id, d.ad_asset_id) ?? null;
      // A variant is new if it was registered after the firing (or its registration was not seen).
      const links = firings
        .filter((f) => registeredAt === null || registeredAt >= f.fired_at)
        .map((f) => ({
          tenant_id: d.tenant_id,
          firing_id: f.firing_id,
          master_asset_id: d.target_asset_id!,
          replaced_asset_id: f.asset_id,
          new_asset_id: d.ad_asset_id,
          registered_at: registeredAt,
          tied_at: d.decided_at,
        }));
      await this.options.store.recordLinks(links);
      this.totals.links += links.length;
    }
    const last = batch.records[batch.records.length - 1]!;
    await this.loopConsumer!.commit([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
  }
}

function groupByAsset(days: readonly DayCosts[]): Map<string, DayCosts[]> {
  const by = new Map<string, DayCosts[]>();
  for (const d of days) {
    const list = by.get(d.asset_id);
    if (list) list.push(d);
    else by.set(d.asset_id, [d]);
  }
  return by;
}

/** Readable hints from a score's attribution: the significant improvements first, then any positive ones (3 at most). */
export function hintsOf(score: Pick<AssetScore, 'attribution'> | undefined): string[] {
  const a = score?.attribution ?? [];
  const significant = a.filter((x) => x.delta > 0 && x.ci_low > 0).sort((x, y) => y.delta - x.delta);
  const chosen = significant.length > 0 ? significant : a.filter((x) => x.delta > 0).sort((x, y) => y.delta - x.delta);
  return chosen.slice(0, 3).map(attributionHint);
}

function safeJson<T>(value: Buffer, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(value.toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}


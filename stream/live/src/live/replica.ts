import { fitEntityDecay, type Delta, type EntitySnapshot } from './state.js';
import { compactWindow, metricsView, type CiPolicy } from './rates.js';
import { Buckets, WINDOWS, type Layout } from './windows.js';
import type { EntityKind } from './keys.js';
import type { DecaySummary, Legend } from '@afterglow/core/live-protocol';

export type { DecaySummary } from '@afterglow/core/live-protocol';

/**
 * Read-side copies of live entities, kept by the gateway for what its clients watch, fed by the
 * aggregators' deltas and by hot-state snapshots. Rows merge by maximum (counts only grow), so
 * deltas and snapshots can arrive in any order, twice, or late, and the copy converges on the
 * writer's state; what a merge cannot fix is a delta that never arrived, which the version chain
 * (`n0` of a delta = `n` of the one before) reveals: the replica then asks for a resync from hot
 * state until hot state has caught up past the gap. A master's share can lose counts (an ad is
 * untied); that comes with a higher epoch and the full state, which replaces the copy.
 */
export class Replica {
  buckets: Buckets;
  n = 0;
  epoch = 0;
  campaign = '';
  master = '';
  decay: string | undefined;
  private decayN = -1;
  /** A delta showed a gap ending at this version; resolved once a snapshot reaches it. */
  needN = 0;
  resyncAttempts = 0;
  resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly key: string,
    readonly partition: number,
    private readonly layout: Layout,
  ) {
    this.buckets = new Buckets(layout);
  }

  /** Merge a delta; returns whether the view changed. Sets needN when the delta reveals a gap. */
  mergeDelta(d: Delta): boolean {
    const m = d.meta;
    if (m.epoch < this.epoch) return false;
    let changed = false;
    if (m.epoch > this.epoch) {
      this.buckets = new Buckets(this.layout);
      this.epoch = m.epoch;
      this.n = 0;
      changed = true;
      // Only a full delta describes the new epoch completely.
      if (!d.full) this.needN = Math.max(this.needN, m.n);
    } else if (d.n0 > this.n) {
      this.needN = Math.max(this.needN, d.n0);
    }
    for (const [field, row] of Object.entries(d.rows)) if (this.buckets.applyRow(field, row, 'max')) changed = true;
    if (m.n >= this.n) {
      if (m.n > this.n) changed = true;
      this.n = m.n;
      if (m.campaign && m.campaign !== this.campaign) {
        this.campaign = m.campaign;
        changed = true;
      }
      if (m.master !== this.master && m.kind === 'asset') {
        this.master = m.master;
        changed = true;
      }
    }
    if (d.decay !== undefined && m.n >= this.decayN) {
      this.decay = d.decay;
      this.decayN = m.n;
      changed = true;
    }
    if (this.needN > 0 && this.n >= this.needN && d.full) this.needN = 0;
    return changed;
  }

  /** Merge a hot-state snapshot; returns whether the view changed. */
  mergeSnapshot(s: EntitySnapshot): boolean {
    const m = s.meta;
    if (m.epoch < this.epoch) return false;
    let changed = false;
    if (m.epoch > this.epoch) {
      this.buckets = s.buckets;
      this.epoch = m.epoch;
      this.n = m.n;
      changed = true;
    } else {
      for (const [field, row] of Object.entries(s.buckets.takeRows(0, true))) if (this.buckets.applyRow(field, row, 'max')) changed = true;
      if (m.n > this.n) {
        this.n = m.n;
        changed = true;
      }
    }
    if (m.n >= this.n || !this.campaign) {
      if (m.campaign && m.campaign !== this.campaign) {
        this.campaign = m.campaign;
        changed = true;
      }
      if (m.kind === 'asset' && m.master !== this.master) {
        this.master = m.master;
        changed = true;
      }
    }
    if (s.decay !== undefined && m.n >= this.decayN) {
      this.decay = s.decay;
      this.decayN = m.n;
      changed = true;
    }
    if (m.n >= this.needN) this.needN = 0;
    return changed;
  }
}

export interface ViewOptions {
  ci: CiPolicy;
  fatigueFraction: number;
  decayRefitMs: number;
}

/**
 * What a client sees as one entity: an asset (one replica), or a campaign or master (one replica
 * per bus partition, added up). Its JSON fragment is computed once per change and shared by every
 * topic and client that carries it.
 */
export class View {
  readonly replicas = new Map<number, Replica>();
  /** Topics carrying this view (their keys). */
  readonly topics = new Set<string>();
  private fragment: string | undefined;
  private fragmentAt = 0;
  private decaySummary: DecaySummary | undefined;
  private decayAt = 0;
  /** Asset topics watching it: only they pay for decay fits. */
  decayWanted = 0;

  constructor(
    readonly key: string,
    readonly kind: EntityKind,
    readonly tenant: string,
    readonly id: string,
  ) {}

  invalidate(): void {
    this.fragment = undefined;
  }

  /** The view's JSON (without a timestamp, so an unchanged view gives an identical string). */
  json(now: number, options: ViewOptions, maxAgeMs: number): string {
    if (this.fragment !== undefined && now - this.fragmentAt < maxAgeMs) return this.fragment;
    const parts = [...this.replicas.values()].map((r) => r.buckets);
    const metrics = metricsView(parts, now, options.ci);
    const w: Record<string, unknown> = {};
    for (const win of WINDOWS) w[win.name] = compactWindow(metrics.windows[win.name]);
    const v = metrics.velocity;
    let n = 0;
    for (const r of this.replicas.values()) n += r.n;
    const o: Record<string, unknown> = { kind: this.kind, id: this.id };
    if (this.kind === 'asset') {
      const r = this.replicas.values().next().value as Replica | undefined;
      o.campaign_id = r?.campaign || null;
      o.master_id = r?.master || null;
    }
    o.n = n;
    o.w = w;
    o.vel = [v.per_min, v.per_min_15m, v.trend, v.direction, v.avg_ms];
    if (this.kind === 'asset' && this.decayWanted > 0) o.decay = this.decay(now, options);
    this.fragment = JSON.stringify(o);
    this.fragmentAt = now;
    return this.fragment;
  }

  /** The asset's decay summary, refitted at most every decayRefitMs (and when its tracker moved). */
  private decay(now: number, options: ViewOptions): DecaySummary | null {
    const r = this.replicas.values().next().value as Replica | undefined;
    if (!r) return null;
    if (!this.decaySummary || now - this.decayAt >= options.decayRefitMs) {
      const fit = fitEntityDecay(r.decay, r.buckets, now, options.fatigueFraction, false);
      this.decaySummary = {
        status: fit.status,
        model: fit.model,
        half_life_ms: fit.half_life_ms,
        half_life_ci: fit.half_life_ci,
        peak_at: fit.peak_at,
        fatigue_at: fit.fatigue_at,
        fatigued: fit.fatigued,
      };
      this.decayAt = now;
    }
    return this.decaySummary;
  }
}

/** Legend sent with every snapshot: how to read the compact arrays of a view (the browser's decoder: @afterglow/core/live-protocol). */
export const LEGEND: Legend = {
  w: ['impression', 'view', 'click', 'like', 'share', 'comment', 'conversion', 'dwell', 'dwell_ms', 'conversion_value', 'ctr', 'engagement_rate', 'shares_per_1k'],
  rate: ['value', 'low', 'high', 'enough'],
  vel: ['per_min', 'per_min_15m', 'trend', 'direction', 'avg_ms'],
  windows: WINDOWS.map((w) => w.name),
};


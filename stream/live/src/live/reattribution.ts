import type { HotState, Logger } from '@afterglow/core';
import type { AggregatorMetrics, AggregatorTotals } from './aggregator-shared.js';
import type { Entity, Spec } from './entity-cache.js';
import type { LiveKeys } from './keys.js';
import { LOAD_CHUNK } from './aggregator-shared.js';
import { parseTie } from './ties.js';

export interface TieReattributionOptions {
  hot: HotState;
  log: Logger;
  keys: LiveKeys;
  clock: () => number;
  entities: ReadonlyMap<string, Entity>;
  /** Partitions the group assigned to this member, and those it has loaded. */
  owned: ReadonlySet<number>;
  partitions: ReadonlyMap<number, unknown>;
  flushQueue: Set<Entity>;
  pubQueue: Set<Entity>;
  totals: Pick<AggregatorTotals, 'reattributed'>;
  metrics: Pick<AggregatorMetrics, 'reattributed'>;
  /** Loads (and pins) entities; callers unpin. */
  load: (specs: Spec[]) => Promise<Entity[]>;
  schedulePublish: () => void;
  isStopping: () => boolean;
}

/**
 * Keeps each asset's history in the share of the master it is tied to: on a tie notice from the
 * fan-out, and on the periodic sweep that re-reads the ties of every asset in memory.
 */
export class TieReattribution {
  private readonly options: { hot: HotState; log: Logger };
  private readonly keys: LiveKeys;
  private readonly clock: () => number;
  private readonly entities: ReadonlyMap<string, Entity>;
  private readonly owned: ReadonlySet<number>;
  private readonly partitions: ReadonlyMap<number, unknown>;
  private readonly flushQueue: Set<Entity>;
  private readonly pubQueue: Set<Entity>;
  private readonly totals: Pick<AggregatorTotals, 'reattributed'>;
  private readonly metrics: Pick<AggregatorMetrics, 'reattributed'>;
  private readonly load: (specs: Spec[]) => Promise<Entity[]>;
  private readonly schedulePublish: () => void;
  private readonly isStopping: () => boolean;

  constructor(options: TieReattributionOptions) {
    this.options = { hot: options.hot, log: options.log };
    this.keys = options.keys;
    this.clock = options.clock;
    this.entities = options.entities;
    this.owned = options.owned;
    this.partitions = options.partitions;
    this.flushQueue = options.flushQueue;
    this.pubQueue = options.pubQueue;
    this.totals = options.totals;
    this.metrics = options.metrics;
    this.load = options.load;
    this.schedulePublish = options.schedulePublish;
    this.isStopping = options.isStopping;
  }

  private get stopping(): boolean {
    return this.isStopping();
  }

  /**
   * Move an asset's history from its old master's share to its new one, in one synchronous step
   * (both shares must be loaded). Removing counts is the one non-monotonic change there is, so the
   * old share's epoch moves forward and its next delta carries every row.
   */
  reattribute(asset: Entity, target: string): void {
    if (asset.master === target) return;
    const now = this.clock();
    const old = asset.master ? this.entities.get(this.keys.entity('master', asset.tenant, asset.master, asset.partition)) : undefined;
    const next = target ? this.entities.get(this.keys.entity('master', asset.tenant, target, asset.partition)) : undefined;
    // Both shares must be in memory (callers load them), or nothing changes.
    if ((asset.master && !old) || (target && !next)) return;
    if (old) {
      old.buckets.addFrom(asset.buckets, -1);
      old.epoch = Math.max(old.epoch + 1, now);
      old.n++;
      old.full = true;
      this.flushQueue.add(old);
      this.pubQueue.add(old);
    }
    if (next) {
      next.buckets.addFrom(asset.buckets, 1);
      next.n++;
      next.lastEventAt = now;
      this.flushQueue.add(next);
      this.pubQueue.add(next);
    }
    asset.master = target;
    asset.tieMaster = target;
    asset.metaDirty = true;
    asset.n++;
    this.flushQueue.add(asset);
    this.pubQueue.add(asset);
    this.totals.reattributed++;
    this.metrics.reattributed.inc();
    this.schedulePublish();
  }

  /** A tie changed somewhere: if the ad is ours, re-read its tie and re-attribute it. */
  onTieNotice(data: Uint8Array): void {
    if (this.stopping) return;
    let notice: { t?: unknown; ad?: unknown };
    try {
      notice = JSON.parse(Buffer.from(data).toString('utf8')) as { t?: unknown; ad?: unknown };
    } catch {
      return;
    }
    if (typeof notice.t !== 'string' || typeof notice.ad !== 'string') return;
    void this.refreshTie(notice.t, notice.ad).catch((err) => this.options.log.warn({ err }, 'tie refresh failed; the sweep retries'));
  }

  private async refreshTie(tenant: string, ad: string): Promise<void> {
    const key = this.keys.asset(tenant, ad);
    let partition = this.entities.get(key)?.partition;
    if (partition === undefined) {
      // Not in memory: its hash says which partition it lives on; only that partition's owner acts.
      const stored = await this.options.hot.hgetall(key);
      if (!stored.p) return;
      partition = Number(stored.p);
    }
    if (!this.owned.has(partition) || !this.partitions.has(partition)) return;
    const [asset] = await this.load([{ kind: 'asset', tenant, id: ad, partition }]);
    try {
      const tie = parseTie(await this.options.hot.get(this.keys.tie(tenant, ad)));
      await this.retarget([asset!], [tie.master]);
    } finally {
      asset!.pins--;
    }
  }

  /** Load the master shares involved and re-attribute each asset to its target. */
  private async retarget(assets: Entity[], targets: string[]): Promise<void> {
    const specs: Spec[] = [];
    assets.forEach((a, i) => {
      a.tieMaster = targets[i]!;
      if (a.master === targets[i]) return;
      for (const m of [a.master, targets[i]!]) if (m) specs.push({ kind: 'master', tenant: a.tenant, id: m, partition: a.partition });
    });
    if (specs.length === 0) return;
    const pinned = await this.load(specs);
    try {
      assets.forEach((a, i) => {
        if (this.entities.get(a.key) === a && this.partitions.has(a.partition)) this.reattribute(a, targets[i]!);
      });
    } finally {
      for (const e of pinned) e.pins--;
    }
  }

  /** Re-read the ties of every asset in memory (catches notices the fan-out lost). */
  async sweepTies(): Promise<void> {
    const assets = [...this.entities.values()].filter((e) => e.kind === 'asset' && this.owned.has(e.partition));
    for (let i = 0; i < assets.length && !this.stopping; i += LOAD_CHUNK) {
      const chunk = assets.slice(i, i + LOAD_CHUNK);
      const ties = await this.options.hot.mget(chunk.map((a) => this.keys.tie(a.tenant, a.id)));
      const changed: Entity[] = [];
      const targets: string[] = [];
      chunk.forEach((a, j) => {
        const master = parseTie(ties[j] ?? null).master;
        if (master !== a.master) {
          changed.push(a);
          targets.push(master);
        }
      });
      if (changed.length > 0) await this.retarget(changed, targets);
    }
  }
}

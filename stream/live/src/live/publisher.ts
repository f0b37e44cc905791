import { SUBJECTS, type FanOut, type Logger } from '@afterglow/core';
import type { AggregatorMetrics, AggregatorTotals } from './aggregator-shared.js';
import type { Entity } from './entity-cache.js';
import { encodeDelta } from './state.js';
import { DIRTY_PUBLISH } from './windows.js';

export interface DeltaPublisherOptions {
  fanout: FanOut;
  log: Logger;
  publishMs: number;
  clock: () => number;
  /** Entities changed since the last publish; emptied by each publish. */
  pubQueue: Set<Entity>;
  totals: Pick<AggregatorTotals, 'published'>;
  metrics: Pick<AggregatorMetrics, 'published'>;
  isStopping: () => boolean;
}

/** Sends changed entities as compact deltas on the fan-out, at most every `publishMs`. */
export class DeltaPublisher {
  private readonly options: { fanout: FanOut; log: Logger; publishMs: number };
  private readonly clock: () => number;
  private readonly pubQueue: Set<Entity>;
  private readonly totals: Pick<AggregatorTotals, 'published'>;
  private readonly metrics: Pick<AggregatorMetrics, 'published'>;
  private readonly isStopping: () => boolean;
  private pubTimer: NodeJS.Timeout | undefined;
  private lastPublish = 0;

  constructor(options: DeltaPublisherOptions) {
    this.options = { fanout: options.fanout, log: options.log, publishMs: options.publishMs };
    this.clock = options.clock;
    this.pubQueue = options.pubQueue;
    this.totals = options.totals;
    this.metrics = options.metrics;
    this.isStopping = options.isStopping;
  }

  private get stopping(): boolean {
    return this.isStopping();
  }

  /** Drop a scheduled publish (stopping). */
  cancel(): void {
    clearTimeout(this.pubTimer);
    this.pubTimer = undefined;
  }

  /** Leading edge: publish now if the last publish is `publishMs` old, else when it will be. */
  schedulePublish(): void {
    if (this.pubTimer || this.stopping) return;
    const wait = Math.max(0, this.lastPublish + this.options.publishMs - this.clock());
    this.pubTimer = setTimeout(() => {
      this.pubTimer = undefined;
      this.publish();
    }, wait);
  }

  publish(): void {
    this.lastPublish = this.clock();
    const { fanout } = this.options;
    for (const e of this.pubQueue) {
      const rows = e.buckets.takeRows(DIRTY_PUBLISH, e.full);
      const decay = e.decayDirty & DIRTY_PUBLISH ? e.tracker?.toJSON() : undefined;
      e.decayDirty &= ~DIRTY_PUBLISH;
      const delta = { meta: e.meta(), n0: e.pubN, rows, full: e.full, decay };
      e.pubN = e.n;
      e.full = false;
      try {
        fanout.publish(subjectOf(e), encodeDelta(delta));
        this.totals.published++;
        this.metrics.published.inc();
      } catch (err) {
        // At-most-once by contract: receivers notice the version gap and resync from hot state.
        this.options.log.warn({ err }, 'live delta not published');
      }
    }
    this.pubQueue.clear();
  }
}

function subjectOf(e: Entity): string {
  if (e.kind === 'asset') return SUBJECTS.assetDelta(e.tenant, e.campaign || '-', e.id);
  if (e.kind === 'campaign') return SUBJECTS.campaignDelta(e.tenant, e.id);
  return SUBJECTS.masterDelta(e.tenant, e.id);
}

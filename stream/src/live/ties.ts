import {
  Counter,
  SUBJECTS,
  TOPICS,
  tieDecisionSchema,
  type Bus,
  type BusConsumer,
  type DeliveredBatch,
  type FanOut,
  type HotState,
  type Logger,
  type Registry,
  type TieDecision,
} from '@afterglow/core';
import type { LiveKeys } from './keys.js';
import type { LiveHistorySource } from './rebuild.js';

/**
 * Ties feed the master roll-ups. The decisions arrive on `assets.ties` (keyed by the ad), in their
 * own consumer group; each becomes the ad's current master in hot state (one small key per ad, so
 * every aggregator can read the ties of the ads it holds with one MGET), followed by a notice on
 * the fan-out. The aggregator that owns the ad's partition then moves the ad's history from the
 * old master's share to the new one (see LiveAggregator.reattribute): a master's numbers are the
 * sum of its ads' numbers, history included, whatever order ties and events arrive in. A lost
 * notice is caught by the aggregators' periodic sweep, and an ad loaded later reads its tie then.
 *
 *   tie        the ad's master becomes target_asset_id
 *   untie      the ad has no master any more (if target_asset_id is its master)
 *   no_sim     none of the candidates is its master: no master
 *   duplicate  the ad is the same creative as another ad: it follows that ad's master when the
 *              other ad has one (resolved now; a later change of the other ad is not followed)
 * Decisions older than the one recorded (decided_at) are ignored, so a replay cannot undo a newer one.
 */

export interface TieState {
  /** '' when the ad has no master. */
  master: string;
  at: number;
}

export function parseTie(text: string | null): TieState {
  if (!text) return { master: '', at: 0 };
  try {
    const v = JSON.parse(text) as { m?: unknown; at?: unknown };
    return { master: typeof v.m === 'string' ? v.m : '', at: typeof v.at === 'number' ? v.at : 0 };
  } catch {
    return { master: '', at: 0 };
  }
}

export interface TieRecorderOptions {
  bus: Bus;
  hot: HotState;
  fanout: FanOut;
  keys: LiveKeys;
  log: Logger;
  groupId: string;
  registry?: Registry;
}

export class TieRecorder {
  private consumer: BusConsumer | undefined;
  private readonly decisions: Counter<'outcome'>;
  private stopping = false;

  constructor(private readonly options: TieRecorderOptions) {
    this.decisions = new Counter({
      name: 'afterglow_live_tie_decisions_total',
      help: 'Tie decisions read from assets.ties, by outcome',
      labelNames: ['outcome'],
      registers: options.registry ? [options.registry] : [],
    });
  }

  async start(): Promise<void> {
    this.consumer = this.options.bus.consumer({ groupId: this.options.groupId, topics: [TOPICS.assetsTies], fromBeginning: true });
    await this.consumer.run((batch) => this.onBatch(batch));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer?.stop();
  }

  /** Record every decision the store holds, oldest first (idempotent: older ones than recorded are ignored). */
  async replay(history: Pick<LiveHistorySource, 'tieDecisions'>): Promise<number> {
    let n = 0;
    for await (const page of history.tieDecisions()) {
      for (const d of page) this.decisions.inc({ outcome: await this.record(d) });
      n += page.length;
    }
    if (n > 0) this.options.log.info({ decisions: n }, 'ties replayed from the store');
    return n;
  }

  private async onBatch(batch: DeliveredBatch): Promise<void> {
    if (this.stopping || batch.records.length === 0) return;
    for (const record of batch.records) {
      let decision: TieDecision;
      try {
        const parsed = tieDecisionSchema.safeParse(JSON.parse(record.value.toString('utf8')));
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'invalid');
        decision = parsed.data;
      } catch (err) {
        this.decisions.inc({ outcome: 'invalid' });
        this.options.log.warn({ err: String(err), offset: record.offset, partition: record.partition }, 'tie decision skipped: invalid');
        continue;
      }
      this.decisions.inc({ outcome: await this.record(decision) });
    }
    const last = batch.records[batch.records.length - 1]!;
    // Recording is idempotent (decided_at ordering), so committing after it is enough.
    await this.consumer!.commit([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
  }

  private async record(d: TieDecision): Promise<string> {
    const { hot, keys, fanout } = this.options;
    const key = keys.tie(d.tenant_id, d.ad_asset_id);
    const current = parseTie(await hot.get(key));
    if (current.at > d.decided_at) return 'stale';
    let master: string;
    switch (d.action) {
      case 'tie':
        if (!d.target_asset_id || d.target_asset_id === d.ad_asset_id) return 'invalid';
        master = d.target_asset_id;
        break;
      case 'untie':
        if (d.target_asset_id && current.master !== d.target_asset_id) return 'ignored';
        master = '';
        break;
      case 'no_sim':
        master = '';
        break;
      case 'duplicate': {
        if (!d.target_asset_id) return 'invalid';
        master = parseTie(await hot.get(keys.tie(d.tenant_id, d.target_asset_id))).master;
        if (master === d.ad_asset_id) master = '';
        break;
      }
    }
    await hot.set(key, JSON.stringify({ m: master || null, at: d.decided_at }));
    if (master !== current.master) {
      try {
        fanout.publish(SUBJECTS.tieChanged(d.tenant_id), Buffer.from(JSON.stringify({ t: d.tenant_id, ad: d.ad_asset_id })));
      } catch (err) {
        this.options.log.warn({ err }, 'tie notice not published; the aggregators sweep will pick the tie up');
      }
      return 'changed';
    }
    return 'unchanged';
  }
}

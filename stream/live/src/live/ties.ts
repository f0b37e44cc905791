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
 *   untie      the ad has no master any more (the review API refuses an untie naming another master)
 *   no_sim     none of the candidates is its master: no master
 *   duplicate  the ad is the same creative as another ad: it counts for whatever master that ad
 *              counts for, now and after every later change of it (chains followed; a loop, or a
 *              chain longer than MAX_DUPLICATE_DEPTH, has no master)
 * This is the registry's rule (inference/src/registry/views.ts resolveMaster) over the same
 * decisions, so both name the same master. Decisions older than the one recorded (decided_at) are
 * ignored, so a replay cannot undo a newer one.
 */

/** Longest chain of duplicates followed; the registry stops at the same depth. */
export const MAX_DUPLICATE_DEPTH = 16;

export interface TieState {
  /** '' when the ad has no master. */
  master: string;
  at: number;
  /** The ad this one duplicates ('' when its latest decision is not a duplicate). */
  duplicateOf: string;
}

export function parseTie(text: string | null): TieState {
  if (!text) return { master: '', at: 0, duplicateOf: '' };
  try {
    const v = JSON.parse(text) as { m?: unknown; at?: unknown; d?: unknown };
    return { master: typeof v.m === 'string' ? v.m : '', at: typeof v.at === 'number' ? v.at : 0, duplicateOf: typeof v.d === 'string' ? v.d : '' };
  } catch {
    return { master: '', at: 0, duplicateOf: '' };
  }
}

function tieText(t: TieState): string {
  return JSON.stringify({ m: t.master || null, at: t.at, ...(t.duplicateOf ? { d: t.duplicateOf } : {}) });
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
    const { hot, keys } = this.options;
    const key = keys.tie(d.tenant_id, d.ad_asset_id);
    const current = parseTie(await hot.get(key));
    if (current.at > d.decided_at) return 'stale';
    let next: TieState;
    switch (d.action) {
      case 'tie':
        if (!d.target_asset_id || d.target_asset_id === d.ad_asset_id) return 'invalid';
        next = { master: d.target_asset_id, at: d.decided_at, duplicateOf: '' };
        break;
      case 'untie':
      case 'no_sim':
        next = { master: '', at: d.decided_at, duplicateOf: '' };
        break;
      case 'duplicate':
        if (!d.target_asset_id || d.target_asset_id === d.ad_asset_id) return 'invalid';
        // Listed as a follower before reading the original's master: a change of the original
        // recorded at the same time either finds it in the list or is seen by this read.
        await hot.zadd(keys.tieDuplicates(d.tenant_id, d.target_asset_id), [{ member: d.ad_asset_id, score: d.decided_at }]);
        next = { master: await this.masterThrough(d.tenant_id, d.ad_asset_id, d.target_asset_id), at: d.decided_at, duplicateOf: d.target_asset_id };
        break;
    }
    await hot.set(key, tieText(next));
    if (current.duplicateOf && current.duplicateOf !== next.duplicateOf) await hot.zrem(keys.tieDuplicates(d.tenant_id, current.duplicateOf), [d.ad_asset_id]);
    if (next.master === current.master) return 'unchanged';
    this.notice(d.tenant_id, d.ad_asset_id);
    await this.followDuplicates(d.tenant_id, d.ad_asset_id, next.master, new Set([d.ad_asset_id]));
    return 'changed';
  }

  /** The master `ad` gets as a duplicate of `target`: target's own, unless the chain loops back to `ad`. */
  private async masterThrough(tenant: string, ad: string, target: string): Promise<string> {
    const { hot, keys } = this.options;
    const seen = new Set([ad]);
    for (let at = target; !seen.has(at) && seen.size <= MAX_DUPLICATE_DEPTH; ) {
      seen.add(at);
      const t = parseTie(await hot.get(keys.tie(tenant, at)));
      if (!t.duplicateOf) return t.master;
      at = t.duplicateOf;
    }
    return '';
  }

  /** `ad`'s master changed to `master`: its duplicates (and theirs) follow, each with a notice. */
  private async followDuplicates(tenant: string, ad: string, master: string, seen: Set<string>): Promise<void> {
    const { hot, keys } = this.options;
    if (seen.size > MAX_DUPLICATE_DEPTH) return;
    for (const { member: dup, score: listedAt } of await hot.zrange(keys.tieDuplicates(tenant, ad), 0, -1)) {
      const key = keys.tie(tenant, dup);
      const t = parseTie(await hot.get(key));
      if (t.at < listedAt) continue; // its duplicate decision is being recorded: it reads this ad's master itself
      if (t.duplicateOf !== ad) {
        await hot.zrem(keys.tieDuplicates(tenant, ad), [dup]); // re-decided since
        continue;
      }
      const follows = seen.has(dup) ? '' : master; // a loop has no master
      if (t.master === follows) continue;
      await hot.set(key, tieText({ ...t, master: follows }));
      this.decisions.inc({ outcome: 'followed' });
      this.notice(tenant, dup);
      if (!seen.has(dup)) await this.followDuplicates(tenant, dup, follows, new Set([...seen, dup]));
    }
  }

  private notice(tenant: string, ad: string): void {
    try {
      this.options.fanout.publish(SUBJECTS.tieChanged(tenant), Buffer.from(JSON.stringify({ t: tenant, ad })));
    } catch (err) {
      this.options.log.warn({ err }, 'tie notice not published; the aggregators sweep will pick the tie up');
    }
  }
}

import type { HotState } from '@afterglow/core';
import { hotToken } from '../live/keys.js';
import { snoozeTarget, type StoredSnooze, type TriggerStore } from './store.js';

/**
 * Rule snoozes. ClickHouse (trigger_snoozes) is the record: it survives restarts and every live
 * process reads the same rows. Hot state carries a copy, one key per (tenant, rule, target) whose
 * value is the snooze's end and whose TTL lets it expire, so the engine's fire decision asks one
 * mget of every process's shared hot state and sees a snooze (or un-snooze) made by any other process
 * at once. `load()` copies the store's running snoozes into hot state when a process starts (the
 * memory hot state starts empty; a Redis that lost keys gets them back).
 */

/** What the engine asks before it fires: the end of a snooze covering (rule, campaign, asset) at `now`, or null. */
export interface SnoozeCheck {
  covering(tenant: string, ruleId: string, campaign: string, asset: string, now: number): Promise<number | null>;
}

/** Kept past the end so a clock a little behind another process's still sees it; `covering` compares the value. */
const GRACE_MS = 60_000;

export class Snoozes implements SnoozeCheck {
  constructor(
    private readonly hot: HotState,
    private readonly prefix: string,
    private readonly store: TriggerStore,
    private readonly clock: () => number = Date.now,
  ) {}

  private key(tenant: string, ruleId: string, target: { kind: string; id: string }): string {
    return `${this.prefix}:snz:${hotToken(tenant)}:${hotToken(ruleId)}:${target.kind || 'rule'}:${hotToken(target.id)}`;
  }

  async put(s: StoredSnooze): Promise<void> {
    await this.store.putSnooze(s);
    await this.mirror(s);
  }

  /** Ends a snooze of (rule, target); false when none was running. */
  async remove(tenant: string, ruleId: string, target: { asset_id: string | null; campaign_id: string | null }): Promise<boolean> {
    // Hot state first: the engine stops honouring it even if the store write fails after.
    await this.hot.del([this.key(tenant, ruleId, snoozeTarget(target))]);
    return this.store.deleteSnooze(tenant, ruleId, target, this.clock());
  }

  /** Ends every snooze of a rule (the rule was deleted: one made again with its id starts unsnoozed). */
  async removeAll(tenant: string, ruleId: string): Promise<void> {
    for (const s of await this.store.snoozes({ tenant, ruleId, activeAt: this.clock() })) await this.remove(tenant, ruleId, s);
  }

  /** Copies the store's running snoozes into hot state. */
  async load(): Promise<number> {
    const running = await this.store.snoozes({ activeAt: this.clock() });
    for (const s of running) await this.mirror(s);
    return running.length;
  }

  private async mirror(s: StoredSnooze): Promise<void> {
    const left = s.until - this.clock();
    if (left > 0) await this.hot.set(this.key(s.tenant_id, s.rule_id, snoozeTarget(s)), String(s.until), left + GRACE_MS);
  }

  async covering(tenant: string, ruleId: string, campaign: string, asset: string, now: number): Promise<number | null> {
    const values = await this.hot.mget([
      this.key(tenant, ruleId, { kind: '', id: '' }),
      this.key(tenant, ruleId, { kind: 'campaign', id: campaign }),
      this.key(tenant, ruleId, { kind: 'asset', id: asset }),
    ]);
    return latestEnd(values, now);
  }
}

/** The latest snooze end after `now` among stored values (epoch ms as text), or null. */
export function latestEnd(values: readonly (string | null)[], now: number): number | null {
  let end: number | null = null;
  for (const v of values) {
    const until = v === null ? NaN : Number(v);
    if (until > now && (end === null || until > end)) end = until;
  }
  return end;
}

import { TABLES, TRIGGER_KINDS, type Logger, type Store, type TriggerAck, type TriggerKind, type TriggerRule, type TriggerSnooze, type VariantRequest } from '@afterglow/core';
import { SecretBox, isSealed } from './secrets.js';

/**
 * Trigger persistence in ClickHouse (migration 3): rules (a ReplacingMergeTree by version, with a
 * `deleted` flag), the firings log, one row per webhook delivery attempt, and closed loops (a new
 * variant tied to the master of a creative that fired).
 */

/** A rule with its webhook secret (inside the live role only). */
export interface StoredRule extends TriggerRule {
  webhook_secret: string | null;
}

export interface DeliveryRow {
  tenant_id: string;
  firing_id: string;
  rule_id: string;
  target: string;
  attempt: number;
  /** `refused`: the egress policy refused the target (final, not retried). */
  status: 'delivered' | 'failed' | 'gave_up' | 'dropped' | 'refused';
  http_status: number;
  /** A coarse outcome only (`failed`, `http_5xx`, `refused_by_policy`, `queue full`), never a network error's text. */
  error: string;
  at: number;
}

export interface LinkRow {
  tenant_id: string;
  firing_id: string;
  master_asset_id: string;
  replaced_asset_id: string;
  new_asset_id: string;
  registered_at: number | null;
  tied_at: number;
}

export interface FiringLogEntry {
  firing_id: string;
  rule_id: string;
  kind: TriggerKind;
  asset_id: string;
  master_asset_id: string | null;
  campaign_id: string | null;
  reason: string;
  numbers: Record<string, number | string | null>;
  hints: string[];
  fired_at: number;
  deliveries: { target: string; status: string; attempts: number; last_error: string | null; http_status: number | null; at: number }[];
  /** New variants tied to the same master after this firing: the creatives that replace this one. */
  replaced_by: { asset_id: string; registered_at: number | null; tied_at: number }[];
  /** Who acknowledged it (POST /v1/triggers/firings/:id/ack), null while nobody has. */
  acknowledged: TriggerAck | null;
}

/** A snooze as stored, with its tenant. */
export interface StoredSnooze extends TriggerSnooze {
  tenant_id: string;
}

/** The (kind, id) of a snooze's target as the table keys it. */
export function snoozeTarget(s: { asset_id: string | null; campaign_id: string | null }): { kind: '' | 'asset' | 'campaign'; id: string } {
  if (s.asset_id !== null) return { kind: 'asset', id: s.asset_id };
  if (s.campaign_id !== null) return { kind: 'campaign', id: s.campaign_id };
  return { kind: '', id: '' };
}

interface RuleRow {
  tenant_id: string;
  rule_id: string;
  rule_campaign_id: string;
  kind: string;
  params: string;
  cooldown_ms: string | number;
  enabled: number;
  webhook_url: string;
  webhook_secret: string;
  updated_at: string | number;
}

export interface TriggerStoreOptions {
  /** Seals webhook secrets before they are written (secrets.ts); absent = written in clear. */
  secretKey?: Buffer | undefined;
  log?: Logger;
}

export class TriggerStore {
  private lastVersion = 0;
  private readonly box: SecretBox | undefined;
  /** Clear-text / unreadable secrets already reported (one log line each, not one per refresh). */
  private readonly reported = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly options: TriggerStoreOptions = {},
  ) {
    this.box = options.secretKey ? new SecretBox(options.secretKey) : undefined;
  }

  /** The secret as it goes to ClickHouse: sealed when there is a key. */
  private sealed(rule: StoredRule): string {
    if (!rule.webhook_secret) return '';
    return this.box ? this.box.seal(rule.webhook_secret, rule.tenant_id, rule.rule_id) : rule.webhook_secret;
  }

  /** The clear secret of a stored value: sealed ones opened, clear-text ones (older rows) read as they are. */
  private opened(stored: string, tenant: string, rule: string): string | null {
    if (stored === '') return null;
    const id = `${tenant}\u0000${rule}\u0000${stored.slice(-16)}`;
    if (!isSealed(stored)) {
      if (this.box && !this.reported.has(id)) {
        this.reported.add(id);
        this.options.log?.warn({ tenant, rule }, 'webhook secret stored in clear (written before TRIGGERS_SECRET_KEY was set); save the rule again to encrypt it');
      }
      return stored;
    }
    try {
      if (!this.box) throw new Error('no key');
      return this.box.open(stored, tenant, rule);
    } catch {
      if (!this.reported.has(id)) {
        this.reported.add(id);
        this.options.log?.error({ tenant, rule }, 'webhook secret cannot be decrypted (TRIGGERS_SECRET_KEY missing or not the key it was sealed with): the rule sends no webhooks');
      }
      return null;
    }
  }

  private t(name: string): string {
    return this.store.table(name);
  }

  /** A version above every earlier one from this process (ms resolution, bumped on ties). */
  private version(now: number): number {
    this.lastVersion = Math.max(now * 1000, this.lastVersion + 1);
    return this.lastVersion;
  }

  async putRule(rule: StoredRule): Promise<void> {
    await this.store.client.insert({
      table: this.t(TABLES.triggerRules),
      format: 'JSONEachRow',
      values: [
        {
          tenant_id: rule.tenant_id,
          rule_id: rule.rule_id,
          rule_campaign_id: rule.campaign_id ?? '',
          kind: rule.kind,
          params: JSON.stringify(rule.params),
          cooldown_ms: rule.cooldown_ms,
          enabled: rule.enabled ? 1 : 0,
          webhook_url: rule.webhook_url ?? '',
          webhook_secret: this.sealed(rule),
          updated_at: rule.updated_at,
          version: this.version(rule.updated_at),
          deleted: 0,
        },
      ],
    });
  }

  async deleteRule(tenant: string, ruleId: string, now: number): Promise<boolean> {
    const existing = await this.rules({ tenant, ruleId });
    if (existing.length === 0) return false;
    const r = existing[0]!;
    await this.store.client.insert({
      table: this.t(TABLES.triggerRules),
      format: 'JSONEachRow',
      values: [
        {
          tenant_id: tenant,
          rule_id: ruleId,
          rule_campaign_id: r.campaign_id ?? '',
          kind: r.kind,
          params: '{}',
          cooldown_ms: r.cooldown_ms,
          enabled: 0,
          webhook_url: '',
          webhook_secret: '',
          updated_at: now,
          version: this.version(now),
          deleted: 1,
        },
      ],
    });
    return true;
  }

  /** Rules (FINAL: the latest version of each, deleted ones gone), optionally of one tenant / campaign / id. */
  async rules(filter: { tenant?: string; campaign?: string; ruleId?: string } = {}): Promise<StoredRule[]> {
    const where = ['deleted = 0'];
    const params: Record<string, string> = {};
    if (filter.tenant !== undefined) {
      where.push('tenant_id = {tenant:String}');
      params.tenant = filter.tenant;
    }
    if (filter.campaign !== undefined) {
      where.push('rule_campaign_id = {campaign:String}');
      params.campaign = filter.campaign;
    }
    if (filter.ruleId !== undefined) {
      where.push('rule_id = {rule:String}');
      params.rule = filter.ruleId;
    }
    const rs = await this.store.client.query({
      query: `SELECT tenant_id, rule_id, rule_campaign_id, kind, params, cooldown_ms, enabled, webhook_url, webhook_secret,
                     toUnixTimestamp64Milli(updated_at) AS updated_at
              FROM ${this.t(TABLES.triggerRules)} FINAL WHERE ${where.join(' AND ')} ORDER BY tenant_id, rule_id`,
      query_params: params,
      format: 'JSONEachRow',
    });
    return (await rs.json<RuleRow>()).flatMap((r) => {
      if (!(TRIGGER_KINDS as readonly string[]).includes(r.kind)) return [];
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(r.params) as Record<string, unknown>;
      } catch {
        // A corrupt row keeps its defaults.
      }
      return [
        {
          rule_id: r.rule_id,
          tenant_id: r.tenant_id,
          campaign_id: r.rule_campaign_id || null,
          kind: r.kind as TriggerKind,
          params: parsed,
          cooldown_ms: Number(r.cooldown_ms),
          enabled: Number(r.enabled) === 1,
          webhook_url: r.webhook_url || null,
          webhook_secret: this.opened(r.webhook_secret, r.tenant_id, r.rule_id),
          webhook_secret_set: r.webhook_secret !== '',
          updated_at: Number(r.updated_at),
        },
      ];
    });
  }

  /** Campaigns of a tenant with events since `since` (ClickHouse rollups): where tenant-wide rules start. */
  async activeCampaigns(tenant: string, since: number, limit: number): Promise<{ campaign_id: string; last: number }[]> {
    const rs = await this.store.client.query({
      query: `SELECT campaign_id, toUnixTimestamp(max(minute)) * 1000 AS last FROM ${this.t(TABLES.campaignMinute)}
              WHERE tenant_id = {tenant:String} AND minute >= toDateTime(intDiv({since:Int64}, 1000))
              GROUP BY campaign_id ORDER BY last DESC LIMIT {limit:UInt32}`,
      query_params: { tenant, since, limit },
      format: 'JSONEachRow',
    });
    return (await rs.json<{ campaign_id: string; last: string | number }>()).map((r) => ({ campaign_id: r.campaign_id, last: Number(r.last) }));
  }

  async recordFiring(request: VariantRequest): Promise<void> {
    await this.store.client.insert({
      table: this.t(TABLES.triggerFirings),
      format: 'JSONEachRow',
      values: [
        {
          tenant_id: request.tenant_id,
          firing_id: request.request_id,
          rule_id: request.rule_id,
          kind: request.kind,
          asset_id: request.asset_id,
          master_asset_id: request.master_asset_id ?? '',
          campaign_id: request.campaign_id ?? '',
          reason: request.reason,
          numbers: JSON.stringify(request.numbers),
          hints: request.hints,
          request: JSON.stringify(request),
          fired_at: request.fired_at,
        },
      ],
    });
  }

  async recordDeliveries(rows: DeliveryRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.store.client.insert({ table: this.t(TABLES.triggerDeliveries), format: 'JSONEachRow', values: rows });
  }

  async recordLinks(rows: LinkRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.store.client.insert({ table: this.t(TABLES.triggerLinks), format: 'JSONEachRow', values: rows });
  }

  /** Firings of `master` other than `exclude`'s, fired at or before `before` (candidates for a closed loop). */
  async firingsOfMaster(tenant: string, master: string, exclude: string, before: number): Promise<{ firing_id: string; asset_id: string; fired_at: number }[]> {
    const rs = await this.store.client.query({
      query: `SELECT DISTINCT firing_id, asset_id, toUnixTimestamp64Milli(fired_at) AS fired_ms FROM ${this.t(TABLES.triggerFirings)}
              WHERE tenant_id = {tenant:String} AND master_asset_id = {master:String} AND asset_id != {ad:String}
                AND fired_at <= fromUnixTimestamp64Milli({before:Int64})`,
      query_params: { tenant, master, ad: exclude, before },
      format: 'JSONEachRow',
    });
    return (await rs.json<{ firing_id: string; asset_id: string; fired_ms: string | number }>()).map((r) => ({ firing_id: r.firing_id, asset_id: r.asset_id, fired_at: Number(r.fired_ms) }));
  }

  async putSnooze(s: StoredSnooze): Promise<void> {
    const target = snoozeTarget(s);
    await this.store.client.insert({
      table: this.t(TABLES.triggerSnoozes),
      format: 'JSONEachRow',
      values: [
        {
          tenant_id: s.tenant_id,
          rule_id: s.rule_id,
          target_kind: target.kind,
          target_id: target.id,
          until: s.until,
          note: s.note ?? '',
          snoozed_by: s.by ?? '',
          created_at: s.created_at,
          version: this.version(s.created_at),
          deleted: 0,
        },
      ],
    });
  }

  /** Ends a snooze now; false when there was none (or it had ended). */
  async deleteSnooze(tenant: string, ruleId: string, target: { asset_id: string | null; campaign_id: string | null }, now: number): Promise<boolean> {
    const existing = (await this.snoozes({ tenant, ruleId, activeAt: now })).find((s) => s.asset_id === target.asset_id && s.campaign_id === target.campaign_id);
    if (!existing) return false;
    const t = snoozeTarget(target);
    await this.store.client.insert({
      table: this.t(TABLES.triggerSnoozes),
      format: 'JSONEachRow',
      values: [{ tenant_id: tenant, rule_id: ruleId, target_kind: t.kind, target_id: t.id, until: now, note: '', snoozed_by: '', created_at: now, version: this.version(now), deleted: 1 }],
    });
    return true;
  }

  /** Snoozes still running at `activeAt` (FINAL: the latest of each target, un-snoozed ones gone), optionally of one tenant / rule. */
  async snoozes(filter: { tenant?: string; ruleId?: string; activeAt: number }): Promise<StoredSnooze[]> {
    const where = ['deleted = 0', 'until > fromUnixTimestamp64Milli({at:Int64})'];
    const params: Record<string, string | number> = { at: filter.activeAt };
    if (filter.tenant !== undefined) {
      where.push('tenant_id = {tenant:String}');
      params.tenant = filter.tenant;
    }
    if (filter.ruleId !== undefined) {
      where.push('rule_id = {rule:String}');
      params.rule = filter.ruleId;
    }
    const rs = await this.store.client.query({
      query: `SELECT tenant_id, rule_id, target_kind, target_id, toUnixTimestamp64Milli(until) AS until_ms, note, snoozed_by,
                     toUnixTimestamp64Milli(created_at) AS created_ms
              FROM ${this.t(TABLES.triggerSnoozes)} FINAL WHERE ${where.join(' AND ')} ORDER BY tenant_id, rule_id, target_kind, target_id`,
      query_params: params,
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ tenant_id: string; rule_id: string; target_kind: string; target_id: string; until_ms: string | number; note: string; snoozed_by: string; created_ms: string | number }>();
    return rows.map((r) => ({
      tenant_id: r.tenant_id,
      rule_id: r.rule_id,
      asset_id: r.target_kind === 'asset' ? r.target_id : null,
      campaign_id: r.target_kind === 'campaign' ? r.target_id : null,
      until: Number(r.until_ms),
      note: r.note || null,
      by: r.snoozed_by || null,
      created_at: Number(r.created_ms),
    }));
  }

  async putAck(tenant: string, firingId: string, ack: TriggerAck): Promise<void> {
    await this.store.client.insert({
      table: this.t(TABLES.triggerAcks),
      format: 'JSONEachRow',
      values: [{ tenant_id: tenant, firing_id: firingId, acked_by: ack.by, key_id: ack.key_id ?? '', note: ack.note ?? '', acked_at: ack.at }],
    });
  }

  /** The acknowledgements of some firings of a tenant, by firing id (the earliest of each). */
  async acks(tenant: string, firingIds: string[]): Promise<Map<string, TriggerAck>> {
    if (firingIds.length === 0) return new Map();
    const rs = await this.store.client.query({
      query: `SELECT firing_id, argMin(acked_by, acked_at) AS who, argMin(key_id, acked_at) AS key, argMin(note, acked_at) AS text,
                     toUnixTimestamp64Milli(min(acked_at)) AS at
              FROM ${this.t(TABLES.triggerAcks)} WHERE tenant_id = {tenant:String} AND firing_id IN {ids:Array(String)} GROUP BY firing_id`,
      query_params: { tenant, ids: firingIds },
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ firing_id: string; who: string; key: string; text: string; at: string | number }>();
    return new Map(rows.map((r) => [r.firing_id, { by: r.who, key_id: r.key || null, at: Number(r.at), note: r.text || null }]));
  }

  /** The firings log, newest first, with each target's latest delivery state and the variants that replaced the creative. */
  async log(tenant: string, options: { campaign?: string; firingId?: string; limit: number }): Promise<FiringLogEntry[]> {
    const where = ['tenant_id = {tenant:String}'];
    const params: Record<string, string | number> = { tenant, limit: options.limit };
    if (options.campaign !== undefined) {
      where.push('campaign_id = {campaign:String}');
      params.campaign = options.campaign;
    }
    if (options.firingId !== undefined) {
      where.push('firing_id = {firing:String}');
      params.firing = options.firingId;
    }
    const rs = await this.store.client.query({
      query: `SELECT DISTINCT firing_id, rule_id, kind, asset_id, master_asset_id, campaign_id, reason, numbers, hints,
                     toUnixTimestamp64Milli(fired_at) AS fired_at
              FROM ${this.t(TABLES.triggerFirings)} WHERE ${where.join(' AND ')}
              ORDER BY fired_at DESC, firing_id DESC LIMIT {limit:UInt32}`,
      query_params: params,
      format: 'JSONEachRow',
    });
    const firings = await rs.json<{
      firing_id: string;
      rule_id: string;
      kind: TriggerKind;
      asset_id: string;
      master_asset_id: string;
      campaign_id: string;
      reason: string;
      numbers: string;
      hints: string[];
      fired_at: string | number;
    }>();
    if (firings.length === 0) return [];
    const ids = firings.map((f) => f.firing_id);
    const [deliveries, links, acks] = await Promise.all([
      this.store.client
        .query({
          query: `SELECT firing_id, target, max(attempt) AS attempts,
                         argMax(status, (at, attempt)) AS outcome, argMax(error, (at, attempt)) AS last_error,
                         argMax(http_status, (at, attempt)) AS last_status, toUnixTimestamp64Milli(max(at)) AS last_at
                  FROM ${this.t(TABLES.triggerDeliveries)}
                  WHERE tenant_id = {tenant:String} AND firing_id IN {ids:Array(String)}
                  GROUP BY firing_id, target`,
          query_params: { tenant, ids },
          format: 'JSONEachRow',
        })
        .then((r) => r.json<{ firing_id: string; target: string; attempts: number | string; outcome: string; last_error: string; last_status: number | string; last_at: number | string }>()),
      this.store.client
        .query({
          query: `SELECT DISTINCT firing_id, new_asset_id, toUnixTimestamp64Milli(registered_at) AS registered_at, toUnixTimestamp64Milli(tied_at) AS tied_at
                  FROM ${this.t(TABLES.triggerLinks)}
                  WHERE tenant_id = {tenant:String} AND firing_id IN {ids:Array(String)} ORDER BY tied_at`,
          query_params: { tenant, ids },
          format: 'JSONEachRow',
        })
        .then((r) => r.json<{ firing_id: string; new_asset_id: string; registered_at: string | number | null; tied_at: string | number }>()),
      this.acks(tenant, ids),
    ]);
    return firings.map((f) => {
      let numbers: Record<string, number | string | null> = {};
      try {
        numbers = JSON.parse(f.numbers) as typeof numbers;
      } catch {
        // Shown without numbers.
      }
      return {
        firing_id: f.firing_id,
        rule_id: f.rule_id,
        kind: f.kind,
        asset_id: f.asset_id,
        master_asset_id: f.master_asset_id || null,
        campaign_id: f.campaign_id || null,
        reason: f.reason,
        numbers,
        hints: f.hints,
        fired_at: Number(f.fired_at),
        deliveries: deliveries
          .filter((d) => d.firing_id === f.firing_id)
          .map((d) => ({
            target: d.target,
            status: d.outcome,
            attempts: Number(d.attempts),
            last_error: d.last_error || null,
            http_status: Number(d.last_status) || null,
            at: Number(d.last_at),
          })),
        replaced_by: links
          .filter((l) => l.firing_id === f.firing_id)
          .map((l) => ({ asset_id: l.new_asset_id, registered_at: l.registered_at === null ? null : Number(l.registered_at), tied_at: Number(l.tied_at) })),
        acknowledged: acks.get(f.firing_id) ?? null,
      };
    });
  }
}

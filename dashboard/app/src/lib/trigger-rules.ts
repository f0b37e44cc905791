import type { TriggerKind } from '@afterglow/core/trigger-limits';
import type { ResponseOf } from '@afterglow/core/api';
import { getJson, request, type TriggerFiring } from './api.ts';

/**
 * Trigger rules, snoozes and acknowledgements (live role, /v1/triggers/...): reads need the read
 * scope, every change the admin scope. The limits the editor checks before sending live in
 * @afterglow/core/trigger-limits, shared with the server's schemas.
 */

const enc = encodeURIComponent;

export type { TriggerSnoozeJson as RuleSnooze, TriggerRuleWithSnoozesJson as TriggerRuleJson, TriggerAckJson as Acknowledgement } from '@afterglow/core/api';

/** A log entry as the server sends it (with its acknowledgement). */
export type AckedFiring = TriggerFiring;

async function send<T>(method: string, path: string, params: Record<string, string | undefined>, body?: unknown): Promise<T> {
  const res = await request(path, params, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return (await res.json()) as T;
}

export function listRules(tenant: string, signal?: AbortSignal) {
  return getJson<ResponseOf<'triggerRules'>>('/v1/triggers/rules', { tenant_id: tenant }, signal);
}

export interface RuleBody {
  campaign_id: string | null;
  kind: TriggerKind;
  params: Record<string, unknown>;
  cooldown_ms: number;
  enabled: boolean;
  webhook_url: string | null;
}

/** Creates or replaces a rule; a webhook secret the server made is in the answer once. */
export function saveRule(tenant: string, ruleId: string, rule: RuleBody) {
  return send<ResponseOf<'putTriggerRule'>>('PUT', `/v1/triggers/rules/${enc(ruleId)}`, {}, { tenant_id: tenant, ...rule });
}

export function deleteRule(tenant: string, ruleId: string) {
  return send<ResponseOf<'deleteTriggerRule'>>('DELETE', `/v1/triggers/rules/${enc(ruleId)}`, { tenant_id: tenant });
}

/** Snoozes the whole rule, or only one asset or campaign of it (`target`). */
export function snoozeRule(tenant: string, ruleId: string, when: { for_ms: number } | { until: number }, options: { note?: string; asset_id?: string; campaign_id?: string } = {}) {
  return send<ResponseOf<'snoozeTriggerRule'>>('PUT', `/v1/triggers/rules/${enc(ruleId)}/snooze`, {}, { tenant_id: tenant, ...when, ...options });
}

export function unsnoozeRule(tenant: string, ruleId: string, target: { asset_id?: string | null; campaign_id?: string | null } = {}) {
  return send<ResponseOf<'unsnoozeTriggerRule'>>('DELETE', `/v1/triggers/rules/${enc(ruleId)}/snooze`, {
    tenant_id: tenant,
    asset_id: target.asset_id ?? undefined,
    campaign_id: target.campaign_id ?? undefined,
  });
}

export function acknowledge(tenant: string, firingId: string, ack: { by?: string; note?: string }) {
  return send<ResponseOf<'ackFiring'>>('POST', `/v1/triggers/firings/${enc(firingId)}/ack`, {}, { tenant_id: tenant, ...ack });
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { attributionSchema } from './assets.js';
import { ACK_LIMITS, RULE_LIMITS, SNOOZE_LIMITS, TRIGGER_ID_RE, TRIGGER_KINDS, TRIGGER_PARAM_SPECS, type TriggerKind } from './trigger-limits.js';

/**
 * Trigger contracts: the rules the live role evaluates (stored in ClickHouse, edited over
 * /v1/triggers/rules) and the variant requests a fired rule emits on `creative.variant-requests`,
 * on the fan-out subject SUBJECTS.variantRequests(tenant) and to signed webhooks.
 */

const id = z.string().regex(TRIGGER_ID_RE);

export { TRIGGER_KINDS, type TriggerKind };

type NumberSpec = { type: 'number' | 'int'; min?: number; max?: number; gt?: number; lt?: number; default: number };

/** A zod number from a ParamSpec (trigger-limits.ts): the dashboard checks the same bounds. */
function numberParam(s: NumberSpec) {
  let n = z.number();
  if (s.type === 'int') n = n.int();
  if (s.min !== undefined) n = n.min(s.min);
  if (s.max !== undefined) n = n.max(s.max);
  if (s.gt !== undefined) n = n.gt(s.gt);
  if (s.lt !== undefined) n = n.lt(s.lt);
  return n.default(s.default);
}
function enumParam<const V extends readonly [string, ...string[]]>(s: { values: V; default: V[number] }) {
  return z.enum(s.values).default(s.default as never);
}

/**
 * Per-kind parameters (bounds and defaults in trigger-limits.ts), every one with a default, so `params: {}` is a usable rule.
 *   fatigue           the decay fit's rate is below `fraction` x its fitted peak, or is forecast to be within `within_ms`
 *   underperformance  the engagement rate is significantly below the prediction (assets.scores) or the campaign median
 *   velocity_spike    the last minute's engagements are `factor` x the recent baseline (Poisson test)
 *   tie_anomaly       an ad's engagement rate is far outside (`factor` either way) its master's other ads (two-proportion test)
 *   frequency         impressions per unique viewer over the last `days` reach `max_frequency` (reach's sketch error counted against firing)
 *   cost_per_result   the recent cost per result is `factor` x the asset's own earlier one (Poisson test on the results its spend bought)
 *   hook_rate_drop    the recent 3-second view rate of a video is `drop` below its own earlier one (one-sided two-proportion test)
 *   completion_drop   the same for the completion rate
 * Common: `min_impressions` (window trials before judging), `alpha` (test level), `debounce_evals` and
 * `debounce_ms` (the condition must hold that many consecutive evaluations AND that long).
 */
const P = TRIGGER_PARAM_SPECS;
const common = {
  min_impressions: numberParam(P.fatigue.min_impressions),
  alpha: numberParam(P.fatigue.alpha),
  debounce_evals: numberParam(P.fatigue.debounce_evals),
  debounce_ms: numberParam(P.fatigue.debounce_ms),
};
export const fatigueParamsSchema = z.object({
  ...common,
  fraction: numberParam(P.fatigue.fraction),
  within_ms: numberParam(P.fatigue.within_ms),
  min_events: numberParam(P.fatigue.min_events),
});
export const underperformanceParamsSchema = z.object({
  ...common,
  versus: enumParam(P.underperformance.versus),
  window: enumParam(P.underperformance.window),
  /** Fire only when the rate is at least this far (relative) below the reference. */
  margin: numberParam(P.underperformance.margin),
});
export const velocitySpikeParamsSchema = z.object({
  ...common,
  factor: numberParam(P.velocity_spike.factor),
  /** Engagements in the last minute below this never count as a spike. */
  min_per_min: numberParam(P.velocity_spike.min_per_min),
});
export const tieAnomalyParamsSchema = z.object({
  ...common,
  window: enumParam(P.tie_anomaly.window),
  factor: numberParam(P.tie_anomaly.factor),
  /** Other ads of the master (with data) needed before the comparison means anything. */
  min_other_ads: numberParam(P.tie_anomaly.min_other_ads),
});
export const frequencyParamsSchema = z.object({
  ...common,
  min_impressions: numberParam(P.frequency.min_impressions),
  max_frequency: numberParam(P.frequency.max_frequency),
  days: numberParam(P.frequency.days),
  min_reach: numberParam(P.frequency.min_reach),
});
export const costPerResultParamsSchema = z.object({
  ...common,
  min_impressions: numberParam(P.cost_per_result.min_impressions),
  result: enumParam(P.cost_per_result.result),
  factor: numberParam(P.cost_per_result.factor),
  recent_days: numberParam(P.cost_per_result.recent_days),
  baseline_days: numberParam(P.cost_per_result.baseline_days),
  min_results: numberParam(P.cost_per_result.min_results),
});
const videoDropParams = (spec: typeof P.hook_rate_drop) =>
  z.object({
    ...common,
    min_impressions: numberParam(spec.min_impressions),
    min_starts: numberParam(spec.min_starts),
    drop: numberParam(spec.drop),
    recent_minutes: numberParam(spec.recent_minutes),
    baseline_hours: numberParam(spec.baseline_hours),
  });
export const hookRateDropParamsSchema = videoDropParams(P.hook_rate_drop);
export const completionDropParamsSchema = videoDropParams(P.completion_drop);
export type VideoDropParams = z.infer<typeof hookRateDropParamsSchema>;
export type FatigueParams = z.infer<typeof fatigueParamsSchema>;
export type FrequencyParams = z.infer<typeof frequencyParamsSchema>;
export type CostPerResultParams = z.infer<typeof costPerResultParamsSchema>;
export type UnderperformanceParams = z.infer<typeof underperformanceParamsSchema>;
export type VelocitySpikeParams = z.infer<typeof velocitySpikeParamsSchema>;
export type TieAnomalyParams = z.infer<typeof tieAnomalyParamsSchema>;

export const TRIGGER_PARAMS = {
  fatigue: fatigueParamsSchema,
  underperformance: underperformanceParamsSchema,
  velocity_spike: velocitySpikeParamsSchema,
  tie_anomaly: tieAnomalyParamsSchema,
  frequency: frequencyParamsSchema,
  cost_per_result: costPerResultParamsSchema,
  hook_rate_drop: hookRateDropParamsSchema,
  completion_drop: completionDropParamsSchema,
} as const;

/** A rule as the API takes it (PUT body). `webhook_secret` is write-only. */
export const triggerRuleInputSchema = z.object({
  rule_id: id,
  tenant_id: id,
  campaign_id: id.nullable().default(null),
  kind: z.enum(TRIGGER_KINDS),
  params: z.record(z.string(), z.unknown()).default({}),
  cooldown_ms: z.number().int().positive().max(RULE_LIMITS.cooldownMsMax).default(RULE_LIMITS.cooldownMsDefault),
  enabled: z.boolean().default(true),
  webhook_url: z
    .string()
    .url()
    .max(RULE_LIMITS.webhookUrlMax)
    .refine((u) => /^https?:\/\//i.test(u), 'webhook_url must be http(s)')
    .nullable()
    .default(null),
  /** HMAC key for the webhook signature (16-256 characters); generated when a webhook has none. */
  webhook_secret: z.string().min(RULE_LIMITS.webhookSecretMin).max(RULE_LIMITS.webhookSecretMax).optional(),
});
export type TriggerRuleInput = z.input<typeof triggerRuleInputSchema>;

/** A rule as stored and returned (never with its secret). */
export interface TriggerRule {
  rule_id: string;
  tenant_id: string;
  campaign_id: string | null;
  kind: TriggerKind;
  params: Record<string, unknown>;
  cooldown_ms: number;
  enabled: boolean;
  webhook_url: string | null;
  webhook_secret_set: boolean;
  updated_at: number;
}

/**
 * A snooze (PUT /v1/triggers/rules/:rule_id/snooze): the rule does not fire (nor send webhooks) until
 * `until` (epoch ms) or for `for_ms`, for the whole rule or only for one asset or one campaign.
 */
export const triggerSnoozeInputSchema = z
  .object({
    tenant_id: id.optional(),
    until: z.number().int().optional(),
    for_ms: z.number().int().positive().max(SNOOZE_LIMITS.maxMs).optional(),
    asset_id: id.optional(),
    campaign_id: id.optional(),
    note: z.string().max(SNOOZE_LIMITS.noteMax).optional(),
  })
  .strict()
  .refine((s) => (s.until === undefined) !== (s.for_ms === undefined), 'give exactly one of until (epoch ms) and for_ms')
  .refine((s) => s.asset_id === undefined || s.campaign_id === undefined, 'snooze one asset or one campaign, not both');

export interface TriggerSnooze {
  rule_id: string;
  /** Both null: the whole rule is snoozed. */
  asset_id: string | null;
  campaign_id: string | null;
  until: number;
  note: string | null;
  /** The API key that snoozed it (null with auth off). */
  by: string | null;
  created_at: number;
}

/** An acknowledgement of a firing (POST /v1/triggers/firings/:firing_id/ack): someone has seen it. */
export const triggerAckInputSchema = z
  .object({
    tenant_id: id.optional(),
    /** Who, as a person would say it; the key id is recorded as well. */
    by: z.string().trim().min(1).max(ACK_LIMITS.byMax).optional(),
    note: z.string().max(ACK_LIMITS.noteMax).optional(),
  })
  .strict();

export interface TriggerAck {
  by: string;
  key_id: string | null;
  at: number;
  note: string | null;
}

/** Validates a rule's params for its kind; returns them with defaults filled in. */
export function parseTriggerParams<K extends TriggerKind>(kind: K, params: unknown): z.infer<(typeof TRIGGER_PARAMS)[K]> {
  return TRIGGER_PARAMS[kind].parse(params ?? {}) as z.infer<(typeof TRIGGER_PARAMS)[K]>;
}

const numberish = z.union([z.number(), z.string().max(256), z.null()]);

/**
 * A request for a new creative variant (`creative.variant-requests`, keyed by asset_id; fan-out
 * subject SUBJECTS.variantRequests(tenant); webhook body). `numbers` are the figures that crossed
 * the rule's threshold; `hints` are readable attribution hints from the latest assets.scores.
 */
export const variantRequestSchema = z.object({
  type: z.literal('variant_request'),
  request_id: z.string().min(1).max(64),
  tenant_id: id,
  rule_id: id,
  kind: z.enum(TRIGGER_KINDS),
  asset_id: id,
  master_asset_id: id.nullable(),
  campaign_id: id.nullable(),
  reason: z.string().min(1).max(1024),
  numbers: z.record(z.string(), numberish),
  hints: z.array(z.string().max(256)).max(20),
  attribution: z.array(attributionSchema).max(50).optional(),
  model_version: z.string().max(64).optional(),
  fired_at: z.number().int().nonnegative(),
});
export type VariantRequest = z.infer<typeof variantRequestSchema>;

/** Webhook signature headers: `x-afterglow-signature: t=<ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const WEBHOOK_HEADERS = {
  signature: 'x-afterglow-signature',
  timestamp: 'x-afterglow-timestamp',
  delivery: 'x-afterglow-delivery',
  event: 'x-afterglow-event',
} as const;

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Checks a webhook signature header against the raw body (for receivers, and our tests). Refuses
 * signatures older than `toleranceMs` (replays).
 */
export function verifyWebhook(secret: string, header: string | undefined, body: string, now = Date.now(), toleranceMs = 5 * 60_000): boolean {
  if (!header) return false;
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isSafeInteger(t) || Math.abs(now - t) > toleranceMs || typeof parts.v1 !== 'string') return false;
  const want = Buffer.from(signWebhook(secret, t, body).split('v1=')[1]!, 'hex');
  const got = Buffer.from(parts.v1, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** "subject colour silver +8% ± 3%": one attribution as a hint a person (or a generator) can act on. */
export function attributionHint(a: { element: string; edit: string; delta: number; ci_low: number; ci_high: number }): string {
  const words = (s: string) => s.replace(/[_-]+/g, ' ').trim();
  const colon = a.edit.indexOf(':');
  const what = colon >= 0 ? `${words(a.element)} ${words(a.edit.slice(colon + 1))}` : `${words(a.edit.split('_')[0]!)} ${words(a.element)}`;
  const pct = (x: number) => Math.round(x * 100);
  const half = Math.max(Math.abs(a.ci_high - a.delta), Math.abs(a.delta - a.ci_low));
  return `${what} ${a.delta >= 0 ? '+' : '-'}${Math.abs(pct(a.delta))}% ± ${pct(half)}%`;
}

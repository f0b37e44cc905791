import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { attributionSchema } from './assets.js';

/**
 * Trigger contracts: the rules the live role evaluates (stored in ClickHouse, edited over
 * /v1/triggers/rules) and the variant requests a fired rule emits on `creative.variant-requests`,
 * on the fan-out subject SUBJECTS.variantRequests(tenant) and to signed webhooks.
 */

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/);

export const TRIGGER_KINDS = ['fatigue', 'underperformance', 'velocity_spike', 'tie_anomaly'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

const fraction = z.number().gt(0).lt(1);
const positiveMs = z.number().int().positive().max(30 * 24 * 3_600_000);

/**
 * Per-kind parameters, every one with a default, so `params: {}` is a usable rule.
 *   fatigue           the decay fit's rate is below `fraction` x its fitted peak, or is forecast to be within `within_ms`
 *   underperformance  the engagement rate is significantly below the prediction (assets.scores) or the campaign median
 *   velocity_spike    the last minute's engagements are `factor` x the recent baseline (Poisson test)
 *   tie_anomaly       an ad's engagement rate is far outside (`factor` either way) its master's other ads (two-proportion test)
 * Common: `min_impressions` (window trials before judging), `alpha` (test level), `debounce_evals` and
 * `debounce_ms` (the condition must hold that many consecutive evaluations AND that long).
 */
const common = {
  min_impressions: z.number().int().nonnegative().max(1e12).default(200),
  alpha: z.number().gt(0).lt(0.5).default(0.01),
  debounce_evals: z.number().int().min(1).max(1000).default(2),
  debounce_ms: z.number().int().nonnegative().max(24 * 3_600_000).default(0),
};
export const fatigueParamsSchema = z.object({
  ...common,
  fraction: fraction.default(0.5),
  within_ms: z.number().int().nonnegative().max(30 * 24 * 3_600_000).default(0),
  min_events: z.number().int().min(1).max(1e9).default(30),
});
export const underperformanceParamsSchema = z.object({
  ...common,
  versus: z.enum(['predicted', 'campaign_median']).default('campaign_median'),
  window: z.enum(['15m', '1h', '24h']).default('1h'),
  /** Fire only when the rate is at least this far (relative) below the reference. */
  margin: z.number().min(0).lt(1).default(0.2),
});
export const velocitySpikeParamsSchema = z.object({
  ...common,
  factor: z.number().gt(1).max(1e6).default(3),
  /** Engagements in the last minute below this never count as a spike. */
  min_per_min: z.number().nonnegative().max(1e9).default(20),
});
export const tieAnomalyParamsSchema = z.object({
  ...common,
  window: z.enum(['15m', '1h', '24h']).default('1h'),
  factor: z.number().gt(1).max(1e6).default(2),
  /** Other ads of the master (with data) needed before the comparison means anything. */
  min_other_ads: z.number().int().min(1).max(10_000).default(1),
});
export type FatigueParams = z.infer<typeof fatigueParamsSchema>;
export type UnderperformanceParams = z.infer<typeof underperformanceParamsSchema>;
export type VelocitySpikeParams = z.infer<typeof velocitySpikeParamsSchema>;
export type TieAnomalyParams = z.infer<typeof tieAnomalyParamsSchema>;

export const TRIGGER_PARAMS = {
  fatigue: fatigueParamsSchema,
  underperformance: underperformanceParamsSchema,
  velocity_spike: velocitySpikeParamsSchema,
  tie_anomaly: tieAnomalyParamsSchema,
} as const;

/** A rule as the API takes it (PUT body). `webhook_secret` is write-only. */
export const triggerRuleInputSchema = z.object({
  rule_id: id,
  tenant_id: id,
  campaign_id: id.nullable().default(null),
  kind: z.enum(TRIGGER_KINDS),
  params: z.record(z.string(), z.unknown()).default({}),
  cooldown_ms: positiveMs.default(6 * 3_600_000),
  enabled: z.boolean().default(true),
  webhook_url: z
    .string()
    .url()
    .max(2048)
    .refine((u) => /^https?:\/\//i.test(u), 'webhook_url must be http(s)')
    .nullable()
    .default(null),
  /** HMAC key for the webhook signature (16-256 characters); generated when a webhook has none. */
  webhook_secret: z.string().min(16).max(256).optional(),
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

/**
 * The limits of trigger rules, snoozes and acknowledgements, as plain data: the server's zod schemas
 * (triggers.ts) are built from these, and the dashboard's rule editor validates its form with the
 * same numbers (`checkParam`, `checkRuleForm`) before it sends anything. Browser-safe: no imports, no
 * Node APIs; published as `@afterglow/core/trigger-limits`.
 */

export const TRIGGER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export const TRIGGER_KINDS = ['fatigue', 'underperformance', 'velocity_spike', 'tie_anomaly', 'frequency', 'cost_per_result', 'hook_rate_drop', 'completion_drop'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const RULE_LIMITS = {
  cooldownMsMax: 30 * DAY,
  cooldownMsDefault: 6 * HOUR,
  webhookUrlMax: 2048,
  webhookSecretMin: 16,
  webhookSecretMax: 256,
} as const;

export const SNOOZE_LIMITS = {
  /** A snooze ends at most this far ahead: a rule nobody wants any more is disabled or deleted, not snoozed forever. */
  maxMs: 90 * DAY,
  /** Snoozes of one rule at a time (the rule as a whole plus per-asset / per-campaign ones). */
  perRuleMax: 200,
  noteMax: 500,
} as const;

export const ACK_LIMITS = {
  byMax: 128,
  noteMax: 1000,
} as const;

/** One numeric or enumerated parameter: its bounds (`gt`/`lt` exclusive, `min`/`max` inclusive) and default. */
export type ParamSpec =
  | { type: 'number' | 'int'; min?: number; max?: number; gt?: number; lt?: number; default: number; help: string }
  | { type: 'enum'; values: readonly string[]; default: string; help: string };

const COMMON = {
  min_impressions: { type: 'int', min: 0, max: 1e12, default: 200, help: 'window impressions before judging' },
  alpha: { type: 'number', gt: 0, lt: 0.5, default: 0.01, help: 'significance level of the test' },
  debounce_evals: { type: 'int', min: 1, max: 1000, default: 2, help: 'consecutive evaluations the condition must hold' },
  debounce_ms: { type: 'int', min: 0, max: DAY, default: 0, help: 'and for at least this long (ms)' },
} as const;
const WINDOW = { type: 'enum', values: ['15m', '1h', '24h'], default: '1h', help: 'window compared' } as const;

/** The video rules (hook rate, completion rate): the recent plays against the asset's own earlier ones. */
const VIDEO_DROP = {
  ...COMMON,
  min_impressions: { ...COMMON.min_impressions, default: 0, help: 'not used by the video rules: they count plays (min_starts)' },
  min_starts: { type: 'int', min: 1, max: 1e9, default: 100, help: 'plays (video starts) in each period before judging' },
  drop: { type: 'number', min: 0, lt: 1, default: 0.2, help: 'at least this far (relative) below the earlier rate' },
  recent_minutes: { type: 'int', min: 5, max: 7 * 24 * 60, default: 60, help: 'recent: the last this many minutes' },
  baseline_hours: { type: 'int', min: 1, max: 30 * 24, default: 24, help: 'earlier: this many hours before the recent minutes' },
} as const;

/** Every kind's parameters, every one with a default (so `params: {}` is a usable rule). */
export const TRIGGER_PARAM_SPECS = {
  fatigue: {
    ...COMMON,
    fraction: { type: 'number', gt: 0, lt: 1, default: 0.5, help: 'fires below this fraction of the fitted peak' },
    within_ms: { type: 'int', min: 0, max: 30 * DAY, default: 0, help: 'or when forecast to get there within (ms)' },
    min_events: { type: 'int', min: 1, max: 1e9, default: 30, help: 'events before a decay fit counts' },
  },
  underperformance: {
    ...COMMON,
    versus: { type: 'enum', values: ['predicted', 'campaign_median'], default: 'campaign_median', help: 'reference rate' },
    window: WINDOW,
    margin: { type: 'number', min: 0, lt: 1, default: 0.2, help: 'at least this far (relative) below the reference' },
  },
  velocity_spike: {
    ...COMMON,
    factor: { type: 'number', gt: 1, max: 1e6, default: 3, help: 'last minute vs the baseline' },
    min_per_min: { type: 'number', min: 0, max: 1e9, default: 20, help: 'engagements per minute below this never count' },
  },
  tie_anomaly: {
    ...COMMON,
    window: WINDOW,
    factor: { type: 'number', gt: 1, max: 1e6, default: 2, help: 'far outside the other ads, either way' },
    min_other_ads: { type: 'int', min: 1, max: 10_000, default: 1, help: 'other ads of the master needed' },
  },
  frequency: {
    ...COMMON,
    min_impressions: { ...COMMON.min_impressions, help: 'impressions with a viewer id in the window before judging' },
    max_frequency: { type: 'number', gt: 1, max: 1e6, default: 4, help: 'fires at or above this many impressions per unique viewer' },
    days: { type: 'int', min: 1, max: 90, default: 7, help: 'window: the last this many UTC days, today included' },
    min_reach: { type: 'int', min: 1, max: 1e12, default: 100, help: 'unique viewers before judging' },
  },
  cost_per_result: {
    ...COMMON,
    min_impressions: { ...COMMON.min_impressions, default: 0, help: 'impressions in the recent days before judging' },
    result: { type: 'enum', values: ['conversion', 'click'], default: 'conversion', help: 'what a result is: cost per conversion (CPA) or per click (CPC)' },
    factor: { type: 'number', gt: 1, max: 1e6, default: 2, help: 'fires when the recent cost per result is this many times its own earlier one' },
    recent_days: { type: 'int', min: 1, max: 30, default: 3, help: 'recent: the last this many UTC days, today included' },
    baseline_days: { type: 'int', min: 1, max: 365, default: 28, help: 'earlier: this many days before the recent ones' },
    min_results: { type: 'int', min: 1, max: 1e9, default: 10, help: 'results in the earlier days before its cost per result counts' },
  },
  hook_rate_drop: VIDEO_DROP,
  completion_drop: VIDEO_DROP,
} as const satisfies Record<TriggerKind, Record<string, ParamSpec>>;

/** What is wrong with one parameter value, or null when it is acceptable. */
export function checkParam(spec: ParamSpec, value: unknown): string | null {
  if (spec.type === 'enum') return typeof value === 'string' && spec.values.includes(value) ? null : `one of ${spec.values.join(', ')}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'a number';
  if (spec.type === 'int' && !Number.isInteger(value)) return 'a whole number';
  if (spec.min !== undefined && value < spec.min) return `at least ${spec.min}`;
  if (spec.max !== undefined && value > spec.max) return `at most ${spec.max}`;
  if (spec.gt !== undefined && !(value > spec.gt)) return `more than ${spec.gt}`;
  if (spec.lt !== undefined && !(value < spec.lt)) return `less than ${spec.lt}`;
  return null;
}

export interface RuleForm {
  rule_id: string;
  campaign_id: string | null;
  kind: string;
  params: Record<string, unknown>;
  cooldown_ms: number;
  enabled: boolean;
  webhook_url: string | null;
}

/** Field -> message for everything the server would refuse in a rule without asking it (the egress policy it must). */
export function checkRuleForm(rule: RuleForm): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!TRIGGER_ID_RE.test(rule.rule_id)) errors.rule_id = 'Rule ids are 1-128 characters of letters, digits and . _ : - (starting with a letter or digit)';
  if (rule.campaign_id !== null && !TRIGGER_ID_RE.test(rule.campaign_id)) errors.campaign_id = 'Campaign ids are 1-128 characters of letters, digits and . _ : -';
  if (!(TRIGGER_KINDS as readonly string[]).includes(rule.kind)) errors.kind = `one of ${TRIGGER_KINDS.join(', ')}`;
  else {
    const specs = TRIGGER_PARAM_SPECS[rule.kind as TriggerKind] as Record<string, ParamSpec>;
    for (const [name, value] of Object.entries(rule.params)) {
      const spec = specs[name];
      if (!spec) continue;
      const wrong = checkParam(spec, value);
      if (wrong) errors[`params.${name}`] = `${name} must be ${wrong}`;
    }
  }
  if (!Number.isInteger(rule.cooldown_ms) || rule.cooldown_ms <= 0 || rule.cooldown_ms > RULE_LIMITS.cooldownMsMax) {
    errors.cooldown_ms = `The cool-down must be above 0 and at most ${RULE_LIMITS.cooldownMsMax / DAY} days (whole milliseconds)`;
  }
  if (rule.webhook_url !== null) {
    const u = rule.webhook_url;
    let ok = u.length <= RULE_LIMITS.webhookUrlMax && /^https?:\/\//i.test(u);
    try {
      new URL(u);
    } catch {
      ok = false;
    }
    if (!ok) errors.webhook_url = `An http(s) URL of at most ${RULE_LIMITS.webhookUrlMax} characters`;
  }
  return errors;
}

/** When a snooze asked for `for_ms` or `until` ends, or why it cannot be taken. */
export function snoozeEnd(request: { until?: number | undefined; for_ms?: number | undefined }, now: number): { until: number } | { error: string } {
  if ((request.until === undefined) === (request.for_ms === undefined)) return { error: 'give exactly one of until (epoch ms) and for_ms' };
  const until = request.until ?? now + request.for_ms!;
  if (!Number.isSafeInteger(until)) return { error: 'until must be a whole number of epoch ms' };
  if (request.for_ms !== undefined && (!Number.isSafeInteger(request.for_ms) || request.for_ms <= 0)) return { error: 'for_ms must be a whole number of ms above 0' };
  if (until <= now) return { error: 'until must be in the future' };
  if (until - now > SNOOZE_LIMITS.maxMs) return { error: `a snooze lasts at most ${SNOOZE_LIMITS.maxMs / DAY} days` };
  return { until };
}

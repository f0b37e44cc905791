import { z } from 'zod';
import { attributionSchema, SCORE_FLAGS, tieDecisionSchema } from '../assets.js';
import { EVENT_KINDS, VIDEO_KINDS, WINDOW_NAMES } from '../live-protocol.js';
import { TRIGGER_KINDS } from '../trigger-limits.js';

/**
 * The response bodies of the REST API, one zod schema per answer: the routes declare them as their
 * `schema.response` (so /v1/openapi.json documents each answer), and browsers (the dashboard) and the
 * typed client read the types derived from them. Browser-safe: zod and core's browser-safe contract
 * files only. A field a handler adds must be added here as well: the contract test (test/) checks
 * every documented answer of a running server against these.
 */

const countsOf = <T extends z.ZodType>(value: T) => z.object(Object.fromEntries(EVENT_KINDS.map((k) => [k, value])) as Record<(typeof EVENT_KINDS)[number], T>);

/** A number per event kind (every kind present). */
export const countsSchema = countsOf(z.number());
export type CountsJson = z.infer<typeof countsSchema>;

/** Stored totals per kind: every engagement kind, and the video play kinds a campaign has any of. */
const storedCountsSchema = countsSchema.extend(Object.fromEntries(VIDEO_KINDS.map((k) => [k, z.number().optional()])) as Record<(typeof VIDEO_KINDS)[number], z.ZodOptional<z.ZodNumber>>);

/** The `{error, message}` body of every error answer; `error` is the stable code clients match on. */
export const errorBodySchema = z.object({ error: z.string(), message: z.string(), request_id: z.string().optional() });
export type ErrorBody = z.infer<typeof errorBodySchema>;

// ---- health ----------------------------------------------------------------------------------------

export const healthSchema = z.object({ status: z.literal('ok') });
export const readinessSchema = z.object({ status: z.enum(['ready', 'not_ready']), checks: z.record(z.string(), z.enum(['ok', 'failing'])) });

// ---- ingest: events, imports --------------------------------------------------------------------------

const rejectionSchema = z.object({ index: z.number(), event_id: z.string().optional(), reason: z.string(), field: z.string().optional(), message: z.string() });
export const intakeResultSchema = z.object({ accepted: z.number(), rejected: z.number(), rejections: z.array(rejectionSchema) });
export type IntakeResultJson = z.infer<typeof intakeResultSchema>;

export const importResultSchema = z.object({
  received: z.number(),
  inserted: z.number(),
  new: z.number(),
  duplicates: z.number(),
  rejected: z.number(),
  rejections: z.array(rejectionSchema),
  dry_run: z.boolean(),
});
export type ImportResultJson = z.infer<typeof importResultSchema>;

export const spendRejectionSchema = z.object({
  index: z.number(),
  reason: z.enum(['undecodable', 'invalid_field', 'tenant_forbidden', 'too_old', 'too_far_in_future']),
  field: z.string().optional(),
  message: z.string(),
});
export const spendImportResultSchema = z.object({
  received: z.number(),
  written: z.number(),
  rejected: z.number(),
  rejections: z.array(spendRejectionSchema),
  dry_run: z.boolean(),
});
export type SpendImportResultJson = z.infer<typeof spendImportResultSchema>;

// ---- ingest: totals, campaigns -----------------------------------------------------------------------

export const campaignTotalsSchema = z.object({
  tenant_id: z.string(),
  campaign_id: z.string(),
  /** Exact event counts per kind (every engagement kind present, zero when none; video play kinds when any). */
  counts: storedCountsSchema,
  /** Sum of `value` per kind (dwell ms, conversion value, video percent/seconds/watch ms). */
  values: storedCountsSchema,
  /** Events that arrived after the live late window (counted, and flagged). */
  late: z.number(),
  total: z.number(),
  source: z.enum(['rollup', 'raw']),
});
export type CampaignTotalsJson = z.infer<typeof campaignTotalsSchema>;

export const campaignSummarySchema = z.object({ campaign_id: z.string(), assets: z.number(), counts: storedCountsSchema, total: z.number(), last_minute: z.string() });
export type CampaignSummary = z.infer<typeof campaignSummarySchema>;
export const campaignListSchema = z.object({ tenant_id: z.string(), campaigns: z.array(campaignSummarySchema) });
export type CampaignListJson = z.infer<typeof campaignListSchema>;

// ---- ingest: spend, costs, reach (whole UTC days) ------------------------------------------------------

export const costFiguresSchema = z.object({
  currency: z.string(),
  spend: z.number(),
  impressions: z.number(),
  clicks: z.number(),
  conversions: z.number(),
  conversion_value: z.number(),
  /** Cost per thousand impressions; null without impressions. */
  cpm: z.number().nullable(),
  cpc: z.number().nullable(),
  cpa: z.number().nullable(),
  /** Conversion value per unit of spend; null without spend. */
  roas: z.number().nullable(),
});
export type CostFiguresJson = z.infer<typeof costFiguresSchema>;
export const assetCostFiguresSchema = costFiguresSchema.extend({ asset_id: z.string() });
export type AssetCostFiguresJson = z.infer<typeof assetCostFiguresSchema>;

export const dayCostsSchema = z.object({
  day: z.string(),
  currency: z.string(),
  spend: z.number(),
  impressions: z.number(),
  clicks: z.number(),
  conversions: z.number(),
  conversion_value: z.number(),
});
export type DayCostsJson = z.infer<typeof dayCostsSchema>;

export const reachFiguresSchema = z.object({
  /** Unique viewers (uniqCombined estimate; exact below about 10^4 viewers). */
  reach: z.number(),
  /** Impressions that carried a viewer id. */
  impressions: z.number(),
  /** Impressions per unique viewer; null without viewers. */
  frequency: z.number().nullable(),
});
export type ReachJson = z.infer<typeof reachFiguresSchema>;
export const reachErrorSchema = z.object({ exact: z.boolean(), relative_standard_error: z.number() });
export type ReachErrorJson = z.infer<typeof reachErrorSchema>;
const assetReachSchema = reachFiguresSchema.extend({ asset_id: z.string() });

export const campaignCostsSchema = z.object({
  tenant_id: z.string(),
  campaign_id: z.string(),
  from: z.string(),
  to: z.string(),
  assets: z.array(assetCostFiguresSchema),
  /** One total per currency: spends in different currencies are never added. */
  totals: z.array(costFiguresSchema),
});
export type CampaignCostsJson = z.infer<typeof campaignCostsSchema>;

export const campaignReachSchema = reachFiguresSchema.extend({
  tenant_id: z.string(),
  campaign_id: z.string(),
  from: z.string(),
  to: z.string(),
  reach_error: reachErrorSchema,
  assets: z.array(assetReachSchema),
});
export type CampaignReachJson = z.infer<typeof campaignReachSchema>;

export const assetCostsSchema = z.object({
  tenant_id: z.string(),
  asset_id: z.string(),
  from: z.string(),
  to: z.string(),
  /** Over the days with spend: engagement on days without spend is not in these. */
  costs: z.array(costFiguresSchema),
  days: z.array(dayCostsSchema),
  reach: reachFiguresSchema,
  reach_error: reachErrorSchema,
});
export type AssetCostsJson = z.infer<typeof assetCostsSchema>;

export const masterReachSchema = reachFiguresSchema.extend({
  tenant_id: z.string(),
  master_id: z.string(),
  from: z.string(),
  to: z.string(),
  reach_error: reachErrorSchema,
  /** What adding the ads' reach would claim: more than `reach` when viewers saw several ads. */
  sum_of_ad_reach: z.number(),
  ads: z.array(assetReachSchema),
  costs: z.array(costFiguresSchema),
});
export type MasterReachJson = z.infer<typeof masterReachSchema>;

// ---- ingest: range reads, breakdowns, comparison -------------------------------------------------------

export const ANALYTICS_DIMENSIONS = ['channel', 'placement', 'region', 'device'] as const;
export const periodSchema = z.object({ from: z.string(), to: z.string() });
export type PeriodJson = z.infer<typeof periodSchema>;
export const rangeTotalsSchema = z.object({
  counts: countsSchema,
  values: countsSchema,
  total: z.number(),
  /** clicks / impressions; null without impressions. */
  ctr: z.number().nullable(),
});
export type RangeTotalsJson = z.infer<typeof rangeTotalsSchema>;
export const changeSchema = z.object({ abs: z.number(), rel: z.number().nullable() });
export type ChangeJson = z.infer<typeof changeSchema>;
export const periodChangeSchema = z.object({ counts: countsOf(changeSchema), ctr: changeSchema.nullable() });
export type PeriodChangeJson = z.infer<typeof periodChangeSchema>;
export const rangeSeriesSchema = z.object({ step_ms: z.number(), points: z.array(z.object({ t: z.string(), counts: countsSchema })) });
export type RangeSeriesJson = z.infer<typeof rangeSeriesSchema>;
const filtersSchema = z.object(Object.fromEntries(ANALYTICS_DIMENSIONS.map((d) => [d, z.array(z.string()).optional()])) as Record<(typeof ANALYTICS_DIMENSIONS)[number], z.ZodOptional<z.ZodArray<z.ZodString>>>);
const rangeSource = z.enum(['rollup', 'raw']);
const comparedSchema = z.object({ current: rangeTotalsSchema, previous: rangeTotalsSchema, change: periodChangeSchema });

export const breakdownRowSchema = comparedSchema.extend({ value: z.string() });
export type BreakdownRowJson = z.infer<typeof breakdownRowSchema>;
export const breakdownSchema = z.object({
  tenant_id: z.string(),
  campaign_id: z.string(),
  by: z.enum(ANALYTICS_DIMENSIONS),
  range: periodSchema,
  previous_range: periodSchema,
  filters: filtersSchema,
  source: rangeSource,
  rows: z.array(breakdownRowSchema),
  truncated: z.boolean(),
  totals: comparedSchema,
});
export type BreakdownJson = z.infer<typeof breakdownSchema>;

export const campaignRangeSchema = comparedSchema.extend({
  tenant_id: z.string(),
  campaign_id: z.string(),
  range: periodSchema,
  previous_range: periodSchema,
  filters: filtersSchema,
  source: rangeSource,
  assets: z.array(comparedSchema.extend({ asset_id: z.string() })),
  assets_truncated: z.boolean(),
  series: rangeSeriesSchema,
});
export type CampaignRangeJson = z.infer<typeof campaignRangeSchema>;

export const assetRangeSchema = comparedSchema.extend({
  tenant_id: z.string(),
  asset_id: z.string(),
  campaign_id: z.string().nullable(),
  range: periodSchema,
  previous_range: periodSchema,
  filters: filtersSchema,
  source: rangeSource,
  series: rangeSeriesSchema,
});
export type AssetRangeJson = z.infer<typeof assetRangeSchema>;

export const compareSchema = z.object({
  tenant_id: z.string(),
  range: periodSchema,
  filters: filtersSchema,
  source: rangeSource,
  step_ms: z.number(),
  assets: z.array(z.object({ asset_id: z.string(), campaign_id: z.string().nullable(), current: rangeTotalsSchema, series: rangeSeriesSchema })),
});
export type CompareJson = z.infer<typeof compareSchema>;

// ---- live: metrics, decay, leaderboard, freshness ------------------------------------------------------

export const rateSchema = z.object({ value: z.number(), low: z.number(), high: z.number(), enough: z.boolean() });
export type RateJson = z.infer<typeof rateSchema>;
export const windowViewSchema = z.object({
  counts: countsSchema,
  dwell_ms: z.number(),
  conversion_value: z.number(),
  ctr: rateSchema,
  engagement_rate: rateSchema,
  shares_per_1k: rateSchema,
});
export type WindowViewJson = z.infer<typeof windowViewSchema>;
export const velocitySchema = z.object({
  per_min: z.number(),
  per_min_15m: z.number(),
  avg_ms: z.number(),
  trend: z.number(),
  direction: z.enum(['rising', 'falling', 'steady']),
});
export const metricsViewSchema = z.object({
  windows: z.object(Object.fromEntries(WINDOW_NAMES.map((w) => [w, windowViewSchema])) as Record<(typeof WINDOW_NAMES)[number], typeof windowViewSchema>),
  velocity: velocitySchema,
});
export type MetricsViewJson = z.infer<typeof metricsViewSchema>;

export const liveAssetMetricsSchema = metricsViewSchema.extend({
  tenant_id: z.string(),
  asset_id: z.string(),
  campaign_id: z.string().nullable(),
  master_id: z.string().nullable(),
  source: z.literal('live'),
  at: z.number(),
  version: z.number(),
  /** When the asset is a master with tied ads: their roll-up. */
  master: metricsViewSchema.extend({ ads: z.number() }).optional(),
});
export type LiveAssetMetricsJson = z.infer<typeof liveAssetMetricsSchema>;

export const seriesPointSchema = windowViewSchema.extend({ t: z.number() });
export type SeriesPoint = z.infer<typeof seriesPointSchema>;
export const assetHistorySchema = z.object({
  tenant_id: z.string(),
  asset_id: z.string(),
  source: z.literal('clickhouse'),
  from: z.number(),
  to: z.number(),
  step_ms: z.number(),
  totals: windowViewSchema,
  series: z.array(seriesPointSchema),
});
export type AssetHistory = z.infer<typeof assetHistorySchema>;
/** GET /v1/assets/:id/metrics: live windows, or with from/to/step the rollups' series. */
export const assetMetricsSchema = z.union([liveAssetMetricsSchema, assetHistorySchema]);

const decayModel = z.enum(['exponential', 'power_law']);
const halfLifeCi = z.tuple([z.number(), z.number().nullable()]).nullable();
export const modelFitSchema = z.object({
  model: decayModel,
  rate0_per_min: z.number(),
  lambda_per_min: z.number().optional(),
  tau_min: z.number().optional(),
  alpha: z.number().optional(),
  half_life_ms: z.number().nullable(),
  half_life_ci: halfLifeCi,
  deviance: z.number(),
  qaic: z.number(),
});
export type ModelFitJson = z.infer<typeof modelFitSchema>;
export const decayFitSchema = z.object({
  status: z.enum(['ok', 'insufficient_data', 'not_decaying']),
  events: z.number(),
  peak_at: z.number().nullable(),
  peak_rate_per_min: z.number().nullable(),
  model: decayModel.nullable(),
  half_life_ms: z.number().nullable(),
  half_life_ci: halfLifeCi,
  fatigue_fraction: z.number(),
  fatigue_at: z.number().nullable(),
  fatigued: z.boolean(),
  dispersion: z.number().nullable(),
  models: z.object({ exponential: modelFitSchema.nullable(), power_law: modelFitSchema.nullable() }),
  curve: z.array(z.object({ t: z.number(), observed_per_min: z.number(), fitted_per_min: z.number().nullable() })).optional(),
  forecast: z.array(z.object({ t: z.number(), fitted_per_min: z.number() })).optional(),
});
export type DecayFitJson = z.infer<typeof decayFitSchema>;
/** GET /v1/assets/:id/decay: the live fit, or with from/to/step a fit of the rollups' series. */
export const assetDecaySchema = z.union([
  decayFitSchema.extend({ tenant_id: z.string(), asset_id: z.string(), source: z.literal('live') }),
  decayFitSchema.extend({ tenant_id: z.string(), asset_id: z.string(), source: z.literal('clickhouse'), from: z.number(), to: z.number(), step_ms: z.number() }),
]);
export type AssetDecayJson = z.infer<typeof assetDecaySchema>;

export const LEADERBOARD_METRICS = ['ctr', 'engagement_rate', 'shares_per_1k', 'velocity', 'impressions', 'engagements'] as const;
export const leaderboardEntrySchema = z.object({
  rank: z.number().nullable(),
  asset_id: z.string(),
  value: z.number(),
  low: z.number().optional(),
  high: z.number().optional(),
  enough: z.boolean(),
  impressions: z.number(),
});
export const leaderboardSchema = z.object({
  tenant_id: z.string(),
  campaign_id: z.string(),
  /** A live window, or 'range' for a from/to query on ClickHouse. */
  window: z.enum([...WINDOW_NAMES, 'range']),
  metric: z.enum(LEADERBOARD_METRICS),
  source: z.enum(['live', 'clickhouse']),
  at: z.number(),
  ranked: z.array(leaderboardEntrySchema),
  not_enough_data: z.array(leaderboardEntrySchema),
  assets_considered: z.number(),
});
export type LeaderboardJson = z.infer<typeof leaderboardSchema>;

export const campaignMetricsSchema = metricsViewSchema.extend({
  tenant_id: z.string(),
  campaign_id: z.string(),
  source: z.literal('live'),
  at: z.number(),
  partitions: z.number(),
});
export type CampaignMetricsJson = z.infer<typeof campaignMetricsSchema>;

export const freshnessSchema = z.object({
  tenant_id: z.string(),
  /** Epoch ms of the newest event counted live for the tenant; null: none known. */
  last_event_at: z.number().nullable(),
  /** Events counted live per second over the last minute. */
  events_per_sec: z.number(),
  /** The server's clock when it answered. */
  as_of: z.number(),
});
export type FreshnessJson = z.infer<typeof freshnessSchema>;

// ---- triggers ------------------------------------------------------------------------------------------

export const triggerRuleSchema = z.object({
  rule_id: z.string(),
  tenant_id: z.string(),
  campaign_id: z.string().nullable(),
  kind: z.enum(TRIGGER_KINDS),
  params: z.record(z.string(), z.unknown()),
  cooldown_ms: z.number(),
  enabled: z.boolean(),
  webhook_url: z.string().nullable(),
  webhook_secret_set: z.boolean(),
  updated_at: z.number(),
});
export type TriggerRuleJson = z.infer<typeof triggerRuleSchema>;
export const triggerSnoozeSchema = z.object({
  rule_id: z.string(),
  asset_id: z.string().nullable(),
  campaign_id: z.string().nullable(),
  until: z.number(),
  note: z.string().nullable(),
  by: z.string().nullable(),
  created_at: z.number(),
});
export type TriggerSnoozeJson = z.infer<typeof triggerSnoozeSchema>;
export const triggerRuleWithSnoozesSchema = triggerRuleSchema.extend({ snoozes: z.array(triggerSnoozeSchema) });
export type TriggerRuleWithSnoozesJson = z.infer<typeof triggerRuleWithSnoozesSchema>;
export const triggerRulesSchema = z.object({ rules: z.array(triggerRuleWithSnoozesSchema) });
export const triggerRulePutSchema = z.object({ rule: triggerRuleSchema, webhook_secret: z.string().optional() });
export const triggerRuleDeletedSchema = z.object({ deleted: z.string() });
export const triggerSnoozePutSchema = z.object({ snooze: triggerSnoozeSchema });
export const triggerUnsnoozedSchema = z.object({ unsnoozed: z.object({ rule_id: z.string(), asset_id: z.string().nullable(), campaign_id: z.string().nullable() }) });
export const triggerAckSchema = z.object({ by: z.string(), key_id: z.string().nullable(), at: z.number(), note: z.string().nullable() });
export type TriggerAckJson = z.infer<typeof triggerAckSchema>;
export const triggerAckedSchema = z.object({ firing_id: z.string(), acknowledged: triggerAckSchema });

export const triggerFiringSchema = z.object({
  firing_id: z.string(),
  rule_id: z.string(),
  kind: z.enum(TRIGGER_KINDS),
  asset_id: z.string(),
  /** The master the creative counted for when the rule fired. */
  master_asset_id: z.string().nullable(),
  /** The master it counts for now (the live tie). */
  master_now: z.string().nullable(),
  campaign_id: z.string().nullable(),
  reason: z.string(),
  numbers: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
  hints: z.array(z.string()),
  fired_at: z.number(),
  deliveries: z.array(
    z.object({ target: z.string(), status: z.string(), attempts: z.number(), last_error: z.string().nullable(), http_status: z.number().nullable(), at: z.number() }),
  ),
  /** New variants tied to the same master after this firing (the creatives that replace this one). */
  replaced_by: z.array(z.object({ asset_id: z.string(), registered_at: z.number().nullable(), tied_at: z.number() })),
  acknowledged: triggerAckSchema.nullable(),
});
export type TriggerFiring = z.infer<typeof triggerFiringSchema>;
export const triggerLogSchema = z.object({ firings: z.array(triggerFiringSchema) });
export const triggerFiringDetailSchema = z.object({
  firing: triggerFiringSchema,
  replaced: z.object({ asset_id: z.string(), metrics: liveAssetMetricsSchema.nullable() }),
  variants: z.array(z.object({ asset_id: z.string(), registered_at: z.number().nullable(), tied_at: z.number(), metrics: liveAssetMetricsSchema.nullable() })),
});
export type TriggerFiringDetailJson = z.infer<typeof triggerFiringDetailSchema>;

// ---- inference: registry, ties, review -----------------------------------------------------------------

export const TIE_ACTIONS = ['tie', 'untie', 'no_sim', 'duplicate'] as const;
export type TieAction = (typeof TIE_ACTIONS)[number];
export const assetTieSchema = z.object({
  /** The master the ad counts for now (null after untie / no_sim, or as a duplicate of an ad with none). */
  master_asset_id: z.string().nullable(),
  action: z.enum(TIE_ACTIONS),
  /** For `duplicate`: the ad it duplicates. */
  duplicate_of: z.string().optional(),
  decided_by: z.string(),
  decided_at: z.number(),
  auto: z.boolean(),
  decision_id: z.string(),
});
export type AssetTie = z.infer<typeof assetTieSchema>;
export const assetSchema = z.object({
  asset_id: z.string(),
  tenant_id: z.string(),
  role: z.enum(['master', 'ad']),
  campaign_id: z.string().nullable(),
  name: z.string(),
  channel: z.string(),
  content_hash: z.string(),
  format: z.string(),
  bytes: z.number(),
  width: z.number(),
  height: z.number(),
  created_at: z.number(),
  tie: assetTieSchema.nullable(),
});
export type Asset = z.infer<typeof assetSchema>;
export const assetListSchema = z.object({ assets: z.array(assetSchema), next_cursor: z.string().nullable() });

/** A stored tie decision: the bus contract with its id. */
export const tieDecisionJsonSchema = tieDecisionSchema.extend({ decision_id: z.string() });
export type TieDecision = z.infer<typeof tieDecisionJsonSchema>;

/** A person's word on one shot of a video ad: cut from `master_asset_id` (tie), or from no master (no_sim). */
export const shotReviewSchema = z.object({
  action: z.enum(['tie', 'no_sim']),
  master_asset_id: z.string().nullable(),
  /** The shot's score for that master when it was among the shot's candidates. */
  score: z.number().nullable(),
  decided_by: z.string(),
  decided_at: z.number(),
});
export type ShotReviewJson = z.infer<typeof shotReviewSchema>;
const shotCandidateSchema = z.object({ master_asset_id: z.string(), score: z.number(), master_shot: z.number().optional() });
const shotSpanFields = {
  index: z.number(),
  start: z.number(),
  end: z.number(),
  start_frame: z.number(),
  end_frame: z.number(),
  transition: z.enum(['start', 'cut', 'fade', 'dissolve']),
};

/** One shot as the API shows it: keyframes by frame number (their images behind /keyframes/:shot/:k). */
export const videoShotSchema = z.object({
  ...shotSpanFields,
  keyframes: z.array(z.number()),
  candidates: z.array(shotCandidateSchema).optional(),
  auto_tie: z.string().nullable().optional(),
  review: shotReviewSchema.optional(),
});

export const videoSchema = z.object({
  container: z.string(),
  codec: z.string(),
  duration_s: z.number(),
  fps: z.number(),
  frames: z.number(),
  audio: z.boolean(),
  poster_frame: z.number(),
  shots: z.array(videoShotSchema),
});
export type VideoJson = z.infer<typeof videoSchema>;
export type VideoShotJson = VideoJson['shots'][number];

/** POST /v1/assets/:id/shots/:shot/review: the reviewed shot, shown as GET /v1/assets/:id/video shows it. */
export const shotReviewedSchema = z.object({ shot: videoShotSchema });

/** Video plays of an asset: hook, hold and completion rates, watch time, retention by percent. */
export const videoMetricsSchema = z.object({
  starts: z.number(),
  hook_rate: rateSchema,
  hold_rate: rateSchema,
  completion_rate: rateSchema,
  avg_watch_ms: z.number(),
  watch_ms: z.number(),
  retention: z.array(z.object({ percent: z.number(), plays: z.number(), share: rateSchema })),
  /** Milestone events beyond what the plays before them allow (duplicates, progress before/without start). */
  excess: z.number(),
});
export type VideoMetricsJson = z.infer<typeof videoMetricsSchema>;
export const videoReportSchema = z.object({
  tenant_id: z.string(),
  asset_id: z.string(),
  source: z.literal('clickhouse'),
  from: z.number(),
  to: z.number(),
  /** The asset's own plays. */
  asset: videoMetricsSchema,
  /** The asset as a master: its own plays and those of the ads cut from it. */
  master: videoMetricsSchema.extend({ contributors: z.array(z.object({ asset_id: z.string(), weight: z.number(), via: z.enum(['self', 'shots', 'tie']) })) }),
});
export type VideoReportJson = z.infer<typeof videoReportSchema>;

/** POST /v1/assets: the asset, its video analysis, and what tying did with it (open: the deployment's tie engine says). */
export const assetRegisteredSchema = z.object({
  asset: assetSchema,
  video: videoSchema.optional(),
  tying: z.looseObject({ status: z.string(), ms: z.number() }).optional(),
});

export const TIMELINE_KINDS = ['registered', 'launch', 'relaunch', 'tie', 'untie', 'duplicate', 'no_sim'] as const;
export const timelineAnnotationSchema = z.object({
  at: z.number(),
  kind: z.enum(TIMELINE_KINDS),
  label: z.string(),
  ad_asset_id: z.string().optional(),
  master_asset_id: z.string().nullable().optional(),
  decided_by: z.string().optional(),
  auto: z.boolean().optional(),
});
export type TimelineAnnotation = z.infer<typeof timelineAnnotationSchema>;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];
export const timelineSchema = z.object({ asset_id: z.string(), role: z.enum(['master', 'ad']), relaunch_gap_ms: z.number(), annotations: z.array(timelineAnnotationSchema) });
export type TimelineJson = z.infer<typeof timelineSchema>;

export const SIMILAR_SCOPES = ['campaign', 'all'] as const;
export type SimilarScope = (typeof SIMILAR_SCOPES)[number];
export const masterMatchSchema = z.object({ master: assetSchema, value: z.number(), score: z.number().nullable() });
export type MasterMatch = z.infer<typeof masterMatchSchema>;
export const candidatesSchema = z.object({
  ad: assetSchema,
  /** 'pending' while the ad has not been ranked yet. */
  status: z.enum(['ready', 'pending', 'failed']),
  error: z.string().optional(),
  computed_at: z.number().nullable(),
  masters_compared: z.number(),
  cosine: z.array(masterMatchSchema),
  euclidean: z.array(masterMatchSchema),
  candidates: z.array(
    z.object({ master_asset_id: z.string(), score: z.number(), cosine: z.number(), euclidean: z.number(), verified: z.boolean(), inliers: z.number(), dense: z.number().optional() }),
  ),
  similar_ads: z.array(z.object({ ad: assetSchema, cosine: z.number() })),
  /** Where similar_ads come from: the ad's campaign (default) or every campaign. */
  similar_scope: z.enum(SIMILAR_SCOPES),
  suggestion: z.object({ master_asset_id: z.string(), score: z.number(), auto_tie: z.boolean() }).nullable(),
  tie: tieDecisionJsonSchema.nullable(),
});
export type Candidates = z.infer<typeof candidatesSchema>;

export const QUEUE_STATUSES = ['untied', 'tied', 'no_sim', 'all'] as const;
export type ReviewStatus = (typeof QUEUE_STATUSES)[number];
export const queueItemSchema = z.object({
  ad: assetSchema,
  best: z.object({ master_asset_id: z.string(), score: z.number() }).nullable(),
  status: z.enum(['untied', 'tied', 'no_sim']),
  ranked: z.boolean(),
});
export type QueueItem = z.infer<typeof queueItemSchema>;
export const reviewQueueSchema = z.object({ items: z.array(queueItemSchema) });
export const tieDecidedSchema = z.object({ decision: tieDecisionJsonSchema, auto_ties: z.array(tieDecisionJsonSchema) });
export const tieHistorySchema = z.object({ decisions: z.array(tieDecisionJsonSchema) });
export const masterAdsSchema = z.object({ master: assetSchema, ads: z.array(z.object({ ad: assetSchema, decision: tieDecisionJsonSchema })) });
export type MasterAdsJson = z.infer<typeof masterAdsSchema>;

// ---- inference: scores, attribution, models ------------------------------------------------------------

export const assetScoreJsonSchema = z.object({
  tenant_id: z.string(),
  asset_id: z.string(),
  campaign_id: z.string().optional(),
  master_asset_id: z.string().optional(),
  model_version: z.string(),
  predicted: z.number(),
  predicted_low: z.number().optional(),
  predicted_high: z.number().optional(),
  actual: z.number().optional(),
  actual_low: z.number().optional(),
  actual_high: z.number().optional(),
  impressions: z.number().optional(),
  flag: z.enum(SCORE_FLAGS),
  attribution: z.array(attributionSchema).optional(),
  reason: z.string(),
  scored_at: z.number(),
});
export type AssetScoreJson = z.infer<typeof assetScoreJsonSchema>;
export type AttributionJson = z.infer<typeof attributionSchema>;
export const campaignScoresSchema = z.object({ scores: z.array(assetScoreJsonSchema) });
export const occlusionSchema = z.object({ grid_w: z.number(), grid_h: z.number(), values: z.array(z.number()), model_version: z.string() });
export type OcclusionJson = z.infer<typeof occlusionSchema>;
export const aggregatedAttributionSchema = z.object({
  element: z.string(),
  edit: z.string(),
  /** Mean relative change of the predicted engagement rate when the edit is applied. */
  mean: z.number(),
  ci_low: z.number(),
  ci_high: z.number(),
  n: z.number(),
  /** The interval excludes 0 and the effect is at least 3%. */
  significant: z.boolean(),
});
export type AggregatedAttributionJson = z.infer<typeof aggregatedAttributionSchema>;
export const attributionSummarySchema = z.object({ model_version: z.string().nullable(), assets: z.number(), elements: z.array(aggregatedAttributionSchema) });
export type AttributionSummaryJson = z.infer<typeof attributionSummarySchema>;
export const modelSchema = z.object({
  version: z.string(),
  trained_at: z.number(),
  metrics: z.looseObject({ rmse: z.number().nullable(), mae: z.number().nullable(), r2: z.number().nullable() }),
  n_train: z.number(),
  n_valid: z.number(),
  active: z.boolean(),
});
export type ModelJson = z.infer<typeof modelSchema>;
export const modelListSchema = z.object({ models: z.array(modelSchema) });
export const modelActivatedSchema = z.object({ version: z.string(), active: z.literal(true) });

// ---- keys, whoami --------------------------------------------------------------------------------------

export const API_SCOPES = ['ingest', 'read', 'admin'] as const;
export const whoamiSchema = z.object({
  tenant_id: z.string(),
  key_id: z.string(),
  scopes: z.array(z.enum(API_SCOPES)),
  placements: z.array(z.string()).nullable(),
  origins: z.array(z.string()).nullable(),
});
export type WhoamiJson = z.infer<typeof whoamiSchema>;
export const apiKeyInfoSchema = z.object({
  key_id: z.string(),
  tenant_id: z.string(),
  name: z.string(),
  scopes: z.array(z.enum(API_SCOPES)),
  placements: z.array(z.string()),
  origins: z.array(z.string()),
  created_at: z.number(),
  expires_at: z.number().nullable(),
  revoked_at: z.number().nullable(),
  rotated_to: z.string(),
  status: z.enum(['active', 'expired', 'revoked']),
});
export type ApiKeyInfoJson = z.infer<typeof apiKeyInfoSchema>;
export const keyCreatedSchema = z.object({ key: z.string(), info: apiKeyInfoSchema });
export const keyRotatedSchema = keyCreatedSchema.extend({ previous: apiKeyInfoSchema });
export const keyListSchema = z.object({ keys: z.array(apiKeyInfoSchema) });
export const keyRevokedSchema = z.object({ info: apiKeyInfoSchema });

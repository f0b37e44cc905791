import { z } from 'zod';

/**
 * Asset contracts: what travels on `assets.changes` and `assets.ties`, shared by the registry
 * (ingest/tying), the live aggregators (master roll-ups) and the inference workers.
 */

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/);

export const ASSET_ROLES = ['master', 'ad'] as const;
export type AssetRole = (typeof ASSET_ROLES)[number];

/** An asset was registered, updated or deleted (`assets.changes`, keyed by asset_id). */
export const assetChangeSchema = z.object({
  type: z.enum(['registered', 'updated', 'deleted']),
  tenant_id: id,
  asset_id: id,
  role: z.enum(ASSET_ROLES),
  campaign_id: id.optional(),
  name: z.string().max(256).optional(),
  channel: z.string().max(128).optional(),
  /** Content hash (sha256 hex) of the original image; embeddings are cached by it. */
  content_hash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
  /** 'video' for video creatives (absent: an image, as before videos were accepted). */
  media: z.enum(['image', 'video']).optional(),
  /** Videos: length and number of shots. */
  duration_ms: z.number().int().nonnegative().optional(),
  shots: z.number().int().nonnegative().optional(),
  at: z.number().int().nonnegative(),
});
export type AssetChange = z.infer<typeof assetChangeSchema>;

/**
 * A tying decision (`assets.ties`, keyed by ad asset_id). `tie` links an ad to the master it was
 * cut from; `untie` removes it; `no_sim` records that none of the candidates is its master;
 * `duplicate` ties an ad to another ad (same creative). `auto` marks decisions the system made
 * (after a human tie, or above the high-precision threshold) rather than a person.
 */
export const tieDecisionSchema = z.object({
  action: z.enum(['tie', 'untie', 'no_sim', 'duplicate']),
  tenant_id: id,
  ad_asset_id: id,
  /** The master for `tie`/`untie`; the other ad for `duplicate`; absent for `no_sim`. */
  target_asset_id: id.optional(),
  score: z.number().min(0).max(1).optional(),
  auto: z.boolean(),
  decided_by: z.string().min(1).max(128),
  decided_at: z.number().int().nonnegative(),
  /** Unique id of this decision (the registry sets it; `because_of` of an auto-tie names the decision that caused it). */
  decision_id: z.string().max(128).optional(),
  /** For auto-ties: the decision that caused it. */
  because_of: z.string().max(128).optional(),
});
export type TieDecision = z.infer<typeof tieDecisionSchema>;

/** How an asset's live performance compares with its prediction. */
export const SCORE_FLAGS = ['over', 'under', 'as_expected', 'insufficient_data'] as const;

/** One element's effect on the prediction (ANVIL: predicted(edited) - predicted(original), relative). */
export const attributionSchema = z.object({
  /** The image element, e.g. `subject_colour`, `text_overlay`, `background`, `people`, `brightness`. */
  element: z.string().min(1).max(64),
  /** The edit that measured it, e.g. `recolour:silver`, `remove_text`, `blur_background`. */
  edit: z.string().min(1).max(64),
  /** Relative change of the predicted engagement (0.08 = +8 %). */
  delta: z.number(),
  ci_low: z.number(),
  ci_high: z.number(),
  /** Variants (or assets, when aggregated) behind the estimate. */
  n: z.number().int().nonnegative(),
});
export type Attribution = z.infer<typeof attributionSchema>;

/**
 * A performance score of one asset (`assets.scores`, keyed by asset_id): what a model predicts, what
 * the live metrics say, and which image elements drive the prediction. Published by the inference
 * workers on registration, on model change and when live engagement shifts.
 */
export const assetScoreSchema = z.object({
  tenant_id: id,
  asset_id: id,
  campaign_id: id.optional(),
  master_asset_id: id.optional(),
  model_version: z.string().min(1).max(64),
  /** Predicted engagement rate (engagements / impressions) over the model's horizon. */
  predicted: z.number().nonnegative(),
  predicted_low: z.number().nonnegative().optional(),
  predicted_high: z.number().nonnegative().optional(),
  /** Observed engagement rate so far, when there is enough data. */
  actual: z.number().nonnegative().optional(),
  actual_low: z.number().nonnegative().optional(),
  actual_high: z.number().nonnegative().optional(),
  impressions: z.number().int().nonnegative().optional(),
  flag: z.enum(SCORE_FLAGS),
  attribution: z.array(attributionSchema).optional(),
  reason: z.enum(['registered', 'rescore_request', 'engagement_shift', 'model_changed', 'tie_changed']),
  scored_at: z.number().int().nonnegative(),
});
export type AssetScore = z.infer<typeof assetScoreSchema>;

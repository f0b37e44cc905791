/**
 * Names that roles share instead of importing each other: bus topics, store tables, fan-out
 * subjects and consumer groups. Changing one is a contract change for every role.
 */
export const TOPICS = {
  /** Accepted engagement events, keyed by asset_id (so one asset's events stay ordered). */
  events: 'engagement.events',
  /** Events a consumer could not decode or validate, with the reason in headers. */
  eventsDlq: 'engagement.events.dlq',
  assetsChanges: 'assets.changes',
  assetsTies: 'assets.ties',
  assetsScores: 'assets.scores',
  rescoreRequests: 'rescore.requests',
  variantRequests: 'creative.variant-requests',
} as const;
export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

export const TABLES = {
  eventsRaw: 'events_raw',
  assetMinute: 'events_by_asset_minute',
  campaignMinute: 'events_by_campaign_minute',
  /** Per-minute rollup by asset and the events' labels (channel, placement, region, device): breakdowns and filtered reads. */
  dimsMinute: 'events_by_dims_minute',
  migrations: 'schema_migrations',
  /** Asset registry (inference/src/registry): one row per version of an asset (ReplacingMergeTree by version). */
  assets: 'assets',
  /** Every tie decision, human or automatic (append-only; an ad's current tie is its latest decision). */
  tieDecisions: 'tie_decisions',
  /** Each ad's stored rankings (top-20 by cosine, by euclidean, calibrated candidates), replaced on re-ranking. */
  tieCandidates: 'tie_candidates',
  /** Videos among the assets: probe, poster and storyboard blobs, and the shot list (JSON) with each shot's keyframes and ties. */
  assetVideos: 'asset_videos',
  /** API keys (core/src/auth/keys.ts): one row per change of a key; hashes only, never secrets. */
  apiKeys: 'api_keys',
  /** Triggers (stream/live/src/triggers): rules (ReplacingMergeTree by version, `deleted` marks removals), firings, webhook deliveries, closed loops. */
  triggerRules: 'trigger_rules',
  triggerFirings: 'trigger_firings',
  triggerDeliveries: 'trigger_deliveries',
  triggerLinks: 'trigger_links',
  /** Snoozes of rules (ReplacingMergeTree by version, `deleted` marks an un-snooze) and acknowledgements of firings. */
  triggerSnoozes: 'trigger_snoozes',
  triggerAcks: 'trigger_acks',
  /** Inference (inference/src/predict, workers): feature vectors, scores, occlusion maps, trained models and the active one. */
  assetFeatures: 'asset_features',
  assetScores: 'asset_scores',
  assetOcclusion: 'asset_occlusion',
  predictionModels: 'prediction_models',
  activeModels: 'prediction_model_active',
  /** Media spend per asset, placement and day (imported from platforms); a restated day replaces the earlier figure. */
  spendDaily: 'spend_daily',
  /** Unique viewers (uniqCombined states of viewer_hash) and their impressions per asset and day: reach and frequency. */
  reachDay: 'reach_by_asset_day',
  /** Video plays per asset, kind, milestone (percent or second reached) and minute: hook, hold, completion, watch time, retention. */
  videoMinute: 'video_by_asset_minute',
} as const;

/** Headers a DLQ record carries next to the original bytes. */
export const DLQ_HEADERS = {
  reason: 'x-reject-reason',
  message: 'x-reject-message',
  sourceTopic: 'x-source-topic',
  sourcePartition: 'x-source-partition',
  sourceOffset: 'x-source-offset',
  consumer: 'x-consumer-group',
} as const;

/**
 * One id as one subject token. Ids may hold '.', the NATS token separator (and a subject must not
 * carry whitespace or a bare '*' / '>'), so every character outside [A-Za-z0-9_:-] is written as
 * %XX of its UTF-8 bytes. The mapping is injective ('%' itself is encoded), so two ids never share
 * a subject, and it leaves the usual ids (`asset-17`, `tenant:eu`) readable. Every subject built
 * from an id goes through here.
 */
export function subjectToken(id: string): string {
  if (id.length === 0) return '%';
  return /^[A-Za-z0-9_:-]+$/.test(id) ? id : id.replace(/[^A-Za-z0-9_:-]/gu, (c) => [...UTF8.encode(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

const UTF8 = new TextEncoder();

/** The inverse of subjectToken. */
export function subjectTokenDecode(token: string): string {
  if (token === '%') return '';
  return token.includes('%') ? decodeURIComponent(token) : token;
}

/**
 * Fan-out subjects, NATS-style (tokens separated by '.', '*' one token, '>' the rest). The live
 * aggregators publish one compact delta per changed entity; an asset's subject sits under its
 * campaign's, so a dashboard watching a campaign needs one `campaignAll` subscription.
 *
 *   live.<tenant>.campaign.<campaign>.total          a campaign's partial totals (one per bus partition)
 *   live.<tenant>.campaign.<campaign>.asset.<asset>  one asset
 *   live.<tenant>.master.<master>                     a master's partial totals over its tied ads
 *   live.<tenant>.ties                                an ad's tie changed (aggregators re-attribute it)
 */
export const SUBJECTS = {
  campaignDelta: (tenant: string, campaign: string) => `live.${subjectToken(tenant)}.campaign.${subjectToken(campaign)}.total`,
  assetDelta: (tenant: string, campaign: string, asset: string) =>
    `live.${subjectToken(tenant)}.campaign.${subjectToken(campaign)}.asset.${subjectToken(asset)}`,
  masterDelta: (tenant: string, master: string) => `live.${subjectToken(tenant)}.master.${subjectToken(master)}`,
  /** The campaign's totals and every one of its assets. */
  campaignAll: (tenant: string, campaign: string) => `live.${subjectToken(tenant)}.campaign.${subjectToken(campaign)}.>`,
  /** One asset, whichever campaign it runs in. */
  assetAny: (tenant: string, asset: string) => `live.${subjectToken(tenant)}.campaign.*.asset.${subjectToken(asset)}`,
  tieChanged: (tenant: string) => `live.${subjectToken(tenant)}.ties`,
  /** Tie changes of every tenant. */
  tieChangedAll: 'live.*.ties',
  tenantAll: (tenant: string) => `live.${subjectToken(tenant)}.>`,
  /** Every campaign's totals of a tenant (the campaign id is the 4th token): who is live now. */
  campaignTotalsAny: (tenant: string) => `live.${subjectToken(tenant)}.campaign.*.total`,
  /** Variant requests of a tenant's fired triggers (core/src/triggers.ts variantRequestSchema, JSON). */
  variantRequests: (tenant: string) => `variants.${subjectToken(tenant)}.requests`,
} as const;

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
  migrations: 'schema_migrations',
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

/** Fan-out subjects, NATS-style (tokens separated by '.', '*' one token, '>' the rest). */
export const SUBJECTS = {
  campaignDelta: (tenant: string, campaign: string) => `live.${tenant}.campaign.${campaign}`,
  assetDelta: (tenant: string, asset: string) => `live.${tenant}.asset.${asset}`,
  tenantAll: (tenant: string) => `live.${tenant}.>`,
} as const;

export { startIngest, type IngestRoleDeps, type RunningIngest } from './start.js';
export { EventIntake, type IntakeOptions, type IntakeResult, type Rejection } from './intake.js';
export { registerIngestRoutes, type IngestDeps } from './routes.js';
export { HistoryImport, type HistoryImportOptions, type ImportResult } from './backfill.js';
export { SpendImport, campaignCosts, spendRowSchema, type AssetCosts, type CampaignCosts, type SpendImportResult, type SpendRow } from './spend.js';
export { decodeJsonBody, decodeNdjsonBody, decodeStreamBinary, decodeStreamMessage, decodeStreamText, type DecodedItem } from './decode.js';
export { campaignTotals, listCampaigns, type CampaignTotals, type CampaignSummary } from './totals.js';
export * from './edge/index.js';
export { campaignReach, type CampaignReach, type ReachRow } from './reach.js';
export {
  DIMENSIONS,
  type Dimension,
  type BreakdownResponse,
  type CampaignRangeResponse,
  type AssetRangeResponse,
  type CompareResponse,
} from './analytics.js';

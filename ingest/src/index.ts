export { EventIntake, type IntakeOptions, type IntakeResult, type Rejection } from './intake.js';
export { registerIngestRoutes, type IngestDeps } from './routes.js';
export { HistoryImport, type HistoryImportOptions, type ImportResult } from './backfill.js';
export { decodeJsonBody, decodeNdjsonBody, decodeStreamBinary, decodeStreamMessage, decodeStreamText, type DecodedItem } from './decode.js';
export { campaignTotals, listCampaigns, type CampaignTotals, type CampaignSummary } from './totals.js';
export * from './edge/index.js';

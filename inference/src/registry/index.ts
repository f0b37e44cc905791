/** The asset registry (inference/src/registry): repository, service, routes, API views, the import command. */
export { AssetRepository, type AssetRecord, type VideoRecord, type VideoShotRecord, type StoredDecision, type RankingRecord, type StoredCandidate } from './repository.js';
export { AssetRegistry, deriveAssetId, imageRejection, videoRejection, VIDEO_FORMATS, THUMBNAIL_SIDE } from './service.js';
export { registerRegistryRoutes } from './routes.js';
export { shotView, videoView } from './views.js';
export { apiAsset, resolveMaster, type ApiAsset, type TieSummary } from './views.js';
export { assetTimeline, launches, TIMELINE_KINDS, type Timeline, type TimelineAnnotation, type TimelineKind } from './timeline.js';
export { runAssetsCommand, ASSETS_USAGE } from './import-cli.js';

export { startInference, type InferenceRoleDeps, type RunningInference } from './start.js';
/**
 * @afterglow/inference: image models (embeddings, perceptual hash) and, with the tie engine, the
 * inference role.
 */
export const INFERENCE_ROLE = 'inference' as const;

export * from './models/types.js';
export { createEmbedder, embedCacheKey } from './models/embedder.js';
export { phash, phashFromPixels, phashPixels, hammingDistance, phashToHex } from './models/phash.js';
export { decodeImage, probeImage, sniffFormat, DEFAULT_IMAGE_LIMITS, type ImageFormat, type ProbedImage, type DecodeOptions } from './models/image.js';
export { buildModels, isModelVerified, modelPath, type BuildModelsOptions, type BuiltModel } from './models/build.js';
export { loadManifest, runtimeSpec, MODEL_IDS, MANIFEST_PATH, type ModelManifest, type ModelSpec } from './models/manifest.js';
export { runModelsCommand } from './models/models-cli.js';
export * from './tie/index.js';
// Video creatives: probe, decoder (packaged ffmpeg in child processes), shot boundaries.
export * from './video/index.js';
export { startAssetServices, type AssetServices, type AssetServicesDeps } from './asset-services.js';
export {
  AssetRepository,
  AssetRegistry,
  deriveAssetId,
  registerRegistryRoutes,
  apiAsset,
  runAssetsCommand,
  ASSETS_USAGE,
  type AssetRecord,
  type StoredDecision,
  type ApiAsset,
} from './registry/index.js';
export { ReviewService } from './review/service.js';
export { TieTiers } from './review/tiers.js';

// Features per asset (OCR, subject segmentation, colour, embedding) and ANVIL element edits (issue 5).
export { createFeaturizer, measure, NAMED_FEATURES, FEATURE_DESCRIPTIONS, type Featurizer, type FeaturizerOptions, type AssetFeatures, type AssetAnalysis } from './features/index.js';
export { buildFeatureModels, ensureFeatureModels, loadFeatureManifest, FEATURE_MODEL_IDS, type FeatureModelId } from './models/feature-models.js';
export { decodeForEdits, generateVariants, variantBatches, occlusionGrid, defaultEditSpecs, editLabel } from './edits/index.js';
// Performance prediction, ANVIL attribution and the scoring workers (issue 5).
export * from './predict/index.js';
export * from './attribution/index.js';
export * from './workers/index.js';

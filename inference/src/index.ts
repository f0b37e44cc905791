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

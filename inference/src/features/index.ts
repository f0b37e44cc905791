/**
 * Features per asset (issue 5): interpretable measurements (colour, brightness/contrast, subject
 * share and hue, text overlay area and words, format), the mobilenet_v2 embedding, and the masks and
 * boxes ANVIL's edits (../edits) are built from; `toVector` lays them out in a trained model's columns.
 *
 *   const fz = await createFeaturizer();               // models from AFTERGLOW_MODELS_DIR, built on first use
 *   const f = await fz.featurize(bytes, { meta: { channel: 'instagram' } });
 *   const schema = buildFeatureSchema(trainingFeatures); const x = toVector(f, schema);
 */
export * from './types.js';
export { createFeaturizer, featureKey, measure } from './featurizer.js';
export { buildFeatureSchema, FEATURE_DESCRIPTIONS, NAMED_FEATURES, schemaColumns, toVector, type BuildSchemaOptions } from './schema.js';
export { COLOR_NAMES, NAMED_RGB, colorName, colourStats, dominantColors, rgbToHsv, rgbToLab, type ColourStats } from './colour.js';
export { maskAt, maskBox, maskCentroid, maskShare, rectsMask } from './mask.js';
export { ctcDecode, dbBoxes, wordsOf } from './ocr.js';
export { buildFeatureModels, ensureFeatureModels, FEATURE_MODEL_IDS, isFeatureModelId, loadFeatureManifest, type FeatureModelId } from '../models/feature-models.js';

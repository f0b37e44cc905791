/** Performance prediction (issue 5): training data from ClickHouse, boosted trees, ONNX export, model registry. */
export * from './gbt.js';
export { gbtToOnnx, TREE_INPUT, TREE_OUTPUT } from './onnx-trees.js';
export * from './dataset.js';
export { PredictionDataRepository, ModelRepository, type OutcomeRow, type FeatureRow, type ModelRow } from './repository.js';
export * from './featurizer.js';
export { ModelRegistry, newModelVersion, type ModelCard, type ModelListing, type StoredModel } from './registry.js';
export { trainModel, NotEnoughDataError, type TrainOptions } from './train.js';
export { runTrainCommand } from './train-cli.js';

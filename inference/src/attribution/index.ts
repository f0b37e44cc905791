/** ANVIL attribution (issue 5): element edits -> re-predict -> per-asset deltas, aggregated with bootstrap intervals; occlusion maps. */
export * from './anvil.js';
// The element edits attribution applies (helper F's ../edits), for callers that build their own variants.
export { applyEdit, defaultEditSpecs, generateVariants, occlusionGrid, type EditSpec, type Variant } from '../edits/index.js';

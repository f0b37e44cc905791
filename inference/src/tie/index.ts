/**
 * Tying ads to master photos (Knot-Tie, made fast): six views per ad, exact top-K by best-view
 * cosine / euclidean, ORB + RANSAC verification of the top candidates, a dense check of the best
 * (the ad's pixels located in each), one calibrated score, auto-tie
 * and the human-tie propagation rule. See ./engine.ts.
 */
export { TieEngine, createTieEngine, type TieEngineOptions, type AssetRef, type TieCandidate, type TieResult, type TieProgress, type TieTimings } from './engine.js';
export { colourHistogram, colourDims, fuseColour, DEFAULT_COLOUR_BINS } from './colour.js';
export { adViews, centreCrop, masterViews, masterViewCount, VIEW_NAMES, VIEWS_PER_AD, type View, type ViewName, type MasterViewSet } from './views.js';
export { searchTopK, packVectors, normalizeInPlace, TopHeap, type VectorSet, type Ranked, type AdRanking, type SearchOptions } from './similarity.js';
export {
  loadCalibration,
  scoreCandidates,
  candidateFeatures,
  fitLogistic,
  chooseThreshold,
  chooseAutoTie,
  AUTO_TIE_MIN_INLIERS,
  AUTO_TIE_MAX_COSINE_GAP,
  isAutoTie,
  autoTieOf,
  autoTiePolicy,
  bestCosine,
  type AutoTiePolicy,
  type AutoTieChoice,
  wilsonLower,
  CALIBRATION_PATH,
  DEFAULT_CALIBRATION,
  FEATURE_NAMES,
  type Calibration,
  type Evidence,
} from './calibration.js';
export { propagateHumanTie, DEFAULT_PROPAGATION_RULE, type PropagationRule, type PropagatedTie, type RankedAd } from './propagate.js';
export { retrievalReport, averagePrecision, type RetrievalReport, type RankedPrediction } from './metrics.js';
export { DEFAULT_DENSE_PARAMS, denseScores, thumbSize, type DenseParams, type Thumb } from './dense.js';
export { DEFAULT_ORB_PARAMS, describeSize, type OrbParams, type Features, type MatchResult } from './orb.js';
export { OrbPool } from './orb-pool.js';
export { DiskEmbeddingCache, DiskFeatureCache, type FeatureCache } from './cache.js';
export { runTieCommand, TIE_USAGE, listImages, resultLine, ProgressBar } from './cli.js';

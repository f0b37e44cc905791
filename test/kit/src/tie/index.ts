/** The tie evaluation set (masters cut from packaged photos, ads rendered from them) and its evaluation. */
export { generateTieDataset, defaultTieDataDir, GENERATOR_VERSION, type TieDataset, type MasterRecord, type AdRecord, type GenerateOptions } from './dataset.js';
export { findSourcePhotos, SHORT_PACKAGES, FULL_PACKAGES, type SourcePhoto } from './sources.js';
export { runEngine, setReport, reportBy, runPhashBaseline, runOrbBaseline, fitCalibration, rescore, toPredictions, datasetRefs, type EngineRun, type TieSet, type SetReport, type BaselineRun } from './evaluate.js';
/** The ads are the demo's renderer's (cli/src/demo-ads.ts). */
export { renderAd, AD_FORMATS } from 'afterglow';
export { generateHeldoutDataset, aspectClass, ASPECT_CLASSES, HELDOUT_GENERATOR_VERSION, type HeldoutDataset, type HeldoutAd, type HeldoutMaster, type HeldoutOptions } from './heldout.js';

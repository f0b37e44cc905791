/** Test and benchmark helpers (`@afterglow/inference/testing`): sample photos and the shared models dir. */
export * from './images.js';
export * from './models.js';
export * from '../registry/fixtures.js';

/** Test and benchmark helpers of the inference role (`@afterglow/testkit/inference`): sample photos and the shared models dir. */
export * from './images.js';
export * from './models.js';
export * from './fixtures.js';

export * from './live/index.js';
export * from './triggers/index.js';
export { startLive, type LiveDeps, type RunningLive } from './start.js';

export { start, ROLES, type RoleName, type Running, type StartOptions } from './runtime.js';
export { DemoGenerator, DEMO_TENANT, DEMO_CAMPAIGNS } from './demo.js';
export { demoRules, demoMasterId, DEMO_MASTERS_PER_CAMPAIGN } from './demo-assets.js';
export { DEMO_VIDEO_ADS, DEMO_VIDEO_SECONDS } from './demo-video.js';
export { renderAd, AD_FORMATS, type RenderedAd } from './demo-ads.js';
export { registeredRoutes, installAuth, type RouteEntry, type AuthOptions } from './auth.js';
export { runKeysCommand } from './keys-cli.js';

/**
 * The REST API's contract, browser-safe (zod and fetch; no Node APIs): response schemas and their
 * types (schemas.ts), the route table the servers and the client share (routes.ts), and a typed
 * client (client.ts). Published as `@afterglow/core/api`.
 */
export * from './schemas.js';
export * from './routes.js';
export * from './client.js';

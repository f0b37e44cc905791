export { start, ROLES, type RoleName, type Running, type StartOptions } from './runtime.js';
export { DemoGenerator, DEMO_TENANT } from './demo.js';
export { registeredRoutes, installAuth, type RouteEntry, type AuthOptions } from './auth.js';

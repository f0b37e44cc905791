import type { FastifyInstance } from 'fastify';
import { LIVE_PAGE } from './page.js';

/**
 * The dashboard role. Until the Svelte dashboard lands (dashboard issue) it serves one small live
 * page that reads the public REST API (`/v1/campaigns`), so it needs nothing but a browser.
 */
export async function registerDashboardRoutes(app: FastifyInstance): Promise<void> {
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(LIVE_PAGE));
}

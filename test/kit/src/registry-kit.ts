/**
 * What the registry and review route tests share: real chDB (migrated), the in-process bus, a local
 * blob store, and a bare fastify with the same typed-error mapping as the server (cli/src/http.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  AfterglowError,
  BadRequestError,
  createBlobStore,
  createBus,
  createStore,
  migrate,
  type BlobStore,
  type Bus,
  type DeliveredRecord,
  type Store,
} from '@afterglow/core';

export interface RouteKit {
  dir: string;
  store: Store;
  bus: Bus;
  blobs: BlobStore;
  blobDir: string;
  app: FastifyInstance;
  /** Records of `topic` seen so far (a consumer group started now, from the beginning). */
  watch(topic: string): Promise<DeliveredRecord[]>;
  close(): Promise<void>;
}

export async function routeKit(): Promise<RouteKit> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-registry-'));
  const store = await createStore({ kind: 'chdb', path: path.join(dir, 'chdb'), database: 'afterglow' });
  await migrate(store);
  const bus = await createBus({ kind: 'memory', partitions: 2, maxBacklogBytes: 64 * 1024 * 1024 });
  const blobDir = path.join(dir, 'blobs');
  const blobs = await createBlobStore({ kind: 'local', dir: blobDir });
  const app = Fastify({ logger: false });
  app.setErrorHandler((err: Error, _req, reply) => {
    if (err instanceof BadRequestError) return reply.code(err.status).send({ error: err.code, message: err.message });
    if (err instanceof AfterglowError) return reply.code(503).send({ error: err.code, message: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: ((err as { code?: string }).code ?? 'bad_request').toLowerCase(), message: err.message });
    return reply.code(500).send({ error: 'internal', message: err.message });
  });
  const consumers: Array<{ stop(): Promise<void> }> = [];
  return {
    dir,
    store,
    bus,
    blobs,
    blobDir,
    app,
    async watch(topic) {
      const seen: DeliveredRecord[] = [];
      const c = bus.consumer({ groupId: `watch-${topic}-${consumers.length}`, topics: [topic], fromBeginning: true });
      consumers.push(c);
      await c.run(async (batch) => {
        seen.push(...batch.records);
      });
      return seen;
    },
    async close() {
      await app.close();
      for (const c of consumers) await c.stop();
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const silentLog = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  trace() {},
  fatal() {},
  child() {
    return silentLog;
  },
} as unknown as import('@afterglow/core').Logger;

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBus, createLogger, createStore, migrate, type Bus, type EventLimits, type Logger, type Migration, type Store } from '@afterglow/core';

/** The limits the sink's own tests run under (a day back, five minutes ahead, a ten-minute late window). */
export const SINK_TEST_LIMITS: EventLimits = { maxAgeMs: 86_400_000, maxFutureMs: 300_000, liveLateMs: 600_000, maxAttrsBytes: 2048, dedupWindowMs: 300_000 };

/** What a sink test runs against: an embedded chDB store in a temp dir and an in-process bus. */
export interface SinkRig {
  store: Store;
  bus: Bus;
  /** The options every test sink shares (bus, store, limits, a silent log). */
  base: { bus: Bus; store: Store; limits: EventLimits; log: Logger };
  /** Stops `stop` (the sink, when the test made one), then closes the bus and store and removes the temp dir. */
  close(stop?: () => Promise<unknown>): Promise<void>;
}

/**
 * A chDB store named `database` in a fresh temp dir (migrated with `migrations`, all by default),
 * and a memory bus of `partitions` partitions.
 */
export async function sinkRig(database: string, options: { partitions: number; migrations?: Migration[] }): Promise<SinkRig> {
  const dir = mkdtempSync(path.join(tmpdir(), `afterglow-${database.replaceAll('_', '-')}-`));
  const store = await createStore({ kind: 'chdb', path: dir, database });
  await migrate(store, options.migrations);
  const bus = await createBus({ kind: 'memory', partitions: options.partitions, maxBacklogBytes: 64 * 1024 * 1024 });
  return {
    store,
    bus,
    base: { bus, store, limits: SINK_TEST_LIMITS, log: createLogger('silent') },
    async close(stop) {
      await stop?.();
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

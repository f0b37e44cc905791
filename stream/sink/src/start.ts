import { sinkInsertSettings, type AfterglowConfig, type Bus, type Logger, type Registry, type RoleHandle, type Store } from '@afterglow/core';
import { EventSink } from './sink.js';

export interface SinkDeps {
  config: Pick<AfterglowConfig, 'events' | 'sink' | 'store'>;
  bus: Bus;
  store: Store;
  log: Logger;
  registry?: Registry;
}

export interface RunningSink extends RoleHandle {
  readonly sink: EventSink;
}

/**
 * The stream role: consumes engagement.events into events_raw (exactly-once, poison records to the
 * DLQ) until stopped; stop drains the batch in hand and commits it before leaving the group.
 */
export async function startSink(deps: SinkDeps): Promise<RunningSink> {
  const { config } = deps;
  const sink = new EventSink({
    bus: deps.bus,
    store: deps.store,
    limits: config.events,
    log: deps.log,
    groupId: config.sink.groupId,
    batchMaxRows: config.sink.batchMaxRows,
    batchMaxMs: config.sink.batchMaxMs,
    lanes: config.sink.lanes,
    insertSettings: sinkInsertSettings(config.store),
    registry: deps.registry,
  });
  await sink.start();
  return { sink, ready: {}, stop: () => sink.stop() };
}

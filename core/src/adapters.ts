import type { AfterglowConfig } from './config.js';
import type { Bus } from './bus/types.js';
import type { HotState } from './hot/types.js';
import type { FanOut } from './fanout/types.js';
import type { BlobStore } from './blob/types.js';
import type { Logger } from './log.js';

/**
 * Adapter selection lives here and only here: composition roots call these with the config and
 * get a port; business code never asks which adapter it holds. Each import is lazy so a process
 * loads only the client libraries it uses.
 */
export async function createBus(config: AfterglowConfig['bus'], logger?: Logger): Promise<Bus> {
  if (config.kind === 'kafka') {
    const { KafkaBus } = await import('./bus/kafka.js');
    const kafka = new KafkaBus({
      brokers: config.brokers,
      clientId: config.clientId,
      replicationFactor: config.replicationFactor,
      ...(config.sasl ? { sasl: config.sasl } : {}),
      ...(config.tls ? { tls: config.tls } : {}),
      ...(logger ? { logger } : {}),
    });
    if (!config.namespace) return kafka;
    const { NamespacedBus } = await import('./bus/namespace.js');
    return new NamespacedBus(kafka, config.namespace);
  }
  const { MemoryBus } = await import('./bus/memory.js');
  return new MemoryBus({ partitions: config.partitions, maxBacklogBytes: config.maxBacklogBytes, ...(logger ? { logger } : {}) });
}

export async function createHotState(config: AfterglowConfig['hot']): Promise<HotState> {
  if (config.kind === 'redis') {
    const { RedisHotState } = await import('./hot/redis.js');
    return RedisHotState.connect(config.url);
  }
  const { MemoryHotState } = await import('./hot/memory.js');
  return new MemoryHotState();
}

export async function createFanOut(config: AfterglowConfig['fanout']): Promise<FanOut> {
  if (config.kind === 'nats') {
    const { NatsFanOut } = await import('./fanout/nats.js');
    return NatsFanOut.connect(config.servers);
  }
  const { MemoryFanOut } = await import('./fanout/memory.js');
  return new MemoryFanOut();
}

/** Asset originals and thumbnails: a local directory (embedded default) or an S3-compatible bucket. */
export async function createBlobStore(config: AfterglowConfig['blob']): Promise<BlobStore> {
  if (config.kind === 's3') {
    const { S3BlobStore } = await import('./blob/s3.js');
    return new S3BlobStore(config);
  }
  const { LocalBlobStore } = await import('./blob/local.js');
  return new LocalBlobStore(config.dir);
}

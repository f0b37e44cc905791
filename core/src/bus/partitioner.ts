/**
 * Kafka's default partitioner, shared by both bus adapters so that a key lands on the same
 * partition whichever adapter (or a Java client) wrote it:
 * keyed records go to `toPositive(murmur2(utf8(key))) % partitions` exactly as the Java client
 * and kafkajs's DefaultPartitioner compute it; records without a key go round-robin per topic.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (Utils.murmur2 in the Java client) as a signed 32-bit integer. */
export function murmur2(data: Buffer): number {
  const length = data.length;
  const tail = length & 3;
  const body = length - tail;
  let h = SEED ^ length;
  for (let i = 0; i < body; i += 4) {
    let k = data.readInt32LE(i);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  if (tail === 3) h ^= data.readUInt8(body + 2) << 16;
  if (tail >= 2) h ^= data.readUInt8(body + 1) << 8;
  if (tail >= 1) {
    h ^= data.readUInt8(body);
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition Kafka's default partitioner picks for a non-null key. */
export function partitionForKey(key: string, partitions: number): number {
  // `& 0x7fffffff` is Kafka's toPositive (not Math.abs), kept for cross-client agreement.
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

/** Chooses a partition for (topic, key): murmur2 for keys, a per-topic round-robin for null keys. */
export type Partitioner = (topic: string, key: string | null, partitions: number) => number;

export function createPartitioner(): Partitioner {
  const counters = new Map<string, number>();
  return (topic, key, partitions) => {
    if (key !== null) return partitionForKey(key, partitions);
    const next = counters.get(topic) ?? 0;
    counters.set(topic, (next + 1) % 0x7fffffff);
    return next % partitions;
  };
}

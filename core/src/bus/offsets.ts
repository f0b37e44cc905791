import type { DeliveredBatch, PartitionOffset } from './types.js';

/** The offset to commit once every record of `batch` is handled (Kafka commits the NEXT offset). */
export function offsetAfter(batch: DeliveredBatch): PartitionOffset[] {
  const last = batch.records[batch.records.length - 1];
  return last ? [{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }] : [];
}

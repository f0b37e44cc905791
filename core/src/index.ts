export * from './config.js';
export * from './errors.js';
export * from './events.js';
export * from './dedup.js';
export * from './tenant-lru.js';
export * from './random.js';
export * from './contracts.js';
export * from './assets.js';
export * from './triggers.js';
export { ACK_LIMITS, RULE_LIMITS, SNOOZE_LIMITS, TRIGGER_ID_RE, TRIGGER_PARAM_SPECS, checkParam, checkRuleForm, snoozeEnd, type ParamSpec, type RuleForm } from './trigger-limits.js';
export * from './log.js';
export * from './metrics.js';
export type { RoleHandle } from './role.js';
export type * from './bus/types.js';
export { offsetAfter } from './bus/offsets.js';
export { partitionForKey } from './bus/partitioner.js';
export type * from './hot/types.js';
export { MemoryHotState, type MemoryHotStateOptions } from './hot/memory.js';
export type * from './fanout/types.js';
export { createStore, sqlString, type Store } from './store/clickhouse.js';
export {
  EventsRawRepository,
  MAX_DAY_PARTITIONS_PER_INSERT,
  dedupeWithinBatch,
  rawRowKey,
  splitByDayPartitions,
  toRawRow,
  type RawRow,
} from './store/events-raw.js';
export { migrate, migrationsTableDdl, MIGRATIONS, type Migration } from './store/migrations.js';
export { REACH_ERROR, dailyCosts, reachByAsset, reachError, reachFigures, tiedAdsOf, unionReach, utcDay, type DayCosts, type ReachFigures } from './store/cost-reach.js';
export { clusterDdlScript, toClusterSchema, ClusterDdlError, type ClusterDdlOptions, type ClusterSchema, type ClusterTable } from './store/cluster-ddl.js';
export { CLUSTER_SINK_INSERT_SETTINGS, SINGLE_NODE_SINK_INSERT_SETTINGS, sinkInsertSettings, applySchema, probeStore } from './store/cluster.js';
export { createBus, createHotState, createFanOut, createBlobStore } from './adapters.js';
export { blobKey, checkBlobKey, BlobCorruptError, BlobUnavailableError, type BlobStore, type PutResult } from './blob/types.js';
export * from './auth/principal.js';
export * from './auth/keys.js';
export * from './auth/limits.js';
export * from './auth/failures.js';
export { PingLiveness, type PingableSocket } from './ws/liveness.js';

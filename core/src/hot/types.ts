/**
 * The hot-state port: small, fast, shared state (live counters, leaderboards, dedup markers).
 * Adapters: Redis (ioredis) in production so state survives a restart and is shared by
 * aggregators; memory for the embedded default. Values are strings, as in Redis.
 */
export interface HotState {
  readonly kind: 'redis' | 'memory';
  /**
   * Whether other processes see what this one writes, and it outlives the process (Redis). The
   * memory adapter is this process's own and starts empty with it: state kept there must be
   * rebuilt from elsewhere (the store) on start.
   */
  readonly shared: boolean;
  get(key: string): Promise<string | null>;
  mget(keys: string[]): Promise<(string | null)[]>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Set only if absent; true when this call set it (dedup markers, leases). */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Set-if-absent for many fields at once, in two hashes (consecutive time buckets): for each
   * [field, value], the value `previous` or `current` already holds for the field, or null when this
   * call stored it in `current`. A `current` this call creates expires after `ttlMs`. Atomic per
   * call. On Redis Cluster both keys must share a hash slot (a `{...}` tag).
   */
  claimFields(current: string, previous: string, entries: readonly (readonly [field: string, value: string])[], ttlMs: number): Promise<(string | null)[]>;
  del(keys: string[]): Promise<number>;
  expire(key: string, ttlMs: number): Promise<boolean>;

  hset(key: string, fields: Record<string, string | number>): Promise<void>;
  hgetall(key: string): Promise<Record<string, string>>;
  /** Add each increment to its field; returns the new values in the same field order. */
  hincrby(key: string, increments: Record<string, number>): Promise<Record<string, number>>;

  zadd(key: string, members: { member: string; score: number }[]): Promise<void>;
  /** Members by rank, highest score first when `reverse`. `stop` is inclusive, -1 = last. */
  zrange(key: string, start: number, stop: number, options?: { reverse?: boolean }): Promise<{ member: string; score: number }[]>;
  zrem(key: string, members: string[]): Promise<number>;
  /** How many members the sorted set holds (0 when absent). */
  zcard(key: string): Promise<number>;

  /**
   * Token bucket (per-key rate limits shared by processes), atomic: the bucket at `key` refills
   * `perSec` tokens a second up to `capacity` (a new bucket starts full) and gives `cost` tokens
   * when it holds at least min(cost, capacity) of them, so a cost above the capacity is allowed
   * from a full bucket and leaves it in debt. `retryAfterMs`: when it would be allowed (0 if ok).
   */
  takeTokens(key: string, bucket: TokenBucket, cost: number): Promise<{ ok: boolean; retryAfterMs: number }>;
  /**
   * Hold one of at most `limit` slots under `key` (concurrent connections) as `member` for
   * `ttlMs`; calling again renews it. False when `limit` others hold unexpired slots. A holder
   * that dies without releasing frees its slot when the TTL runs out.
   */
  acquireSlot(key: string, member: string, limit: number, ttlMs: number): Promise<boolean>;
  releaseSlot(key: string, member: string): Promise<void>;

  /** Run several writes as one round trip; atomic on Redis (MULTI), trivially so in memory. */
  batch(ops: HotOp[]): Promise<void>;
  close(): Promise<void>;
}

export interface TokenBucket {
  capacity: number;
  perSec: number;
}

export type HotOp =
  | { op: 'set'; key: string; value: string; ttlMs?: number }
  /** Append to a string (created empty when missing); its TTL, if any, is kept. */
  | { op: 'append'; key: string; value: string }
  | { op: 'del'; key: string }
  | { op: 'hset'; key: string; fields: Record<string, string | number> }
  | { op: 'hincrby'; key: string; increments: Record<string, number> }
  | { op: 'zadd'; key: string; member: string; score: number }
  | { op: 'expire'; key: string; ttlMs: number };

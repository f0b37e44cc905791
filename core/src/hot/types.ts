/**
 * The hot-state port: small, fast, shared state (live counters, leaderboards, dedup markers).
 * Adapters: Redis (ioredis) in production so state survives a restart and is shared by
 * aggregators; memory for the embedded default. Values are strings, as in Redis.
 */
export interface HotState {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  mget(keys: string[]): Promise<(string | null)[]>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Set only if absent; true when this call set it (dedup markers, leases). */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
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

  /** Run several writes as one round trip; atomic on Redis (MULTI), trivially so in memory. */
  batch(ops: HotOp[]): Promise<void>;
  close(): Promise<void>;
}

export type HotOp =
  | { op: 'set'; key: string; value: string; ttlMs?: number }
  | { op: 'del'; key: string }
  | { op: 'hset'; key: string; fields: Record<string, string | number> }
  | { op: 'hincrby'; key: string; increments: Record<string, number> }
  | { op: 'zadd'; key: string; member: string; score: number }
  | { op: 'expire'; key: string; ttlMs: number };

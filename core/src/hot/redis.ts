import { Redis, type ChainableCommander } from 'ioredis';
import { AfterglowError } from '../errors.js';
import type { HotOp, HotState, TokenBucket } from './types.js';
import { checkBucket } from './bucket.js';

/** KEYS[1] bucket; ARGV capacity, perSec, cost. Returns {ok, retryAfterMs}. Same rule as bucket.ts/memory.ts. */
const TAKE_TOKENS = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or capacity
local at = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local need = math.min(cost, capacity)
local ok = 0
local retry = 0
if tokens >= need then
  tokens = tokens - cost
  ok = 1
else
  retry = math.ceil((need - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - math.min(tokens, capacity)) * 1000 / rate) + 1000)
return {ok, retry}`;

/** KEYS[1] slots hash (member -> expiry ms); ARGV member, limit, ttlMs. Returns 1 when held. */
/** KEYS: current, previous; ARGV: ttl ms, then field, value pairs. Replies the held value or false (nil) per pair. */
const CLAIM_FIELDS = `
local out = {}
for i = 2, #ARGV - 1, 2 do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  if not held then
    if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 0 then held = redis.call('HGET', KEYS[1], ARGV[i]) end
  end
  out[#out + 1] = held
end
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return out
`;

const ACQUIRE_SLOT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) <= now then redis.call('HDEL', KEYS[1], all[i]) else n = n + 1 end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and n >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], tostring(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

export interface RedisHotStateOptions {
  /** Shown by CLIENT LIST for this connection. */
  name?: string;
  /** A command without a reply within this time rejects (default 5 s). */
  commandTimeoutMs?: number;
  /** Connection errors as they happen (commands reject on their own; this is for logs). */
  onError?: (err: Error) => void;
}

/**
 * Hot state on Redis through ioredis. Built to fail fast: while Redis is unreachable a command
 * waits for at most one reconnect attempt and then rejects, instead of queuing in memory until
 * Redis returns; the connection itself keeps reconnecting in the background.
 */
export class RedisHotState implements HotState {
  readonly kind = 'redis' as const;
  readonly shared = true;

  private constructor(private readonly redis: Redis) {}

  /** Connects now, so a wrong URL or a dead Redis fails at start-up. */
  static async connect(url: string, options: RedisHotStateOptions = {}): Promise<RedisHotState> {
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 2_000,
      commandTimeout: options.commandTimeoutMs ?? 5_000,
      // The offline queue only bridges a blip: queued commands are failed after one retry.
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
      ...(options.name !== undefined && { connectionName: options.name }),
    });
    // Without a listener ioredis prints every connection error to stderr.
    redis.on('error', options.onError ?? (() => {}));
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new AfterglowError('hot_unavailable', `cannot connect to Redis: ${String(err)}`, { cause: err });
    }
    return new RedisHotState(redis);
  }

  async get(key: string): Promise<string | null> {
    return reply(this.redis.get(key));
  }

  async mget(keys: string[]): Promise<(string | null)[]> {
    return keys.length === 0 ? [] : reply(this.redis.mget(keys));
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    await reply(ttlMs === undefined ? this.redis.set(key, value) : this.redis.set(key, value, 'PX', ttl(ttlMs)));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await reply(this.redis.set(key, value, 'PX', ttl(ttlMs), 'NX'))) === 'OK';
  }

  async del(keys: string[]): Promise<number> {
    return keys.length === 0 ? 0 : reply(this.redis.del(keys));
  }

  async expire(key: string, ttlMs: number): Promise<boolean> {
    return (await reply(this.redis.pexpire(key, ttl(ttlMs)))) === 1;
  }

  async hset(key: string, fields: Record<string, string | number>): Promise<void> {
    if (Object.keys(fields).length > 0) await reply(this.redis.hset(key, fields));
  }

  async hgetall(key: string): Promise<Record<string, string>> {
    return reply(this.redis.hgetall(key));
  }

  async hincrby(key: string, increments: Record<string, number>): Promise<Record<string, number>> {
    const entries = Object.entries(increments);
    if (entries.length === 0) return {};
    const pipeline = this.redis.pipeline();
    queueIncrements(pipeline, key, entries);
    const values = results(await reply(pipeline.exec()));
    return Object.fromEntries(entries.map(([field], i) => [field, Number(values[i])]));
  }

  async zadd(key: string, members: { member: string; score: number }[]): Promise<void> {
    if (members.length === 0) return;
    await reply(this.redis.zadd(key, ...members.flatMap(({ member, score }) => [scoreArg(score), member])));
  }

  async zrange(key: string, start: number, stop: number, options: { reverse?: boolean } = {}): Promise<{ member: string; score: number }[]> {
    const flat = await reply(
      options.reverse ? this.redis.zrevrange(key, start, stop, 'WITHSCORES') : this.redis.zrange(key, start, stop, 'WITHSCORES'),
    );
    const out: { member: string; score: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i]!, score: parseScore(flat[i + 1]!) });
    return out;
  }

  async zcard(key: string): Promise<number> {
    return reply(this.redis.zcard(key));
  }

  async zrem(key: string, members: string[]): Promise<number> {
    return members.length === 0 ? 0 : reply(this.redis.zrem(key, ...members));
  }

  /** One Lua script, so concurrent processes share the bucket exactly; Redis's clock, so theirs need not agree. */
  async takeTokens(key: string, bucket: TokenBucket, cost: number): Promise<{ ok: boolean; retryAfterMs: number }> {
    checkBucket(bucket, cost);
    const [ok, retry] = (await reply(this.redis.eval(TAKE_TOKENS, 1, key, bucket.capacity, bucket.perSec, cost))) as [number, number];
    return { ok: ok === 1, retryAfterMs: Number(retry) };
  }

  async claimFields(current: string, previous: string, entries: readonly (readonly [string, string])[], ttlMs: number): Promise<(string | null)[]> {
    if (entries.length === 0) return [];
    const replied = (await reply(this.redis.eval(CLAIM_FIELDS, 2, current, previous, ttl(ttlMs), ...entries.flat()))) as (string | null)[];
    return entries.map((_, i) => replied[i] ?? null);
  }

  async acquireSlot(key: string, member: string, limit: number, ttlMs: number): Promise<boolean> {
    return (await reply(this.redis.eval(ACQUIRE_SLOT, 1, key, member, limit, ttl(ttlMs)))) === 1;
  }

  async releaseSlot(key: string, member: string): Promise<void> {
    await reply(this.redis.hdel(key, member));
  }

  /**
   * MULTI/EXEC: no other client sees part of the batch. Redis has no rollback, so an op that
   * fails at run time (e.g. a type mismatch) leaves the others applied; the batch then rejects.
   */
  async batch(ops: HotOp[]): Promise<void> {
    if (ops.length === 0) return;
    const multi = this.redis.multi();
    for (const op of ops) {
      switch (op.op) {
        case 'set':
          if (op.ttlMs === undefined) multi.set(op.key, op.value);
          else multi.set(op.key, op.value, 'PX', ttl(op.ttlMs));
          break;
        case 'append':
          multi.append(op.key, op.value);
          break;
        case 'del':
          multi.del(op.key);
          break;
        case 'hset':
          if (Object.keys(op.fields).length > 0) multi.hset(op.key, op.fields);
          break;
        case 'hincrby':
          queueIncrements(multi, op.key, Object.entries(op.increments));
          break;
        case 'zadd':
          multi.zadd(op.key, scoreArg(op.score), op.member);
          break;
        case 'expire':
          multi.pexpire(op.key, ttl(op.ttlMs));
          break;
      }
    }
    results(await reply(multi.exec()));
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    try {
      await this.redis.quit();
    } catch {
      // Redis is unreachable: drop the connection (and its reconnect loop) instead.
      this.redis.disconnect();
    }
  }
}

/** HINCRBY for integer increments, HINCRBYFLOAT otherwise (HINCRBY rejects fractions). */
function queueIncrements(commands: ChainableCommander, key: string, entries: [string, number][]): void {
  for (const [field, by] of entries) {
    if (!Number.isFinite(by)) throw new AfterglowError('invalid_argument', `the increment for ${JSON.stringify(field)} must be a finite number, got ${by}`);
    if (Number.isInteger(by)) commands.hincrby(key, field, by);
    else commands.hincrbyfloat(key, field, by);
  }
}

/** The replies of a pipeline or transaction, or its first error. */
function results(replies: [Error | null, unknown][] | null): unknown[] {
  if (!replies) throw new AfterglowError('hot_unavailable', 'Redis discarded the transaction');
  const failed = replies.find(([err]) => err);
  if (failed) throw translate(failed[0]);
  return replies.map(([, value]) => value);
}

/** Awaits a command, turning its failure into the error codes the memory adapter uses. */
async function reply<T>(command: Promise<T>): Promise<T> {
  try {
    return await command;
  } catch (err) {
    throw translate(err);
  }
}

function translate(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof AfterglowError) return err;
  // Redis answered: a type mismatch or a non-numeric field are the caller's; others stay raw.
  if (err.name === 'ReplyError') {
    if (err.message.startsWith('WRONGTYPE')) return new AfterglowError('wrong_type', err.message, { cause: err });
    if (err.message.startsWith('ERR hash value is not')) return new AfterglowError('not_numeric', err.message, { cause: err });
    return err;
  }
  // No answer: closed connection, retries exhausted or command timeout.
  return new AfterglowError('hot_unavailable', `Redis is unavailable: ${err.message}`, { cause: err });
}

function ttl(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new AfterglowError('invalid_argument', `a TTL must be a positive number of milliseconds, got ${ms}`);
  return Math.ceil(ms);
}

function scoreArg(score: number): string {
  if (Number.isNaN(score)) throw new AfterglowError('invalid_argument', 'a sorted-set score must be a number, got NaN');
  return score === Infinity ? '+inf' : score === -Infinity ? '-inf' : String(score);
}

function parseScore(reply: string): number {
  if (reply === 'inf' || reply === '+inf') return Infinity;
  if (reply === '-inf') return -Infinity;
  return Number(reply);
}

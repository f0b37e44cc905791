import { AfterglowError } from '../errors.js';
import type { TokenBucket } from './types.js';

/** Shared argument checks and TTL rule of the token bucket, so both adapters agree. */
export function checkBucket(bucket: TokenBucket, cost: number): void {
  if (!(Number.isFinite(bucket.capacity) && bucket.capacity > 0 && Number.isFinite(bucket.perSec) && bucket.perSec > 0)) {
    throw new AfterglowError('invalid_argument', `a token bucket needs a positive capacity and rate, got ${bucket.capacity} and ${bucket.perSec}/s`);
  }
  if (!(Number.isFinite(cost) && cost >= 0)) throw new AfterglowError('invalid_argument', `a token cost must be a non-negative number, got ${cost}`);
}

/** A bucket is dropped once it would have refilled anyway (plus a second), so idle keys cost nothing. */
export function bucketTtl(bucket: TokenBucket, tokens: number): number {
  return Math.ceil(((bucket.capacity - Math.min(tokens, bucket.capacity)) * 1000) / bucket.perSec) + 1000;
}

import { hash } from 'node:crypto';
import type { EngagementEvent } from './events.js';

/**
 * Which events were already counted: the guard of every live view against client retries. A
 * client that lost a response posts the same event again; it reaches the bus as a new record (a
 * new offset), so offsets cannot tell, only (tenant_id, event_id) can.
 *
 * Entries are fingerprints: 52 bits of SHA-1 over (tenant_id, event_id), so a client cannot aim
 * a collision at another tenant's ids, and two ids collide with probability ~n²/2^53 (1e-4 with
 * 1M ids in the window). Each keeps a 32-bit digest of the payload, so a re-used id with other
 * content is told apart from a retry ("conflict"); either way the first write wins.
 *
 * Entries sit in buckets by arrival time (`bucketMs`) and go a whole bucket at a time once the
 * newest arrival is `windowMs` past them: a retry later than the window counts again. Memory:
 * ~40 bytes an entry in a JS Map, so rate x window entries (2,000 events/s for 5 min: 600k, ~24 MB).
 */
export type DedupVerdict = 'new' | 'retry' | 'conflict';

/** One entry as persisted: [bucket, fingerprint, payload digest]. */
export type DedupEntry = [bucket: number, fingerprint: number, digest: number];

/** Digests are unsigned 32-bit: -1 stands for "counted, payload unknown". */
const ANY_PAYLOAD = -1;

export class DedupWindow {
  private readonly buckets = new Map<number, Map<number, number>>();
  private newestBucket = -Infinity;
  private added: DedupEntry[] = [];

  /** `persisted`: keep what add() adds for drain(); a window that is never persisted must say false. */
  constructor(
    readonly windowMs: number,
    readonly bucketMs = 60_000,
    readonly persisted = true,
  ) {
    if (!(windowMs > 0) || !(bucketMs > 0)) throw new RangeError('DedupWindow: windowMs and bucketMs must be positive');
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.size;
    return n;
  }

  /** What `fingerprint` with `digest` would be now (nothing changes). */
  verdict(fingerprint: number, digest: number): DedupVerdict {
    for (const b of this.buckets.values()) {
      const known = b.get(fingerprint);
      if (known !== undefined) return known === digest || known === ANY_PAYLOAD ? 'retry' : 'conflict';
    }
    return 'new';
  }

  /**
   * Ids counted elsewhere whose payload is not known here (the store's, when live state is rebuilt
   * from it): any copy of them is a retry. [bucket, fingerprint]; not handed out by drain().
   */
  loadKnown(entries: Iterable<readonly [bucket: number, fingerprint: number]>): void {
    for (const [bucket, fingerprint] of entries) this.put(bucket, fingerprint, ANY_PAYLOAD);
  }

  /** Remember an event that arrived at `at` (epoch ms); it is handed out once by drain(). */
  add(fingerprint: number, digest: number, at: number): void {
    const bucket = Math.floor(at / this.bucketMs);
    this.put(bucket, fingerprint, digest);
    if (this.persisted) this.added.push([bucket, fingerprint, digest]);
  }

  /** Entries persisted earlier (they are not handed out by drain()). */
  load(entries: Iterable<DedupEntry>): void {
    for (const [bucket, fingerprint, digest] of entries) this.put(bucket, fingerprint, digest);
  }

  /** Entries added since the last drain (for persistence), oldest first. */
  drain(): DedupEntry[] {
    const out = this.added;
    this.added = [];
    return out;
  }

  /** The oldest bucket still inside the window, given the newest arrival so far. */
  get oldestBucket(): number {
    return this.newestBucket - Math.ceil(this.windowMs / this.bucketMs);
  }

  private put(bucket: number, fingerprint: number, digest: number): void {
    if (bucket > this.newestBucket) {
      this.newestBucket = bucket;
      const oldest = this.oldestBucket;
      for (const b of this.buckets.keys()) if (b < oldest) this.buckets.delete(b);
    }
    if (bucket < this.oldestBucket) return;
    let entries = this.buckets.get(bucket);
    if (!entries) this.buckets.set(bucket, (entries = new Map()));
    entries.set(fingerprint, digest);
  }
}

/** 52 bits of SHA-1 over (tenant, event id): exact in a double, not steerable by a client. */
export function eventFingerprint(tenantId: string, eventId: string): number {
  const h = hash('sha1', `${tenantId}\u0000${eventId}`, 'buffer');
  return h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12);
}

const BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * A fingerprint as the field of its event-id claim in hot state: base 36, the very string
 * `fingerprint.toString(36)` gives, which V8 builds through its general float-to-radix path (some
 * microseconds for a 52-bit value, once per live event); whole-number division is a tenth of that.
 */
export function fingerprintField(fingerprint: number): string {
  if (!Number.isSafeInteger(fingerprint) || fingerprint < 0) return fingerprint.toString(36);
  let n = fingerprint;
  let out = '';
  do {
    const q = Math.floor(n / 36);
    out = BASE36[n - q * 36]! + out;
    n = q;
  } while (n > 0);
  return out;
}

/** 32-bit FNV-1a of what the client said about the event (not received_at, which ingest sets). */
export function payloadDigest(e: EngagementEvent): number {
  const text = `${e.campaign_id}\u0000${e.asset_id}\u0000${e.kind}\u0000${e.value}\u0000${e.occurred_at}\u0000${e.channel ?? ''}\u0000${e.placement ?? ''}\u0000${e.region ?? ''}\u0000${e.device ?? ''}\u0000${e.edge_node ?? ''}\u0000${e.attrs ? JSON.stringify(e.attrs) : ''}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * One bucket's entries as a compact string: 12 bytes each (fingerprint, digest) in base64, 16
 * characters with no padding, so strings appended to one another still decode as a whole.
 */
export function encodeDedupEntries(entries: readonly (readonly [fingerprint: number, digest: number])[]): string {
  const buf = Buffer.allocUnsafe(entries.length * 12);
  entries.forEach(([fingerprint, digest], i) => {
    buf.writeUInt32BE(Math.floor(fingerprint / 2 ** 20), i * 12);
    buf.writeUInt32BE(fingerprint % 2 ** 20, i * 12 + 4);
    buf.writeUInt32BE(digest >>> 0, i * 12 + 8);
  });
  return buf.toString('base64');
}

export function decodeDedupEntries(text: string, bucket: number): DedupEntry[] {
  const buf = Buffer.from(text, 'base64');
  const out: DedupEntry[] = [];
  for (let o = 0; o + 12 <= buf.length; o += 12) out.push([bucket, buf.readUInt32BE(o) * 2 ** 20 + buf.readUInt32BE(o + 4), buf.readUInt32BE(o + 8)]);
  return out;
}

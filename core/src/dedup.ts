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
  const text = `${tenantId}\u0000${eventId}`;
  const short = sha1Prefix52OfShortAscii(text);
  if (short !== undefined) return short;
  const h = hash('sha1', text, 'buffer');
  return h.readUInt32BE(0) * 2 ** 20 + (h.readUInt32BE(4) >>> 12);
}

const SHA1_BLOCK = new Uint8Array(64);
const SHA1_WORDS = new Int32Array(80);

/**
 * The first 52 bits of SHA-1 (FIPS 180-4) of an ASCII text that fits one block (at most 55 bytes),
 * in JS: every live event needs one, and the call into OpenSSL costs about three times these 80
 * rounds. Anything longer or not ASCII: undefined (the caller asks node:crypto).
 */
function sha1Prefix52OfShortAscii(text: string): number | undefined {
  const length = text.length;
  if (length > 55) return undefined;
  const block = SHA1_BLOCK;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return undefined;
    block[i] = c;
  }
  block[length] = 0x80;
  block.fill(0, length + 1, 62);
  block[62] = (length * 8) >>> 8;
  block[63] = (length * 8) & 0xff;
  const w = SHA1_WORDS;
  for (let i = 0; i < 16; i++) w[i] = (block[i * 4]! << 24) | (block[i * 4 + 1]! << 16) | (block[i * 4 + 2]! << 8) | block[i * 4 + 3]!;
  for (let i = 16; i < 80; i++) {
    const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
    w[i] = (x << 1) | (x >>> 31);
  }
  let a = 0x67452301;
  let b = 0xefcdab89 | 0;
  let c = 0x98badcfe | 0;
  let d = 0x10325476;
  let e = 0xc3d2e1f0 | 0;
  for (let i = 0; i < 80; i++) {
    let f: number;
    let k: number;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc | 0;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6 | 0;
    }
    const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  const h0 = (0x67452301 + a) >>> 0;
  const h1 = ((0xefcdab89 | 0) + b) >>> 0;
  return h0 * 2 ** 20 + (h1 >>> 12);
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
  // FNV-1a of the fields joined by NULs, fed field by field (no joined string to build per event).
  let h = fnv1a(0x811c9dc5, e.campaign_id);
  h = fnv1a(nul(h), e.asset_id);
  h = fnv1a(nul(h), e.kind);
  h = fnv1a(nul(h), String(e.value));
  h = fnv1a(nul(h), String(e.occurred_at));
  h = fnv1a(nul(h), e.channel ?? '');
  h = fnv1a(nul(h), e.placement ?? '');
  h = fnv1a(nul(h), e.region ?? '');
  h = fnv1a(nul(h), e.device ?? '');
  h = fnv1a(nul(h), e.edge_node ?? '');
  h = fnv1a(nul(h), e.attrs ? JSON.stringify(e.attrs) : '');
  return h >>> 0;
}

function fnv1a(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h;
}

/** FNV-1a of one NUL character. */
function nul(h: number): number {
  return Math.imul(h, 0x01000193);
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

import { DecayTracker, fitDecay, type DecayBin, type DecayFit } from './decay.js';
import type { EntityKind } from './keys.js';
import { ENGAGEMENT_INDEXES } from './rates.js';
import { Buckets, isRowField, type Layout } from './windows.js';

/**
 * The state of one entity as it sits in hot state (a hash) and travels on the fan-out (a delta):
 * rows (one per ring slot, see windows.ts) plus a little meta. Both the aggregator that writes it
 * and the readers (gateway replicas, REST) use this module, so the two sides cannot drift.
 *
 * Meta fields: k kind (a|c|m), t tenant, i id, p partition, n version (changes applied: events,
 * re-attributions), e epoch (bumped when a master's share loses an ad, the only time counts go
 * down), c campaign and m master of an asset, db its decay tracker, u when it was written.
 */

const KIND_CODE: Record<EntityKind, string> = { asset: 'a', campaign: 'c', master: 'm' };
const CODE_KIND: Record<string, EntityKind> = { a: 'asset', c: 'campaign', m: 'master' };

export interface EntityMeta {
  kind: EntityKind;
  tenant: string;
  id: string;
  partition: number;
  n: number;
  epoch: number;
  /** Assets: the campaign of their latest event; '' otherwise. */
  campaign: string;
  /** Assets: the master they are tied to, '' when none. */
  master: string;
}

export interface EntitySnapshot {
  meta: EntityMeta;
  buckets: Buckets;
  /** The decay tracker as stored (assets). */
  decay: string | undefined;
  updatedAt: number;
}

/** Reads an entity hash; undefined when the key is missing (or not ours). */
export function parseEntityHash(hash: Record<string, string>, layout: Layout): EntitySnapshot | undefined {
  const kind = CODE_KIND[hash.k ?? ''];
  if (!kind || hash.t === undefined || hash.i === undefined) return undefined;
  const buckets = new Buckets(layout);
  for (const [field, value] of Object.entries(hash)) if (isRowField(field)) buckets.applyRow(field, value, 'replace');
  return {
    meta: {
      kind,
      tenant: hash.t,
      id: hash.i,
      partition: int(hash.p),
      n: int(hash.n),
      epoch: int(hash.e),
      campaign: hash.c ?? '',
      master: hash.m ?? '',
    },
    buckets,
    decay: hash.db,
    updatedAt: int(hash.u),
  };
}

export function metaFields(meta: EntityMeta, updatedAt: number): Record<string, string | number> {
  const out: Record<string, string | number> = {
    k: KIND_CODE[meta.kind],
    t: meta.tenant,
    i: meta.id,
    p: meta.partition,
    n: meta.n,
    e: meta.epoch,
    u: updatedAt,
  };
  if (meta.kind === 'asset') {
    out.c = meta.campaign;
    out.m = meta.master;
  }
  return out;
}

/** One entity's change, as published on the fan-out. */
export interface Delta {
  meta: EntityMeta;
  /** The version the previous delta of this entity carried: a receiver at a lower one missed something. */
  n0: number;
  /** Changed rows (all rows when `full`). */
  rows: Record<string, string>;
  /** The rows are the whole state (after an epoch change): replace, do not merge. */
  full: boolean;
  decay: string | undefined;
}

export function encodeDelta(d: Delta): Uint8Array {
  const m = d.meta;
  const o: Record<string, unknown> = { k: KIND_CODE[m.kind], t: m.tenant, i: m.id, p: m.partition, n0: d.n0, n: m.n, e: m.epoch, r: d.rows };
  if (m.kind === 'asset') {
    o.c = m.campaign;
    o.m = m.master;
  }
  if (d.full) o.full = 1;
  if (d.decay !== undefined) o.db = d.decay;
  return Buffer.from(JSON.stringify(o));
}

/** Decodes a delta; undefined for anything malformed (fan-out payloads are not trusted blindly). */
export function decodeDelta(data: Uint8Array): Delta | undefined {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const kind = CODE_KIND[String(o.k)];
  if (!kind || typeof o.t !== 'string' || typeof o.i !== 'string' || typeof o.r !== 'object' || o.r === null) return undefined;
  const rows: Record<string, string> = {};
  for (const [f, v] of Object.entries(o.r as Record<string, unknown>)) if (isRowField(f) && typeof v === 'string') rows[f] = v;
  return {
    meta: {
      kind,
      tenant: o.t,
      id: o.i,
      partition: num(o.p),
      n: num(o.n),
      epoch: num(o.e),
      campaign: typeof o.c === 'string' ? o.c : '',
      master: typeof o.m === 'string' ? o.m : '',
    },
    n0: num(o.n0),
    rows,
    full: o.full === 1,
    decay: typeof o.db === 'string' ? o.db : undefined,
  };
}

const MINUTE = 60_000;

/**
 * The engagement series a decay fit runs on: the tracker's bins (finished history), then minute
 * bins from the live ring for what the tracker has not absorbed yet, up to `now` (the current
 * minute counts for the part of it that has passed).
 */
export function decaySeries(tracker: DecayTracker, buckets: Buckets, now: number): DecayBin[] {
  const bins = tracker.toBins();
  const current = Math.floor(now / MINUTE);
  const ring = buckets.minuteBuckets(ENGAGEMENT_INDEXES);
  let from = tracker.absorbedUntil;
  if (from < 0) from = ring.length > 0 ? ring[0]![0] : current;
  // Minutes the ring no longer holds (and the tracker never absorbed) had no engagement: one zero bin.
  const firstRing = Math.max(from, current - buckets.minuteSlots + 1);
  if (bins.length > 0 && firstRing > from) bins.push({ start: from * MINUTE, end: firstRing * MINUTE, count: 0 });
  const byMinute = new Map(ring);
  for (let m = firstRing; m <= current; m++) {
    const end = m === current ? Math.max(now, m * MINUTE + 1_000) : (m + 1) * MINUTE;
    const count = byMinute.get(m) ?? 0;
    if (bins.length === 0 && count === 0) continue;
    bins.push({ start: m * MINUTE, end, count });
  }
  return bins;
}

export function fitEntityDecay(decay: string | undefined, buckets: Buckets, now: number, fatigueFraction: number, curve: boolean): DecayFit {
  return fitDecay(decaySeries(DecayTracker.fromJSON(decay), buckets, now), { fatigueFraction, now, curve });
}

function int(v: string | undefined): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

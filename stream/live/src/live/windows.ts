import { EVENT_KINDS, type EventKind } from '@afterglow/core';

/**
 * Sliding windows by `occurred_at`, kept as three rings of time buckets per entity:
 *
 *   tier S: 5 s buckets covering a bit more than 1 min        -> the 1 min window
 *   tier M: 1 min buckets covering 1 h + the live late window  -> the 15 min and 1 h windows
 *   tier H: 1 h buckets covering 24 h + the live late window   -> the 24 h window
 *
 * A window sums the buckets it covers; the oldest bucket, which the window's start cuts through,
 * counts in proportion to the part inside (linear interpolation), so windows slide smoothly. A
 * bucket's slot is `bucketNo % slots`, and every slot remembers its bucketNo, so events can
 * arrive in any order: a late event lands in its own bucket as long as the ring still holds it,
 * and a slot is reset only when a newer bucket claims it. Everything older than a ring's reach is
 * outside every window that ring serves, so nothing is lost that a window needs.
 *
 * Memory: 8 counts (Uint32) and 2 value sums (Float64) per slot, (14 + 72 + 27) slots with the
 * default 10 min late window: about 5.5 KB per entity, whatever its traffic. Rows (one slot as
 * text) are the unit of persistence (a hot-state hash field each) and of fan-out deltas.
 */

export const KIND_COUNT = EVENT_KINDS.length;
export const KIND_INDEX: Readonly<Record<EventKind, number>> = Object.fromEntries(EVENT_KINDS.map((k, i) => [k, i])) as Record<EventKind, number>;
/** Value sums kept next to the counts: dwell milliseconds and conversion value. */
export const VALUE_KINDS = ['dwell', 'conversion'] as const;
const VALUE_COLUMN: Partial<Record<EventKind, number>> = { dwell: 0, conversion: 1 };
/** Columns of a window sum / row: the 8 counts in EVENT_KINDS order, then dwell ms, conversion value. */
export const COLUMNS = KIND_COUNT + VALUE_KINDS.length;

export type TierName = 'S' | 'M' | 'H';
export interface TierSpec {
  readonly name: TierName;
  readonly resMs: number;
  readonly slots: number;
}

export interface WindowSpec {
  readonly name: WindowName;
  readonly ms: number;
  /** Index of the tier that serves it. */
  readonly tier: 0 | 1 | 2;
}
export type WindowName = '1m' | '15m' | '1h' | '24h';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const WINDOWS: readonly WindowSpec[] = [
  { name: '1m', ms: MINUTE, tier: 0 },
  { name: '15m', ms: 15 * MINUTE, tier: 1 },
  { name: '1h', ms: HOUR, tier: 1 },
  { name: '24h', ms: 24 * HOUR, tier: 2 },
];
export const WINDOW_NAMES: readonly WindowName[] = WINDOWS.map((w) => w.name);

export interface Layout {
  readonly tiers: readonly [TierSpec, TierSpec, TierSpec];
  readonly lateMs: number;
}

/**
 * The ring sizes for a live late window. Tier S only serves the 1 min window, which a late event
 * (older than a minute) can no longer touch, so it needs no room for lateness; M and H keep the
 * late window on top of their longest window, plus one bucket for the partial oldest one and one
 * for the current one.
 */
export function windowLayout(lateMs: number): Layout {
  const late = Math.max(0, lateMs);
  return {
    lateMs: late,
    tiers: [
      { name: 'S', resMs: 5 * SECOND, slots: MINUTE / (5 * SECOND) + 2 },
      { name: 'M', resMs: MINUTE, slots: Math.ceil((HOUR + late) / MINUTE) + 2 },
      { name: 'H', resMs: HOUR, slots: Math.ceil((24 * HOUR + late) / HOUR) + 2 },
    ],
  };
}

const TIER_INDEX: Record<string, 0 | 1 | 2> = { S: 0, M: 1, H: 2 };

/** Dirty bits of a slot: written since the last hot-state flush / since the last fan-out publish. */
export const DIRTY_FLUSH = 1;
export const DIRTY_PUBLISH = 2;

class Tier {
  readonly bucket: Int32Array;
  readonly counts: Uint32Array;
  readonly values: Float64Array;
  readonly dirty: Uint8Array;

  constructor(readonly spec: TierSpec) {
    this.bucket = new Int32Array(spec.slots).fill(-1);
    this.counts = new Uint32Array(spec.slots * KIND_COUNT);
    this.values = new Float64Array(spec.slots * VALUE_KINDS.length);
    this.dirty = new Uint8Array(spec.slots);
  }

  /** Slots with DIRTY_FLUSH / DIRTY_PUBLISH set, so taking the dirty rows does not scan the ring. */
  readonly flushSlots: number[] = [];
  readonly publishSlots: number[] = [];

  mark(slot: number, bits: number): void {
    const was = this.dirty[slot]!;
    if (bits & DIRTY_FLUSH && !(was & DIRTY_FLUSH)) this.flushSlots.push(slot);
    if (bits & DIRTY_PUBLISH && !(was & DIRTY_PUBLISH)) this.publishSlots.push(slot);
    this.dirty[slot] = was | bits;
  }

  /** The slot holding bucket `b`, claimed (and zeroed) if it holds an older one; -1 if it holds a newer one. */
  claim(b: number): number {
    const slot = b % this.spec.slots;
    const current = this.bucket[slot]!;
    if (current === b) return slot;
    if (current > b) return -1;
    this.bucket[slot] = b;
    this.counts.fill(0, slot * KIND_COUNT, (slot + 1) * KIND_COUNT);
    this.values.fill(0, slot * VALUE_KINDS.length, (slot + 1) * VALUE_KINDS.length);
    return slot;
  }

  row(slot: number): string {
    const c = this.counts;
    const v = this.values;
    const o = slot * KIND_COUNT;
    const ov = slot * VALUE_KINDS.length;
    return `${this.bucket[slot]},${c[o]},${c[o + 1]},${c[o + 2]},${c[o + 3]},${c[o + 4]},${c[o + 5]},${c[o + 6]},${c[o + 7]},${v[ov]},${v[ov + 1]}`;
  }
}

/** A parsed row: bucket number and its 10 columns. */
export interface Row {
  bucket: number;
  columns: number[];
}

export function parseRow(text: string): Row | undefined {
  const parts = text.split(',');
  if (parts.length !== COLUMNS + 1) return undefined;
  const bucket = Number(parts[0]);
  if (!Number.isInteger(bucket) || bucket < 0 || bucket > 0x7fffffff) return undefined;
  const columns = new Array<number>(COLUMNS);
  for (let i = 0; i < COLUMNS; i++) {
    const n = Number(parts[i + 1]);
    if (!Number.isFinite(n) || n < 0) return undefined;
    columns[i] = n;
  }
  return { bucket, columns };
}

/** True for the hash fields / delta keys that hold rows (`S3`, `M41`, `H0`). */
export function isRowField(field: string): boolean {
  return field.length >= 2 && TIER_INDEX[field[0]!] !== undefined && /^[0-9]+$/.test(field.slice(1));
}

/** The three rings of one entity (an asset, or one partition's share of a campaign or master). */
export class Buckets {
  private readonly tiers: [Tier, Tier, Tier];

  constructor(readonly layout: Layout) {
    this.tiers = [new Tier(layout.tiers[0]), new Tier(layout.tiers[1]), new Tier(layout.tiers[2])];
  }

  /**
   * Count `count` events of `kind` (their values summing to `value`) at time `at` in every tier;
   * marks the slots dirty.
   */
  add(kind: number, value: number, at: number, dirty = DIRTY_FLUSH | DIRTY_PUBLISH, count = 1): void {
    const valueColumn = VALUE_COLUMN[EVENT_KINDS[kind]!];
    for (const tier of this.tiers) {
      const slot = tier.claim(Math.floor(at / tier.spec.resMs));
      if (slot < 0) continue;
      tier.counts[slot * KIND_COUNT + kind]! += count;
      if (valueColumn !== undefined) tier.values[slot * VALUE_KINDS.length + valueColumn]! += value;
      tier.mark(slot, dirty);
    }
  }

  /**
   * Rows whose `bit` is set, as field -> row text, clearing the bit. `all` returns every
   * non-empty row (a full state) and clears the bit everywhere.
   */
  takeRows(bit: number, all = false): Record<string, string> {
    const out: Record<string, string> = {};
    for (const tier of this.tiers) {
      const { name, slots } = tier.spec;
      if (all) for (let slot = 0; slot < slots; slot++) if (tier.bucket[slot]! >= 0) out[`${name}${slot}`] = tier.row(slot);
      for (const list of [tier.flushSlots, tier.publishSlots]) {
        const listBit = list === tier.flushSlots ? DIRTY_FLUSH : DIRTY_PUBLISH;
        if (!(bit & listBit)) continue;
        for (const slot of list) {
          if (!all && tier.bucket[slot]! >= 0) out[`${name}${slot}`] = tier.row(slot);
          tier.dirty[slot]! &= ~listBit;
        }
        list.length = 0;
      }
    }
    return out;
  }

  /** Sets `bit` on every non-empty slot (after a load or a re-attribution, to re-send everything). */
  markAll(bit: number): void {
    for (const tier of this.tiers) for (let slot = 0; slot < tier.spec.slots; slot++) if (tier.bucket[slot]! >= 0) tier.mark(slot, bit);
  }

  /**
   * Apply one row. `replace` takes it as it is (loading a persisted state); `max` merges it into a
   * replica: a newer bucket replaces, the same bucket takes the element-wise maximum (counts only
   * grow, so the maximum is the later state whatever order rows arrive in), an older one is dropped.
   * Returns whether anything changed.
   */
  applyRow(field: string, text: string, mode: 'replace' | 'max'): boolean {
    const t = TIER_INDEX[field[0]!];
    if (t === undefined) return false;
    const row = parseRow(text);
    if (!row) return false;
    const tier = this.tiers[t];
    // Placed by its bucket number, not by the field's slot: a layout change (another late window)
    // must not put a row in the wrong place.
    const slot = row.bucket % tier.spec.slots;
    const current = tier.bucket[slot]!;
    if (current > row.bucket) return false;
    const fresh = current < row.bucket;
    if (fresh) tier.bucket[slot] = row.bucket;
    let changed = fresh;
    for (let k = 0; k < KIND_COUNT; k++) {
      const i = slot * KIND_COUNT + k;
      const next = fresh || mode === 'replace' ? row.columns[k]! : Math.max(tier.counts[i]!, row.columns[k]!);
      if (next !== tier.counts[i]) {
        tier.counts[i] = next;
        changed = true;
      }
    }
    for (let v = 0; v < VALUE_KINDS.length; v++) {
      const i = slot * VALUE_KINDS.length + v;
      const next = fresh || mode === 'replace' ? row.columns[KIND_COUNT + v]! : Math.max(tier.values[i]!, row.columns[KIND_COUNT + v]!);
      if (next !== tier.values[i]) {
        tier.values[i] = next;
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Add (sign 1) or remove (sign -1) another entity's buckets: a master's share gains or loses an
   * ad's history when the ad is tied or untied. Slots where `src` holds an older bucket than this
   * ring are outside every window already and are skipped.
   */
  addFrom(src: Buckets, sign: 1 | -1, dirty = DIRTY_FLUSH | DIRTY_PUBLISH): void {
    for (let t = 0; t < 3; t++) {
      const from = src.tiers[t]!;
      const to = this.tiers[t]!;
      for (let slot = 0; slot < from.spec.slots; slot++) {
        const b = from.bucket[slot]!;
        if (b < 0) continue;
        let s: number;
        if (sign > 0) s = to.claim(b);
        else s = to.bucket[b % to.spec.slots] === b ? b % to.spec.slots : -1;
        if (s < 0) continue;
        for (let k = 0; k < KIND_COUNT; k++) {
          const i = s * KIND_COUNT + k;
          to.counts[i] = Math.max(0, to.counts[i]! + sign * from.counts[slot * KIND_COUNT + k]!);
        }
        for (let v = 0; v < VALUE_KINDS.length; v++) {
          const i = s * VALUE_KINDS.length + v;
          to.values[i] = Math.max(0, to.values[i]! + sign * from.values[slot * VALUE_KINDS.length + v]!);
        }
        to.mark(s, dirty);
      }
    }
  }

  /**
   * Adds the window's sums (counts then value sums, COLUMNS entries) at time `now` into `out`.
   * Buckets newer than `now` (a clock a little behind the writer's) count as current.
   */
  addWindow(window: WindowSpec, now: number, out: Float64Array): void {
    const tier = this.tiers[window.tier];
    const res = tier.spec.resMs;
    const start = now - window.ms;
    const first = Math.floor(start / res);
    for (let slot = 0; slot < tier.spec.slots; slot++) {
      const b = tier.bucket[slot]!;
      if (b < first) continue;
      const f = b === first ? ((b + 1) * res - start) / res : 1;
      const o = slot * KIND_COUNT;
      for (let k = 0; k < KIND_COUNT; k++) out[k]! += f * tier.counts[o + k]!;
      const ov = slot * VALUE_KINDS.length;
      for (let v = 0; v < VALUE_KINDS.length; v++) out[KIND_COUNT + v]! += f * tier.values[ov + v]!;
    }
  }

  /**
   * Per-minute sums over `kinds` (indexes) for minutes [fromMinute, toMinute) from tier M; minutes
   * the ring no longer (or never) held read as 0.
   */
  minuteSeries(fromMinute: number, toMinute: number, kinds: readonly number[]): number[] {
    const tier = this.tiers[1];
    const out: number[] = [];
    for (let m = fromMinute; m < toMinute; m++) {
      const slot = m % tier.spec.slots;
      let sum = 0;
      if (tier.bucket[slot] === m) for (const k of kinds) sum += tier.counts[slot * KIND_COUNT + k]!;
      out.push(sum);
    }
    return out;
  }

  /** Every minute tier M holds, oldest first, with its sum over `kinds`. */
  minuteBuckets(kinds: readonly number[]): [number, number][] {
    const tier = this.tiers[1];
    const out: [number, number][] = [];
    for (let slot = 0; slot < tier.spec.slots; slot++) {
      const b = tier.bucket[slot]!;
      if (b < 0) continue;
      let sum = 0;
      for (const k of kinds) sum += tier.counts[slot * KIND_COUNT + k]!;
      out.push([b, sum]);
    }
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** The oldest minute tier M still holds a bucket for (or undefined when empty). */
  oldestMinute(): number | undefined {
    let oldest: number | undefined;
    for (const b of this.tiers[1].bucket) if (b >= 0 && (oldest === undefined || b < oldest)) oldest = b;
    return oldest;
  }

  /** The newest bucket start time over all tiers (ms), or 0 for an empty entity. */
  newestAt(): number {
    let newest = 0;
    for (const tier of this.tiers) for (const b of tier.bucket) if (b >= 0) newest = Math.max(newest, b * tier.spec.resMs);
    return newest;
  }

  /** The minute bucket that slot reuse would drop next if bucket `minute` arrived (for decay absorption). */
  minuteSlotHolder(minute: number): number {
    return this.tiers[1].bucket[minute % this.tiers[1].spec.slots]!;
  }

  get minuteSlots(): number {
    return this.tiers[1].spec.slots;
  }

  isEmpty(): boolean {
    return this.tiers.every((t) => t.bucket.every((b) => b < 0));
  }
}

/** Window sums of several entities at once (a campaign's partition shares), one array per window. */
export function windowSums(parts: readonly Buckets[], now: number): Float64Array[] {
  return WINDOWS.map((w) => {
    const out = new Float64Array(COLUMNS);
    for (const p of parts) p.addWindow(w, now, out);
    return out;
  });
}

/**
 * How fresh a tenant's live numbers are: the newest event counted and the events counted in the
 * last minute, per aggregator member. A view that keeps saying "Live" while nothing arrives is
 * the failure this lets the dashboard show. Advisory: written with each flush, not tied to offsets.
 *
 * Each member writes one field of the tenant's hash (field = member id, value = "last,n60,written"),
 * so members never overwrite each other; readers add up the members that wrote lately.
 */

const SLOTS = 60;
/** A tenant with nothing counted for this long is dropped from a member's memory. */
const IDLE_MS = 10 * 60_000;

interface TenantCounts {
  /** received_at of the newest event counted. */
  last: number;
  /** Events counted per second of processing time, a ring of SLOTS seconds. */
  slots: Uint32Array;
  /** The second each slot holds. */
  seconds: Float64Array;
  touchedAt: number;
}

export class FreshnessCounter {
  private readonly tenants = new Map<string, TenantCounts>();

  /** One event of `tenant` received at `receivedAt` was counted at `now`. */
  count(tenant: string, receivedAt: number, now: number): void {
    let t = this.tenants.get(tenant);
    if (!t) this.tenants.set(tenant, (t = { last: 0, slots: new Uint32Array(SLOTS), seconds: new Float64Array(SLOTS).fill(-1), touchedAt: now }));
    if (receivedAt > t.last) t.last = receivedAt;
    const second = Math.floor(now / 1000);
    const i = second % SLOTS;
    if (t.seconds[i] !== second) {
      t.seconds[i] = second;
      t.slots[i] = 0;
    }
    t.slots[i]!++;
    t.touchedAt = now;
  }

  /** Per tenant counted within the last minute (or still decaying out of it): the field value to write. */
  fields(now: number): Map<string, string> {
    const out = new Map<string, string>();
    const second = Math.floor(now / 1000);
    for (const [tenant, t] of this.tenants) {
      if (now - t.touchedAt > IDLE_MS) {
        this.tenants.delete(tenant);
        continue;
      }
      // Flushes come with activity; once a tenant is quiet, readers age its last minute out.
      if (now - t.touchedAt > SLOTS * 1000) continue;
      let n60 = 0;
      for (let i = 0; i < SLOTS; i++) if (t.seconds[i]! > second - SLOTS) n60 += t.slots[i]!;
      out.set(tenant, `${t.last},${n60},${now}`);
    }
    return out;
  }
}

export interface Freshness {
  /** received_at of the newest event counted live for the tenant; null when none is known. */
  last_event_at: number | null;
  /** Events counted live per second, over the last minute. */
  events_per_sec: number;
  as_of: number;
}

/** Adds up the members' fields: a member's minute counts less the longer ago it wrote. */
export function readFreshness(fields: Record<string, string>, now: number): Freshness {
  let last: number | null = null;
  let perMinute = 0;
  for (const value of Object.values(fields)) {
    const [l, n, w] = value.split(',').map(Number);
    if (!Number.isFinite(l) || !Number.isFinite(n) || !Number.isFinite(w)) continue;
    if (l! > 0 && (last === null || l! > last)) last = l!;
    // Its minute was [w - 60 s, w]; only the part still inside [now - 60 s, now] counts, and none
    // of it once its newest event is over a minute old.
    const overlap = now - l! > SLOTS * 1000 ? 0 : Math.max(0, Math.min(1, 1 - (now - w!) / (SLOTS * 1000)));
    perMinute += n! * overlap;
  }
  return { last_event_at: last, events_per_sec: Math.round((perMinute / SLOTS) * 100) / 100, as_of: now };
}

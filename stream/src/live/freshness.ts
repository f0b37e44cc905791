/**
 * Data freshness per tenant, apart from connection state: when the live aggregator last counted an
 * event for the tenant and how many it counted per second over the last minute. A page that is
 * connected but receives nothing (intake refused, a stalled consumer) reads as stale from this,
 * where the WebSocket alone would still say "live". Process-local: it describes this aggregator.
 */

const SLOTS = 60;

interface TenantRing {
  /** Epoch ms of the last event counted (processing time: intake stopping stops it). */
  last: number;
  /** Counts per second; `seconds[i]` says which epoch second slot i holds. */
  counts: Float64Array;
  seconds: Float64Array;
}

export interface FreshnessView {
  last_event_at: number | null;
  events_per_sec: number;
}

export class TenantFreshness {
  private readonly tenants = new Map<string, TenantRing>();

  note(tenant: string, n: number, now: number): void {
    let r = this.tenants.get(tenant);
    if (!r) this.tenants.set(tenant, (r = { last: 0, counts: new Float64Array(SLOTS), seconds: new Float64Array(SLOTS).fill(-1) }));
    const sec = Math.floor(now / 1000);
    const i = sec % SLOTS;
    if (r.seconds[i] !== sec) {
      r.seconds[i] = sec;
      r.counts[i] = 0;
    }
    r.counts[i]! += n;
    if (now > r.last) r.last = now;
  }

  read(tenant: string, now: number): FreshnessView {
    const r = this.tenants.get(tenant);
    if (!r) return { last_event_at: null, events_per_sec: 0 };
    const sec = Math.floor(now / 1000);
    let total = 0;
    for (let i = 0; i < SLOTS; i++) if (r.seconds[i]! > sec - SLOTS && r.seconds[i]! <= sec) total += r.counts[i]!;
    return { last_event_at: r.last, events_per_sec: Math.round((total / SLOTS) * 100) / 100 };
  }
}

import { assetDecay, type DecayFitJson } from './api.ts';
import type { DecaySummary } from '@afterglow/core/live-protocol';

/**
 * Fatigue badges for leaderboard rows. Campaign frames do not carry a decay summary per asset (the
 * gateway computes it only for assets watched through an asset topic), so the rows on screen ask
 * `GET /v1/assets/:id/decay` - a few at a time, each at most every `ttlMs`.
 */
export class FatigueCache {
  version = $state(0);
  private readonly fits = new Map<string, { fit: DecaySummary | null; at: number }>();
  /** Rows in view that need a fit, replaced by each `want` (rows scrolled past are not fetched). */
  private queue: string[] = [];
  private readonly inflight = new Set<string>();
  private closed = false;

  constructor(
    private readonly tenant: string,
    private readonly ttlMs = 30_000,
    private readonly concurrency = 2,
  ) {}

  get(id: string): DecaySummary | null | undefined {
    return this.fits.get(id)?.fit;
  }

  /** Ask for the rows in view (stale or missing ones are fetched). */
  want(ids: readonly string[]): void {
    const now = Date.now();
    this.queue = ids.filter((id) => {
      const f = this.fits.get(id);
      return !(f && now - f.at < this.ttlMs) && !this.inflight.has(id);
    });
    this.pump();
  }

  /** Forget everything (server restarted, window changed). */
  clear(): void {
    this.fits.clear();
    this.version++;
  }

  close(): void {
    this.closed = true;
  }

  private pump(): void {
    while (!this.closed && this.inflight.size < this.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.inflight.add(id);
      assetDecay(this.tenant, id)
        .then(
          (fit) => this.fits.set(id, { fit: summary(fit), at: Date.now() }),
          () => this.fits.set(id, { fit: null, at: Date.now() }),
        )
        .finally(() => {
          this.inflight.delete(id);
          this.version++;
          this.pump();
        });
    }
  }
}

export function summary(fit: DecayFitJson): DecaySummary {
  return {
    status: fit.status,
    model: fit.model,
    half_life_ms: fit.half_life_ms,
    half_life_ci: fit.half_life_ci,
    peak_at: fit.peak_at,
    fatigue_at: fit.fatigue_at,
    fatigued: fit.fatigued,
  };
}

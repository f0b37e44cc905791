import { imageUrl } from './api.ts';

/**
 * Asset thumbnails and images as blob URLs (fetched with the API key, which an <img src> could not
 * send). Shared by every view: each (tenant, asset, kind) is fetched once, at most `concurrency` at a
 * time, newest request first (the rows in view), and kept while the page lives; an asset without an
 * image (404, or no registry on this deployment) is asked again after a minute, as it may be
 * registered later. The oldest blob URLs are revoked past `max` entries.
 */
type Kind = 'thumbnail' | 'image';
interface Entry {
  url: string | null | undefined;
  at: number;
  waiters: Set<(url: string | null) => void>;
}

const ABSENT_TTL_MS = 60_000;

class Thumbs {
  private readonly entries = new Map<string, Entry>();
  private queue: [string, string, string, Kind][] = [];
  private inflight = 0;

  constructor(
    private readonly concurrency = 4,
    private readonly max = 600,
  ) {}

  /** The URL now if known; otherwise `cb` is called once it is (null: no image). */
  get(tenant: string, id: string, kind: Kind, cb: (url: string | null) => void): string | null | undefined {
    const key = `${tenant}\u0000${kind}\u0000${id}`;
    let e = this.entries.get(key);
    if (e && e.url !== undefined && !(e.url === null && Date.now() - e.at > ABSENT_TTL_MS)) {
      // Most recently used last (Map order), for the revoking below.
      this.entries.delete(key);
      this.entries.set(key, e);
      return e.url;
    }
    if (!e || e.url === null) {
      e = { url: undefined, at: Date.now(), waiters: new Set() };
      this.entries.set(key, e);
      this.queue.push([key, tenant, id, kind]);
    }
    e.waiters.add(cb);
    this.pump();
    return undefined;
  }

  /** Stop waiting (the row scrolled away); its fetch is dropped if it has not started. */
  cancel(tenant: string, id: string, kind: Kind, cb: (url: string | null) => void): void {
    const key = `${tenant}\u0000${kind}\u0000${id}`;
    const e = this.entries.get(key);
    if (!e || e.url !== undefined) return;
    e.waiters.delete(cb);
    if (e.waiters.size === 0) {
      const i = this.queue.findIndex((q) => q[0] === key);
      if (i >= 0) {
        this.queue.splice(i, 1);
        this.entries.delete(key);
      }
    }
  }

  private pump(): void {
    while (this.inflight < this.concurrency && this.queue.length > 0) {
      const [key, tenant, id, kind] = this.queue.pop()!;
      this.inflight++;
      imageUrl(tenant, id, kind)
        .catch(() => null)
        .then((url) => {
          this.inflight--;
          const e = this.entries.get(key);
          if (e) {
            e.url = url;
            e.at = Date.now();
            for (const w of e.waiters) w(url);
            e.waiters.clear();
          } else if (url) URL.revokeObjectURL(url);
          this.evict();
          this.pump();
        });
    }
  }

  private evict(): void {
    if (this.entries.size <= this.max) return;
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.max) break;
      if (e.url === undefined) continue;
      if (e.url) URL.revokeObjectURL(e.url);
      this.entries.delete(key);
    }
  }
}

export const thumbs = new Thumbs();

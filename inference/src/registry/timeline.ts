/**
 * An asset's timeline annotations, read from the store (served as GET /v1/assets/:id/timeline):
 * when it was registered, launched (its first event) and relaunched (its first event after a quiet
 * spell of `relaunchGapMs` or more), and its tie changes. For a master: its registration, the launch
 * and relaunches of the ads tied to it (directly) taken together, and each ad joining or leaving it.
 */
import type { AssetRecord, AssetRepository, StoredDecision } from './repository.js';

export const TIMELINE_KINDS = ['registered', 'launch', 'relaunch', 'tie', 'untie', 'duplicate', 'no_sim'] as const;
export type TimelineKind = (typeof TIMELINE_KINDS)[number];

export interface TimelineAnnotation {
  /** Epoch ms. */
  at: number;
  kind: TimelineKind;
  /** One line for a chart marker's tooltip. */
  label: string;
  /** The ad a tie change is about (masters' timelines). */
  ad_asset_id?: string;
  /** The master a tie change ties to (null: none). */
  master_asset_id?: string | null;
  decided_by?: string;
  auto?: boolean;
}

export interface Timeline {
  asset_id: string;
  role: AssetRecord['role'];
  relaunch_gap_ms: number;
  /** Oldest first; at most `limit` (the newest kept). */
  annotations: TimelineAnnotation[];
}

const HOUR = 3_600_000;
export const DEFAULT_RELAUNCH_GAP_MS = 24 * HOUR;

/** Launch (the first active hour's first minute) and relaunches (after `gapMs` or more with no event). */
export function launches(hours: ReadonlyArray<{ hour: number; first: number }>, gapMs: number): TimelineAnnotation[] {
  const byHour = new Map<number, number>();
  for (const h of hours) byHour.set(h.hour, Math.min(byHour.get(h.hour) ?? Infinity, h.first));
  const sorted = [...byHour].sort((a, b) => a[0] - b[0]);
  const out: TimelineAnnotation[] = [];
  sorted.forEach(([hour, first], i) => {
    if (i === 0) out.push({ at: first, kind: 'launch', label: 'launch: first event' });
    else {
      const quiet = hour - (sorted[i - 1]![0] + HOUR);
      if (quiet >= gapMs) out.push({ at: first, kind: 'relaunch', label: `relaunch after ${Math.round(quiet / HOUR)} h without events` });
    }
  });
  return out;
}

function decisionLabel(d: StoredDecision): string {
  const who = `${d.auto ? 'automatically' : `by ${d.decided_by}`}`;
  switch (d.action) {
    case 'tie':
      return `tied to ${d.target_asset_id} ${who}`;
    case 'duplicate':
      return `duplicate of ${d.target_asset_id} ${who}`;
    case 'untie':
      return `untied ${who}`;
    case 'no_sim':
      return `no similar master ${who}`;
  }
}

export async function assetTimeline(repo: AssetRepository, asset: AssetRecord, options: { relaunchGapMs?: number; limit?: number } = {}): Promise<Timeline> {
  const gap = options.relaunchGapMs ?? DEFAULT_RELAUNCH_GAP_MS;
  const limit = options.limit ?? 500;
  const tenant = asset.tenant_id;
  const out: TimelineAnnotation[] = [{ at: asset.created_at, kind: 'registered', label: `registered as ${asset.role === 'master' ? 'a master' : 'an ad'}` }];
  if (asset.role === 'ad') {
    const [hours, decisions] = await Promise.all([repo.activeHours(tenant, [asset.asset_id]), repo.decisionsOf(tenant, [asset.asset_id], 5000)]);
    out.push(...launches(hours, gap));
    for (const d of decisions) {
      out.push({
        at: d.decided_at,
        kind: d.action,
        label: decisionLabel(d),
        master_asset_id: d.action === 'tie' ? (d.target_asset_id ?? null) : null,
        ...(d.action === 'duplicate' && d.target_asset_id ? { ad_asset_id: d.target_asset_id } : {}),
        decided_by: d.decided_by,
        auto: d.auto,
      });
    }
  } else {
    // The ads ever tied to this master, and their decisions in order: each joins on a tie to it and
    // leaves on its next decision that is not one.
    const naming = await repo.decisions(tenant, { target: asset.asset_id, limit: 5000 });
    const ads = [...new Set(naming.filter((d) => d.action === 'tie').map((d) => d.ad_asset_id))];
    const [hours, decisions] = await Promise.all([repo.activeHours(tenant, ads), repo.decisionsOf(tenant, ads, 50_000)]);
    out.push(...launches(hours, gap).map((a) => ({ ...a, label: `${a.label} of its tied ads` })));
    const tied = new Set<string>();
    for (const d of decisions) {
      const joins = d.action === 'tie' && d.target_asset_id === asset.asset_id;
      if (joins && !tied.has(d.ad_asset_id)) {
        tied.add(d.ad_asset_id);
        out.push({ at: d.decided_at, kind: 'tie', label: `${d.ad_asset_id} ${decisionLabel(d)}`, ad_asset_id: d.ad_asset_id, master_asset_id: asset.asset_id, decided_by: d.decided_by, auto: d.auto });
      } else if (!joins && tied.has(d.ad_asset_id)) {
        tied.delete(d.ad_asset_id);
        out.push({
          at: d.decided_at,
          kind: d.action === 'tie' ? 'untie' : d.action,
          label: `${d.ad_asset_id} left: ${decisionLabel(d)}`,
          ad_asset_id: d.ad_asset_id,
          master_asset_id: d.action === 'tie' ? (d.target_asset_id ?? null) : null,
          decided_by: d.decided_by,
          auto: d.auto,
        });
      }
    }
  }
  const sorted = out.sort((a, b) => a.at - b.at);
  return { asset_id: asset.asset_id, role: asset.role, relaunch_gap_ms: gap, annotations: sorted.slice(Math.max(0, sorted.length - limit)) };
}

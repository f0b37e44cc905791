import type { Entity, Rate, WindowName, WindowStats } from '@afterglow/core/live-protocol';
import { NO_COSTS, type CostCells } from './costs.ts';

/** Leaderboard ordering, filtering and ranking (pure: the component calls it at most once a second). */

export type CostKey = 'spend' | 'cpm' | 'cpc' | 'cpa' | 'roas' | 'reach' | 'frequency';
export type SortKey = 'impressions' | 'engagements' | 'ctr' | 'engagement_rate' | 'shares_per_1k' | 'velocity' | 'asset' | CostKey;
export type SortDir = 'desc' | 'asc';

export const SORT_LABELS: Record<SortKey, string> = {
  impressions: 'Impressions',
  engagements: 'Engagements',
  ctr: 'CTR',
  engagement_rate: 'Engagement rate',
  shares_per_1k: 'Shares per 1k',
  velocity: 'Velocity',
  asset: 'Asset',
  spend: 'Spend',
  cpm: 'CPM',
  cpc: 'CPC',
  cpa: 'CPA',
  roas: 'ROAS',
  reach: 'Reach',
  frequency: 'Frequency',
};

export const COST_KEYS: readonly CostKey[] = ['spend', 'cpm', 'cpc', 'cpa', 'roas', 'reach', 'frequency'];

export function isCost(key: SortKey): key is CostKey {
  return (COST_KEYS as readonly string[]).includes(key);
}

/** The direction a sort starts in: ids A to Z and costs per result cheapest first; everything else highest first. */
export function naturalDir(key: SortKey): SortDir {
  return key === 'asset' || key === 'cpm' || key === 'cpc' || key === 'cpa' ? 'asc' : 'desc';
}

export interface Row {
  id: string;
  entity: Entity;
  w: WindowStats;
  /** Spend, costs and reach over whole days (not the live window). */
  cost: CostCells;
}

export function rowOf(entity: Entity, window: WindowName, cost: CostCells = NO_COSTS): Row {
  return { id: entity.id, entity, w: entity.windows[window], cost };
}

export function isRate(key: SortKey): key is 'ctr' | 'engagement_rate' | 'shares_per_1k' {
  return key === 'ctr' || key === 'engagement_rate' || key === 'shares_per_1k';
}

export function rateOf(row: Row, key: 'ctr' | 'engagement_rate' | 'shares_per_1k'): Rate {
  return key === 'ctr' ? row.w.ctr : key === 'engagement_rate' ? row.w.engagementRate : row.w.sharesPer1k;
}

function sortValue(row: Row, key: SortKey): number {
  switch (key) {
    case 'impressions':
      return row.w.impressions;
    case 'engagements':
      return row.w.engagements;
    case 'velocity':
      return row.entity.velocity.perMin;
    case 'ctr':
    case 'engagement_rate':
    case 'shares_per_1k':
      return rateOf(row, key).value;
    case 'asset':
      return 0;
    default:
      return row.cost[key] ?? 0;
  }
}

/** Whether a row has enough data to be ranked on `key` (rates: their interval is narrow enough). */
export function rankable(row: Row, key: SortKey): boolean {
  if (isCost(key)) return row.cost[key] !== null;
  return isRate(key) ? rateOf(row, key).enough : true;
}

export interface Filter {
  text: string;
  /** Hide rows whose rate is too uncertain (the sorted rate, or CTR for count sorts). */
  hideNotEnough: boolean;
}

export interface Ordered {
  ids: string[];
  /**
   * 1-based rank among rankable rows; absent: "not enough data" to rank. Rows tied (see `tied`)
   * share the rank of the first of them.
   */
  rank: Map<string, number>;
  /**
   * Rows whose rate's 95% interval overlaps that of the row their tie starts with (the first row
   * not clearly below the one before it), mapped to that row: their order is not significant.
   */
  tied: Map<string, string>;
  /** Rows before filtering. */
  total: number;
}

/**
 * Rankable rows first, by the metric (ties: lower bound, impressions, id - as the REST leaderboard
 * does), then the rows with not enough data by impressions: a rate with a wide interval is shown,
 * never ranked.
 */
export function order(rows: Iterable<Row>, key: SortKey, dir: SortDir, filter: Filter): Ordered {
  const text = filter.text.trim().toLowerCase();
  const ranked: Row[] = [];
  const weak: Row[] = [];
  let total = 0;
  for (const r of rows) {
    total++;
    if (text && !r.id.toLowerCase().includes(text)) continue;
    const ok = rankable(r, key);
    if (filter.hideNotEnough && !(isRate(key) || isCost(key) ? ok : r.w.ctr.enough)) continue;
    (ok ? ranked : weak).push(r);
  }
  const sign = dir === 'desc' ? -1 : 1;
  if (key === 'asset') ranked.sort((a, b) => (dir === 'asc' ? cmp(a.id, b.id) : cmp(b.id, a.id)));
  else
    ranked.sort((a, b) => {
      const d = sortValue(a, key) - sortValue(b, key);
      if (d !== 0) return sign * d;
      if (isRate(key)) {
        const l = rateOf(a, key).low - rateOf(b, key).low;
        if (l !== 0) return sign * l;
      }
      return b.w.impressions - a.w.impressions || cmp(a.id, b.id);
    });
  weak.sort((a, b) => b.w.impressions - a.w.impressions || cmp(a.id, b.id));
  const rank = new Map<string, number>();
  const tied = new Map<string, string>();
  if (isRate(key)) {
    // Walk down the order: a row whose interval overlaps the current group's first row joins it
    // (same rank, "=2"); one clearly below it starts a new group at its own position.
    let lead: Row | undefined;
    let leadRank = 0;
    ranked.forEach((r, i) => {
      if (lead && overlaps(rateOf(lead, key), rateOf(r, key))) {
        rank.set(r.id, leadRank);
        tied.set(r.id, lead.id);
        tied.set(lead.id, lead.id);
      } else {
        lead = r;
        leadRank = i + 1;
        rank.set(r.id, leadRank);
      }
    });
  } else ranked.forEach((r, i) => rank.set(r.id, i + 1));
  return { ids: [...ranked, ...weak].map((r) => r.id), rank, tied, total };
}

function overlaps(a: Rate, b: Rate): boolean {
  return a.low <= b.high && b.low <= a.high;
}

/** "=2" for a tied rank, "2" otherwise, "—" for rows not ranked. */
export function rankLabel(o: Ordered, id: string): string {
  const r = o.rank.get(id);
  if (r === undefined) return '—';
  return o.tied.has(id) ? `=${r}` : String(r);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

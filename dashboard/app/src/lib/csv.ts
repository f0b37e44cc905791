import type { WindowName } from '@afterglow/core/live-protocol';
import type { Ordered, Row } from './leaderboard.ts';
import type { CampaignRangeJson } from './api.ts';
import { wilson } from './stats.ts';

/**
 * The leaderboard as CSV, in the order and with the filter shown: one row per creative, its rank
 * (empty: not enough data to rank) and whether it is tied, counts, and each rate with its 95%
 * interval and whether it is reliable. Pure.
 */
const HEADER = [
  'rank',
  'tied',
  'asset_id',
  'window',
  'impressions',
  'clicks',
  'likes',
  'shares',
  'comments',
  'engagements',
  'ctr',
  'ctr_low',
  'ctr_high',
  'ctr_enough_data',
  'engagement_rate',
  'engagement_rate_low',
  'engagement_rate_high',
  'engagement_rate_enough_data',
  'shares_per_1k',
  'shares_per_1k_low',
  'shares_per_1k_high',
  'velocity_per_min',
];

/** A cell: quoted when it must be; a text cell a spreadsheet would run as a formula is prefixed with '. */
export function csvCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(Math.round(v * 1e6) / 1e6) : '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Spend, costs and reach over whole days (the Cost & reach columns), after the live columns. */
const COST_HEADER = ['currency', 'spend', 'cpm', 'cpc', 'cpa', 'roas', 'reach', 'frequency'];

export function leaderboardCsv(ordered: Ordered, rows: ReadonlyMap<string, Row>, window: WindowName, withCosts = false): string {
  const lines = [(withCosts ? [...HEADER, ...COST_HEADER] : HEADER).join(',')];
  for (const id of ordered.ids) {
    const r = rows.get(id);
    if (!r) continue;
    const w = r.w;
    lines.push(
      [
        ordered.rank.get(id) ?? null,
        ordered.tied.has(id),
        id,
        window,
        w.impressions,
        w.counts.click,
        w.counts.like,
        w.counts.share,
        w.counts.comment,
        w.engagements,
        w.ctr.value,
        w.ctr.low,
        w.ctr.high,
        w.ctr.enough,
        w.engagementRate.value,
        w.engagementRate.low,
        w.engagementRate.high,
        w.engagementRate.enough,
        w.sharesPer1k.value,
        w.sharesPer1k.low,
        w.sharesPer1k.high,
        r.entity.velocity.perMin,
        ...(withCosts ? [r.cost.currency, r.cost.spend, r.cost.cpm, r.cost.cpc, r.cost.cpa, r.cost.roas, r.cost.reach, r.cost.frequency] : []),
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

const RANGE_HEADER = [
  'asset_id',
  'from',
  'to',
  'filters',
  'impressions',
  'clicks',
  'likes',
  'shares',
  'comments',
  'engagements',
  'ctr',
  'ctr_low',
  'ctr_high',
  'previous_from',
  'previous_impressions',
  'previous_clicks',
  'previous_ctr',
  'impressions_change',
  'ctr_change',
];

/**
 * A range read (GET /v1/campaigns/:id/range) as CSV: one row per creative with its counts, CTR and
 * 95% interval over the range, and the previous period of equal length; the range and the label
 * filters it was read with are on every row, so a file says what it counts. Pure.
 */
export function rangeCsv(r: CampaignRangeJson): string {
  const filters = Object.entries(r.filters)
    .map(([d, vs]) => `${d}=${vs.join('|')}`)
    .join(';');
  const lines = [RANGE_HEADER.join(',')];
  for (const a of r.assets) {
    const c = a.current.counts;
    const ci = wilson(c.click, c.impression);
    const engagements = c.click + c.like + c.share + c.comment;
    lines.push(
      [
        a.asset_id,
        r.range.from,
        r.range.to,
        filters,
        c.impression,
        c.click,
        c.like,
        c.share,
        c.comment,
        engagements,
        a.current.ctr,
        c.impression > 0 ? ci.low : null,
        c.impression > 0 ? ci.high : null,
        r.previous_range.from,
        a.previous.counts.impression,
        a.previous.counts.click,
        a.previous.ctr,
        a.change.counts.impression.rel,
        a.change.ctr?.abs ?? null,
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return `${lines.join('\r\n')}\r\n`;
}

import { WINDOW_NAMES, type WindowName } from '@afterglow/core/live-protocol';

/**
 * The date range, label filters and breakdown dimension of a campaign (or compare) view, kept in
 * its URL next to the live view's own state (view-state.ts): `range=7d`, or `range=custom&from=
 * 2026-12-01T00:00Z&to=...`, `by=placement`, `f.channel=social`. Absent: the live view (the
 * leaderboard over the live window). Values the page does not know are ignored. Pure.
 */

export const DIMENSIONS = ['channel', 'placement', 'region', 'device'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export const DIMENSION_LABELS: Record<Dimension, string> = { channel: 'Channel', placement: 'Placement', region: 'Region', device: 'Device' };

export const PRESETS = ['live', '24h', '7d', '30d', '90d', 'custom'] as const;
export type Preset = (typeof PRESETS)[number];
export const PRESET_LABELS: Record<Preset, string> = {
  live: 'Live window',
  '24h': 'Last 24 hours',
  '7d': 'Last 7 days',
  '30d': 'Last 30 days',
  '90d': 'Last 90 days',
  custom: 'Custom range…',
};
const PRESET_MS: Record<Exclude<Preset, 'live' | 'custom'>, number> = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000, '90d': 90 * 86_400_000 };
const WINDOW_MS: Record<WindowName, number> = { '1m': 60_000, '15m': 900_000, '1h': 3_600_000, '24h': 86_400_000 };
/** The server's bound on one range (ingest/src/analytics.ts MAX_RANGE_MS). */
export const MAX_RANGE_MS = 400 * 86_400_000;

export type Filters = Partial<Record<Dimension, string>>;

export interface AnalyticsState {
  preset: Preset;
  /** Epoch ms; only for `custom`. */
  from: number | null;
  to: number | null;
  by: Dimension;
  filters: Filters;
}

export const DEFAULT_ANALYTICS: AnalyticsState = { preset: 'live', from: null, to: null, by: 'channel', filters: {} };

function instant(s: string | null): number | null {
  if (!s || s.length > 40 || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return null;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : null;
}

/** `2026-12-01T09:30Z` (minutes, UTC: the server reads whole minutes). */
export function isoMinute(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}

export function parseAnalyticsState(query: string): AnalyticsState {
  const p = new URLSearchParams(query.replace(/^\?/, ''));
  const r = p.get('range');
  let preset: Preset = r && (PRESETS as readonly string[]).includes(r) ? (r as Preset) : 'live';
  let from: number | null = null;
  let to: number | null = null;
  if (preset === 'custom') {
    from = instant(p.get('from'));
    to = instant(p.get('to'));
    if (from === null || to === null || from >= to || to - from > MAX_RANGE_MS) {
      preset = 'live';
      from = to = null;
    }
  }
  const by = p.get('by');
  const filters: Filters = {};
  for (const d of DIMENSIONS) {
    const v = p.get(`f.${d}`);
    if (v !== null && v.length <= 128) filters[d] = v;
  }
  // Labels exist only in the stored rollups: a filtered link without a range reads the last 24 hours.
  if (preset === 'live' && DIMENSIONS.some((d) => filters[d] !== undefined)) preset = '24h';
  return { preset, from, to, by: by && (DIMENSIONS as readonly string[]).includes(by) ? (by as Dimension) : 'channel', filters };
}

/** `base` (a view's own query, `?w=15m...` or '') with the analytics state appended; defaults left out. */
export function withAnalytics(base: string, s: AnalyticsState): string {
  const p = new URLSearchParams(base.replace(/^\?/, ''));
  if (s.preset !== 'live') p.set('range', s.preset);
  if (s.preset === 'custom' && s.from !== null && s.to !== null) {
    p.set('from', isoMinute(s.from));
    p.set('to', isoMinute(s.to));
  }
  if (s.by !== DEFAULT_ANALYTICS.by) p.set('by', s.by);
  for (const d of DIMENSIONS) if (s.filters[d] !== undefined) p.set(`f.${d}`, s.filters[d]!);
  const q = p.toString();
  return q ? `?${q}` : '';
}

export function hasFilters(s: AnalyticsState): boolean {
  return DIMENSIONS.some((d) => s.filters[d] !== undefined);
}

/** The range a read covers now: a preset ends now; `live` follows the live window. */
export function resolveRange(s: AnalyticsState, now: number, liveWindow: WindowName = '24h'): { from: number; to: number } {
  if (s.preset === 'custom' && s.from !== null && s.to !== null) return { from: s.from, to: s.to };
  const len = s.preset === 'live' ? WINDOW_MS[liveWindow] : PRESET_MS[s.preset as keyof typeof PRESET_MS];
  return { from: now - len, to: now };
}

/** Query parameters of a range read (from, to, filter[dim]=value). */
export function rangeParams(s: AnalyticsState, now: number, liveWindow?: WindowName): Record<string, string> {
  const { from, to } = resolveRange(s, now, liveWindow);
  const out: Record<string, string> = { from: String(from), to: String(to) };
  for (const d of DIMENSIONS) if (s.filters[d] !== undefined) out[`filter[${d}]`] = s.filters[d]!;
  return out;
}

/** "Last 7 days", "1 Dec 09:30 – 7 Dec 09:30", "live 1h"; with the filters: "· channel social". */
export function describeRange(s: AnalyticsState, liveWindow: WindowName): string {
  if (s.preset === 'live') return `Live window (${liveWindow})`;
  if (s.preset !== 'custom' || s.from === null || s.to === null) return PRESET_LABELS[s.preset];
  const f = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
  return `${f.format(s.from)} – ${f.format(s.to)}`;
}

export function labelValue(v: string): string {
  return v === '' ? '(not set)' : v;
}

export { WINDOW_NAMES };

import { WINDOW_NAMES, type WindowName } from '@afterglow/core/live-protocol';
import { SORT_LABELS, naturalDir, type SortDir, type SortKey } from './leaderboard.ts';

/**
 * The campaign view's state in its URL, so a link opens the same view: `#/c/<id>?w=15m&sort=
 * impressions&dir=asc&q=spring&hide=1`. Defaults are left out (a plain `#/c/<id>` is the default
 * view); values the page does not know are ignored. Pure.
 */
export interface CampaignState {
  window: WindowName;
  sort: SortKey;
  dir: SortDir;
  q: string;
  hide: boolean;
}

export const DEFAULT_STATE: CampaignState = { window: '1h', sort: 'ctr', dir: 'desc', q: '', hide: false };

/** The state a URL names; `window` is null when it names none (the page keeps the window in use). */
export function parseCampaignState(query: string): Omit<CampaignState, 'window'> & { window: WindowName | null } {
  const p = new URLSearchParams(query.replace(/^\?/, ''));
  const w = p.get('w');
  const sort = p.get('sort');
  const dir = p.get('dir');
  return {
    window: w && (WINDOW_NAMES as readonly string[]).includes(w) ? (w as WindowName) : null,
    sort: sort && sort in SORT_LABELS ? (sort as SortKey) : DEFAULT_STATE.sort,
    dir: dir === 'asc' || dir === 'desc' ? dir : sort && sort in SORT_LABELS ? naturalDir(sort as SortKey) : DEFAULT_STATE.dir,
    q: (p.get('q') ?? '').slice(0, 200),
    hide: p.get('hide') === '1',
  };
}

/** `?w=15m&sort=impressions` (empty for the default view). */
export function campaignQuery(s: CampaignState): string {
  const p = new URLSearchParams();
  if (s.window !== DEFAULT_STATE.window) p.set('w', s.window);
  if (s.sort !== DEFAULT_STATE.sort) p.set('sort', s.sort);
  // The natural direction of the sort (ids A→Z, costs per result cheapest first, other numbers high first) is left out.
  if (s.dir !== naturalDir(s.sort)) p.set('dir', s.dir);
  if (s.q.trim()) p.set('q', s.q.trim());
  if (s.hide) p.set('hide', '1');
  const q = p.toString();
  return q ? `?${q}` : '';
}

/**
 * Routes live in the URL fragment, so the server serves one page at `/` and never sees them:
 *   #/c/<campaign>[?w=&sort=&dir=&q=&hide=]   campaign overview (leaderboard; the query keeps its state, view-state.ts)
 *   #/a/<asset>      asset detail
 *   #/m/<master>     master roll-up and its tied ads
 *   #/review[/<ad>]  tie review (the queue, or one ad)
 *   #/triggers       triggers log
 *   #/insights[/<campaign>]  what drives performance (aggregated attribution) and the models
 *   #/compare?ids=a,b[,c,d][&range=&from=&to=&f.channel=]  2-4 creatives side by side (analytics-state.ts)
 * The tenant is the `tenant` query parameter when given; else the API key's (GET /v1/whoami); else
 * the last one opened in this browser, `demo` by default (a server without keys).
 */
// First: takes an API key out of the fragment (`#key=...`) before the route is read from it.
import { auth } from './auth.svelte.ts';

export type Route =
  | { name: 'home' }
  | { name: 'campaign'; id: string; query: string }
  | { name: 'asset'; id: string }
  | { name: 'master'; id: string }
  | { name: 'review'; id: string | null }
  | { name: 'triggers' }
  | { name: 'insights'; id: string | null }
  | { name: 'compare'; query: string }
  | { name: 'not_found'; path: string };

export function parseRoute(hash: string): Route {
  const full = hash.replace(/^#/, '');
  const qi = full.indexOf('?');
  const path = qi < 0 ? full : full.slice(0, qi);
  const query = qi < 0 ? '' : full.slice(qi);
  if (path === '' || path === '/') return { name: 'home' };
  if (path === '/triggers') return { name: 'triggers' };
  if (path === '/compare') return { name: 'compare', query };
  const sub = /^\/(review|insights)(?:\/(.+))?$/.exec(path);
  if (sub) {
    const name = sub[1] as 'review' | 'insights';
    if (!sub[2]) return { name, id: null };
    try {
      return { name, id: decodeURIComponent(sub[2]) };
    } catch {
      return { name: 'not_found', path };
    }
  }
  const m = /^\/([cam])\/(.+)$/.exec(path);
  if (!m) return { name: 'not_found', path };
  let id: string;
  try {
    id = decodeURIComponent(m[2]!);
  } catch {
    return { name: 'not_found', path };
  }
  if (m[1] === 'c') return { name: 'campaign', id, query };
  return { name: m[1] === 'a' ? 'asset' : 'master', id };
}

export const href = {
  campaign: (id: string, query = '') => `#/c/${encodeURIComponent(id)}${query}`,
  asset: (id: string) => `#/a/${encodeURIComponent(id)}`,
  master: (id: string) => `#/m/${encodeURIComponent(id)}`,
  review: (id?: string | null) => (id ? `#/review/${encodeURIComponent(id)}` : '#/review'),
  triggers: () => '#/triggers',
  insights: (campaign?: string | null) => (campaign ? `#/insights/${encodeURIComponent(campaign)}` : '#/insights'),
  /** `query` carries the range and filters (analytics-state.ts withAnalytics); ids go first. */
  compare: (ids: string[], query = '') => `#/compare?ids=${ids.map(encodeURIComponent).join(',')}${query ? `&${query.replace(/^\?/, '')}` : ''}`,
};

class Router {
  route = $state<Route>(parseRoute(location.hash));
  constructor() {
    addEventListener('hashchange', () => {
      auth.fromHash();
      this.route = parseRoute(location.hash);
    });
  }
  go(hash: string, replace = false): void {
    if (replace) {
      history.replaceState(history.state, '', hash);
      this.route = parseRoute(hash);
    } else location.hash = hash;
  }
}

export const router = new Router();

const TENANT_KEY = 'afterglow.tenant';

/** The tenant the URL names (`?tenant=`), if any. */
export function urlTenant(): string | null {
  return new URLSearchParams(location.search).get('tenant') || null;
}

/** The tenant last opened in this browser, `demo` by default (for a server without keys). */
export function storedTenant(): string {
  try {
    return localStorage.getItem(TENANT_KEY) ?? 'demo';
  } catch {
    return 'demo';
  }
}

export function rememberTenant(tenant: string): void {
  try {
    localStorage.setItem(TENANT_KEY, tenant);
  } catch {
    // Private mode.
  }
  const url = new URL(location.href);
  url.searchParams.set('tenant', tenant);
  history.replaceState(history.state, '', url);
}

/**
 * API keys (the server's auth, when it is on). `npm start` prints a URL ending in `#key=<key>`: the
 * key is taken from the fragment into sessionStorage (this tab only, gone when it closes) and the
 * fragment is cleared at once, so the key is neither kept in history nor shown in the address bar.
 * Every REST call sends `Authorization: Bearer <key>`; the live WebSocket (browsers cannot set its
 * headers) sends `access_token=<key>` in its query. Without a key nothing is sent, so a server with
 * auth off works as before; a 401 opens the key prompt.
 */

import { takeKeyFromHash } from './hash-key.ts';

const KEY = 'afterglow.key';

function readStored(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

function store(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the key lives as long as the page.
  }
}

class Auth {
  key = $state<string | null>(readStored());
  /** A request was refused (401): the prompt is shown. */
  needed = $state(false);
  /** Why the last key was refused, for the prompt. */
  reason = $state<string | null>(null);
  /** Moves when the key changes: views and the live connection start again with it. */
  epoch = $state(0);
  /** The server refused the key set now (401): the header must not say it is fine. */
  rejected = $state(false);

  constructor() {
    this.fromHash();
  }

  /** Takes a `key=` out of the fragment (at load, and on every fragment change); a new key restarts the views. */
  fromHash(): void {
    const [key, rest] = takeKeyFromHash(location.hash);
    if (!key) return;
    history.replaceState(history.state, '', location.pathname + location.search + rest);
    if (key === this.key) return;
    this.key = key;
    store(key);
    this.rejected = false;
    this.needed = false;
    this.reason = null;
    this.epoch++;
  }

  headers(): Record<string, string> {
    return this.key ? { authorization: `Bearer ${this.key}` } : {};
  }

  /** A WebSocket URL with the key as `access_token` (when there is one). */
  wsUrl(url: string): string {
    if (!this.key) return url;
    return `${url}${url.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(this.key)}`;
  }

  /** The server's own words on the last refusal. */
  detail = $state<string | null>(null);

  unauthorized(message: string): void {
    this.rejected = this.key !== null;
    this.reason = this.key ? 'The server refused this key.' : 'This server needs an API key.';
    this.detail = message;
    this.needed = true;
  }

  /** Open the prompt to enter or change the key. */
  ask(): void {
    this.reason = null;
    this.detail = null;
    this.needed = true;
  }

  set(key: string): void {
    this.key = key.trim() || null;
    store(this.key);
    this.rejected = false;
    this.needed = false;
    this.reason = null;
    this.epoch++;
  }

  forget(): void {
    this.set('');
  }
}

export const auth = new Auth();

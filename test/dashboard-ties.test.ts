// The tie pages in a real browser (Debian's chromium through playwright-core) against a real
// Afterglow (embedded defaults): a duplicate of an untied ad reads "not tied" on its asset page and
// in review; once its original is tied, the duplicate's page names the master, and the master page's
// cards, its tree of tied ads and its "with live data" count agree; after an untie they all read
// zero. Similar ads stay in the ad's campaign until "include other campaigns" is ticked, and long
// master names keep their ends. Screenshots go to artifacts/dashboard-ties/ (gitignored).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ulid, type EngagementEvent } from '@afterglow/core';
import { eventually, freePort, skipOption } from '@afterglow/testkit/services';
import { assetForm, ensureTestModels, noiseImage, testModelsDir } from '@afterglow/testkit/inference';
import { postEvents, startApp, type TestApp } from './support.js';

declare const document: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
if (!existsSync(path.resolve('dashboard', 'dist', 'app', 'index.html')) && process.env.CI) throw new Error('dashboard/dist/app is missing: build the dashboard (vite build) first');
const ARTIFACTS = path.resolve('artifacts', 'dashboard-ties');
const T = 'ui-ties';
// A master name long enough to be cut in a tile: its shoot number is at the end.
const M1 = 'brand-spring-campaign-hero-shoot-0417';
const M2 = 'm2';
const ADS = { a: { campaign: 'spring', impressions: 40 }, b: { campaign: 'spring', impressions: 25 }, x: { campaign: 'autumn', impressions: 10 } };

describe('tie pages in a browser', { skip: skipOption(!hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)`) }, () => {
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ensureTestModels(['mobilenet_v2']);
    const port = await freePort();
    [app, browser] = await Promise.all([
      startApp(
        { PORT: String(port), AFTERGLOW_MODELS_DIR: testModelsDir(), TIE_MODEL: 'mobilenet_v2', TIE_AUTO_TIE_THRESHOLD: '1', TIE_PROPAGATE_MIN_SCORE: '1', LIVE_FLUSH_MS: '100' },
        ['ingest', 'stream', 'live', 'inference', 'dashboard'],
      ),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] }),
    ]);
    page = await browser.newPage({ viewport: { width: 1366, height: 768 }, colorScheme: 'light' });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });

  const key = async () => encodeURIComponent(((await app.authHeaders(T, ['read', 'admin'])).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (hash: string) => page.goto(`${app.running.url}/?tenant=${T}#${hash}&key=${await key()}`);
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const text = (testid: string) => page.getByTestId(testid).first().textContent();
  const decide = async (body: Record<string, unknown>) => {
    const res = await app.request(T, '/v1/ties', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant_id: T, decided_by: 'ui-test', ...body }) });
    assert.equal(res.status, 200, await res.text());
  };
  /** Waits until the live role has the ad's master as `master` (the pages read the registry; the cards read live). */
  const liveMaster = (ad: string, master: string | null) =>
    eventually(async () => {
      const m = (await (await app.request(T, `/v1/assets/${ad}/metrics?tenant_id=${T}`)).json()) as { master_id: string | null };
      return m.master_id === master ? true : undefined;
    }, 30_000, 100);

  test('set up: two masters, three ads in two campaigns, live traffic', async () => {
    for (const [i, id] of [M1, M2].entries()) {
      const res = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'master', asset_id: id }, { filename: `${id}.jpg`, bytes: await noiseImage(320, 240, 'jpeg', 200 + i) }) });
      assert.equal(res.status, 201, await res.text());
    }
    for (const [i, [id, ad]] of Object.entries(ADS).entries()) {
      const res = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'ad', campaign_id: ad.campaign, asset_id: id }, { filename: `${id}.jpg`, bytes: await noiseImage(320, 240, 'jpeg', 300 + i) }) });
      assert.equal(res.status, 201, await res.text());
    }
    const now = Date.now();
    const events: EngagementEvent[] = Object.entries(ADS).flatMap(([id, ad]) =>
      Array.from({ length: ad.impressions }, (_, j) => ({ event_id: ulid(now), tenant_id: T, campaign_id: ad.campaign, asset_id: id, kind: 'impression' as const, value: 1, occurred_at: now - j * 1000, received_at: 0 })),
    );
    assert.equal((await postEvents(app.running.url, events)).body.accepted, events.length);
  });

  test('a duplicate of an untied ad reads "not tied" everywhere; similar ads stay in the campaign', async () => {
    // "A then D" on a: selects and ties the similar ads of a's campaign only (b), not x (autumn).
    await open('/review/a');
    await page.waitForSelector('.sims li');
    await page.keyboard.press('a');
    await page.keyboard.press('d');
    await page.getByTestId('duplicates-untied').waitFor();
    assert.match((await text('decision'))!, /b tied as a duplicate of a/);
    const tieOf = async (id: string) => ((await (await app.request(T, `/v1/assets/${id}?tenant_id=${T}`)).json()) as { tie: { action: string } | null }).tie;
    assert.equal((await tieOf('b'))?.action, 'duplicate');
    assert.equal(await tieOf('x'), null, 'an ad of another campaign was not tied as a duplicate');
    await shot('0-review-a-then-d');
    await open('/a/b');
    await page.getByTestId('duplicate-untied').waitFor();
    assert.equal(await text('master-none'), 'not tied to a master yet');
    await shot('1-duplicate-of-untied-asset');
    await open('/review/b');
    await page.getByTestId('review-dup-untied').waitFor();
    assert.match((await text('review-current-tie'))!, /duplicate of\s+a\s+\(not tied: its original has no master\)/);
    // Similar ads of a: only b (same campaign) until other campaigns are asked for.
    await open('/review/a');
    await page.waitForSelector('.sims li');
    const sims = () => page.locator('.sims input[type=checkbox]').evaluateAll((els) => els.map((e: any) => e.getAttribute('aria-label')));
    assert.deepEqual(await sims(), ['Duplicate: b']);
    await page.getByTestId('similar-all').check();
    await page.waitForFunction(() => document.querySelectorAll('.sims li').length === 2);
    assert.deepEqual((await sims()).sort(), ['Duplicate: b', 'Duplicate: x']);
    await page.waitForSelector(`[data-testid=list-cosine] [data-master="${M1}"]`);
    const tile = (await page.locator(`[data-testid=list-cosine] [data-master="${M1}"] .tid`).textContent())!;
    assert.ok(tile.startsWith('brand-') && tile.endsWith('0417'), `the master's name keeps both ends: ${tile}`);
    await shot('2-review-similar-all-campaigns');
  });

  test('tying the original: the duplicate names the master, and the master page agrees with itself', async () => {
    await decide({ ad_asset_id: 'a', action: 'tie', target_asset_id: M1 });
    await liveMaster('b', M1);
    await open('/a/b');
    await page.getByTestId('master-link').waitFor();
    assert.equal(await text('master-link'), M1);
    await page.waitForFunction(() => /as a duplicate of a/.test(document.querySelector('[data-testid=lineage]')?.textContent ?? ''));
    await shot('3-duplicate-asset-tied');
    await open(`/m/${M1}`);
    await page.waitForSelector('[data-testid=master-tree] tr[data-ad]');
    const want = String(ADS.a.impressions + ADS.b.impressions);
    await page.waitForFunction((n) => document.querySelector('[data-testid=kpi-impressions]')?.textContent === n, want, { timeout: 20_000 });
    assert.equal(await text('tree-impressions'), want, 'the tree shows the roll-up the cards show');
    assert.equal(await text('tree-count'), '2');
    await page.waitForFunction(() => /2 tied ads with live data/.test(document.querySelector('[data-testid=master-title]')?.parentElement?.textContent ?? ''), undefined, { timeout: 20_000 });
    const rows = await page.locator('[data-testid=master-tree] tr[data-ad]').evaluateAll((els) => els.map((e: any) => e.getAttribute('data-ad')));
    assert.deepEqual(rows.sort(), ['a', 'b']);
    await shot('4-master-tied');
  });

  test('timeline annotations: launch and tie changes on the asset and master charts', async () => {
    await open('/a/a');
    await page.waitForSelector('[data-testid=ts-annotations] li[data-kind=tie]');
    const kinds = () => page.locator('[data-testid=ts-annotations] li').evaluateAll((els) => els.map((e: any) => e.getAttribute('data-kind')));
    assert.deepEqual(new Set(await kinds()), new Set(['tie', 'launch', 'registered']));
    assert.match((await page.locator('[data-testid=ts-annotations] li[data-kind=tie]').textContent())!, new RegExp(`tied to ${M1} by ui-test`));
    await page.locator('[data-testid=timeseries] canvas').waitFor();
    await page.getByTestId('timeseries').screenshot({ path: path.join(ARTIFACTS, '4b-asset-chart-annotations.png') });
    await open(`/m/${M1}`);
    await page.waitForSelector('[data-testid=ts-annotations] li[data-kind=tie]');
    assert.match((await page.locator('[data-testid=ts-annotations]').textContent())!, /a tied to/);
    await page.locator('[data-testid=timeseries] canvas').waitFor();
    await shot('4c-master-chart-annotations');
  });

  test('after an untie the master page reads zero in every place', async () => {
    await decide({ ad_asset_id: 'a', action: 'untie', target_asset_id: M1 });
    await liveMaster('b', null);
    await open(`/m/${M1}`);
    await page.getByTestId('tree-no-ads').waitFor();
    await page.waitForFunction(() => /0 tied ads with live data/.test(document.querySelector('[data-testid=master-title]')?.parentElement?.textContent ?? ''), undefined, { timeout: 20_000 });
    assert.equal(await text('tree-count'), '0');
    await shot('5-master-after-untie');
    assert.deepEqual(errors, []);
  });
});

// Spend, costs per result, reach and frequency in the dashboard, in a real browser (Debian's chromium
// through playwright-core) against a real Afterglow on the embedded defaults: the leaderboard's
// "Cost & reach" columns ranked by CPA, a creative's panel, and a master's reach across its tied
// ads (viewers merged, not added). Every figure is recomputed here from what this test posts.
// Screenshots (1440x900 and 390x844) go to DASH_SHOTS (default artifacts/dashboard-costs/).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TABLES, ulid } from '@afterglow/core';
import { eventually, freePort, skipOption } from '@afterglow/testkit/services';
import { postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
const SHOTS = path.resolve(process.env.DASH_SHOTS ?? path.join('artifacts', 'dashboard-costs'));
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const T = 'ui-costs';
const C = 'cr-camp';
const NOW = Date.now();
const AT = Math.max(Date.parse(`${new Date(NOW).toISOString().slice(0, 10)}T00:00:00Z`) + 1000, NOW - 5 * 60_000);
const TODAY = new Date(AT).toISOString().slice(0, 10);

interface Plan {
  viewers: [number, number];
  perViewer: number;
  clicks: number;
  conversions: number;
  value: number;
  spend: number | null;
}
/** cr-cheap: viewers 0..249 four times each; cr-dear: 100..699 once (150 people saw both); cr-novalue: no viewer ids, no spend. */
const PLANS: Record<string, Plan> = {
  'cr-cheap': { viewers: [0, 250], perViewer: 4, clicks: 50, conversions: 10, value: 20, spend: 50 },
  'cr-dear': { viewers: [100, 700], perViewer: 1, clicks: 30, conversions: 2, value: 5, spend: 90 },
  'cr-novalue': { viewers: [0, 0], perViewer: 0, clicks: 20, conversions: 0, value: 0, spend: null },
};

const money = (x: number) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: x >= 100 ? 0 : 2, maximumFractionDigits: x >= 100 ? 0 : 2 }).format(x);

describe('dashboard spend, costs and reach in a browser', { skip: skipOption(!hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)`) }, () => {
  let app: TestApp;
  let base: string;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const keyFor = async () => encodeURIComponent(((await app.authHeaders(T, ['read'])).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (hash: string) => page.goto(`${base}/?tenant=${T}#${hash}${hash.includes('?') ? '&' : '?'}key=${await keyFor()}`);
  async function waitText(selector: string, expected: string): Promise<void> {
    try {
      await eventually(async () => ((await page.textContent(selector)) === expected ? true : undefined), 15_000, 100);
    } catch {
      await page.screenshot({ path: path.join(SHOTS, 'failed.png'), fullPage: true });
      assert.equal(await page.textContent(selector, { timeout: 1000 }), expected, selector);
    }
  }
  async function shots(name: string): Promise<void> {
    for (const [size, vp] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      await page.setViewportSize(vp);
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(SHOTS, `${name}-${size}.png`), fullPage: true });
    }
    await page.setViewportSize(DESKTOP);
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const port = await freePort();
    [app, browser] = await Promise.all([
      startApp({ PORT: String(port), LIVE_FLUSH_MS: '200' }, ['ingest', 'stream', 'live', 'dashboard']),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] }),
    ]);
    base = app.running.url;
    const events: Record<string, unknown>[] = [];
    const ev = (asset: string, kind: string, viewer?: string, value = 1) => ({
      event_id: ulid(AT),
      tenant_id: T,
      campaign_id: C,
      asset_id: asset,
      kind,
      value,
      occurred_at: AT,
      ...(viewer !== undefined && { viewer_id: viewer }),
    });
    const spend: Record<string, unknown>[] = [];
    for (const [asset, p] of Object.entries(PLANS)) {
      for (let v = p.viewers[0]; v < p.viewers[1]; v++) for (let k = 0; k < p.perViewer; k++) events.push(ev(asset, 'impression', `viewer-${v}`));
      if (p.perViewer === 0) for (let i = 0; i < 400; i++) events.push(ev(asset, 'impression'));
      for (let i = 0; i < p.clicks; i++) events.push(ev(asset, 'click'));
      for (let i = 0; i < p.conversions; i++) events.push(ev(asset, 'conversion', undefined, p.value));
      if (p.spend !== null) spend.push({ campaign_id: C, asset_id: asset, date: TODAY, spend: p.spend });
    }
    await postAll(base, events);
    const res = await app.request(T, `/v1/import/spend?tenant_id=${T}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spend) });
    assert.equal(res.status, 200, await res.clone().text());
    // Both paid creatives are tied to one master photo (as the registry records its decisions).
    const store = app.running.store!;
    await store.client.insert({
      table: store.table(TABLES.tieDecisions),
      values: ['cr-cheap', 'cr-dear'].map((ad, i) => ({
        tenant_id: T, ad_asset_id: ad, decided_at: NOW - 1000 + i, decision_id: ulid(NOW), action: 'tie', target_asset_id: 'cr-master', score: 0.9, auto: true, decided_by: 'test', because_of: '',
      })),
      format: 'JSONEachRow',
    });
    await waitForSinkDrained(app.running);
    page = await browser.newPage({ viewport: DESKTOP, colorScheme: 'light', locale: 'en-US', timezoneId: 'UTC', acceptDownloads: true });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
  });

  const boardRows = async () =>
    page.$$eval('[data-testid=leaderboard] tbody tr[data-id]', (trs) =>
      // No named functions in here: the page has no __name helper for them.
      trs.map((tr) => [tr.getAttribute('data-id'), ...['spend', 'cpm', 'cpc', 'cpa', 'roas', 'reach', 'frequency'].map((id) => tr.querySelector(`[data-testid=${id}]`)?.textContent?.trim())]),
    );

  test('leaderboard: the cost & reach columns, ranked by CPA cheapest first; the sort is in the URL', async () => {
    await open(`/c/${C}`);
    await page.waitForSelector('[data-testid=leaderboard] tbody tr[data-id="cr-novalue"]');
    await page.click('[data-testid=cols-cost]');
    await page.waitForSelector('[data-testid=cost-note]');
    await waitText('[data-testid=leaderboard] tr[data-id="cr-cheap"] [data-testid=spend]', money(50));
    await page.click('[data-testid=leaderboard] thead th:has-text("CPA") button');
    // The order is held while the pointer is in the table: leave it.
    await page.mouse.move(5, 5);
    const expected = [
      ['cr-cheap', money(50), money(50), money(1), money(5), '4.00×', '250', '4.00'],
      ['cr-dear', money(90), money(150), money(3), money(45), `${(10 / 90).toFixed(2)}×`, '600', '1.00'],
      ['cr-novalue', '—', '—', '—', '—', '—', '—', '—'],
    ];
    await eventually(async () => (JSON.stringify(await boardRows()) === JSON.stringify(expected) ? true : undefined), 15_000, 200).catch(async () => assert.deepEqual(await boardRows(), expected));
    assert.equal(new URLSearchParams(((await page.evaluate('location.hash')) as string).split('?')[1] ?? '').get('sort'), 'cpa');
    // Unranked without a CPA: the rank column says so.
    const ranks = () => page.$$eval('[data-testid=leaderboard] [data-testid=rank]', (tds) => tds.map((td) => td.textContent?.trim()));
    const ranked = ['1', '2', '—'];
    await eventually(async () => (JSON.stringify(await ranks()) === JSON.stringify(ranked) ? true : undefined), 10_000, 100).catch(async () => assert.deepEqual(await ranks(), ranked));
    const note = (await page.textContent('[data-testid=cost-note]')) ?? '';
    assert.match(note, new RegExp(`– ${TODAY}`));
    // The campaign's reach: 700 people (0..699), not 250 + 600; 1,600 impressions.
    assert.match(note, /campaign reach 700 people, 2\.29 impressions each \(exact count/);
    // The CSV of the cost view carries the same figures.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export-csv]')]);
    const lines = readFileSync((await download.path())!, 'utf8').trimEnd().split('\r\n');
    const header = lines[0]!.split(',');
    assert.deepEqual(header.slice(-8), ['currency', 'spend', 'cpm', 'cpc', 'cpa', 'roas', 'reach', 'frequency']);
    assert.deepEqual(lines.slice(1).map((l) => [l.split(',')[2], ...l.split(',').slice(-8)]), [
      ['cr-cheap', 'USD', '50', '50', '1', '5', '4', '250', '4'],
      ['cr-dear', 'USD', '90', '150', '3', '45', String(Math.round((10 / 90) * 1e6) / 1e6), '600', '1'],
      ['cr-novalue', '', '', '', '', '', '', '', ''],
    ]);
    await shots('leaderboard-costs');
  });

  test('asset view: spend, CPM, CPC, CPA, ROAS, reach with its error, frequency', async () => {
    await open('/a/cr-cheap');
    await waitText('[data-testid=cr-spend]', money(50));
    assert.equal(await page.textContent('[data-testid=cr-cpm]'), money(50));
    assert.equal(await page.textContent('[data-testid=cr-cpc]'), money(1));
    assert.equal(await page.textContent('[data-testid=cr-cpa]'), money(5));
    assert.equal(await page.textContent('[data-testid=cr-roas]'), '4.00×');
    assert.equal(await page.textContent('[data-testid=cr-reach]'), '250');
    assert.equal(await page.textContent('[data-testid=cr-reach-error]'), 'exact count');
    assert.equal(await page.textContent('[data-testid=cr-frequency]'), '4.00');
    await shots('asset-costs');
    // No spend: said so, and reach/frequency are dashes (no viewer ids either).
    await open('/a/cr-novalue');
    await page.waitForSelector('[data-testid=cr-no-spend]');
    assert.equal(await page.textContent('[data-testid=cr-reach]'), '—');
  });

  test('master view: reach across the tied ads merges their viewers', async () => {
    await open('/m/cr-master');
    await waitText('[data-testid=cr-reach]', '700');
    assert.equal(await page.textContent('[data-testid=cr-frequency]'), (1600 / 700).toFixed(2));
    assert.match((await page.textContent('[data-testid=cr-union]')) ?? '', /700 people across 2 tied ads; their own reach adds up to 850 — about 150 saw more than one/);
    assert.equal(await page.textContent('[data-testid=cr-spend]'), money(140));
    await shots('master-reach');
  });

  test('rule editor: a cost-per-result rule, checked against the shared limits, saved with its parameters', async () => {
    const admin = encodeURIComponent(((await app.authHeaders(T, ['read', 'admin'])).authorization ?? '').replace(/^Bearer /, ''));
    await page.goto(`${base}/?tenant=${T}#/triggers&key=${admin}`);
    await page.locator('[data-testid=rule-new]').click();
    await page.locator('[data-testid=rule-editor]').waitFor();
    await page.fill('[data-testid=rule-id]', 'cpa-doubled');
    await page.selectOption('[data-testid=rule-kind]', 'cost_per_result');
    await page.fill('[data-testid=rule-campaign]', C);
    await page.fill('[data-param=factor]', '1');
    await page.selectOption('[data-param=result]', 'click');
    await page.locator('[data-testid=rule-save]').click();
    await page.locator('#err-params-factor').waitFor();
    assert.match((await page.locator('#err-params-factor').textContent()) ?? '', /factor must be more than 1/);
    await shots('rule-editor-cost');
    await page.fill('[data-param=factor]', '2.5');
    await page.locator('[data-testid=rule-save]').click();
    const stored = await eventually(async () => {
      const res = await app.request(T, `/v1/triggers/rules?tenant_id=${T}`);
      const rules = ((await res.json()) as { rules: { rule_id: string; kind: string; params: Record<string, unknown> }[] }).rules;
      return rules.find((r) => r.rule_id === 'cpa-doubled');
    }, 10_000);
    assert.equal(stored.kind, 'cost_per_result');
    assert.equal(stored.params.factor, 2.5);
    assert.equal(stored.params.result, 'click');
    assert.deepEqual(errors, []);
  });
});

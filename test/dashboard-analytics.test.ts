// The campaign view's date ranges, label filters, breakdowns, range CSV and the compare view, in a
// real browser (Debian's chromium through playwright-core) against a real Afterglow on the embedded
// defaults. Every number the page must show is recounted here from the events this test posts.
// Screenshots (1440x900 and 390x844) go to DASH_SHOTS (default artifacts/dashboard-analytics/).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ulid, type EngagementEvent, type EventKind } from '@afterglow/core';
import { eventually, freePort, skipOption } from '@afterglow/testkit/services';
import { assetForm, ensureTestModels, findSamplePhotos, testModelsDir } from '@afterglow/testkit/inference';
import { postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

declare const location: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
const SHOTS = path.resolve(process.env.DASH_SHOTS ?? path.join('artifacts', 'dashboard-analytics'));
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const T = 'ui-analytics';
const C = 'ax-camp';
const MIN = 60_000;
const HOUR = 60 * MIN;

const NOW = Date.now();
/** Recent traffic: the last hour (live window 1h) and the last 24 hours. */
const RECENT = NOW - 30 * MIN;
/** The previous day: in the period before "last 24 hours". */
const DAY_BEFORE = NOW - 30 * HOUR;
const events: EngagementEvent[] = [];

function add(asset: string, impressions: number, clicks: number, end: number): void {
  const channels = ['social', 'search'];
  const placements = ['feed', 'story', 'search-top'];
  const push = (kind: EventKind, i: number, n: number) =>
    events.push({
      event_id: ulid(end),
      tenant_id: T,
      campaign_id: C,
      asset_id: asset,
      kind,
      value: 1,
      occurred_at: end - Math.floor((i / n) * 20 * MIN),
      received_at: 0,
      channel: channels[i % 3 === 0 ? 1 : 0]!,
      placement: placements[i % 3]!,
      region: i % 4 === 0 ? 'us' : 'eu',
      device: i % 5 === 0 ? 'desktop' : 'mobile',
    });
  for (let i = 0; i < impressions; i++) push('impression', i, impressions);
  for (let i = 0; i < clicks; i++) push('click', i, clicks);
}
add('ax-strong', 2000, 130, RECENT);
add('ax-weak', 2000, 50, RECENT);
add('ax-third', 800, 30, RECENT);
add('ax-strong', 1000, 40, DAY_BEFORE);
add('ax-weak', 1000, 35, DAY_BEFORE);

function count(kind: EventKind, from: number, to: number, pred: (e: EngagementEvent) => boolean = () => true): number {
  return events.filter((e) => e.kind === kind && e.occurred_at >= from && e.occurred_at < to && pred(e)).length;
}
const fmt = (n: number) => new Intl.NumberFormat('en-US').format(n);

/** The two-proportion z-test, written out here independently of the dashboard's stats.ts. */
function zTestP(x1: number, n1: number, x2: number, n2: number): number {
  const p = (x1 + x2) / (n1 + n2);
  const z = Math.abs(x1 / n1 - x2 / n2) / Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
  // erfc by numerical integration of the normal density (Simpson, fine steps): 2 * (1 - Phi(z)).
  const steps = 20_000;
  const hi = 12;
  const h = (hi - z) / steps;
  let s = 0;
  for (let i = 0; i <= steps; i++) {
    const x = z + i * h;
    const w = i === 0 || i === steps ? 1 : i % 2 ? 4 : 2;
    s += w * Math.exp((-x * x) / 2);
  }
  return (2 * (s * h)) / 3 / Math.sqrt(2 * Math.PI);
}

describe('dashboard analytics in a browser', { skip: skipOption(!hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)`) }, () => {
  let app: TestApp;
  let base: string;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];
  const keyFor = async () => encodeURIComponent(((await app.authHeaders(T, ['read'])).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (hash: string) => page.goto(`${base}/?tenant=${T}#${hash}${hash.includes('?') ? '&' : '?'}key=${await keyFor()}`);
  /** Waits until the element's text is `expected`; on timeout fails with the text it had. */
  async function waitText(selector: string, expected: string): Promise<void> {
    try {
      await eventually(async () => ((await page.textContent(selector)) === expected ? true : undefined), 10_000, 100);
    } catch {
      await page.screenshot({ path: path.join(SHOTS, 'failed.png'), fullPage: true });
      assert.equal(await page.textContent(selector, { timeout: 1000 }), expected, selector);
    }
  }
  const hashQuery = async () => new URLSearchParams(((await page.evaluate(() => location.hash)) as string).split('?')[1] ?? '');

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
    ensureTestModels(['mobilenet_v2']);
    const port = await freePort();
    [app, browser] = await Promise.all([
      startApp({ PORT: String(port), AFTERGLOW_MODELS_DIR: testModelsDir(), TIE_MODEL: 'mobilenet_v2', TIE_AUTO_TIE_THRESHOLD: '1' }, ['ingest', 'stream', 'live', 'inference', 'dashboard']),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] }),
    ]);
    base = app.running.url;
    // The creatives' images (Debian's python3-skimage photos), for the compare view's cards.
    const photos = findSamplePhotos().slice(0, 3);
    assert.ok(photos.length === 3 || !process.env.CI, 'python3-skimage photos are needed');
    for (const [i, photo] of photos.entries()) {
      const id = ['ax-strong', 'ax-weak', 'ax-third'][i]!;
      const form = assetForm({ tenant_id: T, role: 'ad', asset_id: id, name: id, campaign_id: C }, { filename: path.basename(photo.path), bytes: readFileSync(photo.path) });
      const res = await app.request(T, '/v1/assets', { method: 'POST', body: form, scopes: ['admin'] });
      assert.ok(res.status === 201 || res.status === 200, `${res.status} ${await res.text()}`);
    }
    await postAll(base, events);
    await waitForSinkDrained(app.running);
    page = await browser.newPage({ viewport: DESKTOP, colorScheme: 'light', acceptDownloads: true, timezoneId: 'UTC' });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(msg.text())) errors.push(`console: ${msg.text()}`);
    });
  });

  after(async () => {
    await browser?.close();
    await app?.close();
  });

  const rowsOf = async (testid: string) =>
    page.$$eval(`[data-testid=${testid}]`, (trs) =>
      trs.map((tr) => ({ value: tr.getAttribute('data-value') ?? tr.getAttribute('data-id'), impressions: tr.querySelector('[data-testid=bd-impressions]')?.textContent, clicks: tr.querySelector('[data-testid=bd-clicks]')?.textContent })),
    );

  test('breakdown panel: by channel over the live window, then by placement; the dimension is in the URL', async () => {
    await open(`/c/${C}?w=1h`);
    await page.waitForSelector('[data-testid=breakdown-row]');
    const from = NOW - HOUR;
    const expect = (dim: 'channel' | 'placement', values: string[]) =>
      values
        .map((v) => ({ value: v, impressions: fmt(count('impression', from, NOW + MIN, (e) => e[dim] === v)), clicks: fmt(count('click', from, NOW + MIN, (e) => e[dim] === v)) }))
        .sort((a, b) => Number(b.impressions.replace(/,/g, '')) - Number(a.impressions.replace(/,/g, '')));
    assert.deepEqual(await rowsOf('breakdown-row'), expect('channel', ['social', 'search']));
    await page.click('[data-testid=by-placement]');
    await eventually(async () => ((await rowsOf('breakdown-row')).some((r) => r.value === 'story') ? true : undefined), 10_000, 100);
    assert.deepEqual(await rowsOf('breakdown-row'), expect('placement', ['feed', 'story', 'search-top']));
    assert.equal((await hashQuery()).get('by'), 'placement');
    await shots('breakdown-live');
  });

  test('date range "last 24 hours": totals against the day before, and a label filter; both in the URL', async () => {
    await page.selectOption('[data-testid=range-preset]', '24h');
    await page.waitForSelector('[data-testid=range-kpis]');
    const cur = { from: NOW - 24 * HOUR, to: NOW + MIN };
    const prev = { from: NOW - 48 * HOUR, to: NOW - 24 * HOUR };
    assert.equal(await page.textContent('[data-testid=range-impressions]'), fmt(count('impression', cur.from, cur.to)));
    assert.equal(await page.textContent('[data-testid=range-clicks]'), fmt(count('click', cur.from, cur.to)));
    // 4,800 impressions against 2,000 the day before: +140%.
    const rel = (count('impression', cur.from, cur.to) / count('impression', prev.from, prev.to) - 1) * 100;
    assert.match((await page.locator('[data-testid=range-kpis] [data-testid=delta]').first().textContent()) ?? '', new RegExp(`\\+${Math.round(rel)}%`));
    assert.equal((await hashQuery()).get('range'), '24h');

    await page.selectOption('[data-testid=filter-channel]', 'social');
    const social = (e: EngagementEvent) => e.channel === 'social';
    await waitText('[data-testid=range-impressions]', fmt(count('impression', cur.from, cur.to, social)));
    assert.equal(await page.textContent('[data-testid=range-clicks]'), fmt(count('click', cur.from, cur.to, social)));
    assert.equal((await hashQuery()).get('f.channel'), 'social');
    // The breakdown follows the filter (by placement, social only).
    await waitText('[data-testid=breakdown-row][data-value=story] [data-testid=bd-impressions]', fmt(count('impression', cur.from, cur.to, (e) => social(e) && e.placement === 'story')));
    await shots('range-24h-filtered');
  });

  test('CSV export honours the range and the filter', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=range-export-csv]')]);
    const csv = readFileSync((await download.path())!, 'utf8').trim().split('\r\n');
    const header = csv[0]!.split(',');
    const col = (name: string) => header.indexOf(name);
    const rows = csv.slice(1).map((l) => l.split(','));
    const cur = { from: NOW - 24 * HOUR, to: NOW + MIN };
    assert.deepEqual(rows.map((r) => r[col('asset_id')]).sort(), ['ax-strong', 'ax-third', 'ax-weak']);
    for (const r of rows) {
      const mine = (e: EngagementEvent) => e.asset_id === r[col('asset_id')] && e.channel === 'social';
      assert.equal(Number(r[col('impressions')]), count('impression', cur.from, cur.to, mine), r.join(','));
      assert.equal(Number(r[col('clicks')]), count('click', cur.from, cur.to, mine));
      assert.equal(r[col('filters')], 'channel=social');
      assert.equal(Number(r[col('previous_impressions')]), count('impression', cur.from - 24 * HOUR, cur.from, mine));
    }
  });

  test('custom range (the day before) from the picker; the link reopens the same view', async () => {
    await page.click('[data-testid=filters-clear]');
    await page.selectOption('[data-testid=range-preset]', 'custom');
    const local = (ms: number) => new Date(ms).toISOString().slice(0, 16); // the page runs in UTC
    const from = Math.floor((DAY_BEFORE - 2 * HOUR) / MIN) * MIN;
    const to = Math.floor((DAY_BEFORE + 2 * HOUR) / MIN) * MIN;
    await page.fill('[data-testid=range-from]', local(from));
    await page.fill('[data-testid=range-to]', local(to));
    await page.click('[data-testid=range-apply]');
    await waitText('[data-testid=range-impressions]', fmt(count('impression', from, to)));
    const q = await hashQuery();
    assert.equal(q.get('range'), 'custom');
    assert.equal(q.get('from'), `${local(from)}Z`);
    assert.equal(q.get('filters'), null);
    // A fresh page on the same link: the same range.
    await page.reload();
    await page.waitForSelector('[data-testid=range-kpis]');
    assert.equal(await page.textContent('[data-testid=range-impressions]'), fmt(count('impression', from, to)));
    assert.equal(await page.inputValue('[data-testid=range-preset]'), 'custom');
    await shots('range-custom');
  });

  test('compare: tick creatives in the range table, open the compare view; CTRs with intervals and the significance of the difference', async () => {
    await page.selectOption('[data-testid=range-preset]', '24h');
    await page.waitForSelector('[data-testid=range-row][data-id=ax-weak]');
    await page.check('[data-testid=range-row][data-id=ax-strong] [data-testid=select-asset]');
    await page.check('[data-testid=range-row][data-id=ax-weak] [data-testid=select-asset]');
    await page.click('[data-testid=compare-go]');
    await page.waitForSelector('[data-testid=compare-card]');
    const q = await hashQuery();
    assert.equal(q.get('ids'), 'ax-strong,ax-weak');
    assert.equal(q.get('range'), '24h');
    const cur = { from: NOW - 24 * HOUR, to: NOW + MIN };
    const n = (id: string, kind: EventKind) => count(kind, cur.from, cur.to, (e) => e.asset_id === id);
    for (const id of ['ax-strong', 'ax-weak']) {
      const card = page.locator(`[data-testid=compare-card][data-id=${id}]`);
      assert.equal(await card.locator('[data-testid=cmp-impressions]').textContent(), fmt(n(id, 'impression')));
      assert.equal(await card.locator('[data-testid=cmp-clicks]').textContent(), fmt(n(id, 'click')));
      assert.equal(await card.locator('[data-testid=cmp-ctr]').textContent(), `${((100 * n(id, 'click')) / n(id, 'impression')).toFixed(2)}%`);
    }
    // 6.5% vs 2.5% over 2,000 impressions each: p far below 0.05.
    const p = zTestP(n('ax-strong', 'click'), n('ax-strong', 'impression'), n('ax-weak', 'click'), n('ax-weak', 'impression'));
    assert.ok(p < 0.0001, String(p));
    assert.equal(await page.textContent('[data-testid=pair-p]'), '< 0.0001');
    assert.match((await page.textContent('[data-testid=pair-verdict]')) ?? '', /ax-strong is ahead/);
    await page.waitForSelector('[data-testid=compare-chart] canvas');
    if (findSamplePhotos().length >= 3) await page.waitForSelector('[data-testid=compare-card][data-id=ax-weak] img[data-testid=thumb]');
    await shots('compare-two');

    // A third creative, by URL (shareable): 3.75% vs 2.5% is significant on its own (p about 0.08? recounted), judged per pair.
    await open('/compare?ids=ax-strong,ax-weak,ax-third&range=24h');
    await page.waitForSelector('[data-testid=compare-card][data-id=ax-third]');
    const verdicts = await page.$$eval('[data-testid=compare-pair]', (trs) => trs.map((tr) => [tr.querySelector('th')?.textContent, tr.querySelector('[data-testid=pair-p]')?.textContent, tr.querySelector('[data-testid=pair-verdict]')?.textContent?.trim()]));
    assert.equal(verdicts.length, 3);
    const weakThird = verdicts.find((v) => v[0] === 'ax-weak vs ax-third')!;
    const pWT = zTestP(n('ax-weak', 'click'), n('ax-weak', 'impression'), n('ax-third', 'click'), n('ax-third', 'impression'));
    assert.equal(Number(weakThird[1]), Number(pWT.toFixed(pWT < 0.01 ? 4 : 3)));
    // Three pairs: significant means p < 0.05 / 3.
    assert.equal(weakThird[2], pWT < 0.05 / 3 ? 'ax-third is ahead' : 'not significant');
    await shots('compare-three');
  });

  test('asset page: the creative over a date range (7 days by default, then 24 hours), against the period before', async () => {
    await open('/a/ax-strong');
    await page.waitForSelector('[data-testid=asset-range] [data-testid=ar-impressions]');
    const mine = (e: EngagementEvent) => e.asset_id === 'ax-strong';
    await waitText('[data-testid=ar-impressions]', fmt(count('impression', NOW - 7 * 24 * HOUR, NOW + MIN, mine)));
    await page.selectOption('[data-testid=asset-range] [data-testid=range-preset]', '24h');
    await waitText('[data-testid=ar-impressions]', fmt(count('impression', NOW - 24 * HOUR, NOW + MIN, mine)));
    await waitText('[data-testid=ar-clicks]', fmt(count('click', NOW - 24 * HOUR, NOW + MIN, mine)));
    // 2,000 against 1,000 the day before.
    assert.equal(await page.textContent('[data-testid=asset-range] [data-testid=delta]'), '▲+100%');
    await page.waitForSelector('[data-testid=asset-range-chart] canvas');
    await shots('asset-range');
  });

  test('the live leaderboard has tick boxes that lead to the same compare view', async () => {
    // The live windows count what arrives now (the traffic above is past their late window).
    const live: EngagementEvent[] = [];
    for (const a of ['ax-strong', 'ax-weak']) for (let i = 0; i < 50; i++) live.push({ event_id: ulid(), tenant_id: T, campaign_id: C, asset_id: a, kind: 'impression', value: 1, occurred_at: Date.now() - i * 100, received_at: 0 });
    await postAll(base, live);
    await open(`/c/${C}`);
    await page.waitForSelector('[data-testid=leaderboard] [data-testid=select-asset]');
    const boxes = page.locator('[data-testid=leaderboard] [data-testid=select-asset]');
    await boxes.nth(0).check();
    // The second from the keyboard: x ticks the focused row.
    await page.focus('[data-testid=leaderboard] tr[data-index="1"]');
    await page.keyboard.press('x');
    assert.equal(await boxes.nth(1).isChecked(), true);
    // Ticking does not open the row's asset page.
    assert.match((await page.evaluate(() => location.hash)) as string, /^#\/c\//);
    const href = (await page.getAttribute('[data-testid=compare-go]', 'href')) ?? '';
    assert.match(href, /^#\/compare\?ids=ax-[a-z]+,ax-[a-z]+$/);
    await shots('leaderboard-ticked');
    assert.deepEqual(errors, []);
  });
});

// The browser SDK (@afterglow/web, ingest/web) in a real browser (Debian's chromium through
// playwright-core) on pages served by a static server, posting to a real Afterglow (ingest + sink on
// the embedded defaults) with a web key. Every viewability decision is asserted against what the
// store holds (totals per campaign, recounted from events_raw): one creative per campaign, so a
// count of a kind is that creative's. Absences are read after a creative of the same page, flushed
// in the same batch, has arrived and the sink has drained.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ulid } from '@afterglow/core';
import { eventually, freePort, skipOption } from '@afterglow/testkit/services';
import { lavfiClip } from '@afterglow/testkit/video';
import { fetchTotals, startApp, waitForSinkDrained, type Counts, type TestApp } from './support.js';

// Browser globals, for the callbacks that run in the page (this project compiles without the DOM lib).
declare const window: any, document: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const TENANT = 'websdk';
/** An origin the web key does not allow, mapped to the static server by the browser's resolver. */
const EVIL_HOST = 'evil.test';
const VIEWPORT = { width: 800, height: 600 };

/** Page visibility emulation: headless tabs are always visible, so the test flips document.visibilityState itself. */
const VISIBILITY_SHIM = `(() => {
  let hidden = new URLSearchParams(location.search).has('startHidden');
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
  window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event('visibilitychange')); };
})();`;

describe('web SDK in a browser', { skip: skipOption(!hasChromium && `${CHROMIUM} is not installed (apt-get install -y chromium)`) }, () => {
  let app: TestApp;
  let browser: Browser;
  let statics: Server;
  let sitePort: number;
  let site: string;
  let webKey: string;
  let sdk: string;
  /** A 4 s VP9 WebM made by the packaged ffmpeg (Debian's chromium plays VP9; H.264 it may not). */
  let clip: Buffer;
  /** Page bodies by path, set by each test before it opens the page. */
  const pages = new Map<string, string>();

  before(async () => {
    const bundled = await build({ entryPoints: [path.resolve('ingest/web/src/index.ts')], bundle: true, minify: true, format: 'iife', globalName: 'Afterglow', target: ['es2020'], write: false });
    sdk = bundled.outputFiles[0]!.text;
    const clipDir = mkdtempSync(path.join(tmpdir(), 'afterglow-websdk-clip-'));
    clip = await lavfiClip(path.join(clipDir, 'clip.webm'), { width: 160, height: 96, fps: 25, seconds: 4, codec: 'vp9' });
    rmSync(clipDir, { recursive: true, force: true });
    sitePort = await freePort();
    site = `http://127.0.0.1:${sitePort}`;
    statics = createServer((req, res) => {
      const p = (req.url ?? '/').split('?')[0]!;
      if (p === '/sdk.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(sdk);
      if (p === '/clip.webm') {
        // Byte ranges, so the player can seek back to 0 for a replay.
        const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        if (!range) return void res.writeHead(200, { 'content-type': 'video/webm', 'accept-ranges': 'bytes', 'content-length': clip.length }).end(clip);
        const from = Number(range[1]);
        const to = range[2] ? Math.min(Number(range[2]), clip.length - 1) : clip.length - 1;
        res.writeHead(206, { 'content-type': 'video/webm', 'accept-ranges': 'bytes', 'content-range': `bytes ${from}-${to}/${clip.length}`, 'content-length': to - from + 1 });
        return void res.end(clip.subarray(from, to + 1));
      }
      const html = pages.get(p);
      if (html === undefined) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    });
    await new Promise<void>((resolve) => statics.listen(sitePort, '127.0.0.1', resolve));
    [app, browser] = await Promise.all([
      startApp({}, ['ingest', 'stream']),
      chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run', `--host-resolver-rules=MAP ${EVIL_HOST} 127.0.0.1`],
      }),
    ]);
    webKey = (await app.running.keys!.create({ tenantId: TENANT, scopes: ['ingest'], name: 'site', origins: [site] })).key;
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await new Promise((resolve) => statics?.close(resolve));
  });

  /** A page whose creatives are `body`; the SDK is started with `config` (plus endpoint, key, tenant). */
  function servePage(name: string, body: string, config: Record<string, unknown> = {}): string {
    const cfg = { endpoint: app.running.url, key: webKey, tenant: TENANT, flushIntervalMs: 300, retryBaseMs: 300, ...config };
    pages.set(
      `/${name}`,
      `<!doctype html><html><head><meta charset="utf-8"><style>
        body { margin: 0; height: 6000px; position: relative; font: 14px sans-serif; }
        .c { position: absolute; left: 20px; width: 300px; height: 200px; background: #d33; color: #fff; }
        video.c { background: #33d; }
      </style></head><body>${body}
      <script src="/sdk.js"></script>
      <script>window.sdkErrors = []; window.tracker = Afterglow.init(Object.assign(${JSON.stringify(cfg)}, { onError: (e) => window.sdkErrors.push(e) }));</script>
      </body></html>`,
    );
    return `/${name}`;
  }

  const creative = (id: string, top: number, style = '') =>
    `<div class="c" id="${id}" style="top:${top}px;${style}" data-afterglow-asset="${id}" data-afterglow-campaign="${id}" data-afterglow-placement="slot-1">${id}</div>`;
  const pageErrors: string[] = [];
  /** Close the context; no page of it may have thrown. */
  async function done(context: BrowserContext): Promise<void> {
    await context.close();
    assert.deepEqual(pageErrors.splice(0), []);
  }

  async function open(context: BrowserContext, pagePath: string, origin = site): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${origin}${pagePath}`);
    return page;
  }

  async function newContext(init?: string): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: VIEWPORT });
    await context.addInitScript(VISIBILITY_SHIM);
    if (init) await context.addInitScript(init);
    return context;
  }

  /** Scroll so that `top` is at the top of the viewport, and let two frames run (IntersectionObserver reports at frames). */
  async function scrollTo(page: Page, top: number): Promise<void> {
    await page.evaluate(async (y) => {
      window.scrollTo(0, y);
      await new Promise((r) => window.requestAnimationFrame(() => window.requestAnimationFrame(r)));
    }, top);
  }

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** The campaign's counts recounted from events_raw, with the sums of value per kind (the route returns them; the helper's type omits them). */
  const totals = async (campaign: string) => (await fetchTotals(app.running.url, TENANT, campaign, 'raw')) as Awaited<ReturnType<typeof fetchTotals>> & { values: Counts };
  async function arrived(campaign: string, kind: 'impression' | 'click' | 'dwell', n = 1) {
    return eventually(async () => ((await totals(campaign)).counts[kind] >= n ? true : undefined), 30_000, 200);
  }

  test('impressions follow the MRC rule: in view, scrolled into view, hidden, under half, briefly, video; clicks and dwell', async () => {
    const context = await newContext();
    const page = await open(
      context,
      servePage(
        'rules',
        [
          creative('w-visible', 10),
          creative('w-hidden', 250, 'display:none'),
          // 60 px of 200 in the 600 px viewport: 30 %.
          creative('w-partial', 540),
          creative('w-brief', 1500),
          creative('w-below', 3000),
          `<video class="c" id="w-video" style="top:4500px" muted data-afterglow-asset="w-video" data-afterglow-campaign="w-video"></video>`,
        ].join(''),
      ),
    );
    const inView = await page.evaluate(() => {
      const r = document.getElementById('w-partial').getBoundingClientRect();
      return (Math.min(r.bottom, window.innerHeight) - Math.max(r.top, 0)) / r.height;
    });
    assert.ok(inView > 0.2 && inView < 0.5, `w-partial is partly in view: ${inView}`);
    await sleep(1800); // w-visible meets the rule; w-partial never can
    await scrollTo(page, 1450);
    await sleep(200); // w-brief in view for a fifth of the second it needs
    await scrollTo(page, 0);
    await scrollTo(page, 2950);
    await sleep(1800); // w-below meets the rule
    await scrollTo(page, 4450);
    await sleep(1000); // the video: half of its two seconds
    await scrollTo(page, 0);
    await sleep(300);
    await scrollTo(page, 4450);
    await sleep(3000); // the video: two continuous seconds
    await scrollTo(page, 0);
    await page.click('#w-visible');
    await page.evaluate(() => window.tracker.flush());
    await Promise.all([arrived('w-visible', 'click'), arrived('w-below', 'dwell'), arrived('w-video', 'dwell')]);
    await waitForSinkDrained(app.running);

    const visible = await totals('w-visible');
    assert.equal(visible.counts.impression, 1, 'in view at load: one impression (not one per period in view)');
    assert.equal(visible.counts.click, 1);
    assert.ok(visible.counts.dwell >= 1 && visible.values.dwell >= 1000, `dwell after the impression: ${JSON.stringify(visible)}`);
    const below = await totals('w-below');
    assert.deepEqual([below.counts.impression, below.counts.dwell], [1, 1], 'scrolled into view and held');
    assert.ok(below.values.dwell >= 1000, `its period in view lasted at least the second that made it viewable: ${below.values.dwell}`);
    const video = await totals('w-video');
    assert.equal(video.counts.impression, 1, 'the video counted once, after two continuous seconds');
    assert.ok(video.values.dwell >= 2000, `the video's dwell is the period that met its rule: ${video.values.dwell}`);
    for (const never of ['w-hidden', 'w-partial', 'w-brief']) {
      const t = await totals(never);
      assert.equal(t.total, 0, `${never}: ${JSON.stringify(t.counts)}`);
    }
    assert.deepEqual(await page.evaluate(() => window.sdkErrors), []);
    await done(context);
  });

  test('a <video> creative reports its plays: start, 3 s, quartiles, complete, watch time; a replay stopped early is a second play', async () => {
    const context = await newContext();
    const page = await open(
      context,
      servePage('video-play', `<video class="c" id="w-play" style="top:10px" muted playsinline preload="auto" src="/clip.webm" data-afterglow-asset="w-play" data-afterglow-campaign="w-play"></video>`),
    );
    const started = Date.now();
    await page.evaluate(() => document.getElementById('w-play').play());
    await page.waitForFunction(() => document.getElementById('w-play').ended, undefined, { timeout: 30_000 });
    // The replay: stopped at 1.2 s of 4 (past 25 %, short of the 3 s hook).
    await page.evaluate(() => document.getElementById('w-play').play());
    await page.waitForFunction(() => document.getElementById('w-play').currentTime >= 1.2, undefined, { timeout: 30_000 });
    await page.evaluate(() => document.getElementById('w-play').pause());
    await page.evaluate(() => window.tracker.flush());
    const elapsed = Date.now() - started;
    await eventually(async () => ((await totals('w-play')).counts.video_start === 2 ? true : undefined), 30_000, 200);
    await waitForSinkDrained(app.running);
    const t = await totals('w-play');
    const c = t.counts as Record<string, number>;
    const v = t.values as Record<string, number>;
    assert.deepEqual(
      [c.video_start, c.video_seconds, c.video_progress, c.video_complete, c.impression],
      [2, 1, 4, 1, 1],
      `two plays (25/50/75 then 25 again), one hook, one end, one impression: ${JSON.stringify(t.counts)}`,
    );
    assert.equal(v.video_progress, 25 + 50 + 75 + 25);
    // Watch time is the page clock while playing: at least the 5.2 s of media played at 1x (less a
    // little for the first frame), at most the time the test took.
    assert.ok(v.video_watch! >= 4000 && v.video_watch! <= elapsed, `watched ${v.video_watch} ms in ${elapsed} ms`);
    await page.screenshot({ path: path.join(tmpdir(), 'afterglow-websdk-video.png') });
    await done(context);
  });

  test('a hidden tab stops the clock: two 600 ms periods around a hidden spell are no impression; hiding sends by beacon', async () => {
    const context = await newContext();
    const page = await open(context, `${servePage('tab', creative('w-tab-split', 10) + creative('w-tab-later', 3000), { flushIntervalMs: 60_000 })}?startHidden`);
    const beacons: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/events') && r.resourceType() === 'ping') beacons.push(r.postData() ?? '');
    });
    await sleep(1500); // opened in the background: nothing counts
    await page.evaluate(() => window.__setHidden(false));
    await sleep(600);
    await page.evaluate(() => window.__setHidden(true));
    await sleep(1500);
    await page.evaluate(() => window.__setHidden(false));
    await sleep(600);
    await page.evaluate(() => window.__setHidden(true));
    await scrollTo(page, 2950);
    await page.evaluate(() => window.__setHidden(false));
    await sleep(1800);
    // The flush interval is a minute: only the hide sends this, through sendBeacon.
    await page.evaluate(() => window.__setHidden(true));
    await arrived('w-tab-later', 'dwell');
    await waitForSinkDrained(app.running);
    assert.ok(beacons.length >= 1, 'hiding the page sent a beacon');
    assert.ok(beacons.some((b) => b.includes('w-tab-later')));
    const later = await totals('w-tab-later');
    assert.deepEqual([later.counts.impression, later.counts.dwell], [1, 1]);
    assert.equal((await totals('w-tab-split')).total, 0, '600 + 600 ms split by a hidden tab is not a continuous second');
    await done(context);
  });

  test('a failed post is retried with the same event ids, and the server counts the impression once', async () => {
    const context = await newContext();
    const bodies: string[] = [];
    let attempt = 0;
    await context.route('**/v1/events**', async (route) => {
      bodies.push(route.request().postData() ?? '');
      if (attempt++ === 0) {
        // The server stores the batch, but the answer never reaches the page.
        const res = await route.fetch();
        assert.equal(res.status(), 202);
        return route.abort('connectionreset');
      }
      return route.continue();
    });
    const page = await open(context, servePage('retry', creative('w-retry', 10)));
    await arrived('w-retry', 'impression');
    await eventually(() => (bodies.length >= 2 ? true : undefined), 30_000, 100);
    await waitForSinkDrained(app.running);
    const ids = bodies.map((b) => (JSON.parse(b) as { event_id: string; kind: string }[]).filter((e) => e.kind === 'impression').map((e) => e.event_id));
    assert.equal(ids[0]!.length, 1);
    assert.deepEqual(ids[1], ids[0], 'the retry carries the same event id');
    for (const source of ['raw', 'rollup'] as const) {
      assert.equal((await fetchTotals(app.running.url, TENANT, 'w-retry', source)).counts.impression, 1, `${source}: sent twice, counted once`);
    }
    assert.equal(await page.evaluate(() => window.sdkErrors.length), 0);
    await done(context);
  });

  test('Do-Not-Track: nothing is sent', async () => {
    const context = await newContext(`Object.defineProperty(Navigator.prototype, 'doNotTrack', { configurable: true, get: () => '1' });`);
    const page = await context.newPage();
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/events')) posts.push(r.url());
    });
    await page.goto(`${site}${servePage('dnt', creative('w-dnt', 10))}`);
    assert.equal(await page.evaluate(() => window.navigator.doNotTrack), '1');
    await sleep(1800);
    await page.click('#w-dnt');
    await page.evaluate(() => window.tracker.flush());
    await page.evaluate(() => window.__setHidden(true));
    await sleep(500);
    assert.deepEqual(posts, []);
    await waitForSinkDrained(app.running);
    assert.equal((await totals('w-dnt')).total, 0);
    await done(context);
  });

  test('consent required: nothing is observed or sent before consent(true); then the creative counts', async () => {
    const context = await newContext();
    const page = await open(context, servePage('consent', creative('w-consent', 10), { requireConsent: true }));
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/v1/events')) posts.push(r.postData() ?? '');
    });
    await sleep(1800);
    await page.click('#w-consent');
    await page.evaluate(() => window.tracker.flush());
    await sleep(500);
    assert.deepEqual(posts, [], 'no request before consent');
    await page.evaluate(() => window.tracker.consent(true));
    await arrived('w-consent', 'impression');
    await page.evaluate(() => window.tracker.flush());
    await waitForSinkDrained(app.running);
    const t = await totals('w-consent');
    assert.deepEqual([t.counts.impression, t.counts.click], [1, 0], 'the click before consent was never recorded');
    await done(context);
  });

  test('a page on an origin the key does not allow is refused (no CORS grant) and nothing is stored', async () => {
    const context = await newContext();
    const evilPath = servePage('evil', creative('w-evil', 10), { maxRetries: 0 });
    const page = await context.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    const failed = page.waitForEvent('requestfailed', { predicate: (r) => r.url().includes('/v1/events'), timeout: 30_000 });
    await page.goto(`http://${EVIL_HOST}:${sitePort}${evilPath}`);
    await failed;
    // The server answered 403 origin_forbidden without a CORS grant (asserted directly in the next test), so the browser blocks it.
    const blocked = `from origin 'http://${EVIL_HOST}:${sitePort}' has been blocked by CORS policy`;
    await eventually(() => (consoleLines.some((l) => l.includes(blocked)) ? true : undefined), 10_000, 50);
    // To the page the refusal is a network error, given up after its retries (none here).
    await eventually(async () => ((await page.evaluate(() => window.sdkErrors.length)) > 0 ? true : undefined), 10_000, 100);
    await waitForSinkDrained(app.running);
    assert.equal((await totals('w-evil')).total, 0);
    await done(context);
  });

  test('the ingest endpoint with a web key: origin checked, CORS only for its origins, ingest only, URL only for web keys', async () => {
    const url = `${app.running.url}/v1/events?access_token=${encodeURIComponent(webKey)}`;
    const event = (campaign: string, tenant = TENANT) => JSON.stringify([{ event_id: ulid(), tenant_id: tenant, campaign_id: campaign, asset_id: 'a1', kind: 'click', occurred_at: Date.now() }]);
    const post = (origin: string | undefined, body: string, target = url) =>
      fetch(target, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8', ...(origin && { origin }) }, body });

    const ok = await post(site, event('w-direct'));
    assert.equal(ok.status, 202, await ok.clone().text());
    assert.equal(ok.headers.get('access-control-allow-origin'), site);
    assert.match(ok.headers.get('vary') ?? '', /origin/i);

    for (const origin of ['https://evil.example', `http://localhost:${sitePort}`, 'null', undefined]) {
      const r = await post(origin, event('w-direct'));
      assert.equal(r.status, 403, String(origin));
      assert.equal(((await r.json()) as { error: string }).error, 'origin_forbidden');
      assert.equal(r.headers.get('access-control-allow-origin'), null);
    }
    const other = await post(site, event('w-direct', 'another-tenant'));
    assert.equal(other.status, 422);
    assert.equal(((await other.json()) as { rejections: { reason: string }[] }).rejections[0]?.reason, 'tenant_forbidden', 'events for another tenant are refused');
    const read = await fetch(`${app.running.url}/v1/campaigns?tenant_id=${TENANT}&access_token=${encodeURIComponent(webKey)}`, { headers: { origin: site } });
    assert.equal(read.status, 403);
    assert.equal(((await read.json()) as { error: string }).error, 'scope_forbidden', 'a web key never reads');
    // A secret (non-web) key is not accepted in the URL, even from an origin a web key allows.
    const secret = (await app.authHeaders(TENANT, ['ingest'])).authorization!.replace(/^Bearer /, '');
    const inUrl = await post(site, event('w-direct'), `${app.running.url}/v1/events?access_token=${encodeURIComponent(secret)}`);
    assert.equal(inUrl.status, 401);
    await waitForSinkDrained(app.running);
    assert.equal((await totals('w-direct')).counts.click, 1, 'only the allowed request was stored');
  });
});

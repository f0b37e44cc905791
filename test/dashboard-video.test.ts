// A video creative in a real browser (Debian's chromium through playwright-core) against a real
// Afterglow (embedded defaults, real MobileNetV2 tie engine, packaged ffmpeg): a video ad cut from
// two master photos plus a B-roll shot is registered; its asset page plays the original (fetched with
// the key) and shows one card per shot with its time range and master (or "no master"); clicking a
// shot seeks the player; on the review page each shot's top masters are confirmed or refused, and the
// asset page follows. The original's byte ranges and tenancy are checked through the full server.
// Video plays sent over HTTP show in the engagement panel under the player (hook, hold, completion,
// watch time, retention with the playhead; a click on a step seeks), checked against figures worked
// out by hand, and on the master's page (folded by the shots' time on screen).
// Screenshots go to artifacts/dashboard-video/ (gitignored).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { findSamplePhotos } from '@afterglow/testkit/images';
import { assetForm, ensureTestModels, testModelsDir } from '@afterglow/testkit/inference';
import { eventually, freePort, skipOption } from '@afterglow/testkit/services';
import { encodeClip, kenBurns } from '@afterglow/testkit/video';
import { ulid } from '@afterglow/core';
import { postAll, startApp, type TestApp } from './support.js';

declare const document: any;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium (apt-get install -y chromium)`);
if (!existsSync(path.resolve('dashboard', 'dist', 'app', 'index.html')) && process.env.CI) throw new Error('dashboard/dist/app is missing: build the dashboard (vite build) first');
const photos = findSamplePhotos(['python3-skimage']);
if (photos.length < 6 && process.env.CI) throw new Error('the python3-skimage sample photos are missing: CI must provide them (apt-get install python3-skimage)');
const ARTIFACTS = path.resolve('artifacts', 'dashboard-video');
const T = 'ui-video';
const OTHER = 'ui-video-other';
const AD = 'spring-video-15s';
const MASTERS = ['astronaut', 'coffee', 'chelsea', 'rocket'];
const W = 320;
const H = 180;

/** What the strip should say for a shot's time range (m:ss.s–m:ss.s), computed apart from the app's code. */
const range = (s: { start: number; end: number }) => {
  const f = (t: number) => `${Math.floor(t / 60)}:${(t % 60).toFixed(1).padStart(4, '0')}`;
  return `${f(s.start)}–${f(s.end)}`;
};

/** 95 % Wilson interval of k out of n, worked out here apart from the app's code. */
const wilson = (k: number, n: number) => {
  const z = 1.959963984540054;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { value: p, low: Math.max(0, c - h), high: Math.min(1, c + h) };
};
/** A share as the panel writes it: one decimal from 10 %, two below. */
const pct = (p: number) => {
  const v = p * 100;
  return v === 0 ? '0%' : `${v.toFixed(Math.abs(v) >= 10 ? 1 : 2)}%`;
};
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

interface Shot {
  index: number;
  start: number;
  end: number;
  candidates?: { master_asset_id: string; score: number }[];
  auto_tie?: string | null;
  review?: { action: string; master_asset_id: string | null; score: number | null };
}

describe('a video creative in the browser', { skip: skipOption((!hasChromium && `${CHROMIUM} not installed (apt-get install -y chromium)`) || (photos.length < 6 && 'needs the python3-skimage photos')) }, () => {
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  let original: Buffer;
  const errors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    ensureTestModels(['mobilenet_v2']);
    const port = await freePort();
    [app, browser] = await Promise.all([
      startApp({ PORT: String(port), AFTERGLOW_MODELS_DIR: testModelsDir(), TIE_MODEL: 'mobilenet_v2', LIVE_FLUSH_MS: '100' }, ['ingest', 'stream', 'live', 'inference', 'dashboard']),
      chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--autoplay-policy=no-user-gesture-required'] }),
    ]);
    page = await browser.newPage({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  });
  after(async () => {
    await browser?.close();
    await app?.close();
  });

  const key = async () => encodeURIComponent(((await app.authHeaders(T, ['read', 'admin'])).authorization ?? '').replace(/^Bearer /, ''));
  const open = async (hash: string) => page.goto(`${app.running.url}/?tenant=${T}#${hash}&key=${await key()}`);
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const videoShots = async () => ((await (await app.request(T, `/v1/assets/${AD}/video?tenant_id=${T}`)).json()) as { shots: Shot[] }).shots;

  test('set up: four master photos, a video ad cut from two of them with a B-roll shot', async () => {
    const pixels = new Map<string, { data: Uint8Array; width: number; height: number }>();
    for (const name of [...MASTERS, 'motorcycle_left']) {
      const p = photos.find((x) => path.basename(x.path).startsWith(`${name}.`));
      assert.ok(p, `photo ${name}`);
      const { data, info } = await sharp(p.path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      pixels.set(name, { data: new Uint8Array(data), width: info.width, height: info.height });
      if (!MASTERS.includes(name)) continue;
      const res = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'master', asset_id: name }, { filename: path.basename(p.path), bytes: readFileSync(p.path) }) });
      assert.equal(res.status, 201, await res.text());
    }
    const crop = (name: string, l: number, t: number, w: number): [number, number, number, number] => {
      const p = pixels.get(name)!;
      return [l, t, w, (w * p.width * H) / (W * p.height)];
    };
    // 1.6 s zooming into the astronaut, 1.6 s over the coffee, 1.2 s of B-roll (a photo that is no master).
    const frames = [
      ...kenBurns({ photo: pixels.get('astronaut')!, frames: 40, from: crop('astronaut', 0.05, 0.05, 0.8), to: crop('astronaut', 0.15, 0.1, 0.65) }, W, H),
      ...kenBurns({ photo: pixels.get('coffee')!, frames: 40, from: crop('coffee', 0.0, 0.1, 0.9), to: crop('coffee', 0.1, 0.15, 0.75) }, W, H),
      ...kenBurns({ photo: pixels.get('motorcycle_left')!, frames: 30, from: crop('motorcycle_left', 0.0, 0.0, 1), to: crop('motorcycle_left', 0.1, 0.05, 0.85) }, W, H),
    ];
    original = await encodeClip({ width: W, height: H, fps: 25, frames }, path.join(app.dataDir, 'ad.mp4'), { crf: 23 });
    const res = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'ad', campaign_id: 'spring', asset_id: AD }, { filename: 'ad.mp4', bytes: original }) });
    const body = await res.text();
    assert.equal(res.status, 201, body);
    assert.equal(JSON.parse(body).tying.status, 'ranked', body);
    const shots = await videoShots();
    assert.equal(shots.length, 3, JSON.stringify(shots.map((s) => [s.start, s.end])));
    assert.equal(shots[0]!.candidates?.[0]?.master_asset_id, 'astronaut');
    assert.equal(shots[1]!.candidates?.[0]?.master_asset_id, 'coffee');
    assert.equal(shots[2]!.auto_tie, null, 'the B-roll shot clears no master');
  });

  test("the original through the full server: byte ranges, 416 with the size, another tenant's key refused", async () => {
    const size = original.length;
    const part = await app.request(T, `/v1/assets/${AD}/original?tenant_id=${T}`, { headers: { range: 'bytes=100-199' }, scopes: ['read'] });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${size}`);
    assert.equal(part.headers.get('content-type'), 'video/mp4');
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(original.subarray(100, 200)));
    const past = await app.request(T, `/v1/assets/${AD}/original?tenant_id=${T}`, { headers: { range: `bytes=${size}-` }, scopes: ['read'] });
    assert.equal(past.status, 416);
    assert.equal(past.headers.get('content-range'), `bytes */${size}`);
    assert.equal(((await past.json()) as { error: string }).error, 'range_not_satisfiable');
    // Another tenant's key: its own tenant has no such asset, and it may not name this one.
    const own = await app.request(OTHER, `/v1/assets/${AD}/original`, { headers: { range: 'bytes=0-9' }, scopes: ['read'] });
    assert.equal(own.status, 404, await own.text());
    const named = await app.request(OTHER, `/v1/assets/${AD}/original?tenant_id=${T}`, { headers: { range: 'bytes=0-9' }, scopes: ['read'] });
    assert.equal(named.status, 403, await named.text());
    const none = await fetch(`${app.running.url}/v1/assets/${AD}/original?tenant_id=${T}`, { headers: { range: 'bytes=0-9' } });
    assert.equal(none.status, 401, 'no key, no bytes');
  });

  test('the asset page: the player loads the original, one card per shot with its time range and master; a click seeks', async () => {
    const shots = await videoShots();
    await open(`/a/${AD}`);
    await page.getByTestId('shot-strip').waitFor();
    const cards = page.getByTestId('shot');
    assert.equal(await cards.count(), 3);
    assert.deepEqual(await page.getByTestId('shot-range').allTextContents(), shots.map(range));
    // Each card names the master the API has for the shot (auto-tie) with its score, or says "No master".
    for (const [i, s] of shots.entries()) {
      const masters = (await cards.nth(i).getByTestId('shot-masters').textContent())!.replace(/\s+/g, ' ');
      if (s.auto_tie) {
        const score = s.candidates!.find((c) => c.master_asset_id === s.auto_tie)!.score.toFixed(2);
        assert.match(masters, new RegExp(`${s.auto_tie} ${score}`), `shot ${i}: ${masters}`);
      } else assert.match(masters, /No master/, `shot ${i}: ${masters}`);
    }
    assert.match((await cards.nth(2).getByTestId('shot-masters').textContent())!, /No master/);
    // The player has the original's metadata (it decoded the bytes fetched with the key).
    const player = page.getByTestId('video-player');
    await page.waitForFunction(() => (document.querySelector('[data-testid=video-player]')?.readyState ?? 0) >= 1, null, { timeout: 30_000 });
    const duration = await player.evaluate((v: any) => v.duration as number);
    assert.ok(Math.abs(duration - 110 / 25) < 0.1, `duration ${duration}`);
    assert.ok(await player.evaluate((v: any) => Boolean(v.poster)), 'the poster is set');
    // Clicking the second and then the third shot seeks the player to each one's start.
    for (const i of [1, 2]) {
      await cards.nth(i).getByTestId('shot-seek').click();
      await page.waitForFunction((t) => Math.abs(document.querySelector('[data-testid=video-player]').currentTime - t) < 0.05, shots[i]!.start);
      await page.waitForFunction((n) => document.querySelector(`[data-testid=shot][data-shot="${n}"]`)?.classList.contains('current'), i);
    }
    // No plays sent yet: the engagement panel under the shot bar says so.
    await page.getByTestId('video-engagement-empty').waitFor();
    assert.match((await page.getByTestId('video-engagement-empty').textContent())!, /No plays yet/);
    await shot('0-asset-video');
    await page.getByTestId('video-panel').screenshot({ path: path.join(ARTIFACTS, '1-video-panel.png') });
    assert.deepEqual(errors, []);
  });

  test("per-shot review: confirm each shot's master, say the B-roll has none; the asset page follows", async () => {
    await open(`/review/${AD}`);
    await page.getByTestId('shot-review').waitFor();
    const rows = page.getByTestId('shot-review-row');
    assert.equal(await rows.count(), 3);
    const shots = await videoShots();
    // Each row offers the shot's top masters, best first, with their scores.
    for (const [i, s] of shots.entries()) {
      const offered = await rows.nth(i).locator('.cand').evaluateAll((els) => els.map((e: any) => e.getAttribute('data-master')));
      assert.deepEqual(offered, s.candidates!.slice(0, 3).map((c) => c.master_asset_id), `shot ${i}`);
    }
    await shot('2-review-shots-before');
    // Shot 1: confirm the astronaut; shot 2: the coffee (its first candidate); shot 3: no master.
    await rows.nth(0).locator('.cand[data-master="astronaut"]').getByTestId('shot-confirm').click();
    await rows.nth(0).getByText('confirmed: astronaut').waitFor();
    await rows.nth(1).locator('.cand[data-master="coffee"]').getByTestId('shot-confirm').click();
    await rows.nth(1).getByText('confirmed: coffee').waitFor();
    await rows.nth(2).getByTestId('shot-no-master-btn').click();
    await rows.nth(2).getByText('confirmed: no master').waitFor();
    const after = await videoShots();
    assert.deepEqual(
      after.map((s) => s.review && [s.review.action, s.review.master_asset_id]),
      [['tie', 'astronaut'], ['tie', 'coffee'], ['no_sim', null]],
    );
    assert.equal(after[0]!.review!.score, shots[0]!.candidates!.find((c) => c.master_asset_id === 'astronaut')!.score);
    await shot('3-review-shots-after');

    // Clearing a decision takes it back.
    await rows.nth(2).getByTestId('shot-clear').click();
    await rows.nth(2).getByTestId('shot-clear').waitFor({ state: 'detached' });
    assert.equal((await videoShots())[2]!.review, undefined);
    await rows.nth(2).getByTestId('shot-no-master-btn').click();
    await rows.nth(2).getByText('confirmed: no master').waitFor();

    // A new master re-ranks the video: each shot's candidates move, the reviews stay.
    const retina = photos.find((x) => path.basename(x.path).startsWith('retina.'))!;
    const added = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'master', asset_id: 'retina' }, { filename: 'retina.jpg', bytes: readFileSync(retina.path) }) });
    assert.equal(added.status, 201, await added.text());
    const reranked = await eventually(async () => {
      const s = await videoShots();
      return s.every((x) => x.candidates?.some((c) => c.master_asset_id === 'retina')) ? s : undefined;
    }, 60_000, 250);
    assert.deepEqual(
      reranked.map((s) => s.review && [s.review.action, s.review.master_asset_id]),
      [['tie', 'astronaut'], ['tie', 'coffee'], ['no_sim', null]],
      'the reviews outlive a re-ranking',
    );

    await open(`/a/${AD}`);
    await page.getByTestId('shot-strip').waitFor();
    const masters = (await page.getByTestId('shot-masters').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
    assert.match(masters[0]!, new RegExp(`astronaut ${after[0]!.review!.score!.toFixed(2)} confirmed`));
    assert.match(masters[1]!, new RegExp(`coffee ${after[1]!.review!.score!.toFixed(2)} confirmed`));
    assert.match(masters[2]!, /No master confirmed/);
    const onScreen = (await page.getByTestId('masters-on-screen').textContent())!.replace(/\s+/g, ' ');
    assert.match(onScreen, /astronaut 1\.6 s/);
    assert.match(onScreen, /coffee 1\.6 s/);
    assert.match(onScreen, /no master 1\.2 s/);
    await shot('4-asset-video-reviewed');
    // A narrow window: the strip scrolls inside its card, the page does not scroll sideways.
    await page.setViewportSize({ width: 760, height: 900 });
    await page.getByTestId('shot-strip').waitFor();
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1), 'no sideways page scroll at 760 px');
    await shot('5-asset-video-narrow');
    await open(`/review/${AD}`);
    await page.getByTestId('shot-review').waitFor();
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1), 'no sideways page scroll on review at 760 px');
    await shot('6-review-narrow');
    await page.setViewportSize({ width: 1366, height: 900 });
    // Side by side with another creative, the video shows a still (its thumbnail), not a broken image of its bytes.
    await open(`/compare?ids=${AD},astronaut`);
    await page.waitForFunction(() => [...document.querySelectorAll('.img img')].filter((i: any) => i.complete && i.naturalWidth > 0).length === 2, null, { timeout: 30_000 });
    await shot('7-compare-video-and-photo');
    // Dark theme: the video panel keeps its contrast.
    await page.emulateMedia({ colorScheme: 'dark' });
    await open(`/a/${AD}`);
    await page.getByTestId('shot-strip').waitFor();
    await page.getByTestId('video-panel').screenshot({ path: path.join(ARTIFACTS, '8-video-panel-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    assert.deepEqual(errors, []);
  });

  test('video plays over HTTP: the engagement panel shows hook, hold, completion, watch time and retention as worked out by hand; a step seeks', async () => {
    const { duration_s: duration, shots } = (await (await app.request(T, `/v1/assets/${AD}/video?tenant_id=${T}`)).json()) as { duration_s: number; shots: Shot[] };
    // Ten plays of the 4.4 s ad, each to the percent it reached: the 3 s hook is 68 % of it.
    const reached = [100, 100, 100, 100, 75, 70, 50, 50, 25, 10];
    const now = Date.now();
    const events: Record<string, unknown>[] = [];
    const ev = (kind: string, viewer: string, value?: number) => ({
      event_id: ulid(now),
      tenant_id: T,
      campaign_id: 'spring',
      asset_id: AD,
      kind,
      occurred_at: now - 20_000,
      viewer_id: viewer,
      ...(value !== undefined && { value }),
    });
    let watchMs = 0;
    reached.forEach((r, i) => {
      const viewer = `viewer-${i}`;
      const ms = Math.round((r / 100) * duration * 1000);
      watchMs += ms;
      events.push(ev('video_start', viewer));
      if ((r / 100) * duration >= 3) events.push(ev('video_seconds', viewer, 3));
      for (const q of [25, 50, 75]) if (r >= q) events.push(ev('video_progress', viewer, q));
      if (r === 100) events.push(ev('video_complete', viewer));
      events.push(ev('video_watch', viewer, ms));
    });
    assert.equal(await postAll(app.running.url, events), events.length);
    // By hand: 10 starts; 6 past 3 s (the four completes, 75 % and 70 %); 8 past 50 %; 4 complete; retention 1, .9, .8, .5, .4.
    const expect = { hook: wilson(6, 10), hold: wilson(8, 10), completion: wilson(4, 10) };
    const retention = [[0, 10], [25, 9], [50, 8], [75, 5], [100, 4]] as const;
    await eventually(async () => {
      const r = (await (await app.request(T, `/v1/assets/${AD}/video-metrics?tenant_id=${T}`)).json()) as { asset: { starts: number } };
      return r.asset.starts === 10 || undefined;
    }, 60_000, 250);

    await open(`/a/${AD}`);
    const panel = page.getByTestId('video-engagement-panel');
    await panel.getByTestId('video-hook').waitFor({ timeout: 30_000 });
    assert.equal((await panel.getByTestId('video-starts').textContent())!.trim(), '10');
    for (const [name, want] of Object.entries(expect)) {
      const card = panel.getByTestId(`video-${name}`);
      close(Number(await card.getAttribute('data-value')), want.value, `${name} value`);
      close(Number(await card.getAttribute('data-low')), want.low, `${name} low`);
      close(Number(await card.getAttribute('data-high')), want.high, `${name} high`);
      assert.equal((await card.getByTestId('value').textContent())!.trim(), pct(want.value), name);
      assert.equal((await card.getByTestId('interval').textContent())!.trim(), `${pct(want.low).replace('%', '')}–${pct(want.high)}`, name);
    }
    const avg = watchMs / 10;
    close(Number(await panel.getByTestId('video-watch').getAttribute('data-value')), Math.round(avg * 1000) / 1000, 'avg watch ms');
    assert.equal((await panel.getByTestId('video-watch').getByTestId('value').textContent())!.trim(), `${(avg / 1000).toFixed(1)} s`);
    const points = panel.getByTestId('retention-point');
    assert.equal(await points.count(), retention.length);
    for (const [i, [percent, plays]] of retention.entries()) {
      const want = wilson(plays, 10);
      const p = points.nth(i);
      assert.equal(Number(await p.getAttribute('data-percent')), percent);
      close(Number(await p.getAttribute('data-share')), want.value, `retention ${percent}`);
      close(Number(await p.getAttribute('data-low')), want.low, `retention ${percent} low`);
      close(Number(await p.getAttribute('data-high')), want.high, `retention ${percent} high`);
    }
    // The curve falls from left to right on screen as the shares do.
    const ys = await points.evaluateAll((els) => els.map((e: any) => Number(e.getAttribute('cy'))));
    assert.deepEqual([...ys].sort((a, b) => a - b), ys, `cy ${ys}`);
    // A click on the 50 % step seeks the player there; the playhead follows.
    await points.nth(2).click();
    await page.waitForFunction((t) => Math.abs(document.querySelector('[data-testid=video-player]').currentTime - t) < 0.05, duration / 2);
    await page.waitForFunction(() => Math.abs(Number(document.querySelector('[data-testid=retention-playhead]')?.getAttribute('data-percent')) - 50) < 1.5);
    await shot('9-asset-video-engagement');
    await panel.screenshot({ path: path.join(ARTIFACTS, '10-engagement-panel.png') });

    // The astronaut's page: the ad counts by its astronaut shots' share of its time on screen.
    const onScreen = (m: string) => shots.filter((x) => x.auto_tie === m).reduce((t, x) => t + x.end - x.start, 0);
    const total = shots.reduce((t, x) => t + x.end - x.start, 0);
    const weight = onScreen('astronaut') / total;
    assert.ok(weight > 0, `the astronaut shot is auto-tied: ${JSON.stringify(shots.map((x) => x.auto_tie))}`);
    await open('/m/astronaut');
    const folded = page.locator('[data-testid=video-engagement-panel][data-of=master]');
    await folded.getByTestId('video-hook').waitFor({ timeout: 30_000 });
    // Weighted plays: 6w of 10w hooked etc. The shares are the ad's; the intervals are over 10w starts.
    const weighted = { hook: wilson(6 * weight, 10 * weight), hold: wilson(8 * weight, 10 * weight), completion: wilson(4 * weight, 10 * weight) };
    for (const [name, want] of Object.entries(weighted)) {
      const card = folded.getByTestId(`video-${name}`);
      close(Number(await card.getAttribute('data-value')), want.value, `master ${name}`);
      assert.ok(Math.abs(Number(await card.getAttribute('data-low')) - want.low) < 1e-3, `master ${name} low`);
    }
    assert.equal((await folded.getByTestId('video-starts').textContent())!.trim(), (10 * weight).toFixed(1));
    assert.match((await folded.getByTestId('video-contributors').textContent())!, new RegExp(`${AD} × ${weight.toFixed(2)}`));
    await shot('11-master-video-engagement');
    // Dark theme: the curve and band keep their contrast.
    await page.emulateMedia({ colorScheme: 'dark' });
    await open(`/a/${AD}`);
    await page.getByTestId('video-engagement-panel').getByTestId('video-hook').waitFor({ timeout: 30_000 });
    await page.getByTestId('video-engagement-panel').screenshot({ path: path.join(ARTIFACTS, '12-engagement-panel-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    assert.deepEqual(errors, []);
  });
});

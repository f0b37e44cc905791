/**
 * One source for each tie number, across roles (ingest, stream, live, inference in one process,
 * in-process bus, chDB, memory hot state): after a duplicate tie on an untied ad, a tie of the
 * original, a re-tie of it, an untie, and a restart, the registry (GET /v1/assets/:id, the review
 * queue, GET /v1/masters/:id/ads) and the live role (each ad's live master, each master's roll-up
 * and its count of ads) say the same thing, and a master's roll-up is the sum of its tied ads.
 * Similar ads (duplicate candidates) stay in the ad's campaign unless asked for every campaign.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ulid, type EngagementEvent } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { assetForm, ensureTestModels, noiseImage, testModelsDir } from '@afterglow/testkit/inference';
import { postEvents, startApp, waitForSinkDrained, type TestApp } from './support.js';

const T = 'views-tenant';
const ENV = {
  AFTERGLOW_MODELS_DIR: testModelsDir(),
  TIE_VERIFY_WORKERS: '1',
  INFERENCE_WORKERS: '1',
  // Ties here come only from the decisions the test makes: no threshold auto-tie, no propagation.
  TIE_AUTO_TIE_THRESHOLD: '1',
  TIE_PROPAGATE_MIN_SCORE: '1',
  LIVE_FLUSH_MS: '100',
};
// Ads: a and b (the duplicate) and c in one campaign, x in another; impressions per ad.
const ADS = { a: { campaign: 'spring', seed: 11, impressions: 7 }, b: { campaign: 'spring', seed: 12, impressions: 5 }, c: { campaign: 'spring', seed: 13, impressions: 3 }, x: { campaign: 'autumn', seed: 14, impressions: 2 } };
type AdId = keyof typeof ADS;
const MASTERS = ['m1', 'm2'] as const;

describe('tie views agree: registry, live roll-ups, master page', () => {
  let app: TestApp;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-ties-views-'));

  before(async () => {
    ensureTestModels(['mobilenet_v2']);
    app = await startApp({ ...ENV, AFTERGLOW_DATA_DIR: dataDir }, ['ingest', 'stream', 'live', 'inference']);
  });
  after(() => app?.close());

  const get = async (p: string) => {
    const res = await app.request(T, p);
    assert.equal(res.status, 200, `${p}: ${res.status}`);
    return (await res.json()) as Record<string, any>;
  };
  const decide = async (body: Record<string, unknown>) => {
    const res = await app.request(T, '/v1/ties', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant_id: T, decided_by: 'reviewer', ...body }) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  /** Every view of the ties, read once. */
  const read = async () => {
    const registry = Object.fromEntries(await Promise.all(Object.keys(ADS).map(async (id) => [id, (await get(`/v1/assets/${id}?tenant_id=${T}`)).tie?.master_asset_id ?? null]))) as Record<AdId, string | null>;
    const queue = Object.fromEntries((await get(`/v1/review/queue?tenant_id=${T}&limit=100`)).items.map((i: any) => [i.ad.asset_id, i.status])) as Record<AdId, string>;
    const live = Object.fromEntries(await Promise.all(Object.keys(ADS).map(async (id) => [id, (await get(`/v1/assets/${id}/metrics?tenant_id=${T}`)).master_id ?? null]))) as Record<AdId, string | null>;
    const masters = Object.fromEntries(
      await Promise.all(
        MASTERS.map(async (m) => {
          const tree = (await get(`/v1/masters/${m}/ads?tenant_id=${T}`)).ads.map((x: any) => x.ad.asset_id).sort();
          const res = await app.request(T, `/v1/assets/${m}/metrics?tenant_id=${T}`);
          const rollup = res.status === 200 ? ((await res.json()) as any).master : undefined;
          return [m, { tree, liveAds: rollup?.ads ?? 0, impressions: rollup?.windows['24h'].counts.impression ?? 0 }];
        }),
      ),
    ) as Record<(typeof MASTERS)[number], { tree: string[]; liveAds: number; impressions: number }>;
    return { registry, queue, live, masters };
  };

  /** Waits until every view says `expected` (ad -> master), then checks each master's roll-up is the sum of its tree. */
  const agree = async (expected: Record<AdId, string | null>, step: string) => {
    const want = (m: string) => (Object.keys(ADS) as AdId[]).filter((id) => expected[id] === m).sort();
    const wantViews = (v: Awaited<ReturnType<typeof read>>) =>
      JSON.stringify(v.registry) === JSON.stringify(expected) &&
      JSON.stringify(v.live) === JSON.stringify(expected) &&
      MASTERS.every((m) => v.masters[m].liveAds === want(m).length && v.masters[m].impressions === want(m).reduce((s, id) => s + ADS[id].impressions, 0));
    let last: Awaited<ReturnType<typeof read>> | undefined;
    await eventually(
      async () => {
        last = await read();
        return wantViews(last) ? true : undefined;
      },
      30_000,
      100,
    ).catch(() => assert.fail(`${step}: views disagree with ${JSON.stringify(expected)}: ${JSON.stringify(last)}`));
    const v = last!;
    for (const m of MASTERS) assert.deepEqual(v.masters[m].tree, want(m), `${step}: the master page's tree of ${m}`);
    for (const id of Object.keys(ADS) as AdId[]) assert.equal(v.queue[id], expected[id] ? 'tied' : 'untied', `${step}: queue status of ${id}`);
  };

  it('registers masters and ads and counts their events live', async () => {
    for (const [i, m] of MASTERS.entries()) {
      const res = await app.request(T, '/v1/assets', { method: 'POST', body: assetForm({ tenant_id: T, role: 'master', asset_id: m }, { filename: `${m}.jpg`, bytes: await noiseImage(320, 240, 'jpeg', 100 + i) }) });
      assert.equal(res.status, 201, await res.text());
    }
    for (const [id, ad] of Object.entries(ADS)) {
      const res = await app.request(T, '/v1/assets', {
        method: 'POST',
        body: assetForm({ tenant_id: T, role: 'ad', campaign_id: ad.campaign, asset_id: id }, { filename: `${id}.jpg`, bytes: await noiseImage(320, 240, 'jpeg', ad.seed) }),
      });
      assert.equal(res.status, 201, await res.text());
    }
    const now = Date.now();
    const events: EngagementEvent[] = Object.entries(ADS).flatMap(([id, ad]) =>
      Array.from({ length: ad.impressions }, (_, j) => ({ event_id: ulid(now), tenant_id: T, campaign_id: ad.campaign, asset_id: id, kind: 'impression' as const, value: 1, occurred_at: now - j * 1000, received_at: 0 })),
    );
    assert.equal((await postEvents(app.running.url, events)).body.accepted, events.length);
    await agree({ a: null, b: null, c: null, x: null }, 'before any decision');
  });

  it('similar ads stay in the ad\'s campaign unless every campaign is asked for', async () => {
    const ranked = await eventually(async () => {
      const v = await get(`/v1/assets/a/candidates?tenant_id=${T}`);
      return v.status === 'ready' && v.similar_ads.length > 0 ? v : undefined;
    }, 30_000, 100);
    assert.equal(ranked.similar_scope, 'campaign');
    assert.deepEqual(ranked.similar_ads.map((s: any) => s.ad.asset_id).sort(), ['b', 'c']);
    const all = await get(`/v1/assets/a/candidates?tenant_id=${T}&similar_scope=all`);
    assert.deepEqual(all.similar_ads.map((s: any) => s.ad.asset_id).sort(), ['b', 'c', 'x']);
    const refused = await decide({ ad_asset_id: 'x', action: 'duplicate', target_asset_id: 'a' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, 'other_campaign');
  });

  it('a duplicate of an untied ad is not tied, and follows its original through tie, re-tie and untie', async () => {
    assert.equal((await decide({ ad_asset_id: 'b', action: 'duplicate', target_asset_id: 'a' })).status, 200);
    await agree({ a: null, b: null, c: null, x: null }, 'duplicate of an untied ad');
    assert.equal((await get(`/v1/assets/b?tenant_id=${T}`)).tie.duplicate_of, 'a');

    assert.equal((await decide({ ad_asset_id: 'a', action: 'tie', target_asset_id: 'm1' })).status, 200);
    await agree({ a: 'm1', b: 'm1', c: null, x: null }, 'original tied');

    assert.equal((await decide({ ad_asset_id: 'c', action: 'tie', target_asset_id: 'm1' })).status, 200);
    assert.equal((await decide({ ad_asset_id: 'a', action: 'tie', target_asset_id: 'm2' })).status, 200);
    await agree({ a: 'm2', b: 'm2', c: 'm1', x: null }, 'original re-tied');

    const wrong = await decide({ ad_asset_id: 'a', action: 'untie', target_asset_id: 'm1' });
    assert.equal(wrong.status, 409, 'an untie naming another master is refused');
    assert.equal(wrong.body.error, 'not_tied_to_target');
    assert.equal((await decide({ ad_asset_id: 'a', action: 'untie', target_asset_id: 'm2' })).status, 200);
    await agree({ a: null, b: null, c: 'm1', x: null }, 'original untied');

    assert.equal((await decide({ ad_asset_id: 'x', action: 'duplicate', target_asset_id: 'c', across_campaigns: true })).status, 200);
    await agree({ a: null, b: null, c: 'm1', x: 'm1' }, 'a duplicate across campaigns, asked for');
  });

  it('after a restart the live role rebuilds the same ties from the store', async () => {
    await app.running.stop();
    app = await startApp({ ...ENV, AFTERGLOW_DATA_DIR: dataDir }, ['ingest', 'stream', 'live', 'inference']);
    await agree({ a: null, b: null, c: 'm1', x: 'm1' }, 'after restart');
    assert.equal((await decide({ ad_asset_id: 'a', action: 'tie', target_asset_id: 'm2' })).status, 200);
    await agree({ a: 'm2', b: 'm2', c: 'm1', x: 'm1' }, 'original tied after restart');
  });

  it('serves timeline annotations from the store: registration, launch, relaunch, tie changes', async () => {
    // c also ran three days ago: its events now are a relaunch.
    const then = Date.now() - 3 * 86_400_000;
    const old: EngagementEvent[] = Array.from({ length: 3 }, (_, j) => ({ event_id: ulid(then), tenant_id: T, campaign_id: 'spring', asset_id: 'c', kind: 'impression' as const, value: 1, occurred_at: then + j * 1000, received_at: 0 }));
    assert.equal((await postEvents(app.running.url, old)).body.accepted, old.length);
    await waitForSinkDrained(app.running);
    const kinds = (tl: any) => tl.annotations.map((a: any) => (a.ad_asset_id ? `${a.kind}:${a.ad_asset_id}` : a.kind));
    const c = await eventually(async () => {
      const tl = await get(`/v1/assets/c/timeline?tenant_id=${T}`);
      return tl.annotations.some((a: any) => a.kind === 'relaunch') ? tl : undefined;
    }, 30_000, 200);
    // (The relaunch is at its minute's start, so it may sort before the registration it followed.)
    assert.deepEqual([...kinds(c)].sort(), ['launch', 'registered', 'relaunch', 'tie'], JSON.stringify(c.annotations));
    assert.equal(c.annotations[0].kind, 'launch');
    assert.ok(Math.abs(c.annotations[0].at - then) < 60_000, 'launch is the first event');
    assert.equal(c.annotations.find((x: any) => x.kind === 'tie').master_asset_id, 'm1');
    const a = await get(`/v1/assets/a/timeline?tenant_id=${T}`);
    assert.deepEqual(kinds(a).filter((k: string) => k !== 'launch' && k !== 'registered'), ['tie', 'tie', 'untie', 'tie']);
    // m1: a joined, c joined, a left (re-tied to m2); the launch of its tied ads is c's first event.
    const m1 = await get(`/v1/assets/m1/timeline?tenant_id=${T}`);
    assert.deepEqual(kinds(m1).filter((k: string) => k !== 'relaunch'), ['launch', 'registered', 'tie:a', 'tie:c', 'untie:a']);
    assert.ok(Math.abs(m1.annotations[0].at - then) < 60_000);
    const missing = await app.request(T, `/v1/assets/nope/timeline?tenant_id=${T}`);
    assert.equal(missing.status, 404);
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TABLES, ulid } from '@afterglow/core';
import { ApiError } from '@afterglow/core/api';
import { OwnClickHouse } from './faults/services.js';
import { postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Reach and frequency from viewer ids: hashed at ingest with a key kept outside the store, unique
 * per asset and across a campaign's assets (merged, not summed), and never stored in clear.
 */
const TENANT = 'reach-t';
const OTHER = 'reach-other';

describe('reach and frequency', () => {
  let app: TestApp;
  before(async () => {
    app = await startApp({});
  });
  after(async () => {
    await app.close();
  });

  const reachOf = (tenant: string, campaign: string) => app.api(tenant).campaignReach({ path: { campaignId: campaign }, query: { tenant_id: tenant } });

  it('counts unique viewers per asset and once across assets, with impressions per viewer', async () => {
    const now = Date.now();
    const impression = (asset: string, viewer: string | undefined, extra: Record<string, unknown> = {}) => ({
      event_id: ulid(now),
      tenant_id: TENANT,
      campaign_id: 'spring',
      asset_id: asset,
      kind: 'impression',
      occurred_at: now - 1000,
      ...(viewer !== undefined && { viewer_id: viewer }),
      ...extra,
    });
    const events: Record<string, unknown>[] = [];
    // banner: viewers 0..299, each seen twice; story: viewers 200..399 once (100 shared with banner).
    for (let v = 0; v < 300; v++) events.push(impression('banner', `user-${v}@example.com`), impression('banner', `user-${v}@example.com`));
    for (let v = 200; v < 400; v++) events.push(impression('story', `user-${v}@example.com`));
    // Impressions without a viewer count nowhere here; a client cannot set the hash itself.
    for (let i = 0; i < 50; i++) events.push(impression('story', undefined), impression('story', undefined, { viewer_hash: 'a'.repeat(32) }));
    // The same viewer strings in another tenant: another tenant's reach, and unrelated hashes.
    const foreign = Array.from({ length: 30 }, (_, v) => ({ ...impression('banner', `user-${v}@example.com`), tenant_id: OTHER }));
    await postAll(app.running.url, events);
    await postAll(app.running.url, foreign);
    await waitForSinkDrained(app.running);

    const r = await reachOf(TENANT, 'spring');
    const byAsset = Object.fromEntries(r.assets.map((a) => [a.asset_id, a]));
    assert.deepEqual([byAsset.banner?.reach, byAsset.banner?.impressions, byAsset.banner?.frequency], [300, 600, 2]);
    assert.deepEqual([byAsset.story?.reach, byAsset.story?.impressions, byAsset.story?.frequency], [200, 200, 1]);
    // 400 distinct people, not 300 + 200.
    assert.equal(r.reach, 400);
    assert.equal(r.impressions, 800);
    assert.equal(r.frequency, 2);
    assert.equal((await reachOf(OTHER, 'spring')).reach, 30);
    const none = await reachOf(TENANT, 'no-such-campaign');
    assert.deepEqual([none.reach, none.impressions, none.frequency, none.assets], [0, 0, null, []]);

    // Stored: hashes only, keyed (not the plain SHA-256 of the id), different per tenant.
    const store = app.running.store!;
    const rows = await (
      await store.client.query({
        query: `SELECT tenant_id, viewer_hash FROM ${store.table(TABLES.eventsRaw)} WHERE campaign_id = 'spring' AND viewer_hash != '' ORDER BY occurred_at LIMIT 1 BY tenant_id`,
        format: 'JSONEachRow',
      })
    ).json<{ tenant_id: string; viewer_hash: string }>();
    assert.equal(rows.length, 2);
    const leaked = await (
      await store.client.query({
        query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE position(attrs, 'example.com') > 0 OR position(viewer_hash, 'user-') > 0`,
        format: 'JSONEachRow',
      })
    ).json<{ n: string | number }>();
    assert.equal(Number(leaked[0]!.n), 0);
    const plain = createHash('sha256').update('user-0@example.com').digest('hex').slice(0, 32);
    const hashes = await (
      await store.client.query({ query: `SELECT DISTINCT viewer_hash FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id IN ('${TENANT}', '${OTHER}')`, format: 'JSONEachRow' })
    ).json<{ viewer_hash: string }>();
    assert.ok(!hashes.some((h) => h.viewer_hash === plain || h.viewer_hash === 'a'.repeat(32)));
    const tenantHashes = new Set((await rowsOf(app, TENANT)).map((h) => h.viewer_hash));
    assert.ok((await rowsOf(app, OTHER)).every((h) => !tenantHashes.has(h.viewer_hash)), 'one viewer id in two tenants gives unrelated hashes');
  });

  it('a master\'s reach merges its tied ads\' viewers (not a sum); an asset\'s costs and reach over its days', async () => {
    const now = Date.now();
    const at = now - 1000;
    const day = new Date(at).toISOString().slice(0, 10);
    const ev = (asset: string, kind: string, viewer?: string, value = 1) => ({
      event_id: ulid(now),
      tenant_id: TENANT,
      campaign_id: 'masters',
      asset_id: asset,
      kind,
      value,
      occurred_at: at,
      ...(viewer !== undefined && { viewer_id: viewer }),
    });
    const events: Record<string, unknown>[] = [];
    // ad-1: viewers 0..99 twice; ad-2: 50..149 once; dup-1 (a duplicate of ad-2): 200..209; ad-3 (another master's): 0..9.
    for (let v = 0; v < 100; v++) events.push(ev('ad-1', 'impression', `p${v}`), ev('ad-1', 'impression', `p${v}`));
    for (let v = 50; v < 150; v++) events.push(ev('ad-2', 'impression', `p${v}`));
    for (let v = 200; v < 210; v++) events.push(ev('dup-1', 'impression', `p${v}`));
    for (let v = 0; v < 10; v++) events.push(ev('ad-3', 'impression', `p${v}`));
    for (let i = 0; i < 20; i++) events.push(ev('ad-1', 'click'));
    for (let i = 0; i < 4; i++) events.push(ev('ad-1', 'conversion', undefined, 25));
    await postAll(app.running.url, events);
    await waitForSinkDrained(app.running);
    // Tie decisions as the registry records them: ad-2 was first tied to m2, then to m1 (the latest counts).
    const store = app.running.store!;
    const decision = (ad: string, action: string, target: string, ms: number) => ({
      tenant_id: TENANT, ad_asset_id: ad, decided_at: ms, decision_id: ulid(ms), action, target_asset_id: target, score: null, auto: false, decided_by: 'test', because_of: '',
    });
    await store.client.insert({
      table: store.table(TABLES.tieDecisions),
      values: [
        decision('ad-1', 'tie', 'm1', now - 5000),
        decision('ad-2', 'tie', 'm2', now - 5000),
        decision('ad-2', 'tie', 'm1', now - 4000),
        decision('dup-1', 'duplicate', 'ad-2', now - 3000),
        decision('ad-3', 'tie', 'm2', now - 3000),
      ],
      format: 'JSONEachRow',
    });
    const api = app.api(TENANT);
    const spend = await api.importSpend({
      body: [
        { campaign_id: 'masters', asset_id: 'ad-1', date: day, spend: 30, placement: 'feed' },
        { campaign_id: 'masters', asset_id: 'ad-1', date: day, spend: 20, placement: 'story' },
        { campaign_id: 'masters', asset_id: 'ad-2', date: day, spend: 10 },
      ],
    });
    assert.equal(spend.written, 3);

    const days = { tenant_id: TENANT, from: day, to: day };
    const master = await api.masterReach({ path: { id: 'm1' }, query: days });
    assert.deepEqual(master.ads.map((a) => [a.asset_id, a.reach]), [['ad-1', 100], ['ad-2', 100], ['dup-1', 10]]);
    // 0..149 and 200..209: 160 people, though the ads' own reach adds up to 210.
    assert.equal(master.reach, 160);
    assert.equal(master.sum_of_ad_reach, 210);
    assert.equal(master.impressions, 310);
    assert.equal(master.frequency, 310 / 160);
    assert.equal(master.reach_error.exact, true);
    assert.deepEqual(master.costs.map((c) => [c.currency, c.spend]), [['USD', 60]]);
    const other = await api.masterReach({ path: { id: 'm2' }, query: days });
    assert.deepEqual([other.reach, other.ads.map((a) => a.asset_id)], [10, ['ad-3']]);

    const asset = await api.assetCosts({ path: { id: 'ad-1' }, query: days });
    const [usd] = asset.costs;
    assert.deepEqual([usd?.currency, usd?.spend, usd?.impressions, usd?.clicks, usd?.conversions], ['USD', 50, 200, 20, 4]);
    assert.deepEqual([usd?.cpm, usd?.cpc, usd?.cpa, usd?.roas], [250, 2.5, 12.5, 2]);
    assert.deepEqual(asset.days.map((d) => [d.day, d.spend, d.conversions]), [[day, 50, 4]]);
    assert.deepEqual([asset.reach.reach, asset.reach.impressions, asset.reach.frequency], [100, 200, 2]);
    // Another tenant's key cannot read them; with its own tenant it sees nothing of this one.
    await assert.rejects(
      () => app.api(OTHER).assetCosts({ path: { id: 'ad-1' }, query: { tenant_id: TENANT } }),
      (err: unknown) => err instanceof ApiError && err.status === 403 && err.code === 'tenant_forbidden',
    );
    const foreign = await app.api(OTHER).masterReach({ path: { id: 'm1' }, query: { tenant_id: OTHER, from: day, to: day } });
    assert.deepEqual([foreign.reach, foreign.ads], [0, []]);
  });

  it("a master with 2,000 tied ads: its reach merges them all in the store's query limits", () => wideMaster(app));

  it('states its error at scale: 60,000 viewers over 3 assets', async () => {
    const now = Date.now();
    const events: Record<string, unknown>[] = [];
    const viewers = 60_000;
    for (let v = 0; v < viewers; v++) {
      // Each viewer on one or two of three assets.
      const assets = v % 3 === 0 ? ['a', 'b'] : [['a', 'b', 'c'][v % 3]!];
      for (const asset of assets) {
        events.push({ event_id: ulid(now), tenant_id: TENANT, campaign_id: 'scale', asset_id: asset, kind: 'impression', occurred_at: now - 2000, viewer_id: `v${v}` });
      }
    }
    await postAll(app.running.url, events, 10_000);
    await waitForSinkDrained(app.running);
    const r = await reachOf(TENANT, 'scale');
    const error = Math.abs(r.reach - viewers) / viewers;
    console.log(`reach: ${r.reach} estimated for ${viewers} distinct viewers (${(error * 100).toFixed(3)} % error), ${r.impressions} impressions`);
    assert.equal(r.impressions, events.length);
    assert.ok(error < 0.02, `uniqCombined error ${error}`);
  });
});

/**
 * A master with 2,000 tied ads of 64-character ids: one request merges them all, within what the
 * store accepts (over HTTP the ids must not ride in the URL, which servers bound).
 */
async function wideMaster(app: TestApp): Promise<void> {
  const now = Date.now();
  const at = now - 1000;
  const day = new Date(at).toISOString().slice(0, 10);
  // Ids of 64 characters, as a client's UUID-based ids may be: 2,000 of them are some 130 KB of ids in each query.
  const adId = (i: number) => `wide-ad-${String(i).padStart(4, '0')}-${'x'.repeat(51)}`;
  const ads = Array.from({ length: 2_000 }, (_, i) => adId(i));
  const impression = (asset: string, viewer: string) => ({
    event_id: ulid(now),
    tenant_id: TENANT,
    campaign_id: 'wide',
    asset_id: asset,
    kind: 'impression',
    occurred_at: at,
    viewer_id: viewer,
  });
  // Every ad: one viewer of its own and one everybody shares; an untied ad shares that viewer too.
  const events = ads.flatMap((ad, i) => [impression(ad, `wide-viewer-${i}`), impression(ad, 'wide-everyone')]);
  events.push(impression('wide-untied', 'wide-everyone'), impression('wide-untied', 'wide-stranger'));
  await postAll(app.running.url, events, 2_000);
  await waitForSinkDrained(app.running);
  const store = app.running.store!;
  await store.client.insert({
    table: store.table(TABLES.tieDecisions),
    values: ads.map((ad, i) => ({
      tenant_id: TENANT, ad_asset_id: ad, decided_at: now - 5000 + i, decision_id: ulid(now), action: 'tie', target_asset_id: 'wide-master', score: null, auto: false, decided_by: 'test', because_of: '',
    })),
    format: 'JSONEachRow',
  });
  const res = await app.request(TENANT, `/v1/masters/wide-master/reach?tenant_id=${TENANT}&from=${day}&to=${day}`);
  assert.equal(res.status, 200);
  const master = (await res.json()) as { reach: number; impressions: number; sum_of_ad_reach: number; ads: { asset_id: string; reach: number; impressions: number }[]; reach_error: { exact: boolean } };
  assert.equal(master.ads.length, ads.length);
  assert.deepEqual(new Set(master.ads.map((a) => a.asset_id)), new Set(ads));
  assert.ok(master.ads.every((a) => a.reach === 2 && a.impressions === 2), 'every ad: its own viewer and the shared one');
  // 2,000 viewers of their own and one shared by all: 2,001 people, though the ads' reach adds up to 4,000.
  assert.equal(master.reach, 2_001);
  assert.equal(master.impressions, 4_000);
  assert.equal(master.sum_of_ad_reach, 4_000);
  assert.equal(master.reach_error.exact, true);
}

describe('reach of a master with many tied ads, ClickHouse over HTTP', () => {
  let ch: OwnClickHouse | undefined;
  let app: TestApp;
  before(async () => {
    ch = await OwnClickHouse.started();
    app = await startApp({ CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: `reach_${Date.now().toString(36)}` });
  });
  after(async () => {
    await app?.close();
    await ch?.close();
  });

  it('2,000 tied ads: the ids travel in the query body, and the figures are the embedded store\'s', () => wideMaster(app));
});

async function rowsOf(app: TestApp, tenant: string): Promise<{ viewer_hash: string }[]> {
  const store = app.running.store!;
  return (
    await store.client.query({
      query: `SELECT DISTINCT viewer_hash FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String} AND viewer_hash != ''`,
      query_params: { t: tenant },
      format: 'JSONEachRow',
    })
  ).json<{ viewer_hash: string }>();
}

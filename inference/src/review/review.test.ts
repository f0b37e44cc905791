/**
 * The tie review API over real parts: chDB, the in-process bus, a local blob store, MobileNetV2 on
 * onnxruntime and ORB workers, with masters and ads generated from real photos (python3-skimage).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { TOPICS, loadConfig, tieDecisionSchema, type TieDecision } from '@afterglow/core';
import { eventually, skipOption } from '@afterglow/testkit/services';
import { findSamplePhotos } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { generateTieDataset, type TieDataset } from '@afterglow/testkit/tie';
import { multipartBody, noiseImage } from '@afterglow/testkit/fixtures';
import { startAssetServices, type AssetServices } from '../asset-services.js';
import { AssetRepository } from '../registry/repository.js';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';
import { ReviewService } from './service.js';

const T = 'tenant-r';
const stem = (f: string) => f.replace(/\.[a-z]+$/i, '');

describe('tie review API (real models, chDB, in-process bus)', { skip: skipOption(findSamplePhotos(['python3-skimage']).length < 6 && 'needs 6 python3-skimage photos (apt-get install python3-skimage, or allow apt-get download)') }, () => {
  let kit: RouteKit;
  let ds: TieDataset;
  let services: AssetServices;
  let ties: Awaited<ReturnType<RouteKit['watch']>>;
  let heldBack: string;
  const config = () =>
    loadConfig({
      AFTERGLOW_DATA_DIR: kit.dir,
      AFTERGLOW_MODELS_DIR: testModelsDir(),
      TIE_CACHE_DIR: path.join(kit.dir, 'tie-cache'),
      TIE_VERIFY_WORKERS: '1',
      INFERENCE_WORKERS: '1',
      // No auto-tie by threshold here (tested below on its own): propagation needs undecided ads.
      TIE_AUTO_TIE_THRESHOLD: '1',
      ASSETS_RERANK_DEBOUNCE_MS: '200',
      LOG_LEVEL: 'silent',
    });

  const post = async (app: RouteKit['app'], fields: Record<string, string>, file: string) => {
    const { payload, headers } = await multipartBody(fields, { filename: path.basename(file), bytes: readFileSync(file) });
    const t0 = performance.now();
    const res = await app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
    return { status: res.statusCode, body: res.json() as Record<string, any>, ms: performance.now() - t0 };
  };
  const get = async (url: string) => {
    const res = await kit.app.inject({ url });
    assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
    return res.json() as Record<string, any>;
  };
  const decide = (body: Record<string, unknown>) => kit.app.inject({ method: 'POST', url: '/v1/ties', payload: { tenant_id: T, ...body } });

  before(async () => {
    ensureTestModels(['mobilenet_v2']);
    kit = await routeKit();
    ds = await generateTieDataset({ masters: 6, ads: 12, seed: 7, packages: ['python3-skimage'], cacheDir: path.join(kit.dir, 'data') });
    services = await startAssetServices(kit.app, { config: config(), bus: kit.bus, store: kit.store, blobs: kit.blobs, log: silentLog });
    ties = await kit.watch(TOPICS.assetsTies);
    // One master with ads is registered only after the ads (re-ranking test).
    heldBack = stem(ds.truth.get(ds.ads[0]!.file)!);
  });
  after(async () => {
    await services?.close();
    await kit?.close();
  });

  it('registers masters then ads; each ad comes back ranked against the masters', async () => {
    for (const m of ds.masters) {
      if (stem(m.file) === heldBack) continue;
      const r = await post(kit.app, { tenant_id: T, role: 'master', asset_id: stem(m.file) }, path.join(ds.mastersDir, m.file));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.tying.status, 'added');
    }
    const ms: number[] = [];
    for (const a of ds.ads) {
      const r = await post(kit.app, { tenant_id: T, role: 'ad', campaign_id: 'c1', asset_id: stem(a.file), channel: a.format }, path.join(ds.adsDir, a.file));
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.tying.status, 'ranked', JSON.stringify(r.body.tying));
      assert.equal(r.body.tying.masters, ds.masters.length - 1);
      assert.equal(r.body.asset.tie, null, 'no auto-tie with the threshold at 1');
      ms.push(r.ms);
    }
    console.log(`# registration latency per ad (decode + blobs + embedding + candidates), ${ds.masters.length - 1} masters: median ${median(ms).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`);
  });

  it('serves the two top-20 lists, calibrated candidates, similar ads and a suggestion', async () => {
    let right = 0;
    for (const a of ds.ads) {
      const v = await get(`/v1/assets/${stem(a.file)}/candidates?tenant_id=${T}`);
      assert.equal(v.status, 'ready');
      assert.equal(v.ad.asset_id, stem(a.file));
      const n = ds.masters.length - 1;
      assert.equal(v.cosine.length, n, 'top-20 = every master here');
      assert.equal(v.euclidean.length, n);
      for (let i = 1; i < n; i++) {
        assert.ok(v.cosine[i - 1].value >= v.cosine[i].value, 'cosine: best first');
        assert.ok(v.euclidean[i - 1].value <= v.euclidean[i].value, 'euclidean: nearest first');
      }
      for (const e of [...v.cosine, ...v.euclidean]) {
        assert.equal(e.master.role, 'master');
        assert.ok(e.score === null || (e.score >= 0 && e.score <= 1));
      }
      assert.ok(v.candidates.length > 0);
      for (let i = 1; i < v.candidates.length; i++) assert.ok(v.candidates[i - 1].score >= v.candidates[i].score, 'calibrated: best first');
      assert.ok(v.candidates[0].dense >= -1 && v.candidates[0].dense <= 1, `the dense check is stored with the best candidates: ${JSON.stringify(v.candidates[0])}`);
      assert.deepEqual(v.suggestion, { master_asset_id: v.candidates[0].master_asset_id, score: v.candidates[0].score, auto_tie: false });
      assert.ok(v.similar_ads.length > 0 && v.similar_ads.length <= 10);
      assert.ok(v.similar_ads.every((s: { ad: { asset_id: string; role: string } }) => s.ad.asset_id !== stem(a.file) && s.ad.role === 'ad'));
      for (let i = 1; i < v.similar_ads.length; i++) assert.ok(v.similar_ads[i - 1].cosine >= v.similar_ads[i].cosine);
      assert.equal(v.tie, null);
      const truth = stem(ds.truth.get(a.file)!);
      if (truth !== heldBack && v.candidates[0].master_asset_id === truth) right++;
    }
    const answerable = ds.ads.filter((a) => stem(ds.truth.get(a.file)!) !== heldBack).length;
    assert.ok(right >= Math.ceil(answerable / 2), `${right}/${answerable} ads rank their master first`);
    const master = await kit.app.inject({ url: `/v1/assets/${stem(ds.masters[0]!.file)}/candidates?tenant_id=${T}` });
    assert.equal(master.statusCode === 400 || master.statusCode === 404, true);
  });

  it('a master registered after the ads re-ranks them', async () => {
    const m = ds.masters.find((x) => stem(x.file) === heldBack)!;
    const r = await post(kit.app, { tenant_id: T, role: 'master', asset_id: heldBack }, path.join(ds.mastersDir, m.file));
    assert.equal(r.status, 201);
    await eventually(async () => {
      const v = await get(`/v1/assets/${stem(ds.ads[0]!.file)}/candidates?tenant_id=${T}`);
      return v.masters_compared === ds.masters.length ? v : undefined;
    }, 120_000, 200);
    await services.tiers.idle(T);
    for (const a of ds.ads) {
      const v = await get(`/v1/assets/${stem(a.file)}/candidates?tenant_id=${T}`);
      assert.equal(v.masters_compared, ds.masters.length, `${a.file} re-ranked`);
      assert.ok(v.cosine.some((c: { master: { asset_id: string } }) => c.master.asset_id === heldBack));
    }
  });

  it('a human tie is stored, published and propagated to the ads whose top-5 hold the master above 0.60', async () => {
    // The master with the most ads; the person ties one of them.
    const counts = new Map<string, string[]>();
    for (const a of ds.ads) counts.set(stem(ds.truth.get(a.file)!), [...(counts.get(stem(ds.truth.get(a.file)!)) ?? []), stem(a.file)]);
    const [master, itsAds] = [...counts].sort((x, y) => y[1].length - x[1].length)[0]!;
    const ad = itsAds[0]!;
    // What propagation must do, from the stored rankings as the API shows them.
    const expected: string[] = [];
    for (const a of ds.ads) {
      if (stem(a.file) === ad) continue;
      const v = await get(`/v1/assets/${stem(a.file)}/candidates?tenant_id=${T}`);
      const top5 = v.candidates.slice(0, 5);
      if (top5.some((c: { master_asset_id: string; score: number }) => c.master_asset_id === master && c.score > 0.6)) expected.push(stem(a.file));
    }
    const res = await decide({ ad_asset_id: ad, action: 'tie', target_asset_id: master, decided_by: 'alice@example.com' });
    assert.equal(res.statusCode, 200, res.body);
    const { decision, auto_ties } = res.json() as { decision: TieDecision & { decision_id: string }; auto_ties: Array<TieDecision & { decision_id: string }> };
    assert.equal(decision.action, 'tie');
    assert.equal(decision.auto, false);
    assert.equal(decision.decided_by, 'alice@example.com');
    assert.deepEqual(auto_ties.map((d) => d.ad_asset_id).sort(), expected.sort());
    assert.ok(expected.length > 0, 'this set has ads to propagate to');
    for (const d of auto_ties) {
      assert.equal(d.target_asset_id, master);
      assert.equal(d.auto, true);
      assert.equal(d.decided_by, 'auto:propagation');
      assert.equal(d.because_of, decision.decision_id);
      assert.ok(d.score! > 0.6);
    }
    // On the bus, schema-valid, keyed by ad.
    await eventually(() => (ties.length >= 1 + auto_ties.length ? true : undefined), 10_000, 20);
    const published = ties.map((r) => ({ key: r.key, d: tieDecisionSchema.parse(JSON.parse(r.value.toString())) }));
    assert.ok(published.every((p) => p.key === p.d.ad_asset_id));
    assert.deepEqual(published.map((p) => p.d.decision_id).sort(), [decision, ...auto_ties].map((d) => d.decision_id).sort());
    // Stored: the log, the master's ads, the assets' current tie.
    const log = await get(`/v1/ties?tenant_id=${T}&master_asset_id=${master}`);
    assert.deepEqual(log.decisions.map((d: { decision_id: string }) => d.decision_id).sort(), [decision, ...auto_ties].map((d) => d.decision_id).sort());
    for (let i = 1; i < log.decisions.length; i++) assert.ok(log.decisions[i - 1].decided_at >= log.decisions[i].decided_at, 'newest first');
    const mads = await get(`/v1/masters/${master}/ads?tenant_id=${T}`);
    assert.equal(mads.master.asset_id, master);
    assert.deepEqual(mads.ads.map((x: { ad: { asset_id: string } }) => x.ad.asset_id).sort(), [ad, ...expected].sort());
    const tied = await get(`/v1/assets/${ad}?tenant_id=${T}`);
    assert.deepEqual({ m: tied.tie.master_asset_id, auto: tied.tie.auto, by: tied.tie.decided_by }, { m: master, auto: false, by: 'alice@example.com' });
    if (expected[0]) assert.equal((await get(`/v1/assets/${expected[0]}?tenant_id=${T}`)).tie.auto, true);
    // A second human tie to the same master propagates to nobody new (they are decided now).
    const again = await decide({ ad_asset_id: ad, action: 'tie', target_asset_id: master, decided_by: 'alice@example.com' });
    assert.deepEqual(again.json().auto_ties, []);
  });

  it('untie, no_sim and duplicate; the queue puts untied ads first', async () => {
    const undecided = (await get(`/v1/review/queue?tenant_id=${T}&status=untied`)).items.map((i: { ad: { asset_id: string } }) => i.ad.asset_id) as string[];
    assert.ok(undecided.length >= 2, `untied: ${undecided.length}`);
    const [x, y] = undecided;
    const tiedAd = (await get(`/v1/review/queue?tenant_id=${T}&status=tied`)).items[0].ad;
    // duplicate: x is the same creative as a tied ad -> follows its master
    let res = await decide({ ad_asset_id: x, action: 'duplicate', target_asset_id: tiedAd.asset_id, decided_by: 'bob' });
    assert.equal(res.statusCode, 200, res.body);
    const dx = await get(`/v1/assets/${x}?tenant_id=${T}`);
    assert.equal(dx.tie.action, 'duplicate');
    assert.equal(dx.tie.duplicate_of, tiedAd.asset_id);
    assert.equal(dx.tie.master_asset_id, tiedAd.tie.master_asset_id);
    assert.ok((await get(`/v1/masters/${tiedAd.tie.master_asset_id}/ads?tenant_id=${T}`)).ads.some((a: { ad: { asset_id: string } }) => a.ad.asset_id === x));
    // no_sim
    res = await decide({ ad_asset_id: y, action: 'no_sim', decided_by: 'bob' });
    assert.equal(res.statusCode, 200, res.body);
    assert.ok((await get(`/v1/review/queue?tenant_id=${T}&status=no_sim`)).items.some((i: { ad: { asset_id: string } }) => i.ad.asset_id === y));
    // untie the tied ad: back in the untied part of the queue
    res = await decide({ ad_asset_id: tiedAd.asset_id, action: 'untie', decided_by: 'bob' });
    assert.equal(res.statusCode, 200, res.body);
    const all = (await get(`/v1/review/queue?tenant_id=${T}&status=all`)).items as Array<{ ad: { asset_id: string }; status: string; best: { score: number } | null }>;
    assert.equal(all.length, ds.ads.length);
    const firstOther = all.findIndex((i) => i.status !== 'untied');
    assert.ok(all.slice(firstOther).every((i) => i.status !== 'untied'), 'untied first');
    const untied = all.filter((i) => i.status === 'untied');
    for (let i = 1; i < untied.length; i++) assert.ok((untied[i - 1]!.best?.score ?? -1) >= (untied[i]!.best?.score ?? -1), 'by best score');
    assert.ok(untied.some((i) => i.ad.asset_id === tiedAd.asset_id));
    const history = await get(`/v1/ties?tenant_id=${T}&ad_asset_id=${tiedAd.asset_id}`);
    assert.equal(history.decisions[0].action, 'untie', 'latest first');
  });

  it('refuses invalid decisions with a reason', async () => {
    const ad = stem(ds.ads[1]!.file);
    const master = stem(ds.masters[1]!.file);
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ ad_asset_id: ad, action: 'tie', decided_by: 'x' }, 400, 'target_required'],
      [{ ad_asset_id: ad, action: 'tie', target_asset_id: stem(ds.ads[2]!.file), decided_by: 'x' }, 400, 'invalid_target'],
      [{ ad_asset_id: ad, action: 'duplicate', target_asset_id: master, decided_by: 'x' }, 400, 'invalid_target'],
      [{ ad_asset_id: ad, action: 'duplicate', target_asset_id: ad, decided_by: 'x' }, 400, 'invalid_target'],
      [{ ad_asset_id: master, action: 'no_sim', decided_by: 'x' }, 400, 'not_an_ad'],
      [{ ad_asset_id: 'nope', action: 'no_sim', decided_by: 'x' }, 404, 'not_found'],
      [{ ad_asset_id: ad, action: 'tie', target_asset_id: master, decided_by: 'auto:me' }, 400, 'invalid_decided_by'],
      [{ ad_asset_id: ad, action: 'marry', decided_by: 'x' }, 400, 'fst_err_validation'],
    ];
    for (const [body, status, code] of cases) {
      const res = await decide(body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`);
      assert.equal(res.json().error, code);
    }
  });

  it('survives a restart: rankings and decisions come from the store, masters are reloaded', async () => {
    const before = await get(`/v1/review/queue?tenant_id=${T}&status=all`);
    const cand = await get(`/v1/assets/${stem(ds.ads[3]!.file)}/candidates?tenant_id=${T}`);
    await services.close();
    kit.app = Fastify({ logger: false });
    // Same error mapping as the first app.
    kit.app.setErrorHandler((err: Error & { status?: number; code?: string }, _req, reply) => reply.code(err.status ?? 500).send({ error: err.code, message: err.message }));
    services = await startAssetServices(kit.app, { config: config(), bus: kit.bus, store: kit.store, blobs: kit.blobs, log: silentLog });
    assert.deepEqual(await get(`/v1/review/queue?tenant_id=${T}&status=all`), before);
    assert.deepEqual(await get(`/v1/assets/${stem(ds.ads[3]!.file)}/candidates?tenant_id=${T}`), cand);
    // A new ad is ranked against the reloaded masters (the same bytes as an existing ad, in another campaign).
    const r = await post(kit.app, { tenant_id: T, role: 'ad', campaign_id: 'c2' }, path.join(ds.adsDir, ds.ads[3]!.file));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.tying.masters, ds.masters.length);
    const v = await get(`/v1/assets/${r.body.asset.asset_id}/candidates?tenant_id=${T}`);
    // Same pixels, same best candidate (the tail, near-zero scores, may tie in another order: masters load in another order).
    assert.equal(v.candidates[0].master_asset_id, cand.candidates[0].master_asset_id);
    assert.ok(Math.abs(v.candidates[0].score - cand.candidates[0].score) < 0.05);
    assert.deepEqual(new Set(v.cosine.map((c: { master: { asset_id: string } }) => c.master.asset_id)), new Set(cand.cosine.map((c: { master: { asset_id: string } }) => c.master.asset_id)));
    // Its twin is in another campaign: offered as a duplicate only when every campaign is asked for.
    assert.ok(v.similar_ads.every((s: { ad: { campaign_id: string } }) => s.ad.campaign_id === 'c2'), 'similar ads default to the ad\'s campaign');
    const all = await get(`/v1/assets/${r.body.asset.asset_id}/candidates?tenant_id=${T}&similar_scope=all`);
    assert.equal(all.similar_ads[0].ad.asset_id, stem(ds.ads[3]!.file), 'its twin is the most similar ad');
    assert.ok(all.similar_ads[0].cosine > 0.99);
  });

  it('a master registered by another inference process joins this one\'s engine (assets.changes)', async () => {
    const otherApp = Fastify({ logger: false });
    const other = await startAssetServices(otherApp, { config: config(), bus: kit.bus, store: kit.store, blobs: kit.blobs, log: silentLog });
    try {
      const n = services.tiers.masterCount(T);
      assert.equal(n, ds.masters.length);
      const { payload, headers } = await multipartBody({ tenant_id: T, role: 'master', asset_id: 'remote-master' }, { filename: 'remote.jpg', bytes: await noiseImage(400, 300) });
      const res = await otherApp.inject({ method: 'POST', url: '/v1/assets', payload, headers });
      assert.equal(res.statusCode, 201, res.body);
      await eventually(() => (services.tiers.masterCount(T) === n + 1 ? true : undefined), 60_000, 50);
      const r = await post(kit.app, { tenant_id: T, role: 'ad', campaign_id: 'c3' }, path.join(ds.adsDir, ds.ads[4]!.file));
      assert.equal(r.body.tying.masters, n + 1, 'ranked against the remote master too');
    } finally {
      await other.close();
      await otherApp.close();
    }
  });
});

describe('auto-tie above the calibrated threshold', () => {
  it('ties undecided ads the engine is sure about (auto:threshold), leaves decided ones alone', async () => {
    const kit = await routeKit();
    try {
      const producer = await kit.bus.producer();
      const repo = new AssetRepository(kit.store);
      const review = new ReviewService({ repo, producer, log: silentLog, propagate: { topN: 5, minScore: 0.6 } });
      const ties = await kit.watch(TOPICS.assetsTies);
      const ranking = (ad: string, auto: string) => ({
        tenant_id: 't',
        ad_asset_id: ad,
        computed_at: 1,
        masters: 2,
        best_master: 'm1',
        best_score: 0.999,
        auto_tie: auto,
        candidates: [{ master_asset_id: 'm1', score: 0.999, cosine: 0.9, euclidean: 0.4, verified: true, inliers: 80 }],
        by_cosine: [],
        by_euclidean: [],
        error: '',
      });
      const ad = (id: string) => ({ tenant_id: 't', asset_id: id, role: 'ad' as const, campaign_id: 'c', name: id, channel: '', content_hash: '0'.repeat(64), thumbnail_hash: '0'.repeat(64), format: 'jpeg', bytes: 1, width: 1, height: 1, created_at: 1, updated_at: 1 });
      await repo.insertDecisions([{ decision_id: 'd0', action: 'no_sim', tenant_id: 't', ad_asset_id: 'a2', auto: false, decided_by: 'carol', decided_at: 5 }]);
      await review.onRanked('t', [
        { ad: ad('a1'), ranking: ranking('a1', 'm1'), embedding: undefined },
        { ad: ad('a2'), ranking: ranking('a2', 'm1'), embedding: undefined },
        { ad: ad('a3'), ranking: ranking('a3', ''), embedding: undefined },
      ]);
      const latest = await repo.latestDecisions('t');
      assert.equal(latest.get('a1')?.decided_by, 'auto:threshold');
      assert.equal(latest.get('a1')?.target_asset_id, 'm1');
      assert.equal(latest.get('a1')?.auto, true);
      assert.equal(latest.get('a2')?.action, 'no_sim', 'a person decided: kept');
      assert.equal(latest.has('a3'), false, 'below the threshold: left for review');
      await eventually(() => (ties.length === 1 ? true : undefined), 5_000, 20);
      assert.equal(tieDecisionSchema.parse(JSON.parse(ties[0]!.value.toString())).ad_asset_id, 'a1');
      const stored = await repo.rankings('t', { full: true });
      assert.equal(stored.size, 3);
      assert.equal(stored.get('a1')!.candidates[0]!.inliers, 80);
    } finally {
      await kit.close();
    }
  });
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

/**
 * The built-in demo (AFTERGLOW_DEMO, on for `npm start`): all roles in one process with the demo on
 * register, through the real API and the demo tenant's keys, procedural masters and ads cut from them
 * under the asset_ids the demo traffic uses, the tie engine ranks those ads against the masters, and
 * a fatigue and an under-performance trigger rule exist for every demo campaign; the video ads it
 * renders from its masters are registered as videos, their shots ranked, and their plays counted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/inference';
import { DEMO_CAMPAIGNS, DEMO_MASTERS_PER_CAMPAIGN, DEMO_TENANT, DEMO_VIDEO_ADS, DEMO_VIDEO_SECONDS, demoMasterId, demoRules, start, type Running } from 'afterglow';

describe('the built-in demo', () => {
  let running: Running;
  let dataDir: string;
  const ads = DEMO_CAMPAIGNS.flatMap((c) => c.formats.map((f) => ({ campaign: c.id, id: `${c.id}-${f}`, index: c.formats.indexOf(f) })));

  before(async () => {
    ensureTestModels(['mobilenet_v2']);
    dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-demo-test-'));
    const config = loadConfig({
      PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      AFTERGLOW_DATA_DIR: dataDir,
      AFTERGLOW_MODELS_DIR: testModelsDir(),
      PREDICT_WORKERS_ENABLED: '0',
      TIE_VERIFY_WORKERS: '1',
      INFERENCE_WORKERS: '1',
    });
    running = await start(config, { roles: ['ingest', 'stream', 'live', 'inference', 'dashboard'], demo: true });
  });
  after(async () => {
    await running?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const get = async (route: string): Promise<Record<string, any>> => {
    assert.ok(running.demoKeys, 'the demo made keys for its tenant');
    const res = await fetch(`${running.url}${route}`, { headers: { authorization: `Bearer ${running.demoKeys.dashboard}` } });
    assert.equal(res.status, 200, `${route}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as Record<string, any>;
  };

  it('creates a fatigue and an under-performance rule for every demo campaign', async () => {
    const rules = await eventually(async () => {
      const r = (await get(`/v1/triggers/rules?tenant_id=${DEMO_TENANT}`)).rules as { rule_id: string; campaign_id: string; kind: string; enabled: boolean }[];
      return r.length >= demoRules().length ? r : undefined;
    }, 30_000, 250);
    for (const c of DEMO_CAMPAIGNS) {
      const kinds = rules.filter((r) => r.campaign_id === c.id && r.enabled).map((r) => r.kind).sort();
      assert.deepEqual(kinds, ['fatigue', 'underperformance'], c.id);
    }
  });

  it('registers the masters and one ad per demo creative, and ranks the ads against the masters', async (t) => {
    const masterCount = DEMO_CAMPAIGNS.length * DEMO_MASTERS_PER_CAMPAIGN;
    const listed = await eventually(async () => {
      const masters = (await get(`/v1/assets?tenant_id=${DEMO_TENANT}&role=master&limit=1000`)).assets as { asset_id: string }[];
      const registered = (await get(`/v1/assets?tenant_id=${DEMO_TENANT}&role=ad&limit=1000`)).assets as { asset_id: string; campaign_id: string }[];
      return masters.length >= masterCount && ads.every((a) => registered.some((r) => r.asset_id === a.id)) ? { masters, registered } : undefined;
    }, 55_000, 500);
    assert.equal(listed.masters.length, masterCount);
    for (const a of ads) assert.equal(listed.registered.find((r) => r.asset_id === a.id)?.campaign_id, a.campaign, a.id);

    // Every ad is ranked; the tie engine puts the master it was cut from first for most of them.
    let right = 0;
    for (const a of ads) {
      const view = await eventually(async () => {
        const v = await get(`/v1/assets/${a.id}/candidates?tenant_id=${DEMO_TENANT}`);
        return (v.candidates as unknown[]).length > 0 ? v : undefined;
      }, 20_000, 250);
      const top = (view.candidates as { master_asset_id: string }[])[0]!.master_asset_id;
      if (top === demoMasterId(a.campaign, a.index % DEMO_MASTERS_PER_CAMPAIGN)) right++;
    }
    t.diagnostic(`source master ranked first for ${right}/${ads.length} demo ads`);
    assert.ok(right >= Math.ceil(ads.length / 2), `source master first for ${right}/${ads.length} ads`);

    // Thumbnails are served for the ids the demo's events carry.
    const thumb = await fetch(`${running.url}/v1/assets/${ads[0]!.id}/thumbnail?tenant_id=${DEMO_TENANT}`, { headers: { authorization: `Bearer ${running.demoKeys!.dashboard}` } });
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get('content-type'), 'image/webp');
  });

  it('registers its video ads, cut from its masters, and sends their plays', async (t) => {
    let matched = 0;
    for (const ad of DEMO_VIDEO_ADS) {
      // Registered after the photo ads: the shots are ranked against the masters.
      const video = await eventually(async () => {
        const res = await fetch(`${running.url}/v1/assets/${ad.asset}/video?tenant_id=${DEMO_TENANT}`, { headers: { authorization: `Bearer ${running.demoKeys!.dashboard}` } });
        if (res.status !== 200) return undefined;
        const v = (await res.json()) as { duration_s: number; shots: { start: number; end: number; candidates?: { master_asset_id: string }[] }[] };
        return v.shots.length > 0 && v.shots.every((s) => s.candidates) ? v : undefined;
      }, 120_000, 500);
      assert.ok(Math.abs(video.duration_s - DEMO_VIDEO_SECONDS) < 0.2, `${ad.asset}: ${video.duration_s} s`);
      // A zoom, a pan and an end card: three shots (a cut between each).
      assert.equal(video.shots.length, 3, `${ad.asset}: ${JSON.stringify(video.shots.map((s) => [s.start, s.end]))}`);
      const asset = await get(`/v1/assets/${ad.asset}?tenant_id=${DEMO_TENANT}`);
      assert.equal(asset.campaign_id, ad.campaign);
      assert.equal(asset.role, 'ad');
      ad.masters.forEach((m, i) => {
        if (video.shots[i]!.candidates![0]?.master_asset_id === demoMasterId(ad.campaign, m % DEMO_MASTERS_PER_CAMPAIGN)) matched++;
      });
      // Plays arrive from the start: starts, and hooks and completes below them.
      const report = await eventually(async () => {
        const r = (await get(`/v1/assets/${ad.asset}/video-metrics?tenant_id=${DEMO_TENANT}`)).asset as { starts: number; hook_rate: { value: number }; completion_rate: { value: number }; avg_watch_ms: number };
        return r.starts >= 5 ? r : undefined;
      }, 60_000, 500);
      t.diagnostic(`${ad.asset}: ${report.starts} plays, hook ${report.hook_rate.value.toFixed(2)}, completion ${report.completion_rate.value.toFixed(2)}`);
      assert.ok(report.hook_rate.value > 0 && report.hook_rate.value < 1, `${ad.asset} hook ${report.hook_rate.value}`);
      assert.ok(report.completion_rate.value <= report.hook_rate.value, `${ad.asset}: completion under hook`);
      assert.ok(report.avg_watch_ms > 0 && report.avg_watch_ms <= DEMO_VIDEO_SECONDS * 1000);
    }
    t.diagnostic(`source master ranked first for ${matched}/${DEMO_VIDEO_ADS.length * 2} video shots`);
    assert.ok(matched >= 3, `the master a video shot was cut from ranks first for only ${matched}/${DEMO_VIDEO_ADS.length * 2} shots`);
  });
});

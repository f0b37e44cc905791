/**
 * Video ads tied to photo masters shot by shot, over real parts: chDB, the in-process bus, a local blob
 * store, MobileNetV2 on onnxruntime, ORB workers, the packaged ffmpeg; the ad is rendered here from
 * real photos (python3-skimage) as Ken Burns moves, one shot of them B-roll from a photo that is no master;
 * master footage is a video rendered the same way, and an ad re-cut from one of its shots.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { loadConfig } from '@afterglow/core';
import { multipartBody } from '@afterglow/testkit/fixtures';
import { findSamplePhotos } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';
import { skipOption } from '@afterglow/testkit/services';
import { encodeClip, kenBurns } from '@afterglow/testkit/video';
import { startAssetServices, type AssetServices } from '../asset-services.js';
import type { TieResult } from '../tie/engine.js';
import type { VideoRecord } from '../registry/repository.js';
import { collapseMasterShots, foldKeyframeResults, foldShotResults, masterViewName, shotQueryName } from './video-ties.js';

const result = (ad: string, cands: Array<[string, number]>, autoTie: string | null): TieResult => ({
  ad,
  candidates: cands.map(([master, score]) => ({ master, score, cosine: score, euclidean: 1 - score, verified: false, matches: 0, inliers: 0, flipped: false })),
  autoTie,
  byCosine: cands.map(([master, value]) => ({ master, value })),
  byEuclidean: cands.map(([master, value]) => ({ master, value: 1 - value })),
});

describe('foldShotResults', () => {
  const video = {
    shots: [
      { index: 0, start: 0, end: 2, start_frame: 0, end_frame: 50, transition: 'start', keyframes: [] },
      { index: 1, start: 2, end: 3, start_frame: 50, end_frame: 75, transition: 'cut', keyframes: [] },
      { index: 2, start: 3, end: 3.5, start_frame: 75, end_frame: 88, transition: 'cut', keyframes: [] },
    ],
  } as unknown as VideoRecord;

  it('ranks each master at its best shot, ties the video to the master longest on screen, keeps each shot its own masters', () => {
    const per = new Map([
      [0, result(shotQueryName('ad', 0), [['m1', 0.9], ['m2', 0.3]], 'm1')],
      [1, result(shotQueryName('ad', 1), [['m2', 0.95], ['m1', 0.2]], 'm2')],
      [2, result(shotQueryName('ad', 2), [['m3', 0.1]], null)],
    ]);
    const { result: r, shots } = foldShotResults('ad', video, per, 20);
    assert.deepEqual(r.candidates.map((c) => [c.master, c.score]), [['m2', 0.95], ['m1', 0.9], ['m3', 0.1]]);
    assert.equal(r.autoTie, 'm1', 'm1 is on screen 2 s, m2 1 s');
    assert.deepEqual(r.byEuclidean.map((c) => c.master), ['m2', 'm1', 'm3']);
    assert.deepEqual(shots.map((s) => s.auto_tie), ['m1', 'm2', null]);
    assert.deepEqual(shots[1]!.candidates, [{ master_asset_id: 'm2', score: 0.95 }, { master_asset_id: 'm1', score: 0.2 }]);
    assert.equal(r.error, undefined);
  });

  it("ranks a shot's masters at their best keyframe, with the auto-tie of its most confident keyframe", () => {
    const r = foldKeyframeResults([
      result(shotQueryName('ad', 0, 0), [['m1', 0.4], ['m2', 0.5]], null),
      result(shotQueryName('ad', 0, 1), [['m1', 0.97], ['m2', 0.1]], 'm1'),
      { ...result(shotQueryName('ad', 0, 2), [], null), error: 'unreadable' },
    ]);
    assert.deepEqual(r.candidates.map((c) => [c.master, c.score]), [['m1', 0.97], ['m2', 0.5]]);
    assert.equal(r.autoTie, 'm1');
  });

  it("folds a video master's shots into the master, keeping the best shot", () => {
    const r = collapseMasterShots(result('ad', [[masterViewName('clip', 3), 0.8], ['photo', 0.6], [masterViewName('clip', 1), 0.7]], masterViewName('clip', 3)));
    assert.deepEqual(r.candidates.map((c) => [c.master, c.score, (c as { masterShot?: number }).masterShot]), [['clip', 0.8, 3], ['photo', 0.6, undefined]]);
    assert.equal(r.autoTie, 'clip');
    assert.deepEqual(r.byEuclidean.map((c) => c.master), ['clip', 'photo']);
  });

  it('says so when no shot could be ranked', () => {
    const per = new Map([[0, { ...result(shotQueryName('ad', 0), [], null), error: 'corrupt keyframe' }]]);
    const { result: r, shots } = foldShotResults('ad', video, per, 20);
    assert.equal(r.error, 'corrupt keyframe');
    assert.equal(shots[0]!.candidates, undefined);
  });
});

const T = 'tenant-v';
const PHOTOS = ['astronaut', 'coffee', 'chelsea', 'rocket', 'motorcycle_left', 'retina', 'hubble_deep_field'];

describe('video ads tied per shot to photo masters and master footage (real models, chDB, packaged ffmpeg)', { skip: skipOption(findSamplePhotos(['python3-skimage']).length < 6 && 'needs the python3-skimage photos (apt-get install python3-skimage, or allow apt-get download)') }, () => {
  let kit: RouteKit;
  let services: AssetServices;
  const photos = new Map<string, { file: string; data: Uint8Array; width: number; height: number }>();

  before(async () => {
    ensureTestModels(['mobilenet_v2']);
    kit = await routeKit();
    const found = findSamplePhotos(['python3-skimage']);
    for (const name of PHOTOS) {
      const p = found.find((x) => path.basename(x.path).startsWith(`${name}.`));
      assert.ok(p, `photo ${name}`);
      const { data, info } = await sharp(p.path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      photos.set(name, { file: p.path, data: new Uint8Array(data), width: info.width, height: info.height });
    }
    const config = loadConfig({
      AFTERGLOW_DATA_DIR: kit.dir,
      AFTERGLOW_MODELS_DIR: testModelsDir(),
      TIE_CACHE_DIR: path.join(kit.dir, 'tie-cache'),
      TIE_VERIFY_WORKERS: '1',
      INFERENCE_WORKERS: '1',
      LOG_LEVEL: 'silent',
    });
    services = await startAssetServices(kit.app, { config, bus: kit.bus, store: kit.store, blobs: kit.blobs, log: silentLog });
  });
  after(async () => {
    await services?.close();
    await kit?.close();
  });

  const post = async (fields: Record<string, string>, filename: string, bytes: Uint8Array) => {
    const { payload, headers } = await multipartBody(fields, { filename, bytes });
    const res = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };

  it('ranks each shot against the masters: the photo it was cut from first, the B-roll shot tied to none', async () => {
    const { readFileSync } = await import('node:fs');
    for (const name of PHOTOS.slice(0, 4)) {
      const r = await post({ tenant_id: T, role: 'master', asset_id: name }, `${name}.png`, readFileSync(photos.get(name)!.file));
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    // 16:9 crops that zoom in and pan: 1.6 s on the astronaut, 1.6 s on the coffee, 1.2 s of B-roll.
    const W = 320;
    const H = 180;
    const crop = (name: string, l: number, t: number, w: number): [number, number, number, number] => {
      const p = photos.get(name)!;
      return [l, t, w, (w * p.width * H) / (W * p.height)];
    };
    const frames = [
      ...kenBurns({ photo: photos.get('astronaut')!, frames: 40, from: crop('astronaut', 0.05, 0.05, 0.8), to: crop('astronaut', 0.15, 0.1, 0.65) }, W, H),
      ...kenBurns({ photo: photos.get('coffee')!, frames: 40, from: crop('coffee', 0.0, 0.1, 0.9), to: crop('coffee', 0.1, 0.15, 0.75) }, W, H),
      ...kenBurns({ photo: photos.get('motorcycle_left')!, frames: 30, from: crop('motorcycle_left', 0.0, 0.0, 1), to: crop('motorcycle_left', 0.1, 0.05, 0.85) }, W, H),
    ];
    const bytes = await encodeClip({ width: W, height: H, fps: 25, frames }, path.join(kit.dir, 'ad.mp4'), { crf: 23 });
    const r = await post({ tenant_id: T, role: 'ad', campaign_id: 'c1', asset_id: 'video-ad' }, 'ad.mp4', bytes);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.tying.status, 'ranked', JSON.stringify(r.body.tying));
    const video = (await kit.app.inject({ url: `/v1/assets/video-ad/video?tenant_id=${T}` })).json();
    assert.equal(video.shots.length, 3, JSON.stringify(video.shots.map((s: any) => [s.start, s.end])));
    assert.equal(video.shots[0].candidates[0].master_asset_id, 'astronaut', JSON.stringify(video.shots[0].candidates.slice(0, 3)));
    assert.equal(video.shots[1].candidates[0].master_asset_id, 'coffee', JSON.stringify(video.shots[1].candidates.slice(0, 3)));
    assert.equal(video.shots[2].auto_tie, null, 'B-roll has no master');
    // The video's own candidates hold both masters it was cut from, ahead of the others.
    const res = await kit.app.inject({ url: `/v1/assets/video-ad/candidates?tenant_id=${T}` });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    const list = (body.candidates ?? []) as Array<{ master_asset_id?: string; asset_id?: string }>;
    const top2 = list.slice(0, 2).map((c) => c.master_asset_id ?? c.asset_id);
    assert.deepEqual([...top2].sort(), ['astronaut', 'coffee'], JSON.stringify(list.slice(0, 4)));
  });
  it('ties a shot re-cut from master footage to that clip and the shot of it it came from', async () => {
    const W = 320;
    const H = 180;
    const crop = (name: string, l: number, t: number, w: number): [number, number, number, number] => {
      const p = photos.get(name)!;
      return [l, t, w, (w * p.width * H) / (W * p.height)];
    };
    // The footage: 1.6 s over the retina photo, then 1.6 s over the Hubble field.
    const footage = [
      ...kenBurns({ photo: photos.get('retina')!, frames: 40, from: crop('retina', 0.05, 0.1, 0.85), to: crop('retina', 0.1, 0.15, 0.7) }, W, H),
      ...kenBurns({ photo: photos.get('hubble_deep_field')!, frames: 40, from: crop('hubble_deep_field', 0.0, 0.05, 0.9), to: crop('hubble_deep_field', 0.05, 0.1, 0.8) }, W, H),
    ];
    const master = await encodeClip({ width: W, height: H, fps: 25, frames: footage }, path.join(kit.dir, 'footage.mp4'), { crf: 20 });
    const m = await post({ tenant_id: T, role: 'master', asset_id: 'footage' }, 'footage.mp4', master);
    assert.equal(m.status, 201, JSON.stringify(m.body));
    assert.equal(m.body.video.shots.length, 2);
    // The ad: a tighter move inside the footage's second shot, re-encoded harder, then the astronaut photo.
    const frames = [
      ...kenBurns({ photo: photos.get('hubble_deep_field')!, frames: 35, from: crop('hubble_deep_field', 0.1, 0.1, 0.7), to: crop('hubble_deep_field', 0.15, 0.15, 0.6) }, W, H),
      ...kenBurns({ photo: photos.get('astronaut')!, frames: 35, from: crop('astronaut', 0.1, 0.05, 0.75), to: crop('astronaut', 0.1, 0.1, 0.7) }, W, H),
    ];
    const ad = await encodeClip({ width: W, height: H, fps: 25, frames }, path.join(kit.dir, 'recut.mp4'), { crf: 32 });
    const r = await post({ tenant_id: T, role: 'ad', campaign_id: 'c1', asset_id: 'recut' }, 'recut.mp4', ad);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const video = (await kit.app.inject({ url: `/v1/assets/recut/video?tenant_id=${T}` })).json();
    assert.equal(video.shots.length, 2);
    assert.deepEqual(video.shots[0].candidates[0], { ...video.shots[0].candidates[0], master_asset_id: 'footage', master_shot: 1 }, JSON.stringify(video.shots[0].candidates.slice(0, 3)));
    assert.equal(video.shots[1].candidates[0].master_asset_id, 'astronaut', JSON.stringify(video.shots[1].candidates.slice(0, 3)));
  });
});

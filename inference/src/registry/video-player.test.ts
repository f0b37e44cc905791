/**
 * What the dashboard's video view needs from the registry and review APIs, over real parts (chDB,
 * in-process bus, local blob store, the packaged ffmpeg): the original bytes with byte ranges for a
 * <video> to seek in, and a person's review of one shot of a video ad.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { multipartBody, noiseImage } from '@afterglow/testkit/fixtures';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';
import { renderClip, encodeClip } from '@afterglow/testkit/video';
import { registerReviewRoutes } from '../review/routes.js';
import { ReviewService } from '../review/service.js';
import { DEFAULT_DECODER_OPTIONS } from '../video/ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS } from '../video/probe.js';
import { AssetRepository } from './repository.js';
import { parseByteRange, registerRegistryRoutes } from './routes.js';
import { AssetRegistry } from './service.js';

const MAX_BYTES = 8_000_000;

describe('parseByteRange', () => {
  it('reads one bytes= range, clamps an end past the body, and tells unsatisfiable from ignorable', () => {
    assert.deepEqual(parseByteRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseByteRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseByteRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseByteRange('bytes=-1000', 100), { start: 0, end: 99 }, 'a suffix longer than the body is the whole body');
    assert.deepEqual(parseByteRange('bytes=50-5000', 100), { start: 50, end: 99 });
    assert.deepEqual(parseByteRange('bytes=99-99', 100), { start: 99, end: 99 });
    assert.equal(parseByteRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=-0', 100), 'unsatisfiable');
    assert.equal(parseByteRange('bytes=0-', 0), 'unsatisfiable');
    for (const ignored of ['bytes=9-1', 'bytes=0-1,5-9', 'items=0-9', 'bytes=-', 'bytes=a-b', 'bytes=0-9999999999999999', ''])
      assert.equal(parseByteRange(ignored, 100), 'none', ignored);
  });
});

describe('the video view API: original bytes by range, per-shot review (real chDB, packaged ffmpeg)', () => {
  let kit: RouteKit;
  let dir: string;
  let repo: AssetRepository;
  let original: Buffer;
  /** Whole-blob reads (each hashes the whole video to verify it): a seek must not make one. */
  let wholeReads = 0;

  before(async () => {
    kit = await routeKit();
    dir = await mkdtemp(path.join(os.tmpdir(), 'video-player-'));
    repo = new AssetRepository(kit.store);
    const producer = await kit.bus.producer();
    const registry = new AssetRegistry({
      repo,
      blobs: new Proxy(kit.blobs, {
        get(target, prop) {
          if (prop === 'get') {
            return (key: string) => {
              wholeReads++;
              return target.get(key);
            };
          }
          const v = Reflect.get(target, prop, target);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
      producer,
      limits: { maxBytes: MAX_BYTES, maxPixels: 50_000_000, maxSide: 16_384 },
      log: silentLog,
      videos: { limits: { ...DEFAULT_VIDEO_LIMITS, maxBytes: MAX_BYTES, maxFrames: 600 }, decoder: DEFAULT_DECODER_OPTIONS, concurrency: 1, queue: 4 },
    });
    await registerRegistryRoutes(kit.app, { registry, maxBytes: MAX_BYTES });
    const review = new ReviewService({ repo, producer, log: silentLog, propagate: { topN: 3, minScore: 0.9 } });
    await registerReviewRoutes(kit.app, { review });
    const clip = renderClip({ width: 160, height: 90, fps: 25, shots: [{ frames: 30, seed: 1 }, { frames: 30, seed: 2 }, { frames: 25, seed: 3 }], transitions: ['cut', 'cut'], transitionFrames: 1 });
    original = await encodeClip(clip, path.join(dir, 'ad.mp4'), { crf: 28 });
    for (const [fields, file] of [
      [{ tenant_id: 't1', role: 'ad', campaign_id: 'c1', asset_id: 'clip' }, { filename: 'ad.mp4', bytes: original }],
      [{ tenant_id: 't1', role: 'master', asset_id: 'm1' }, { filename: 'm1.jpg', bytes: await noiseImage(64, 48, 'jpeg', 1) }],
      [{ tenant_id: 't1', role: 'ad', campaign_id: 'c1', asset_id: 'still' }, { filename: 'still.jpg', bytes: await noiseImage(64, 48, 'jpeg', 2) }],
      [{ tenant_id: 't2', role: 'master', asset_id: 'm-other' }, { filename: 'm.jpg', bytes: await noiseImage(64, 48, 'jpeg', 3) }],
    ] as const) {
      const { payload, headers } = await multipartBody(fields, file);
      const res = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
      assert.equal(res.statusCode, 201, res.body);
    }
    // As the tie engine leaves a ranked video: shot 0 cut from m1, shot 2 from nothing.
    const video = (await repo.getVideo('t1', 'clip'))!;
    assert.equal(video.shots.length, 3, 'the generated clip has three shots');
    await repo.insertVideo({ ...video, shots: video.shots.map((s) => ({ ...s, candidates: s.index === 0 ? [{ master_asset_id: 'm1', score: 0.93 }] : [], auto_tie: null })) });
  });
  after(async () => {
    await kit?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (url: string, headers: Record<string, string> = {}) => kit.app.inject({ url, headers });

  it('serves the whole original with its content type, ETag and Accept-Ranges; 304 on a matching If-None-Match', async () => {
    const res = await get('/v1/assets/clip/original?tenant_id=t1');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'video/mp4');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.ok(res.rawPayload.equals(original), 'the uploaded bytes');
    const etag = String(res.headers.etag);
    assert.match(etag, /^"[0-9a-f]{64}"$/);
    assert.equal((await get('/v1/assets/clip/original?tenant_id=t1', { 'if-none-match': etag })).statusCode, 304);
  });

  it('answers ranges with 206 and the right slice; past the end 416 with the size; ignorable ranges get the whole body', async () => {
    const size = original.length;
    const readsBefore = wholeReads;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, size - 1],
      ['bytes=-50', size - 50, size - 1],
      [`bytes=${size - 1}-${size + 500}`, size - 1, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await get('/v1/assets/clip/original?tenant_id=t1', { range });
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
      assert.equal(Number(res.headers['content-length']), end - start + 1, range);
      assert.ok(res.rawPayload.equals(original.subarray(start, end + 1)), `${range}: the slice`);
    }
    assert.equal(wholeReads, readsBefore, 'a range is read as a range, not the whole blob');
    const past = await get('/v1/assets/clip/original?tenant_id=t1', { range: `bytes=${size}-` });
    assert.equal(past.statusCode, 416);
    assert.equal(past.headers['content-range'], `bytes */${size}`);
    assert.equal(past.json().error, 'range_not_satisfiable');
    for (const range of ['bytes=0-1,4-9', 'bytes=9-1', 'lines=1-2']) {
      const res = await get('/v1/assets/clip/original?tenant_id=t1', { range });
      assert.equal(res.statusCode, 200, range);
      assert.equal(res.rawPayload.length, size, range);
    }
    const stale = await get('/v1/assets/clip/original?tenant_id=t1', { range: 'bytes=0-9', 'if-range': '"another-version"' });
    assert.equal(stale.statusCode, 200, 'If-Range naming another version: the whole body');
    const fresh = await get('/v1/assets/clip/original?tenant_id=t1', { range: 'bytes=0-9', 'if-range': String(stale.headers.etag) });
    assert.equal(fresh.statusCode, 206);
  });

  it("never serves another tenant's original", async () => {
    const res = await get('/v1/assets/clip/original?tenant_id=t2', { range: 'bytes=0-9' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error, 'not_found');
  });

  const review = (id: string, shot: number | string, body: Record<string, unknown>) =>
    kit.app.inject({ method: 'POST', url: `/v1/assets/${id}/shots/${shot}/review`, payload: { tenant_id: 't1', decided_by: 'reviewer', ...body } });
  const shotsOf = async () => (await get('/v1/assets/clip/video?tenant_id=t1')).json().shots as Array<{ index: number; review?: Record<string, unknown> }>;

  it("keeps a person's word on each shot (tie with the shot's score, no master), and takes it back on untie", async () => {
    const tie = await review('clip', 0, { action: 'tie', target_asset_id: 'm1' });
    assert.equal(tie.statusCode, 200, tie.body);
    assert.deepEqual({ ...tie.json().shot.review, decided_at: 0 }, { action: 'tie', master_asset_id: 'm1', score: 0.93, decided_by: 'reviewer', decided_at: 0 });
    // The answer shows the shot as the video's view does (keyframes by frame, never their blob keys).
    assert.deepEqual(tie.json().shot, (await shotsOf())[0]);
    assert.ok((tie.json().shot.keyframes as unknown[]).every((k) => typeof k === 'number'), tie.body);
    const none = await review('clip', 2, { action: 'no_sim' });
    assert.equal(none.statusCode, 200, none.body);
    let shots = await shotsOf();
    assert.deepEqual(
      shots.map((s) => s.review && [s.review.action, s.review.master_asset_id]),
      [['tie', 'm1'], undefined, ['no_sim', null]],
    );
    // Two reviews of one video at once: neither is lost.
    const [a, b] = await Promise.all([review('clip', 1, { action: 'tie', target_asset_id: 'm1' }), review('clip', 0, { action: 'untie' })]);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    shots = await shotsOf();
    assert.deepEqual(
      shots.map((s) => s.review && [s.review.action, s.review.master_asset_id, s.review.score]),
      [undefined, ['tie', 'm1', null], ['no_sim', null, null]],
    );
    assert.equal((await get('/v1/assets/clip?tenant_id=t1')).json().tie, null, "the ad's own tie is left to POST /v1/ties");
  });

  it('refuses bad shot reviews with a typed error and changes nothing', async () => {
    const before = await shotsOf();
    const refused: Array<[string, number | string, Record<string, unknown>, number, string]> = [
      ['clip', 3, { action: 'no_sim' }, 404, 'not_found'],
      ['clip', 0, { action: 'tie' }, 400, 'target_required'],
      ['clip', 0, { action: 'no_sim', target_asset_id: 'm1' }, 400, 'invalid_target'],
      ['clip', 0, { action: 'tie', target_asset_id: 'still' }, 400, 'invalid_target'],
      ['clip', 0, { action: 'tie', target_asset_id: 'm-other' }, 404, 'not_found'],
      ['clip', 0, { action: 'tie', target_asset_id: 'm1', decided_by: 'auto:me' }, 400, 'invalid_decided_by'],
      ['still', 0, { action: 'no_sim' }, 404, 'not_a_video'],
      ['m1', 0, { action: 'no_sim' }, 400, 'not_an_ad'],
      ['nope', 0, { action: 'no_sim' }, 404, 'not_found'],
    ];
    for (const [id, shot, body, status, error] of refused) {
      const res = await review(id, shot, body);
      assert.equal(res.statusCode, status, `${id}/${shot} ${JSON.stringify(body)}: ${res.body}`);
      assert.equal(res.json().error, error, `${id}/${shot} ${JSON.stringify(body)}`);
    }
    for (const [shot, body] of [[-1, { action: 'no_sim' }], ['x', { action: 'no_sim' }], [0, { action: 'confirm' }]] as const)
      assert.equal((await review('clip', shot, body)).statusCode, 400, `${shot} ${JSON.stringify(body)}`);
    const other = await kit.app.inject({ method: 'POST', url: '/v1/assets/clip/shots/0/review', payload: { tenant_id: 't2', action: 'no_sim', decided_by: 'x' } });
    assert.equal(other.statusCode, 404, "another tenant's video is not there");
    assert.deepEqual(await shotsOf(), before);
  });
});

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { TOPICS, assetChangeSchema, blobKey } from '@afterglow/core';
import { assetRegisteredSchema, jsonSchemaOf, videoSchema } from '@afterglow/core/api';
import { multipartBody } from '@afterglow/testkit/fixtures';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';
import { encodeClip, hostileVideoUploads, lavfiClip, renderClip } from '@afterglow/testkit/video';
import { DEFAULT_DECODER_OPTIONS } from '../video/ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS } from '../video/probe.js';
import { AssetRepository } from './repository.js';
import { registerRegistryRoutes } from './routes.js';
import { AssetRegistry } from './service.js';

/** The answer matches the route's documented schema (@afterglow/core/api), no field more or less. */
function conforms(schema: Parameters<typeof jsonSchemaOf>[0], body: unknown): void {
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile(jsonSchemaOf(schema));
  assert.ok(validate(body), `off its documented schema: ${JSON.stringify(validate.errors)}`);
}

const MAX_BYTES = 8_000_000;
const MAX_FRAMES = 600;

describe('video assets through POST /v1/assets (real chDB, in-process bus, local blob store)', () => {
  let kit: RouteKit;
  let dir: string;
  let changes: Awaited<ReturnType<RouteKit['watch']>>;

  before(async () => {
    kit = await routeKit();
    dir = await mkdtemp(path.join(os.tmpdir(), 'video-registry-'));
    const registry = new AssetRegistry({
      repo: new AssetRepository(kit.store),
      blobs: kit.blobs,
      producer: await kit.bus.producer(),
      limits: { maxBytes: MAX_BYTES, maxPixels: 50_000_000, maxSide: 16_384 },
      log: silentLog,
      videos: { limits: { ...DEFAULT_VIDEO_LIMITS, maxBytes: MAX_BYTES, maxFrames: MAX_FRAMES }, decoder: DEFAULT_DECODER_OPTIONS, concurrency: 1, queue: 4 },
    });
    await registerRegistryRoutes(kit.app, { registry, maxBytes: MAX_BYTES });
    changes = await kit.watch(TOPICS.assetsChanges);
  });
  after(async () => {
    await kit.close();
    await rm(dir, { recursive: true, force: true });
  });

  const published = async () => (await kit.bus.endOffsets(TOPICS.assetsChanges)).reduce((sum, e) => sum + BigInt(e.offset), 0n);
  const post = async (fields: Record<string, string>, file: { filename: string; bytes: Uint8Array }) => {
    const { payload, headers } = await multipartBody(fields, file);
    const res = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };

  it('refuses hostile videos with a reason, storing and publishing nothing', async () => {
    const before = await published();
    for (const h of await hostileVideoUploads(dir, MAX_FRAMES)) {
      const r = await post({ tenant_id: 't1', role: 'ad', campaign_id: 'c1', name: h.name }, { filename: h.filename, bytes: h.bytes });
      assert.equal(r.status, h.status, `${h.name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error, h.error, `${h.name}: ${r.body.message}`);
    }
    assert.deepEqual((await kit.app.inject({ url: '/v1/assets?tenant_id=t1' })).json().assets, []);
    assert.ok(!existsSync(kit.blobDir) || readdirSync(kit.blobDir).length === 0, 'no blob written');
    assert.equal(await published(), before, 'nothing published on assets.changes');
  });

  it('registers a video ad: original, poster, storyboard, shots with keyframes, audio; published on assets.changes', async () => {
    const clip = renderClip({ width: 320, height: 180, fps: 25, shots: [{ frames: 40, seed: 11 }, { frames: 45, seed: 12 }, { frames: 40, seed: 13 }], transitions: ['cut', 'dissolve'], transitionFrames: 10 });
    const bytes = await encodeClip(clip, path.join(dir, 'ad.mp4'), { crf: 20, audio: true });
    const r = await post({ tenant_id: 't1', role: 'ad', campaign_id: 'c1', name: 'spring' }, { filename: 'spring.mp4', bytes });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.asset.asset_id as string;
    assert.equal(r.body.asset.format, 'mp4');
    assert.deepEqual([r.body.asset.width, r.body.asset.height], [320, 180]);
    conforms(assetRegisteredSchema, r.body);
    const video = r.body.video;
    assert.equal(video.codec, 'h264');
    assert.equal(video.audio, true);
    assert.equal(video.frames, clip.frames.length);
    assert.equal(video.duration_s, clip.frames.length / 25);
    assert.deepEqual(video.shots.map((s: any) => s.transition), ['start', 'cut', 'dissolve']);
    assert.equal(video.shots[1].start, 40 / 25);

    const get = (url: string) => kit.app.inject({ url: `${url}${url.includes('?') ? '&' : '?'}tenant_id=t1` });
    const view = (await get(`/v1/assets/${id}/video`)).json();
    conforms(videoSchema, view);
    assert.deepEqual(view, video);
    const original = await get(`/v1/assets/${id}/image`);
    assert.equal(original.headers['content-type'], 'video/mp4');
    assert.equal(blobKey(original.rawPayload), blobKey(bytes));
    for (const [url, format] of [[`/v1/assets/${id}/poster`, 'webp'], [`/v1/assets/${id}/storyboard`, 'webp'], [`/v1/assets/${id}/thumbnail`, 'webp'], [`/v1/assets/${id}/keyframes/2/1`, 'jpeg']] as const) {
      const res = await get(url);
      assert.equal(res.statusCode, 200, url);
      assert.equal((await sharp(res.rawPayload).metadata()).format, format, url);
    }
    assert.equal((await get(`/v1/assets/${id}/keyframes/3/0`)).statusCode, 404);

    const change = changes.map((c) => assetChangeSchema.parse(JSON.parse(c.value.toString()))).find((c) => c.asset_id === id);
    assert.ok(change, 'published');
    assert.deepEqual([change.media, change.shots, change.duration_ms], ['video', 3, Math.round((clip.frames.length / 25) * 1000)]);

    const again = await post({ tenant_id: 't1', role: 'ad', campaign_id: 'c1', name: 'spring' }, { filename: 'spring.mp4', bytes });
    assert.equal(again.status, 200, 'the same video again is a no-op');
  });

  it('registers a WebM master (VP9, field "video")', async () => {
    const bytes = await lavfiClip(path.join(dir, 'master.webm'), { width: 192, height: 108, fps: 25, seconds: 1, codec: 'vp9' });
    const form = new FormData();
    form.set('tenant_id', 't1');
    form.set('role', 'master');
    form.set('video', new Blob([bytes]), 'footage.webm');
    const req = new Request('http://localhost/', { method: 'POST', body: form });
    const res = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload: Buffer.from(await req.arrayBuffer()), headers: { 'content-type': req.headers.get('content-type')! } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().asset.format, 'webm');
    assert.equal(res.json().video.codec, 'vp9');
    assert.equal((await kit.app.inject({ url: `/v1/assets/${res.json().asset.asset_id}/image?tenant_id=t1` })).headers['content-type'], 'video/webm');
  });
});

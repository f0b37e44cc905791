import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { TOPICS, assetChangeSchema, blobKey } from '@afterglow/core';
import { eventually } from '@afterglow/testkit/services';
import { photosOrSkip } from '@afterglow/testkit/images';
import { hostileUploads, multipartBody, noiseImage } from '@afterglow/testkit/fixtures';
import { AssetRepository } from './repository.js';
import { registerRegistryRoutes } from './routes.js';
import { AssetRegistry } from './service.js';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';

const MAX_BYTES = 2_500_000;
const LIMITS = { maxBytes: MAX_BYTES, maxPixels: 50_000_000, maxSide: 16_384 };

describe('asset registry routes (real chDB, in-process bus, local blob store)', () => {
  let kit: RouteKit;
  let changes: Awaited<ReturnType<RouteKit['watch']>>;
  let registry: AssetRegistry;

  before(async () => {
    kit = await routeKit();
    const producer = await kit.bus.producer();
    registry = new AssetRegistry({ repo: new AssetRepository(kit.store), blobs: kit.blobs, producer, limits: LIMITS, log: silentLog, decodeConcurrency: 1, decodeQueue: 1 });
    await registerRegistryRoutes(kit.app, { registry, maxBytes: MAX_BYTES });
    changes = await kit.watch(TOPICS.assetsChanges);
  });
  after(() => kit.close());

  // Records ever written to assets.changes (the topic's end offsets): the registry awaits its send
  // before it answers, so "nothing published" is this count unchanged after the answer, no sleep.
  const published = async () => (await kit.bus.endOffsets(TOPICS.assetsChanges)).reduce((sum, e) => sum + BigInt(e.offset), 0n);

  const post = async (fields: Record<string, string>, file?: { filename: string; bytes: Uint8Array }) => {
    const { payload, headers } = await multipartBody(fields, file);
    const res = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
    return { status: res.statusCode, body: res.json() as Record<string, any> };
  };

  it('refuses hostile uploads with a reason, storing and publishing nothing', async () => {
    const before = await published();
    for (const h of await hostileUploads(MAX_BYTES)) {
      const r = await post({ tenant_id: 't1', role: 'master', name: h.name }, { filename: h.filename, bytes: h.bytes });
      assert.equal(r.status, h.status, `${h.name}: ${JSON.stringify(r.body)}`);
      const codes = typeof h.error === 'string' ? [h.error] : h.error;
      assert.ok(codes.includes(r.body.error), `${h.name}: error ${r.body.error}`);
      assert.ok(typeof r.body.message === 'string' && r.body.message.length > 0);
    }
    const list = await kit.app.inject({ url: '/v1/assets?tenant_id=t1' });
    assert.deepEqual(list.json().assets, []);
    assert.ok(!existsSync(kit.blobDir) || readdirSync(kit.blobDir).length === 0, 'no blob written');
    assert.equal(await published(), before, 'nothing published on assets.changes');
    assert.equal(changes.length, 0);
  });

  it('refuses bad metadata before touching the image', async () => {
    const jpg = await noiseImage(64, 48);
    const cases: Array<[Record<string, string>, number, string]> = [
      [{ role: 'master' }, 400, 'tenant_required'],
      [{ tenant_id: 't1', role: 'banner' }, 400, 'invalid_role'],
      [{ tenant_id: 't1', role: 'ad' }, 400, 'campaign_required'],
      [{ tenant_id: 't1', role: 'ad', campaign_id: 'bad id' }, 400, 'invalid_campaign_id'],
      [{ tenant_id: 't1', role: 'master', asset_id: '../x' }, 400, 'invalid_asset_id'],
    ];
    for (const [fields, status, code] of cases) {
      const r = await post(fields, { filename: 'x.jpg', bytes: jpg });
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error, code);
    }
    const noFile = await post({ tenant_id: 't1', role: 'master' });
    assert.equal(noFile.body.error, 'image_required');
    const json = await kit.app.inject({ method: 'POST', url: '/v1/assets', payload: { tenant_id: 't1' } });
    assert.equal(json.statusCode, 415);
  });

  it('registers a real photo: row, original and thumbnail blobs, one assets.changes; idempotent; conflicts refused', async (t) => {
    const photos = photosOrSkip(t, 2);
    if (!photos) return;
    const bytes = readFileSync(photos[0]!.path);
    const meta = await sharp(bytes).metadata();
    const r = await post({ tenant_id: 't1', role: 'master', name: 'Hero shot', channel: 'print' }, { filename: 'hero.png', bytes });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const a = r.body.asset;
    assert.equal(a.tenant_id, 't1');
    assert.equal(a.role, 'master');
    assert.equal(a.campaign_id, null);
    assert.equal(a.name, 'Hero shot');
    assert.equal(a.channel, 'print');
    assert.equal(a.content_hash, blobKey(bytes));
    assert.match(a.asset_id, /^m-[0-9a-f]{24}$/);
    assert.deepEqual([a.width, a.height], [meta.width, meta.height]);
    assert.equal(a.tie, null);

    const got = await kit.app.inject({ url: `/v1/assets/${a.asset_id}?tenant_id=t1` });
    assert.deepEqual(got.json(), a);
    const img = await kit.app.inject({ url: `/v1/assets/${a.asset_id}/image?tenant_id=t1` });
    assert.equal(img.statusCode, 200);
    assert.deepEqual(img.rawPayload, bytes, 'the original, byte for byte');
    assert.match(String(img.headers['cache-control']), /immutable/);
    assert.equal(img.headers.etag, `"${a.content_hash}"`);
    const again = await kit.app.inject({ url: `/v1/assets/${a.asset_id}/image?tenant_id=t1`, headers: { 'if-none-match': `"${a.content_hash}"` } });
    assert.equal(again.statusCode, 304);
    const thumb = await kit.app.inject({ url: `/v1/assets/${a.asset_id}/thumbnail?tenant_id=t1` });
    assert.equal(thumb.headers['content-type'], 'image/webp');
    const tm = await sharp(thumb.rawPayload).metadata();
    assert.equal(tm.format, 'webp');
    assert.equal(Math.max(tm.width!, tm.height!), Math.min(256, Math.max(meta.width!, meta.height!)), 'longest side 256');

    await eventually(() => (changes.length === 1 ? true : undefined), 5_000, 20);
    const change = assetChangeSchema.parse(JSON.parse(changes[0]!.value.toString()));
    assert.equal(change.type, 'registered');
    assert.equal(change.asset_id, a.asset_id);
    assert.equal(changes[0]!.key, a.asset_id);

    const afterFirst = await published();
    const same = await post({ tenant_id: 't1', role: 'master' }, { filename: 'hero.png', bytes });
    assert.equal(same.status, 200, 'same content, same derived id: already registered');
    assert.equal(same.body.asset.asset_id, a.asset_id);
    const other = readFileSync(photos[1]!.path);
    const conflict = await post({ tenant_id: 't1', role: 'master', asset_id: a.asset_id }, { filename: 'other.png', bytes: other });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error, 'asset_conflict');
    assert.equal(await published(), afterFirst, 'no change published for the repeat or the conflict');
    assert.equal(changes.length, 1);

    // Another tenant sees none of it.
    assert.equal((await kit.app.inject({ url: `/v1/assets/${a.asset_id}?tenant_id=t2` })).statusCode, 404);
    assert.equal((await kit.app.inject({ url: `/v1/assets/${a.asset_id}/image?tenant_id=t2` })).statusCode, 404);
  });

  it('bounds concurrent decodes: with the decoders busy and their queue full, an upload is refused at once (503), then served', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // One decode running, one waiting: the queue (1) is full.
    const held = [registry.decodes.run(() => gate), registry.decodes.run(() => gate)];
    const bytes = await noiseImage(64, 48, 'jpeg', 99);
    const busy = await post({ tenant_id: 't4', role: 'master', asset_id: 'busy' }, { filename: 'b.jpg', bytes });
    assert.deepEqual([busy.status, busy.body.error], [503, 'overloaded']);
    release();
    await Promise.all(held);
    const served = await post({ tenant_id: 't4', role: 'master', asset_id: 'busy' }, { filename: 'b.jpg', bytes });
    assert.equal(served.status, 201, JSON.stringify(served.body));
    assert.deepEqual([registry.decodes.running, registry.decodes.queued], [0, 0]);
  });

  it('lists assets by role and campaign with a cursor', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post({ tenant_id: 't3', role: 'ad', campaign_id: i < 3 ? 'c1' : 'c2', asset_id: `ad-${i}` }, { filename: `ad${i}.jpg`, bytes: await noiseImage(120, 90, 'jpeg', i + 1) });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.asset.campaign_id, i < 3 ? 'c1' : 'c2');
    }
    const page1 = (await kit.app.inject({ url: '/v1/assets?tenant_id=t3&role=ad&limit=2' })).json();
    assert.deepEqual(page1.assets.map((a: { asset_id: string }) => a.asset_id), ['ad-0', 'ad-1']);
    assert.equal(page1.next_cursor, 'ad-1');
    const page2 = (await kit.app.inject({ url: `/v1/assets?tenant_id=t3&role=ad&limit=2&cursor=${page1.next_cursor}` })).json();
    assert.deepEqual(page2.assets.map((a: { asset_id: string }) => a.asset_id), ['ad-2', 'ad-3']);
    const c2 = (await kit.app.inject({ url: '/v1/assets?tenant_id=t3&campaign_id=c2' })).json();
    assert.deepEqual(c2.assets.map((a: { asset_id: string }) => a.asset_id), ['ad-3', 'ad-4']);
    assert.equal(c2.next_cursor, null);
    assert.deepEqual((await kit.app.inject({ url: '/v1/assets?tenant_id=t3&role=master' })).json().assets, []);
  });
});

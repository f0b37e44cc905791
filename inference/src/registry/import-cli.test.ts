import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { textSink as sink } from '@afterglow/testkit/streams';
import { noiseImage } from '@afterglow/testkit/fixtures';
import { idFromName, runAssetsCommand } from './import-cli.js';
import { AssetRepository } from './repository.js';
import { registerRegistryRoutes } from './routes.js';
import { AssetRegistry } from './service.js';
import { routeKit, silentLog, type RouteKit } from '@afterglow/testkit/registry';

/** A registry behind a listening HTTP server (the import command talks to it over HTTP), 1 MB uploads. */
async function registryServer(): Promise<{ kit: RouteKit; url: string }> {
  const kit = await routeKit();
  const registry = new AssetRegistry({ repo: new AssetRepository(kit.store), blobs: kit.blobs, producer: await kit.bus.producer(), limits: { maxBytes: 1_000_000, maxPixels: 50_000_000, maxSide: 16_384 }, log: silentLog });
  await registerRegistryRoutes(kit.app, { registry, maxBytes: 1_000_000 });
  return { kit, url: await kit.app.listen({ host: '127.0.0.1', port: 0 }) };
}

describe('afterglow assets import', () => {
  let kit: RouteKit;
  let url: string;
  let dir: string;

  before(async () => {
    ({ kit, url } = await registryServer());
    dir = path.join(kit.dir, 'ads');
    mkdirSync(dir);
    for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, `Banner ${i}.jpg`), await noiseImage(200 + i, 100, 'jpeg', i + 1));
    writeFileSync(path.join(dir, 'broken.jpg'), (await noiseImage(300, 200)).subarray(0, 2000));
    writeFileSync(path.join(dir, 'notes.txt'), 'not an image, not listed');
  });
  after(() => kit.close());

  it('registers every image of a folder, reports refusals by file, and is safe to re-run', async () => {
    const args = ['import', '--tenant', 'acme', '--role', 'ad', '--campaign', 'spring', '--url', url, '--id-from-name', '--quiet', dir];
    const out = sink();
    const err = sink();
    assert.equal(await runAssetsCommand(args, { stdout: out, stderr: err }), 1, 'a refused file makes the exit code 1');
    assert.deepEqual(JSON.parse(out.text), { files: 6, created: 5, existing: 0, refused: 1 });
    // libvips sometimes loses its message for a cut JPEG ("Unknown error"): truncated or corrupt, 422 either way.
    assert.match(err.text, /refused broken\.jpg: 422 (truncated|corrupt)/);
    const list = (await kit.app.inject({ url: '/v1/assets?tenant_id=acme&campaign_id=spring' })).json() as { assets: Array<{ asset_id: string; name: string }> };
    assert.deepEqual(list.assets.map((a) => a.asset_id), ['Banner-0', 'Banner-1', 'Banner-2', 'Banner-3', 'Banner-4']);
    assert.equal(list.assets[0]!.name, 'Banner 0.jpg');

    const again = sink();
    assert.equal(await runAssetsCommand(args, { stdout: again, stderr: sink() }), 1);
    assert.deepEqual(JSON.parse(again.text), { files: 6, created: 0, existing: 5, refused: 1 });
  });

  it('usage errors exit 2', async () => {
    const err = sink();
    assert.equal(await runAssetsCommand(['import', '--tenant', 'acme', '--role', 'ad', dir], { stderr: err, stdout: sink() }), 2);
    assert.match(err.text, /--campaign is required for ads/);
    assert.equal(await runAssetsCommand(['export'], { stderr: sink(), stdout: sink() }), 2);
    assert.equal(await runAssetsCommand(['import', '--role', 'master', dir], { stderr: sink(), stdout: sink() }), 2);
    assert.equal(idFromName('Été 2024 (final).PNG'), 't--2024--final-');
  });
});

describe('afterglow assets import with videos', () => {
  let kit: RouteKit;
  let url: string;
  let dir: string;

  before(async () => {
    ({ kit, url } = await registryServer());
    dir = path.join(kit.dir, 'footage');
    mkdirSync(dir);
    const { lavfiClip } = await import('@afterglow/testkit/video');
    await lavfiClip(path.join(dir, 'take 1.mp4'), { width: 160, height: 96, fps: 25, seconds: 1 });
    const webm = await lavfiClip(path.join(kit.dir, 'take2.webm'), { width: 160, height: 96, fps: 25, seconds: 1, codec: 'vp9' });
    writeFileSync(path.join(dir, 'take 2.webm'), webm.subarray(0, webm.byteLength >> 1));
    writeFileSync(path.join(dir, 'still.png'), await noiseImage(120, 80, 'png', 3));
  });
  after(() => kit.close());

  it('registers the videos of a folder beside its images, and reports a broken video by file', async () => {
    const out = sink();
    const err = sink();
    assert.equal(await runAssetsCommand(['import', '--tenant', 'acme', '--role', 'master', '--url', url, '--id-from-name', '--quiet', dir], { stdout: out, stderr: err }), 1);
    assert.deepEqual(JSON.parse(out.text), { files: 3, created: 2, existing: 0, refused: 1 });
    assert.match(err.text, /refused take 2\.webm: 422 truncated/);
    const list = (await kit.app.inject({ url: '/v1/assets?tenant_id=acme' })).json() as { assets: Array<{ asset_id: string; format: string }> };
    assert.deepEqual(list.assets.map((a) => [a.asset_id, a.format]), [['still', 'png'], ['take-1', 'mp4']]);
  });
});

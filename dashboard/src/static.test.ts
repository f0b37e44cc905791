import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, brotliDecompressSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerDashboardRoutes } from './index.js';
import { etagMatches, pickEncoding, type StaticFile } from './static.js';

describe('dashboard static handler', () => {
  let dir: string;
  let app: FastifyInstance;
  const js = `console.log(${JSON.stringify('x'.repeat(4000))});`;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-dash-'));
    mkdirSync(path.join(dir, 'assets'));
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title><script type="module" src="/assets/index-abc123.js"></script>');
    writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), js);
    writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    app = Fastify();
    app.get('/v1/ping', async () => ({ pong: true }));
    await registerDashboardRoutes(app, { root: dir });
    await app.ready();
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('GET / is the app page: revalidated, with an ETag and a CSP', async () => {
    const res = await app.inject({ url: '/' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/html/);
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.match(res.headers['content-security-policy'] as string, /script-src 'self'/);
    assert.match(res.headers['content-security-policy'] as string, /media-src 'self' blob:/, 'a <video> plays the original from a blob URL (fetched with the key)');
    assert.match(res.body, /index-abc123\.js/);
    const again = await app.inject({ url: '/', headers: { 'if-none-match': res.headers.etag as string } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.body, '');
  });

  test('hashed assets are immutable for a year and compressed as the client prefers', async () => {
    const plain = await app.inject({ url: '/assets/index-abc123.js' });
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(plain.headers['content-type'] as string, /^text\/javascript/);
    assert.equal(plain.body, js);
    assert.equal(plain.headers.vary, 'accept-encoding');

    const gz = await app.inject({ url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip, deflate' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(gz.rawPayload).toString(), js);
    assert.ok(gz.rawPayload.length < js.length / 10);

    const br = await app.inject({ url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(brotliDecompressSync(br.rawPayload).toString(), js);

    const refused = await app.inject({ url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'br;q=0, gzip;q=0' } });
    assert.equal(refused.headers['content-encoding'], undefined);
  });

  test('unknown assets are 404, paths cannot escape the root, /v1 and top-level files are served', async () => {
    assert.equal((await app.inject({ url: '/assets/nope.js' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/assets/../../etc/passwd' })).statusCode, 404);
    assert.equal((await app.inject({ url: '/assets/%2e%2e/%2e%2e/package.json' })).statusCode, 404);
    // Files are looked up by exact URL path in a map built at start-up: nothing else is reachable.
    assert.notEqual((await app.inject({ url: '/assets/%2e%2e/index.html' })).statusCode, 200);
    const fav = await app.inject({ url: '/favicon.svg' });
    assert.equal(fav.statusCode, 200);
    assert.equal(fav.headers['content-type'], 'image/svg+xml');
    assert.equal(fav.headers['cache-control'], 'no-cache');
    assert.deepEqual((await app.inject({ url: '/v1/ping' })).json(), { pong: true });
    const head = await app.inject({ method: 'HEAD', url: '/' });
    assert.equal(head.statusCode, 200);
  });

  test('without a built app, GET / says how to build it', async () => {
    const bare = Fastify({ logger: false });
    await registerDashboardRoutes(bare, { root: path.join(dir, 'missing') });
    const res = await bare.inject({ url: '/' });
    assert.equal(res.statusCode, 503);
    assert.match(res.body, /npm run build/);
    await bare.close();
  });

  test('content negotiation and conditional requests', () => {
    const file = { br: Buffer.from('b'), gzip: Buffer.from('g'), etag: '"abc"' } as StaticFile;
    assert.equal(pickEncoding(undefined, file), 'identity');
    assert.equal(pickEncoding('gzip', file), 'gzip');
    assert.equal(pickEncoding('*', file), 'br');
    assert.equal(pickEncoding('br;q=0,*;q=0.5', file), 'gzip');
    assert.equal(pickEncoding('identity', file), 'identity');
    assert.equal(pickEncoding('br', { ...file, br: undefined, gzip: undefined }), 'identity');
    assert.ok(etagMatches('"abc"', '"abc"'));
    assert.ok(etagMatches('W/"abc", "x"', '"abc"'));
    assert.ok(etagMatches('*', '"abc"'));
    assert.ok(!etagMatches('"abd"', '"abc"'));
    assert.ok(!etagMatches(undefined, '"abc"'));
  });
});

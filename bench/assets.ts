/**
 * bench/assets: the asset registry and tie review API (issue 4) end to end in one process: chDB,
 * the in-process bus, a local blob store, MobileNetV2 + ORB on this machine's CPU, images generated
 * from real photos (the tie evaluation set). Prints figures; fails only on errors.
 *
 *   node bench/dist/assets.js [--short] [--masters N] [--ads N] [--alone N] [--concurrency N]
 *
 *   full (default): 300 masters, 120 ads;  --short (CI): 40 masters, 20 ads
 *
 * Registration latency per ad = POST /v1/assets until the response, which waits for the ad's
 * candidates: probe + decode + thumbnail + blobs + row + six embeddings + top-K + ORB verification +
 * calibrated scores + stored rankings. Measured for `--alone` ads one at a time (nothing else
 * running), then the rest `--concurrency` at a time (the engine batches them). Review latency: the
 * routes a reviewer hits, over fastify inject (no network), on the registered set.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { availableCores, BadRequestError, createBlobStore, createBus, createStore, loadConfig, migrate, type Logger } from '@afterglow/core';
import { startAssetServices } from '@afterglow/inference';
import { FULL_PACKAGES, SHORT_PACKAGES, generateTieDataset } from '@afterglow/testkit/tie';
import { multipartBody } from '@afterglow/testkit/inference';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const MASTERS = opt('masters', SHORT ? 40 : 300);
const ADS = opt('ads', SHORT ? 20 : 120);
const ALONE = opt('alone', SHORT ? 5 : 20);
const CONCURRENCY = opt('concurrency', 8);
const T = 'bench';
const stem = (f: string) => f.replace(/\.[a-z]+$/i, '');

const quiet = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {}, child: () => quiet } as unknown as Logger;

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(1)} ms, p95 ${q(0.95).toFixed(1)} ms, max ${s[s.length - 1]!.toFixed(1)} ms (n=${s.length})`;
}

async function main(): Promise<void> {
  const ds = await generateTieDataset({ masters: MASTERS, ads: Math.max(ADS, SHORT ? 60 : 450), seed: 1, packages: SHORT ? SHORT_PACKAGES : FULL_PACKAGES, log: (m) => process.stderr.write(`${m}\n`) });
  const ads = ds.ads.slice(0, ADS);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-bench-assets-'));
  const config = loadConfig({ ...process.env, AFTERGLOW_DATA_DIR: dir, TIE_CACHE_DIR: path.join(dir, 'tie-cache'), LOG_LEVEL: 'silent', KAFKA_BROKERS: '', CLICKHOUSE_URL: '' });
  const store = await createStore({ kind: 'chdb', path: path.join(dir, 'chdb'), database: 'afterglow' });
  await migrate(store);
  const bus = await createBus({ kind: 'memory', partitions: 4, maxBacklogBytes: 256 * 1024 * 1024 });
  const blobs = await createBlobStore({ kind: 'local', dir: path.join(dir, 'blobs') });
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.setErrorHandler((err: Error, _req, reply) => reply.code(err instanceof BadRequestError ? err.status : 500).send({ error: (err as { code?: string }).code, message: err.message }));
  const services = await startAssetServices(app, { config, bus, store, blobs, log: quiet });
  try {
    const post = async (fields: Record<string, string>, file: string) => {
      const { payload, headers } = await multipartBody({ tenant_id: T, ...fields }, { filename: path.basename(file), bytes: readFileSync(file) });
      const t0 = performance.now();
      const res = await app.inject({ method: 'POST', url: '/v1/assets', payload, headers });
      const ms = performance.now() - t0;
      if (res.statusCode !== 201) throw new Error(`${file}: ${res.statusCode} ${res.body}`);
      return { ms, body: res.json() as { tying: { status: string; ms: number } } };
    };
    const pool = async <T>(items: readonly T[], n: number, fn: (x: T) => Promise<void>) => {
      let i = 0;
      await Promise.all(Array.from({ length: n }, async () => {
        while (i < items.length) await fn(items[i++]!);
      }));
    };

    console.log(`bench:assets  ${MASTERS} masters, ${ads.length} ads, ${availableCores()} cores, model ${config.tie.model}, cold embedding cache`);
    let t0 = performance.now();
    await pool(ds.masters, 4, async (m) => void (await post({ role: 'master', asset_id: stem(m.file) }, path.join(ds.mastersDir, m.file))));
    await services.tiers.idle(T);
    const masterS = (performance.now() - t0) / 1000;
    console.log(`  masters: ${MASTERS} registered in ${masterS.toFixed(1)} s (${((masterS * 1000) / MASTERS).toFixed(0)} ms each, 4 in flight; embedding + ORB features)`);

    const alone: number[] = [];
    const ranking: number[] = [];
    for (const a of ads.slice(0, ALONE)) {
      const r = await post({ role: 'ad', campaign_id: 'c1', asset_id: stem(a.file) }, path.join(ds.adsDir, a.file));
      if (r.body.tying.status !== 'ranked') throw new Error(`ad not ranked: ${JSON.stringify(r.body.tying)}`);
      alone.push(r.ms);
      ranking.push(r.body.tying.ms);
    }
    console.log(`  ad registration, one at a time (to candidates stored): ${stats(alone)}`);
    console.log(`    of which ranking (embedding + top-K + ORB + calibrated scores + stored): ${stats(ranking)}`);
    const rest = ads.slice(ALONE);
    const together: number[] = [];
    t0 = performance.now();
    await pool(rest, CONCURRENCY, async (a) => {
      const r = await post({ role: 'ad', campaign_id: 'c1', asset_id: stem(a.file) }, path.join(ds.adsDir, a.file));
      together.push(r.ms);
    });
    const restS = (performance.now() - t0) / 1000;
    if (rest.length) console.log(`  ad registration, ${CONCURRENCY} in flight: ${stats(together)}; ${(rest.length / restS).toFixed(1)} ads/s`);

    const timeIt = async (url: string, n: number, init: { method?: 'GET' | 'POST'; payload?: Record<string, unknown> } = {}) => {
      const xs: number[] = [];
      for (let i = 0; i < n; i++) {
        const u = url.replace('{i}', String(i));
        const t = performance.now();
        const res = await app.inject({ url: u, method: init.method ?? 'GET', ...(init.payload ? { payload: init.payload } : {}) });
        xs.push(performance.now() - t);
        if (res.statusCode !== 200) throw new Error(`${u}: ${res.statusCode} ${res.body}`);
      }
      return stats(xs);
    };
    const adIds = ads.map((a) => stem(a.file));
    const candTimes: number[] = [];
    for (const id of adIds.slice(0, 30)) {
      const t = performance.now();
      await app.inject({ url: `/v1/assets/${id}/candidates?tenant_id=${T}` });
      candTimes.push(performance.now() - t);
    }
    console.log(`  GET /v1/assets/:id/candidates:  ${stats(candTimes)}`);
    console.log(`  GET /v1/review/queue:            ${await timeIt(`/v1/review/queue?tenant_id=${T}&limit=200`, 10)}`);
    console.log(`  GET /v1/assets (100):            ${await timeIt(`/v1/assets?tenant_id=${T}&limit=100`, 10)}`);
    const tieTimes: number[] = [];
    let propagated = 0;
    for (const a of ads.slice(0, 10)) {
      const t = performance.now();
      const res = await app.inject({ method: 'POST', url: '/v1/ties', payload: { tenant_id: T, ad_asset_id: stem(a.file), action: 'tie', target_asset_id: stem(ds.truth.get(a.file)!), decided_by: 'bench' } });
      tieTimes.push(performance.now() - t);
      if (res.statusCode !== 200) throw new Error(`tie: ${res.statusCode} ${res.body}`);
      propagated += (res.json() as { auto_ties: unknown[] }).auto_ties.length;
    }
    console.log(`  POST /v1/ties (with propagation): ${stats(tieTimes)}; ${propagated} auto-ties from 10 human ties`);
    console.log(`  GET /v1/ties?master_asset_id:     ${await timeIt(`/v1/ties?tenant_id=${T}&master_asset_id=${stem(ds.truth.get(ads[0]!.file)!)}`, 10)}`);
    console.log(`  GET /v1/masters/:id/ads:          ${await timeIt(`/v1/masters/${stem(ds.truth.get(ads[0]!.file)!)}/ads?tenant_id=${T}`, 10)}`);
  } finally {
    await services.close();
    await app.close();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

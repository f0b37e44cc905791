/**
 * bench/inference: the prediction side's throughput on this machine's CPU, and what it adds to the
 * live path. Prints figures; asserts nothing about speed. `--short` is the CI mode.
 *
 *   node bench/dist/inference.js [--short] [--images N] [--variants] [--full] [--seconds S]
 *
 * 1. images/s for: embedding (mobilenet_v2, the tie model), features (light: measurements on a
 *    centred subject mask; full with --full: ISNet + PP-OCR + embedding + measurements), prediction
 *    (rows/s through onnxruntime worker threads, batched, vs the same trees in JS), and per-asset
 *    ANVIL attribution (assets/s and variants/s; N variants = the default edit set).
 * 2. Live-path latency: one process running ingest + stream + live (memory bus, chDB, memory hot
 *    state and fan-out) with a dashboard WebSocket watching a probe asset; a click is posted every
 *    100 ms and its arrival on the socket timed (event -> WS), first with the process idle, then
 *    while the same process runs attribution back to back (featurize + edit on libuv's pool,
 *    onnxruntime in worker threads: what a scoring worker does). The difference is what inference
 *    adds to the live path.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { availableCores, loadConfig, mulberry32, ulid } from '@afterglow/core';
import {
  Predictor,
  attributeAsset,
  attributionEdits,
  buildVectorSchema,
  createEmbedder,
  fullFeatureProvider,
  gbtToOnnx,
  lightFeatureProvider,
  matrix,
  predictMembers,
  trainBag,
  vectorOf,
  type Analysed,
  type FeatureProvider,
} from '@afterglow/inference';
import { SHORT_PACKAGES, generateTieDataset } from '@afterglow/testkit/tie';
import { testModelsDir } from '@afterglow/testkit/inference';
import { start } from 'afterglow';
import { writeFileSync } from 'node:fs';
import { flag, opt } from './args.js';
import { watchClicks } from './live-probe.js';

const SHORT = flag('short');
const IMAGES = opt('images', SHORT ? 8 : 32);
const SECONDS = opt('seconds', SHORT ? 6 : 20);
const cores = availableCores();

const rate = (n: number, ms: number) => (n / (ms / 1000)).toFixed(1);
function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
}

async function main(): Promise<void> {
  console.log(`bench/inference: ${SHORT ? 'short' : 'full'} mode, ${cores} cores (shared machine: figures are indicative)`);
  const ds = await generateTieDataset({ masters: 40, ads: 60, seed: 1, packages: SHORT_PACKAGES });
  const photos = ds.masters.slice(0, IMAGES).map((m) => readFileSync(path.join(ds.mastersDir, m.file)));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'afterglow-bench-inference-'));
  const rows: [string, string, string][] = [];
  try {
    // Embedding.
    const embedder = await createEmbedder({ modelsDir: testModelsDir(), executionProvider: 'cpu', cacheMaxBytes: 0, log: () => {} });
    await embedder.embed(photos.slice(0, 1), 'mobilenet_v2');
    const [, embMs] = await timed(() => embedder.embed(photos, 'mobilenet_v2', { noCache: true }));
    rows.push(['embedding (mobilenet_v2, end to end)', `${rate(photos.length, embMs)} img/s`, `${photos.length} photos`]);
    await embedder.close();

    // Features.
    const light = lightFeatureProvider();
    await light.analyse(photos[0]!);
    const [analysed, lightMs] = await timed(() => Promise.all(photos.map((p) => light.analyse(p))));
    rows.push(['features (light)', `${rate(photos.length, lightMs)} img/s`, 'measurements on a centred subject mask']);
    let full: FeatureProvider | undefined;
    if (flag('full')) {
      try {
        full = await fullFeatureProvider({ executionProvider: 'cpu', log: () => {} });
        await full.analyse(photos[0]!);
        const n = Math.min(photos.length, SHORT ? 4 : 16);
        const [, fullMs] = await timed(async () => {
          for (const p of photos.slice(0, n)) await full!.analyse(p);
        });
        rows.push(['features (full)', `${rate(n, fullMs)} img/s`, 'ISNet + PP-OCR + embedding + measurements, one at a time']);
      } catch (err) {
        rows.push(['features (full)', 'unavailable', (err as Error).message.slice(0, 80)]);
      }
    }

    // Prediction: a bag trained on these photos' features with a synthetic target.
    const rng = mulberry32(1);
    const feats = analysed.map((a) => a.features);
    const schema = buildVectorSchema(feats);
    const x = matrix(feats.map((f) => vectorOf(f, schema)), schema.columns.length);
    const bag = trainBag(x, feats.map(() => rng()), feats.map((_, i) => String(i)), { members: 8, params: { rounds: 300, maxDepth: 4, minLeaf: 1, earlyStopping: 0 } });
    const onnxPath = path.join(tmp, 'bench.onnx');
    writeFileSync(onnxPath, gbtToOnnx(bag));
    const predictor = new Predictor({ workers: 1, batchRows: 512, executionProvider: 'cpu', intraOpThreads: 1 });
    const ref = { version: 'bench', onnxPath, nFeatures: schema.columns.length, members: 8 };
    const many = Array.from({ length: SHORT ? 20_000 : 100_000 }, (_, i) => x.data.slice((i % x.rows) * x.cols, ((i % x.rows) + 1) * x.cols));
    await predictor.predict(ref, many.slice(0, 10));
    const [, onnxMs] = await timed(() => predictor.predict(ref, many));
    rows.push(['prediction (onnxruntime, worker thread)', `${rate(many.length, onnxMs)} rows/s`, `8 members x 300 trees, batches of 512`]);
    const [, jsMs] = await timed(async () => predictMembers(bag, matrix(many, ref.nFeatures)));
    rows.push(['prediction (same trees in JS, for reference)', `${rate(many.length, jsMs)} rows/s`, 'on the calling thread']);

    // Attribution per asset.
    const scorer = { provider: light, schema, predict: (r: readonly Float32Array[]) => predictor.predict(ref, r) };
    const variants = attributionEdits(analysed[0]!).length;
    const n = Math.min(analysed.length, SHORT ? 4 : 16);
    const [, attMs] = await timed(async () => {
      for (const a of analysed.slice(0, n)) await attributeAsset(a, scorer);
    });
    rows.push(['attribution (light, per asset)', `${rate(n, attMs)} assets/s`, `${variants} variants each: ${rate(n * variants, attMs)} variants/s`]);

    for (const [a, b, c] of rows) console.log(`  ${a.padEnd(46)} ${b.padStart(16)}   ${c}`);

    // Live path: event -> WS with and without the scoring work in the same process.
    const idle = await liveLatency(tmp, undefined);
    const busy = await liveLatency(tmp, { analysed, scorer });
    console.log('\n  live path (ingest + stream + live in one process; probe click every 100 ms, event -> WebSocket)');
    console.log('  mode                  probes   p50 ms   p99 ms   max ms   attributions done');
    for (const [mode, r] of [['inference idle', idle], ['inference busy', busy]] as const) {
      console.log(`  ${mode.padEnd(20)} ${String(r.lat.length).padStart(7)}   ${String(pct(r.lat, 50)).padStart(6)}   ${String(pct(r.lat, 99)).padStart(6)}   ${String(Math.max(...r.lat)).padStart(6)}   ${r.work}`);
    }
    await predictor.close();
    await full?.close();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function liveLatency(tmp: string, busy: { analysed: Analysed[]; scorer: Parameters<typeof attributeAsset>[1] } | undefined): Promise<{ lat: number[]; work: number }> {
  const dataDir = mkdtempSync(path.join(tmp, 'live-'));
  const config = loadConfig({ PORT: '0', LOG_LEVEL: 'warn', AFTERGLOW_DATA_DIR: dataDir, AFTERGLOW_DEMO: '0', SINK_BATCH_MAX_MS: '200', AUTH_MODE: 'off' });
  const running = await start(config, { roles: ['ingest', 'stream', 'live'], demo: false });
  const tenant = 'bench-inference';
  const campaign = 'c1';
  const probe = 'probe';
  const lat: number[] = [];
  let work = 0;
  try {
    const { ws, seen } = await watchClicks(running.url, tenant, probe, { asset: probe });
    let stop = false;
    const load = busy
      ? (async () => {
          let i = 0;
          while (!stop) {
            await attributeAsset(busy.analysed[i++ % busy.analysed.length]!, busy.scorer);
            work++;
          }
        })()
      : Promise.resolve();
    await new Promise((r) => setTimeout(r, 1500));
    const sent: number[] = [];
    const end = Date.now() + SECONDS * 1000;
    while (Date.now() < end) {
      const at = Date.now();
      sent.push(at);
      await fetch(`${running.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ event_id: ulid(at), tenant_id: tenant, campaign_id: campaign, asset_id: probe, kind: 'click', occurred_at: at }]),
      }).then((r) => r.arrayBuffer());
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await load;
    sent.forEach((at, i) => {
      const hit = seen.find(([c]) => c >= i + 1);
      if (hit) lat.push(hit[1] - at);
    });
    ws.close();
  } finally {
    await running.stop();
  }
  return { lat, work };
}

await main();

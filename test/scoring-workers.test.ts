/**
 * The inference role's scoring workers and routes, end to end in one process: assets registered
 * (blob store + registry table + assets.changes) get their features stored by the workers before
 * any model exists; engagement goes through ingest -> sink -> ClickHouse; a model trained from it
 * is activated over HTTP, which rescores the assets (model_changed) onto assets.scores and the
 * routes; a rescore request and a live engagement shift each produce a new score. Then a restarted
 * worker (fresh engine, nothing scored by it) watches the stored scores, so a later engagement shift
 * rescores, and a model trained and activated outside the workers (as `afterglow train` does from
 * another process) is picked up by polling and rescores the tenant with the new version.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { TABLES, TOPICS, createBlobStore, mulberry32, ulid, type AssetScore, type BlobStore, type BusProducer, type EngagementEvent } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import {
  ModelRegistry,
  ModelRepository,
  PredictionDataRepository,
  ScoreRepository,
  AssetRepository,
  Predictor,
  ScoringEngine,
  ScoringWorkers,
  lightFeatureProvider,
  registryImageSource,
  runTrainCommand,
  trainModel,
  type TrainOptions,
} from '@afterglow/inference';
import { SHORT_PACKAGES, generateTieDataset } from '@afterglow/testkit/tie';
import { postAll, startApp, type TestApp, answerChecker } from './support.js';

const HOUR = 3_600_000;
const tenant = uniqueName('scoring');
const campaign = 'camp-1';
let app: TestApp;
let blobs: BlobStore;
let producer: BusProducer;
const scoresSeen: AssetScore[] = [];

before(async () => {
  app = await startApp(
    {
      PREDICT_WORKERS_ENABLED: '1',
      PREDICT_FEATURES: 'light',
      PREDICT_HORIZON_HOURS: '1',
      PREDICT_MIN_IMPRESSIONS: '50',
      PREDICT_MEMBERS: '4',
      PREDICT_RESCORE_CHECK_MS: '200',
      INFERENCE_EXECUTION_PROVIDER: 'cpu',
    },
    ['ingest', 'stream', 'inference'],
  );
  blobs = await createBlobStore(app.running.config.blob);
  producer = await app.running.bus.producer();
  const consumer = app.running.bus.consumer({ groupId: uniqueName('scores-watch'), topics: [TOPICS.assetsScores] });
  await consumer.run(async (batch) => {
    for (const r of batch.records) scoresSeen.push(JSON.parse(r.value.toString('utf8')) as AssetScore);
  });
});

after(async () => {
  await producer?.close();
  await blobs?.close();
  await app?.close();
});

async function register(assetId: string, bytes: Uint8Array, width: number, height: number): Promise<void> {
  const store = app.running.store!;
  const { key } = await blobs.put(bytes);
  const now = Date.now();
  await store.client.insert({
    table: store.table(TABLES.assets),
    values: [
      { tenant_id: tenant, asset_id: assetId, role: 'ad', campaign_id: campaign, name: assetId, channel: 'social', content_hash: key, thumbnail_hash: key, format: 'png', bytes: bytes.byteLength, width, height, created_at: now, updated_at: now, version: 1, deleted: 0 },
    ],
    format: 'JSONEachRow',
  });
  await producer.send(TOPICS.assetsChanges, [
    { key: assetId, value: Buffer.from(JSON.stringify({ type: 'registered', tenant_id: tenant, asset_id: assetId, role: 'ad', campaign_id: campaign, content_hash: key, width, height, at: now })) },
  ]);
}

function engagement(assetId: string, first: number, impressions: number, rate: number, rng: () => number): EngagementEvent[] {
  const out: EngagementEvent[] = [];
  for (let i = 0; i < impressions; i++) {
    const at = first + i * 1000;
    const base = { tenant_id: tenant, campaign_id: campaign, asset_id: assetId, value: 1, received_at: 0 };
    out.push({ ...base, event_id: ulid(at), kind: 'impression', occurred_at: at });
    if (rng() < rate) out.push({ ...base, event_id: ulid(at + 1), kind: 'click', occurred_at: at + 1 });
  }
  return out;
}

/** Trains the tenant's model from ClickHouse with its own registry (as `afterglow train` does, outside the workers). */
const train = (o: Pick<TrainOptions, 'activate' | 'params'>) =>
  trainModel(new PredictionDataRepository(app.running.store!), new ModelRegistry(new ModelRepository(app.running.store!), app.running.config.predict.modelsDir), {
    tenantId: tenant,
    provider: 'light',
    horizonMs: HOUR,
    baselineWindowMs: 30 * 24 * HOUR,
    minImpressions: 50,
    members: 4,
    ...o,
  });

let answers: Awaited<ReturnType<typeof answerChecker>> | undefined;
/** A read as the tenant; a success answer is checked against the route's documented schema. */
const get = async (p: string) => {
  const res = await app.request(tenant, p);
  const body = (await res.json()) as Record<string, unknown>;
  answers ??= await answerChecker(app.running.url);
  answers.check('GET', new URL(p, app.running.url).pathname, res.status, body);
  return { status: res.status, body };
};

test('workers store features on registration, score after a model is activated, and rescore on requests and live shifts', { timeout: 600_000 }, async () => {
  const store = app.running.store!;
  const ds = await generateTieDataset({ masters: 40, ads: 60, seed: 1, packages: SHORT_PACKAGES });
  const photos = ds.masters.filter((m) => m.variant === 'colour').slice(0, 20);
  const ids: string[] = [];
  for (const [i, m] of photos.entries()) {
    const file = readFileSync(path.join(ds.mastersDir, m.file));
    const png = await sharp(file).resize(320, 320, { fit: 'inside' }).png().toBuffer();
    const meta = await sharp(png).metadata();
    await register(`ad-${i}`, png, meta.width!, meta.height!);
    ids.push(`ad-${i}`);
  }
  // Features are stored by the workers even though no model exists yet.
  await eventually(
    async () => {
      const rs = await store.client.query({
        query: `SELECT uniqExact(asset_id) AS n FROM ${store.table(TABLES.assetFeatures)} WHERE tenant_id = {t:String} AND provider = 'light'`,
        query_params: { t: tenant },
        format: 'JSONEachRow',
      });
      const [row] = await rs.json<{ n: string }>();
      return Number(row?.n) === ids.length ? true : undefined;
    },
    180_000,
    250,
  );
  assert.equal((await get(`/v1/assets/ad-0/score?tenant_id=${tenant}`)).status, 404);
  assert.deepEqual((await get(`/v1/models?tenant_id=${tenant}`)).body, { models: [] });

  // Mature engagement (first impressions 3-2 h ago), through ingest.
  const rng = mulberry32(3);
  const events = ids.flatMap((id, i) => engagement(id, Date.now() - 3 * HOUR + i * 60_000, 120, 0.1 + 0.02 * (i % 5), rng));
  await postAll(app.running.url, events, 5000);
  await eventually(
    async () => {
      const rs = await store.client.query({ query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String}`, query_params: { t: tenant }, format: 'JSONEachRow' });
      const [row] = await rs.json<{ n: string }>();
      return Number(row?.n) >= events.length ? true : undefined;
    },
    120_000,
    250,
  );

  const stored = await train({ activate: false, params: { rounds: 60, maxDepth: 3, minLeaf: 2 } });
  const version = stored.card.version;
  const models = (await get(`/v1/models?tenant_id=${tenant}`)).body.models as { version: string; active: boolean; metrics: { r2: number }; n_train: number }[];
  assert.equal(models.length, 1);
  assert.equal(models[0]!.version, version);
  assert.equal(models[0]!.active, false);
  assert.equal(models[0]!.n_train, stored.card.nTrain);

  assert.equal((await app.request(tenant, `/v1/models/nope-1/activate?tenant_id=${tenant}`, { method: 'POST' })).status, 404);
  const act = await app.request(tenant, `/v1/models/${version}/activate?tenant_id=${tenant}`, { method: 'POST' });
  assert.equal(act.status, 200);

  // Activation rescores every tracked asset with the new model.
  const score = await eventually(async () => {
    const r = await get(`/v1/assets/ad-0/score?tenant_id=${tenant}`);
    return r.status === 200 && (r.body as AssetScore).model_version === version ? (r.body as AssetScore) : undefined;
  }, 180_000, 250);
  assert.equal(score.reason, 'model_changed');
  assert.equal(score.campaign_id, campaign);
  assert.ok(score.predicted > 0 && score.predicted_low! <= score.predicted && score.predicted <= score.predicted_high!);
  // The actual rate is ad-0's clicks over its 120 impressions (all within the 1 h horizon of its
  // first one), with a 95% Wilson interval, worked out here from the events sent.
  const clicks0 = events.filter((e) => e.asset_id === 'ad-0' && e.kind === 'click').length;
  const n0 = 120;
  const z = 1.96;
  const p0 = clicks0 / n0;
  const centre = (p0 + (z * z) / (2 * n0)) / (1 + (z * z) / n0);
  const spread = (z * Math.sqrt((p0 * (1 - p0)) / n0 + (z * z) / (4 * n0 * n0))) / (1 + (z * z) / n0);
  assert.equal(score.impressions, n0);
  assert.ok(Math.abs(score.actual! - p0) < 1e-12, `actual ${score.actual} vs ${clicks0}/${n0}`);
  assert.ok(Math.abs(score.actual_low! - (centre - spread)) < 1e-9 && Math.abs(score.actual_high! - (centre + spread)) < 1e-9, `[${score.actual_low}, ${score.actual_high}]`);
  // Over when the whole actual interval lies above the prediction's, under when below, else as expected.
  const expectedFlag = centre - spread > score.predicted_high! ? 'over' : centre + spread < score.predicted_low! ? 'under' : 'as_expected';
  assert.equal(score.flag, expectedFlag);
  assert.ok(score.attribution!.length >= 5, 'attribution per element/edit');
  assert.ok(score.attribution!.some((a) => a.element === 'subject' && a.edit === 'recolor:red'));
  for (const a of score.attribution!) assert.ok(a.ci_low <= a.delta + 1e-12 && a.delta <= a.ci_high + 1e-12 && a.n === 4);
  await eventually(() => (scoresSeen.some((s) => s.asset_id === 'ad-0' && s.model_version === version) ? true : undefined), 60_000);

  // Activation rescored every asset of the campaign with the new model.
  const campaignScores = await eventually(async () => {
    const list = (await get(`/v1/campaigns/${campaign}/scores?tenant_id=${tenant}`)).body.scores as AssetScore[];
    return list.length === ids.length && list.every((s) => s.model_version === version) ? list : undefined;
  }, 180_000, 250);
  assert.deepEqual(campaignScores.map((s) => s.asset_id).sort(), [...ids].sort());
  assert.ok(campaignScores.every((s) => s.campaign_id === campaign));
  const attribution = (await get(`/v1/attribution?tenant_id=${tenant}&campaign_id=${campaign}`)).body as { model_version: string; elements: { edit: string; n: number; significant: boolean }[] };
  assert.equal(attribution.model_version, version);
  assert.ok(attribution.elements.length >= 5 && attribution.elements.every((e) => e.n >= 1 && typeof e.significant === 'boolean'));
  const occ = (await get(`/v1/assets/ad-1/occlusion?tenant_id=${tenant}`)).body as { grid_w: number; grid_h: number; values: number[]; model_version: string };
  // The default occlusion grid: 4 x 4 cells, one value each.
  assert.deepEqual([occ.grid_w, occ.grid_h, occ.values.length], [4, 4, 16]);
  assert.equal(occ.model_version, version);
  assert.ok(occ.values.every((v) => Number.isFinite(v) && v >= -1));
  assert.equal(Array.isArray((await get(`/v1/assets/ad-1/occlusion?tenant_id=${tenant}`)).body.values), true);

  // A rescore request.
  await producer.send(TOPICS.rescoreRequests, [{ key: 'ad-2', value: Buffer.from(JSON.stringify({ tenant_id: tenant, asset_id: 'ad-2' })) }]);
  await eventually(() => (scoresSeen.some((s) => s.asset_id === 'ad-2' && s.reason === 'rescore_request') ? true : undefined), 120_000);

  // A live shift: a new asset, scored on registration with no data, then engagement arrives now.
  const extra = photos.length;
  const file = readFileSync(path.join(ds.mastersDir, ds.masters.filter((m) => m.variant === 'colour')[extra]!.file));
  const png = await sharp(file).resize(320, 320, { fit: 'inside' }).png().toBuffer();
  const meta = await sharp(png).metadata();
  await register('ad-live', png, meta.width!, meta.height!);
  const first = await eventually(() => scoresSeen.find((s) => s.asset_id === 'ad-live' && s.reason === 'registered'), 120_000);
  assert.equal(first.flag, 'insufficient_data');
  await postAll(app.running.url, engagement('ad-live', Date.now() - 200_000, 150, 0.6, rng), 5000);
  const shifted = await eventually(() => scoresSeen.find((s) => s.asset_id === 'ad-live' && s.reason === 'engagement_shift' && (s.impressions ?? 0) >= 50), 120_000);
  assert.ok(shifted.actual! > 0.4, `live rate ${shifted.actual}`);
  assert.notEqual(shifted.flag, 'insufficient_data');
});

test('afterglow train: usage errors, and a clear failure without data (the real CLI, its own process)', async () => {
  const out: string[] = [];
  const sink = {
    write: (s: string) => {
      out.push(s);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  assert.equal(await runTrainCommand([], {}, { stdout: sink, stderr: sink }), 2);
  assert.match(out.join(''), /--tenant is required/);
  assert.equal(await runTrainCommand(['--tenant', 't', '--members', '-1'], {}, { stdout: sink, stderr: sink }), 2);
  assert.equal(await runTrainCommand(['--tenant', 't', '--features', 'huge'], {}, { stdout: sink, stderr: sink }), 2);
  const main = fileURLToPath(new URL('../cli/src/main.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', main, 'train', '--tenant', 'nobody', '--features', 'light', '--quiet'], {
    env: { ...process.env, AFTERGLOW_DATA_DIR: path.join(app.dataDir, 'train-cli'), LOG_LEVEL: 'warn' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /not enough mature assets with outcomes and features to train: 0 train/);
});

test('after a restart: stored scores are watched for engagement shifts, and a model trained elsewhere rescores the tenant', { timeout: 600_000 }, async () => {
  const store = app.running.store!;
  const { config, bus, log } = app.running;
  // What a restarted inference process starts with: its own engine (no caches, nothing scored) and
  // workers with nothing tracked but what they load. The control group is the app's (committed:
  // nothing replayed); the engagement tally gets its own group, so the test app's workers (still
  // running) do not take its partitions. Its counters tell its scores apart.
  const provider = lightFeatureProvider();
  const predictor = new Predictor({ workers: 1, batchRows: 512, executionProvider: 'cpu', intraOpThreads: 1 });
  const registry = new ModelRegistry(new ModelRepository(store), config.predict.modelsDir);
  const engine = new ScoringEngine({
    data: new PredictionDataRepository(store),
    scores: new ScoreRepository(store),
    registry,
    predictor,
    provider,
    images: registryImageSource(new AssetRepository(store), blobs),
    settings: config.predict,
  });
  const restarted = new ScoringWorkers({ bus, engine, log, settings: config.predict, engagementGroupId: uniqueName('restarted-engagement') });
  try {
    await restarted.start();
    await restarted.engagementAssigned;
    assert.equal(restarted.published, 0, 'starting rescores nothing');
    const before = await eventually(() => scoresSeen.filter((s) => s.asset_id === 'ad-live').at(-1), 10_000);

    // The live asset's rate falls from ~0.6 to ~0.25: only the stored score says it is watched.
    const rng = mulberry32(11);
    await postAll(app.running.url, engagement('ad-live', Date.now() - 350_000, 300, 0.08, rng), 5000);
    await eventually(() => (restarted.publishedByReason.engagement_shift ? true : undefined), 180_000, 200);
    const shifted = await eventually(
      () => scoresSeen.find((s) => s.asset_id === 'ad-live' && s.reason === 'engagement_shift' && (s.impressions ?? 0) >= (before.impressions ?? 0) + 150),
      60_000,
    );
    assert.ok(shifted.actual! < before.actual!, `live rate ${before.actual} -> ${shifted.actual}`);

    // A second model, trained and activated outside the workers (no HTTP activation).
    const v2 = await train({ params: { rounds: 40, maxDepth: 2, minLeaf: 2, seed: 2 } });
    const version = v2.card.version;
    const rescored = await eventually(() => scoresSeen.find((s) => s.asset_id === 'ad-0' && s.model_version === version && s.reason === 'model_changed'), 180_000, 250);
    assert.equal(rescored.campaign_id, campaign);
    await eventually(() => (restarted.publishedByReason.model_changed ? true : undefined), 180_000, 250);
    const r = await get(`/v1/assets/ad-0/score?tenant_id=${tenant}`);
    assert.equal((r.body as AssetScore).model_version, version);
  } finally {
    await restarted.stop();
    await predictor.close();
    await provider.close();
  }
});

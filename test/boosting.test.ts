/**
 * THE BOOSTING TEST (seed 001, IV-A; issue 5): plant an effect in the engagement of "red subject"
 * assets, send that engagement through the project's data path (HTTP ingest -> bus -> sink ->
 * ClickHouse), train from ClickHouse, serve the model through onnxruntime worker threads, and ask
 * ANVIL attribution what recolouring a subject red does. It must recover the planted effect's sign
 * and its magnitude within 25 %; a second tenant with the same photos and no planted effect must get
 * no significant element at all.
 *
 * Data: real photos (the tie dataset's colour masters, cut from Debian packages' photos). Each
 * photo yields four ads: the original and its subject recoloured red, blue and silver (F's edits on
 * the light featurizer's subject mask), all tied to the photo (tie decisions), each with its own
 * first impression (so the time split interleaves colours) and ~400 impressions. Engagement rate =
 * 0.2 x photo effect (lognormal, sd 0.2) x (1 + 0.5 if red and planted), clicks drawn per impression.
 * Seeded: the same run every time.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TABLES, mulberry32, ulid, type EngagementEvent } from '@afterglow/core';
import { eventually, uniqueName } from '@afterglow/testkit/services';
import {
  ModelRegistry,
  ModelRepository,
  PredictionDataRepository,
  Predictor,
  aggregateAttribution,
  attributeAsset,
  lightFeatureProvider,
  matrix,
  predictMembers,
  storeFeatures,
  trainModel,
  vectorOf,
  type Analysed,
  type EditSpec,
  type StoredModel,
} from '@afterglow/inference';
import { SHORT_PACKAGES, generateTieDataset } from '@afterglow/testkit/tie';
import { postAll, startApp, type TestApp } from './support.js';

const EFFECT = 0.5;
const COLOURS = ['original', 'red', 'blue', 'silver'] as const;
const EDITS: EditSpec[] = [
  ...(['red', 'blue', 'silver', 'white'] as const).map((color) => ({ element: 'subject', edit: 'recolor', color }) as EditSpec),
  { element: 'background', edit: 'blur' },
  { element: 'image', edit: 'brightness', factor: 0.7 },
  { element: 'image', edit: 'brightness', factor: 1.3 },
];
const HOUR = 3_600_000;

let app: TestApp;
let bases: Analysed[] = [];
const provider = lightFeatureProvider({ maxSide: 256 });
let predictor: Predictor;

before(async () => {
  app = await startApp({ SINK_BATCH_MAX_MS: '200' }, ['ingest', 'stream']);
  predictor = new Predictor({ workers: 1, batchRows: 512, executionProvider: 'cpu', intraOpThreads: 1 });
  const ds = await generateTieDataset({ masters: 40, ads: 60, seed: 1, packages: SHORT_PACKAGES });
  const masters = ds.masters.filter((m) => m.variant === 'colour');
  bases = await Promise.all(masters.map((m) => provider.analyse(readFileSync(path.join(ds.mastersDir, m.file)))));
});

after(async () => {
  await provider.close();
  await predictor?.close();
  await app?.close();
});

/** Registers the tenant's assets (features stored as the workers do), ties, and engagement events. */
async function seedTenant(tenant: string, planted: boolean): Promise<number> {
  const store = app.running.store!;
  const rng = mulberry32(7);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const now = Date.now();
  const campaign = 'boost-campaign';
  const assets: { id: string; master: string; red: boolean; features: Analysed['features'] }[] = [];
  for (const [b, a] of bases.entries()) {
    const recoloured = await provider.measureVariants(a, COLOURS.slice(1).map((color) => ({ element: 'subject', edit: 'recolor', color }) as EditSpec));
    assert.equal(recoloured.length, COLOURS.length - 1);
    for (const colour of COLOURS) {
      const features = colour === 'original' ? a.features : recoloured.find((v) => v.edit === `recolor:${colour}`)!.features;
      assets.push({ id: `photo-${b}-${colour}`, master: `photo-${b}`, red: colour === 'red', features });
    }
  }
  await storeFeatures(new PredictionDataRepository(store), assets.map((x) => ({ tenantId: tenant, provider: 'light' as const, assetId: x.id, campaignId: campaign, features: x.features })));
  await store.client.insert({
    table: store.table(TABLES.tieDecisions),
    values: assets.map((x, i) => ({
      tenant_id: tenant,
      ad_asset_id: x.id,
      decided_at: now,
      decision_id: `d${i}`,
      action: 'tie',
      target_asset_id: x.master,
      score: 1,
      auto: false,
      decided_by: 'boosting-test',
      because_of: '',
    })),
    format: 'JSONEachRow',
  });
  // First impressions spread over [now-7h, now-2h] in a random order; 1 h horizon: all mature.
  const order = assets.map((_, i) => i).sort(() => rng() - 0.5);
  const photoEffect = new Map<string, number>();
  const events: EngagementEvent[] = [];
  order.forEach((ai, rank) => {
    const x = assets[ai]!;
    if (!photoEffect.has(x.master)) photoEffect.set(x.master, Math.exp(0.2 * gauss()));
    const rate = 0.2 * photoEffect.get(x.master)! * (planted && x.red ? 1 + EFFECT : 1);
    const first = now - 7 * HOUR + Math.floor((rank * 5 * HOUR) / assets.length);
    for (let i = 0; i < 400; i++) {
      const at = first + Math.floor((i * 30 * 60_000) / 400);
      const base = { tenant_id: tenant, campaign_id: campaign, asset_id: x.id, value: 1, received_at: 0 };
      events.push({ ...base, event_id: ulid(at), kind: 'impression', occurred_at: at });
      if (rng() < Math.min(1, rate)) events.push({ ...base, event_id: ulid(at + 1), kind: 'click', occurred_at: at + 1 });
    }
  });
  const accepted = await postAll(app.running.url, events, 5000);
  assert.equal(accepted, events.length);
  await eventually(
    async () => {
      const rs = await store.client.query({
        query: `SELECT count() AS n FROM ${store.table(TABLES.eventsRaw)} WHERE tenant_id = {t:String}`,
        query_params: { t: tenant },
        format: 'JSONEachRow',
      });
      const [row] = await rs.json<{ n: string }>();
      return Number(row?.n) >= events.length ? true : undefined;
    },
    240_000,
    500,
  );
  // The rollup the training reads holds every event exactly once (a double-counted redelivery would
  // make seeded runs differ).
  const rs = await store.client.query({
    query: `SELECT sum(events) AS n FROM ${store.table(TABLES.assetMinute)} WHERE tenant_id = {t:String}`,
    query_params: { t: tenant },
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string }>();
  assert.equal(Number(row?.n), events.length);
  return events.length;
}

async function trainAndAttribute(tenant: string) {
  const store = app.running.store!;
  const registry = new ModelRegistry(new ModelRepository(store), path.join(app.dataDir, 'prediction-models'));
  const stored: StoredModel = await trainModel(new PredictionDataRepository(store), registry, {
    tenantId: tenant,
    provider: 'light',
    horizonMs: HOUR,
    baselineWindowMs: 30 * 24 * HOUR,
    minImpressions: 100,
    members: 8,
    params: { rounds: 300, maxDepth: 3, minLeaf: 3, learningRate: 0.1, lambda: 0.1, seed: 1 },
  });
  assert.equal(await registry.activeVersion(tenant), stored.card.version);
  assert.equal(stored.card.nTrain + stored.card.nValid, bases.length * COLOURS.length, 'every asset has an outcome and features');
  assert.equal(stored.card.clusters, new Set(bases.map((_, b) => b)).size, 'ads of one photo resample together');
  const ref = { version: stored.card.version, onnxPath: stored.onnxPath, nFeatures: stored.card.schema.columns.length, members: stored.gbt.members.length };
  const scorer = { provider, schema: stored.card.schema, predict: (rows: readonly Float32Array[]) => predictor.predict(ref, rows) };
  // Serving parity: onnxruntime (worker thread) == the JS trees.
  const vectors = bases.map((a) => vectorOf(a.features, stored.card.schema));
  const onnx = await predictor.predict(ref, vectors);
  const js = predictMembers(stored.gbt, matrix(vectors, ref.nFeatures));
  let maxDiff = 0;
  onnx.forEach((row, i) => row.forEach((v, m) => (maxDiff = Math.max(maxDiff, Math.abs(v - js[m]![i]!)))));
  assert.ok(maxDiff <= 1e-5, `onnxruntime and JS predictions differ by ${maxDiff}`);
  const per = [];
  for (const a of bases) per.push((await attributeAsset(a, scorer, EDITS)).attribution);
  return { stored, elements: aggregateAttribution(per) };
}

const show = (e: { element: string; edit: string; mean: number; ci_low: number; ci_high: number; significant: boolean }) =>
  `${e.element}:${e.edit} ${(e.mean * 100).toFixed(1)}% [${(e.ci_low * 100).toFixed(1)}, ${(e.ci_high * 100).toFixed(1)}]${e.significant ? ' *' : ''}`;

test('boosting: a planted +50 % for red subjects is recovered in sign and within 25 % in magnitude', { timeout: 600_000 }, async () => {
  const tenant = uniqueName('boost');
  await seedTenant(tenant, true);
  const { stored, elements } = await trainAndAttribute(tenant);
  console.log(`planted: valid ${JSON.stringify(stored.card.metrics.valid)}\n  ${elements.map(show).join('\n  ')}`);
  const red = elements.find((e) => e.edit === 'recolor:red')!;
  assert.ok(red.significant, `red should be significant: ${show(red)}`);
  assert.ok(red.mean > 0, 'sign');
  assert.ok(Math.abs(red.mean - EFFECT) <= 0.25 * EFFECT, `magnitude ${(red.mean * 100).toFixed(1)}% not within 25% of ${EFFECT * 100}%`);
  assert.ok(red.ci_low > 0);
  // Nothing else was planted: no other element may claim an effect as large.
  for (const e of elements) if (e !== red) assert.ok(!e.significant || Math.abs(e.mean) < red.mean / 2, `unexpected effect ${show(e)}`);
});

test('boosting: with no planted effect no element is significant', { timeout: 600_000 }, async () => {
  const tenant = uniqueName('noboost');
  await seedTenant(tenant, false);
  const { stored, elements } = await trainAndAttribute(tenant);
  console.log(`none: valid ${JSON.stringify(stored.card.metrics.valid)}\n  ${elements.map(show).join('\n  ')}`);
  assert.equal(elements.length, EDITS.length);
  for (const e of elements) assert.ok(!e.significant, `spurious ${show(e)}`);
});

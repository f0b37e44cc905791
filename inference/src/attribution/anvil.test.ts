import assert from 'node:assert/strict';
import { test } from 'node:test';
import { aggregateAttribution, quantileSorted, relativeChange, tInterval, tQuantile } from './anvil.js';

test('t and normal quantiles match tables', () => {
  assert.ok(Math.abs(tQuantile(0.975, 1) - 12.706) < 1e-3);
  assert.ok(Math.abs(tQuantile(0.975, 2) - 4.303) < 1e-3);
  assert.ok(Math.abs(tQuantile(0.975, 3) - 3.182) < 0.02);
  assert.ok(Math.abs(tQuantile(0.975, 10) - 2.228) < 0.005);
  assert.ok(Math.abs(tQuantile(0.975, 1000) - 1.962) < 0.002);
  const ci = tInterval([1, 2, 3, 4, 5], 0.05);
  assert.equal(ci.mean, 3);
  assert.ok(Math.abs(ci.high - 3 - 2.776 * Math.sqrt(2.5 / 5)) < 0.03);
  assert.equal(quantileSorted([0, 10], 0.25), 2.5);
});

test('relative change is computed in rate space (cube of the target ratio)', () => {
  assert.ok(Math.abs(relativeChange(Math.cbrt(1.5), 1) - 0.5) < 1e-12);
  assert.equal(relativeChange(1, 1), 0);
  assert.equal(relativeChange(-1, 1), -1);
});

test('aggregation: consistent effects are significant, effects that depend on the model member or on a few assets are not', () => {
  const assets = 30;
  const per = Array.from({ length: assets }, (_, i) => [
    // every member, every asset: about +20 %
    { element: 'subject', edit: 'recolor:red', delta: 0.2, ci_low: 0, ci_high: 0, n: 4, members: [0.19, 0.2, 0.21, 0.2].map((v) => v + (i % 3) * 0.01) },
    // half the members say +15 %, half say -15 %: model uncertainty, not an effect
    { element: 'image', edit: 'brightness:0.7', delta: 0, ci_low: 0, ci_high: 0, n: 4, members: [0.15, -0.15, 0.15, -0.15] },
    // tiny but consistent: below minEffect
    { element: 'background', edit: 'blur', delta: 0.01, ci_low: 0, ci_high: 0, n: 4, members: [0.01, 0.01, 0.011, 0.009] },
  ]);
  const out = aggregateAttribution(per);
  const by = new Map(out.map((e) => [e.edit, e]));
  assert.equal(by.get('recolor:red')!.significant, true);
  assert.ok(by.get('recolor:red')!.ci_low > 0.18 && by.get('recolor:red')!.ci_high < 0.23);
  assert.equal(by.get('brightness:0.7')!.significant, false);
  assert.ok(by.get('brightness:0.7')!.ci_low < -0.1 && by.get('brightness:0.7')!.ci_high > 0.1);
  assert.equal(by.get('blur')!.significant, false);
  assert.equal(by.get('recolor:red')!.n, assets);
  // Sorted by |mean|, deterministic for a seed.
  assert.equal(out[0]!.edit, 'recolor:red');
  assert.deepEqual(aggregateAttribution(per), out);
});

test('aggregation: the same edit of two elements is two estimates, each counting its own creatives once', () => {
  // 20 creatives with their text removed (+10 %), 26 with their subject removed (-20 %): not one
  // "remove" of 46; a creative listed twice for an edit counts once.
  const per = Array.from({ length: 26 }, (_, i) => [
    ...(i < 20 ? [{ element: 'text', edit: 'remove', delta: 0.1, ci_low: 0, ci_high: 0, n: 4, members: [0.1, 0.1, 0.1, 0.1] }] : []),
    { element: 'subject', edit: 'remove', delta: -0.2, ci_low: 0, ci_high: 0, n: 4, members: [-0.2, -0.2, -0.2, -0.2] },
    ...(i === 0 ? [{ element: 'subject', edit: 'remove', delta: -0.2, ci_low: 0, ci_high: 0, n: 4, members: [-0.2, -0.2, -0.2, -0.2] }] : []),
  ]);
  const out = aggregateAttribution(per);
  assert.deepEqual(
    out.map((e) => [e.element, e.edit, e.n, Math.round(e.mean * 100)]),
    [
      ['subject', 'remove', 26, -20],
      ['text', 'remove', 20, 10],
    ],
  );
});

test('light features: edits and measurements run in worker threads; a red recolour shows in the subject colour features', async (t) => {
  const { photosOrSkip } = await import('@afterglow/testkit/images');
  const { lightFeatureProvider } = await import('../predict/featurizer.js');
  const { readFileSync } = await import('node:fs');
  const photos = photosOrSkip(t, 1);
  if (!photos) return;
  const photo = photos.find((p) => p.id.endsWith('coffee.png')) ?? photos[0]!;
  const provider = lightFeatureProvider({ maxSide: 192 });
  try {
    const a = await provider.analyse(readFileSync(photo.path), { channel: 'social' });
    assert.equal(a.features.meta.channel, 'social');
    assert.ok(a.features.named['subject.share']! > 0.2 && a.features.named['subject.share']! < 0.6);
    const vs = await provider.measureVariants(a, [
      { element: 'subject', edit: 'recolor', color: 'red' },
      { element: 'subject', edit: 'recolor', color: 'blue' },
      { element: 'text', edit: 'remove' },
    ]);
    assert.deepEqual(vs.map((v) => v.edit), ['recolor:red', 'recolor:blue'], 'no text: that edit does not apply');
    assert.ok(vs[0]!.features.named['subject.color.red']! > a.features.named['subject.color.red']! + 0.2);
    assert.ok(vs[1]!.features.named['subject.color.blue']! > a.features.named['subject.color.blue']! + 0.2);
  } finally {
    await provider.close();
  }
});

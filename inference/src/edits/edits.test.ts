/**
 * ANVIL element edits on real photos, measured with the featurizer: recolouring the subject to red
 * raises its measured red share and leaves background pixels untouched; removing the text overlay
 * lowers the measured text area (OCR re-run on the variant); background blur/swap keep the subject;
 * cropping to the subject raises its share; brightness moves brightness; the occlusion grid greys
 * exactly one cell; variants are tagged and deterministic.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createFeaturizer, type AssetFeatures, type Featurizer } from '../features/index.js';
import { maskAt } from '../features/mask.js';
import { buildFeatureModels } from '../models/feature-models.js';
import { photosOrSkip, type SamplePhoto } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { applyEdit, cellRect, decodeForEdits, defaultEditSpecs, generateVariants, occlusionGrid, variantBatches, type Variant } from './index.js';
import { harden } from './ops.js';

const quiet = () => {};

describe('element edits (ANVIL without diffusion)', () => {
  let fz: Featurizer;
  let photos: SamplePhoto[] | undefined;
  const memo = new Map<string, { bytes: Buffer; f: AssetFeatures }>();

  before(() => {
    ensureTestModels(['mobilenet_v2']);
    buildFeatureModels({ modelsDir: testModelsDir() });
  });
  before(async () => {
    fz = await createFeaturizer({ modelsDir: testModelsDir(), executionProvider: 'cpu', workers: 1, intraOpThreads: 2, embedding: false, log: quiet });
  });
  after(async () => {
    await fz?.close();
  });

  /** A sample photo, optionally with a text overlay, or small in the middle of a plain 3x larger frame. */
  const load = async (name: string, overlay?: string, small = false) => {
    const key = `${name}|${overlay ?? ''}|${small}`;
    const hit = memo.get(key);
    if (hit) return hit;
    const p = photos!.find((x) => x.id.endsWith(`/${name}`));
    assert.ok(p, name);
    let bytes = readFileSync(p.path);
    if (small) {
      const m = await sharp(bytes).metadata();
      bytes = await sharp(bytes).extend({ top: m.height!, bottom: m.height!, left: m.width!, right: m.width!, background: '#d8d4cc' }).png().toBuffer();
    }
    if (overlay) {
      const m = await sharp(bytes).metadata();
      const fs = Math.round(m.width! / 12);
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${m.width}" height="${m.height}"><text x="${Math.round(m.width! * 0.05)}" y="${Math.round(m.height! * 0.15)}" font-family="DejaVu Sans" font-weight="bold" font-size="${fs}" fill="#fff">${overlay}</text></svg>`;
      bytes = await sharp(bytes).composite([{ input: Buffer.from(svg) }]).png().toBuffer();
    }
    const f = await fz.featurize(bytes);
    const v = { bytes, f };
    memo.set(key, v);
    return v;
  };

  it('recolours the subject to red: its measured red share rises, background pixels stay exactly as they were', async (t) => {
    photos = photosOrSkip(t, 5);
    if (!photos) return;
    const { bytes, f } = await load('coffee.png');
    const img = await decodeForEdits(bytes, f.analysis);
    const v = await applyEdit(img, f.analysis, { element: 'subject', edit: 'recolor', color: 'red' });
    assert.ok(v);
    assert.equal(v.label, 'subject:recolor:red');
    // measured on the variant's pixels with the same mask
    const g = await fz.featurize({ raw: v.image }, { analysis: v.analysis });
    assert.ok(g.named['subject.color.red']! > f.named['subject.color.red']! + 0.3, `red share ${f.named['subject.color.red']} -> ${g.named['subject.color.red']}`);
    assert.ok(Math.cos((Math.atan2(g.named['subject.hue_sin']!, g.named['subject.hue_cos']!))) > 0.9, 'subject hue is red');
    // background: every pixel the hardened mask leaves out is unchanged
    const alpha = harden(await maskAt(f.analysis.subjectMask, img.width, img.height));
    let bg = 0;
    let changed = 0;
    for (let i = 0; i < alpha.length; i++) {
      if (alpha[i]! >= 13) continue;
      bg++;
      for (let c = 0; c < 3; c++) if (v.image.data[3 * i + c] !== img.data[3 * i + c]) changed++;
    }
    assert.ok(bg > 0.2 * alpha.length, `background pixels ${bg}`);
    assert.equal(changed, 0);
    assert.ok(Math.abs(g.named['background.brightness']! - f.named['background.brightness']!) < 0.02);
    // and red is not just "more red everywhere": a blue recolour has no red
    const blue = await applyEdit(img, f.analysis, { element: 'subject', edit: 'recolor', color: 'blue' });
    const gb = await fz.featurize({ raw: blue!.image }, { analysis: blue!.analysis });
    assert.ok(gb.named['subject.color.blue']! > 0.3 && gb.named['subject.color.red']! < f.named['subject.color.red']! + 0.02);
  });

  it('removes the text overlay: the re-run OCR measures less text area and reads fewer words', async (t) => {
    photos ??= photosOrSkip(t, 5);
    if (!photos) return;
    const { bytes, f } = await load('chelsea.png', 'BIG SALE');
    assert.ok(f.named['text.area']! > 0.01, `text area ${f.named['text.area']}`);
    const img = await decodeForEdits(bytes, f.analysis);
    const v = await applyEdit(img, f.analysis, { element: 'text', edit: 'remove' });
    assert.ok(v);
    assert.deepEqual(v.analysis.textBoxes, []);
    const g = await fz.featurize({ raw: v.image }); // full re-analysis: OCR runs on the variant
    assert.ok(g.named['text.area']! < f.named['text.area']! / 2, `text area ${f.named['text.area']} -> ${g.named['text.area']}`);
    assert.ok(!g.words.join('').includes('sale'), `still reads ${g.words.join(' ')}`);
    // pixels outside the (grown) text boxes are untouched
    const b = f.analysis.textBoxes[0]!;
    const y = Math.min(img.height - 1, Math.round(b.top + b.height * 3));
    for (let x = 0; x < img.width; x += 7) assert.equal(v.image.data[3 * (y * img.width + x)], img.data[3 * (y * img.width + x)]);
  });

  it('generates tagged variants in batches: background, crop, brightness; the subject survives background edits', async (t) => {
    photos ??= photosOrSkip(t, 5);
    if (!photos) return;
    const { bytes, f } = await load('coffee.png');
    const img = await decodeForEdits(bytes, f.analysis);
    const specs = defaultEditSpecs(f.analysis);
    const labels = specs.map((s) => `${s.element}:${s.edit}`);
    for (const l of ['subject:recolor', 'subject:remove', 'background:blur', 'background:swap', 'frame:crop_subject', 'image:brightness']) assert.ok(labels.includes(l), l);
    assert.ok(!labels.includes('text:remove'), 'no text, no text edit');
    const batches: Variant[][] = [];
    for await (const b of variantBatches(img, f.analysis, specs, 5)) batches.push(b);
    assert.ok(batches.length >= 3 && batches.every((b) => b.length <= 5));
    const all = await generateVariants(img, f.analysis, specs);
    assert.deepEqual(all.map((v) => v.label), batches.flat().map((v) => v.label));
    assert.equal(new Set(all.map((v) => v.label)).size, all.length, 'labels are unique');
    // deterministic
    for (const [i, v] of all.entries()) assert.deepEqual(Buffer.from(v.image.data), Buffer.from(batches.flat()[i]!.image.data), v.label);
    const by = new Map(all.map((v) => [v.label, v]));
    const measure = (v: Variant) => fz.featurize({ raw: v.image }, { analysis: v.analysis });
    const swap = await measure(by.get('background:swap:black')!);
    assert.ok(swap.named['background.brightness']! < f.named['background.brightness']! - 0.2, 'black backdrop is darker');
    assert.ok(Math.abs(swap.named['subject.brightness']! - f.named['subject.brightness']!) < 0.05, 'subject kept');
    const blur = await measure(by.get('background:blur')!);
    assert.ok(blur.named['background.colourfulness']! <= f.named['background.colourfulness']! + 0.01);
    // the cup fills most of coffee.png: cropping to it (same aspect, 8% margin) would be the whole frame
    assert.ok(!by.has('frame:crop_subject'));
    const moto = await load('coffee.png', undefined, true);
    const mimg = await decodeForEdits(moto.bytes, moto.f.analysis);
    const cropped = await applyEdit(mimg, moto.f.analysis, { element: 'frame', edit: 'crop_subject' });
    assert.ok(cropped && cropped.image.width === mimg.width && cropped.image.height === mimg.height, 'same size');
    const crop = await fz.featurize({ raw: cropped.image }); // re-segmented
    assert.ok(crop.named['subject.share']! > moto.f.named['subject.share']! + 0.05, `subject share ${moto.f.named['subject.share']} -> ${crop.named['subject.share']}`);
    assert.ok(cropped.analysis.subjectBox!.width > moto.f.analysis.subjectBox!.width, 'analysis moved with the crop');
    const dark = await measure(by.get('image:brightness:0.7')!);
    const light = await measure(by.get('image:brightness:1.3')!);
    assert.ok(dark.named['color.brightness']! < f.named['color.brightness']! && light.named['color.brightness']! > f.named['color.brightness']!);
  });

  it('removes people: the astronaut is inpainted away and the face detector no longer finds her', async (t) => {
    photos ??= photosOrSkip(t, 5);
    if (!photos) return;
    const { bytes, f } = await load('astronaut.png');
    assert.equal(f.named['people.present'], 1);
    assert.ok(defaultEditSpecs(f.analysis).some((s) => s.element === 'people'));
    const img = await decodeForEdits(bytes, f.analysis);
    const v = await applyEdit(img, f.analysis, { element: 'people', edit: 'remove' });
    assert.ok(v);
    assert.equal(v.label, 'people:remove');
    const g = await fz.featurize({ raw: v.image }); // full re-analysis
    assert.equal(g.named['people.present'], 0, JSON.stringify(g.analysis.faces));
    // and the edit is not offered where there is no one
    const coffee = await load('coffee.png');
    assert.ok(!defaultEditSpecs(coffee.f.analysis).some((s) => s.element === 'people'));
    assert.equal(await applyEdit(img, coffee.f.analysis, { element: 'people', edit: 'remove' }), null);
  });

  it('occlusion grid: one grey cell per variant, everything else untouched', async (t) => {
    photos ??= photosOrSkip(t, 5);
    if (!photos) return;
    const { bytes, f } = await load('coffee.png');
    const img = await decodeForEdits(bytes, f.analysis);
    const vs = await occlusionGrid(img, f.analysis, { rows: 3, cols: 4 });
    assert.equal(vs.length, 12);
    const v = vs.find((x) => x.edit === 'occlude:1,2')!;
    assert.equal(v.element, 'cell');
    const r = cellRect(1, 2, 3, 4, img.width, img.height);
    let inside = 0;
    let outsideChanged = 0;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const i = 3 * (y * img.width + x);
        const isIn = x >= r.left && x < r.left + r.width && y >= r.top && y < r.top + r.height;
        if (isIn) inside += v.image.data[i] === 128 && v.image.data[i + 1] === 128 && v.image.data[i + 2] === 128 ? 1 : 0;
        else if (v.image.data[i] !== img.data[i]) outsideChanged++;
      }
    }
    assert.equal(inside, r.width * r.height);
    assert.equal(outsideChanged, 0);
  });
});

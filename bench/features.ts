/**
 * bench/features: featurization and ANVIL variant generation throughput on this machine's CPU.
 * Prints figures; asserts nothing about speed. `--short` is the CI mode.
 *
 *   node bench/dist/features.js [--short] [--images N] [--variants-of N]
 *
 * Figures:
 *   - featurize (images/s): `featurizer.featurize` on encoded ads (tie dataset generator over the
 *     Debian sample photos, else generated JPEGs): probe + decode at 1024 px, PP-OCR det + rec,
 *     ISNet 320, BlazeFace (+ selfie segmentation when a face is found), mobilenet_v2 embedding,
 *     colour statistics; cache off;
 *   - per model (ms/run, worker round trip): ocr_det, ocr_rec (per batch of lines), isnet, face,
 *     person; and per stage on the caller's side (stages overlap);
 *   - variants (variants/s): `generateVariants` with the default edits (recolours, subject removal,
 *     background blur/swap, crop, text removal, brightness) and a 4x4 occlusion grid, per asset.
 * Run it under `flock /tmp/afterglow-heavy.lock` on a shared machine.
 */
import sharp from 'sharp';
import { availableCores, mulberry32 } from '@afterglow/core';
import { buildFeatureModels, buildModels, createFeaturizer, decodeForEdits, defaultEditSpecs, generateVariants, occlusionGrid, type AssetFeatures } from '@afterglow/inference';
import { renderAd } from '@afterglow/testkit/tie';
import { findSamplePhotos, testModelsDir } from '@afterglow/testkit/inference';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const IMAGES = opt('images', SHORT ? 6 : 24);
const VARIANTS_OF = opt('variants-of', SHORT ? 2 : 6);
const cores = availableCores();

async function ads(n: number): Promise<Uint8Array[]> {
  const masters = findSamplePhotos().map((p) => p.path);
  const rng = mulberry32(5);
  const out: Uint8Array[] = [];
  if (masters.length) {
    for (let i = 0; i < n; i++) out.push(new Uint8Array((await renderAd(masters[i % masters.length]!, rng)).bytes));
    return out;
  }
  for (let k = 0; k < n; k++) {
    const w = 1080;
    const h = 1080;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="hsl(${k * 37},40%,60%)"/><circle cx="540" cy="560" r="300" fill="hsl(${k * 37 + 150},70%,45%)"/><text x="60" y="140" font-family="DejaVu Sans" font-weight="bold" font-size="90" fill="#fff">Summer Sale ${k}</text></svg>`;
    out.push(new Uint8Array(await sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer()));
  }
  return out;
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

async function main(): Promise<void> {
  const modelsDir = testModelsDir();
  let t = performance.now();
  buildModels({ modelsDir, models: ['mobilenet_v2'] });
  buildFeatureModels({ modelsDir });
  console.log(`bench/features: models ready in ${fmt((performance.now() - t) / 1000)} s (${modelsDir}); ${cores} cores${SHORT ? ', short mode' : ''}`);
  const images = await ads(IMAGES);
  const fz = await createFeaturizer({ modelsDir, executionProvider: 'cpu', workers: 1, intraOpThreads: cores, cacheEntries: 0, log: () => {} });
  try {
    // warm-up: session creation
    await fz.featurize(images[0]!, { noCache: true });
    const before = fz.modelStats();
    const stages: Record<string, number> = {};
    const feats: AssetFeatures[] = [];
    t = performance.now();
    for (const img of images) {
      const f = await fz.featurize(img, { noCache: true });
      feats.push(f);
      for (const [k, v] of Object.entries(f.timings)) stages[k] = (stages[k] ?? 0) + v;
    }
    const secs = (performance.now() - t) / 1000;
    console.log(`  featurize (sequential, 1 worker, ${cores} intra-op threads): ${images.length} ads in ${fmt(secs)} s = ${fmt(images.length / secs)} images/s (${fmt((secs * 1000) / images.length)} ms/image)`);
    // concurrent: the models' worker keeps busy while the caller decodes the next images
    t = performance.now();
    await Promise.all(images.map((img) => fz.featurize(img, { noCache: true })));
    const csecs = (performance.now() - t) / 1000;
    console.log(`  featurize (all at once): ${fmt(images.length / csecs)} images/s`);
    const after = fz.modelStats();
    for (const [m, s] of Object.entries(after)) {
      const b = before[m] ?? { runs: 0, ms: 0, items: 0 };
      const runs = s.runs - b.runs;
      if (runs > 0) console.log(`    model ${m}: ${runs} runs, ${fmt((s.ms - b.ms) / runs)} ms/run, ${fmt((s.items - b.items) / runs)} items/run`);
    }
    console.log(`    per stage (sequential, ms/image, stages overlap): ${Object.entries(stages).map(([k, v]) => `${k} ${fmt(v / images.length)}`).join(', ')}`);
    const words = feats.reduce((s, f) => s + f.words.length, 0);
    console.log(`    found ${words} words, subject share mean ${fmt(feats.reduce((s, f) => s + f.named['subject.share']!, 0) / feats.length)}`);

    // variants
    let nVariants = 0;
    let vms = 0;
    let nOcc = 0;
    let oms = 0;
    for (let i = 0; i < Math.min(VARIANTS_OF, images.length); i++) {
      const f = feats[i]!;
      const img = await decodeForEdits(images[i]!, f.analysis);
      t = performance.now();
      const vs = await generateVariants(img, f.analysis, defaultEditSpecs(f.analysis));
      vms += performance.now() - t;
      nVariants += vs.length;
      t = performance.now();
      const occ = await occlusionGrid(img, f.analysis, { rows: 4, cols: 4 });
      oms += performance.now() - t;
      nOcc += occ.length;
    }
    console.log(`  variants (default edits, ${VARIANTS_OF} ads at <= 1024 px): ${nVariants} in ${fmt(vms / 1000)} s = ${fmt(nVariants / (vms / 1000))} variants/s (${fmt(nVariants / VARIANTS_OF)} per ad)`);
    console.log(`  occlusion grid 4x4: ${nOcc} in ${fmt(oms / 1000)} s = ${fmt(nOcc / (oms / 1000))} variants/s`);
    console.log(`  execution provider: ${fz.executionProvider ?? '?'}`);
  } finally {
    await fz.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

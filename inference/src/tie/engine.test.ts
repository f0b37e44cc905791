/**
 * The tie engine on real photos (python3-skimage) with ads made here: mirrored and graded crops find
 * their master first with colour fused in and with the mirrored master view; the index holds the
 * expected rows per master; auto-ties honour the keypoint-inlier floor; the dense check locates each
 * ad best in its own master; leaderboards cut as full-width strips meet the masters' strip views, and
 * only thin ads do.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createEmbedder } from '../models/embedder.js';
import type { Embedder } from '../models/types.js';
import { requireOrSkip } from '@afterglow/testkit/services';
import { findSamplePhotos, sampleFetchFailures } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { TieEngine, type AssetRef } from './engine.js';

const quiet = () => {};

/** An ad cut from a master: a 70 % crop, mirrored and/or graded, JPEG q70. */
async function cut(bytes: Buffer, mirror: boolean, grade: boolean): Promise<Uint8Array> {
  const m = await sharp(bytes).metadata();
  const w = m.width!;
  const h = m.height!;
  let img = sharp(bytes).extract({ left: Math.round(w * 0.2), top: Math.round(h * 0.1), width: Math.round(w * 0.7), height: Math.round(h * 0.7) });
  if (mirror) img = img.flop();
  if (grade) img = img.modulate({ brightness: 1.1, saturation: 0.85, hue: 8 });
  return new Uint8Array(await img.jpeg({ quality: 70 }).toBuffer());
}

/** A 728x90 leaderboard cover-cut from a master: a full-width 8:1 strip, with a CTA block on its right. */
async function leaderboard(bytes: Buffer): Promise<Uint8Array> {
  const m = await sharp(bytes).metadata();
  const w = m.width!;
  const h = m.height!;
  const sh = Math.round(w / 8);
  const strip = await sharp(bytes).extract({ left: 0, top: Math.round(h * 0.45 - sh / 2), width: w, height: sh }).resize(728, 90, { fit: 'fill' }).toBuffer();
  const cta = await sharp({ create: { width: 150, height: 50, channels: 3, background: '#e0402a' } }).png().toBuffer();
  return new Uint8Array(await sharp(strip).composite([{ input: cta, left: 560, top: 20 }]).jpeg({ quality: 75 }).toBuffer());
}

describe('tie engine', () => {
  let emb: Embedder;
  let masters: AssetRef[] = [];
  let ads: Array<AssetRef & { truth: string }> = [];
  // What is missing, for requireOrSkip in each test (skip locally, fail under CI, saying why).
  let missing: string | false = false;
  before(async () => {
    const photos = findSamplePhotos(['python3-skimage']);
    missing = photos.length < 6 && `needs 6 python3-skimage photos, found ${photos.length} ${sampleFetchFailures(['python3-skimage'])}`.trim();
    if (missing) return; // not-a-skip: each test below calls requireOrSkip(t, missing)
    ensureTestModels(['mobilenet_v2']);
    emb = await createEmbedder({ modelsDir: testModelsDir(), executionProvider: 'auto', workers: 1, cacheMaxBytes: 0, log: quiet });
    masters = photos.slice(0, 6).map((p) => ({ name: p.id, bytes: new Uint8Array(readFileSync(p.path)) }));
    ads = await Promise.all(
      masters.slice(0, 4).map(async (m, i) => ({ name: `ad${i}`, bytes: await cut(Buffer.from(m.bytes!), i % 2 === 0, i >= 2), truth: m.name })),
    );
  });
  after(async () => {
    await emb?.close();
  });

  for (const options of [
    { masterMirror: true, colourWeight: 0.35 },
    { masterMirror: false, colourWeight: 0.35 },
    { masterMirror: true, colourWeight: 0 },
    { masterMirror: false, colourWeight: 0.35, masterGrey: false },
  ] as Array<{ masterMirror: boolean; colourWeight: number; masterGrey?: boolean }>) {
    it(`ties mirrored and graded crops to their master (${JSON.stringify(options)})`, async (t) => {
      if (!requireOrSkip(t, missing)) return;
      const engine = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, ...options });
      try {
        assert.equal(engine.viewsPerMaster, 2 + (options.masterMirror ? 1 : 0) + (options.masterGrey === false ? 0 : 1), 'whole + centre (+ the whole mirrored) (+ the whole in grey)');
        await engine.addMasters(masters);
        const results = await engine.tieAds(ads);
        for (const [i, r] of results.entries()) {
          assert.equal(r.error, undefined);
          assert.equal(r.candidates[0]?.master, ads[i]!.truth, `${r.ad} (${i % 2 === 0 ? 'mirrored' : 'as is'}${i >= 2 ? ', graded' : ''}) ranked ${r.candidates.map((c) => c.master).join(', ')}`);
          const c = r.candidates[0]!;
          assert.ok(Math.abs(c.euclidean - Math.sqrt(Math.max(0, 2 - 2 * c.cosine))) < 1e-4, 'rows stay unit-norm: euclidean = sqrt(2 - 2 cos)');
        }
      } finally {
        await engine.close();
      }
    });
  }

  it('auto-ties only with enough keypoint inliers', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    const loose = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, autoTieThreshold: 0, autoTieMargin: 0, autoTieMinInliers: 0 });
    const strict = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, autoTieThreshold: 0, autoTieMargin: 0, autoTieMinInliers: 100_000 });
    try {
      await loose.addMasters(masters);
      await strict.addMasters(masters);
      const a = await loose.tieAds(ads);
      const b = await strict.tieAds(ads);
      assert.ok(a.every((r) => r.autoTie === r.candidates[0]!.master), 'no floor: every best candidate is auto-tied at threshold 0');
      assert.ok(b.every((r) => r.autoTie === null), 'a floor no verification reaches: nothing is auto-tied');
    } finally {
      await loose.close();
      await strict.close();
    }
  });

  it('checks its best candidates densely: the true master locates best, and only `denseTop` are checked', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    const dense = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, denseTop: 3, denseWeakTop: 3 });
    const off = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, denseTop: 0 });
    try {
      await dense.addMasters(masters);
      await off.addMasters(masters);
      const a = await dense.tieAds(ads);
      const b = await off.tieAds(ads);
      for (const [i, r] of a.entries()) {
        const checked = r.candidates.filter((c) => c.dense !== undefined);
        assert.equal(checked.length, 3, `${r.ad}: three candidates checked`);
        const truth = checked.find((c) => c.master === ads[i]!.truth);
        assert.ok(truth, `${r.ad}: its master is among the checked`);
        assert.ok(truth.dense! > 0.5 && checked.every((c) => c === truth || c.dense! < truth.dense!), `${r.ad}: ${checked.map((c) => `${c.master} ${c.dense!.toFixed(3)}`).join(', ')}`);
        assert.ok(b[i]!.candidates.every((c) => c.dense === undefined), 'denseTop 0: nothing checked');
      }
      assert.equal(dense.denseFailures, 0);
    } finally {
      await dense.close();
      await off.close();
    }
  });

  it('checks more candidates densely when keypoints verified none strongly', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    // No keypoint verification at all: every ad is weak evidence, so `denseWeakTop` are checked.
    const weak = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, colourFreeTop: 0, denseTop: 2, denseWeakTop: 5 });
    try {
      await weak.addMasters(masters);
      for (const r of await weak.tieAds(ads)) assert.equal(r.candidates.filter((c) => c.dense !== undefined).length, 5, r.ad);
    } finally {
      await weak.close();
    }
  });

  it('ties greyscale ads through the masters\' grey views', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    const greyAds = await Promise.all(
      masters.slice(0, 4).map(async (m, i) => ({ name: `grey${i}`, bytes: new Uint8Array(await sharp(Buffer.from(await cut(Buffer.from(m.bytes!), false, false))).greyscale().jpeg({ quality: 80 }).toBuffer()), truth: m.name })),
    );
    const grey = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, denseTop: 0 });
    const colourOnly = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, denseTop: 0, masterGrey: false });
    try {
      await grey.addMasters(masters);
      await colourOnly.addMasters(masters);
      const a = await grey.tieAds(greyAds);
      const b = await colourOnly.tieAds(greyAds);
      for (const [i, r] of a.entries()) {
        assert.equal(r.candidates[0]?.master, greyAds[i]!.truth, `${r.ad} ranked ${r.candidates.map((c) => c.master).join(', ')}`);
        const cosA = r.candidates.find((c) => c.master === greyAds[i]!.truth)!.cosine;
        const cosB = b[i]!.candidates.find((c) => c.master === greyAds[i]!.truth)!.cosine;
        assert.ok(cosA > cosB, `${r.ad}: the grey view is closer than the colour views (${cosA.toFixed(3)} vs ${cosB.toFixed(3)})`);
      }
    } finally {
      await grey.close();
      await colourOnly.close();
    }
  });

  it('ties duotone ads through the stretched grey views of ads and masters', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    // Luma mapped between a dark and a light ink: colours the master lacks, contrast it has not.
    const duotone = async (bytes: Uint8Array) => {
      const { data, info } = await sharp(Buffer.from(bytes)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const dark = [70, 20, 60];
      const light = [190, 230, 160];
      for (let i = 0; i < data.length; i += 3) {
        const y = (0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!) / 255;
        for (let c = 0; c < 3; c++) data[i + c] = Math.round(dark[c]! + (light[c]! - dark[c]!) * y);
      }
      return new Uint8Array(await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } }).jpeg({ quality: 80 }).toBuffer());
    };
    const duoAds = await Promise.all(ads.map(async (a, i) => ({ name: `duo${i}`, bytes: await duotone(a.bytes!), truth: a.truth })));
    const stretched = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, denseTop: 0 });
    const plain = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, denseTop: 0, adGrey: false });
    try {
      await stretched.addMasters(masters);
      await plain.addMasters(masters);
      const a = await stretched.tieAds(duoAds);
      const b = await plain.tieAds(duoAds);
      let first = 0;
      let raised = 0;
      for (const [i, r] of a.entries()) {
        const truth = duoAds[i]!.truth;
        if (r.candidates[0]?.master === truth) first++;
        const cosA = r.candidates.find((c) => c.master === truth)?.cosine ?? -1;
        const cosB = b[i]!.candidates.find((c) => c.master === truth)?.cosine ?? -1;
        assert.ok(cosA >= cosB - 1e-6, 'a master keeps the better of its colour and grey similarities');
        if (cosA > cosB + 0.01) raised++;
      }
      assert.ok(raised >= 3, `the grey views raise the true master's similarity for most duotone ads (${raised} of ${duoAds.length})`);
      assert.ok(first >= 3, `most duotone ads rank their master first (${first} of ${duoAds.length})`);
    } finally {
      await stretched.close();
      await plain.close();
    }
  });

  it('lists both masters of a two-photo collage, each with its side of the ad', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    const half = async (m: AssetRef) => sharp(Buffer.from(await cut(Buffer.from(m.bytes!), false, false))).resize(400, 400, { fit: 'cover' }).toBuffer();
    const collage = new Uint8Array(
      await sharp({ create: { width: 820, height: 400, channels: 3, background: '#ffffff' } })
        .composite([{ input: await half(masters[0]!), left: 0, top: 0 }, { input: await half(masters[1]!), left: 420, top: 0 }])
        .jpeg({ quality: 85 })
        .toBuffer(),
    );
    const engine = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, multiMaster: true });
    const single = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0 });
    try {
      await engine.addMasters(masters);
      await single.addMasters(masters);
      const [r] = await engine.tieAds([{ name: 'collage', bytes: collage }]);
      const listed = r!.masters ?? [];
      const left = listed.find((m) => m.master === masters[0]!.name);
      const right = listed.find((m) => m.master === masters[1]!.name);
      assert.ok(left && right, `both masters listed: ${JSON.stringify(listed)}`);
      assert.ok(left.box[0] + left.box[2] / 2 < 410 && right.box[0] + right.box[2] / 2 > 410, `boxes on their sides: ${JSON.stringify(listed)}`);
      const [s] = await single.tieAds([{ name: 'collage', bytes: collage }]);
      assert.equal(s!.masters, undefined, 'without multiMaster, no list');
    } finally {
      await engine.close();
      await single.close();
    }
  });

  it('compares thin ads, and only them, with the masters\' strips', async (t) => {
    if (!requireOrSkip(t, missing)) return;
    const thinAds = await Promise.all(masters.slice(0, 4).map(async (m, i) => ({ name: `lb${i}`, bytes: await leaderboard(Buffer.from(m.bytes!)), truth: m.name })));
    // Without the ads' grey views, whose grey-to-grey similarity can also lift a leaderboard's master.
    const withStrips = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, adGrey: false });
    const without = new TieEngine({ embedder: emb, workers: 1, whitenDims: 0, verifyTop: 0, voteTop: 0, thinStrips: false, adGrey: false });
    try {
      await withStrips.addMasters(masters);
      await without.addMasters(masters);
      const a = await withStrips.tieAds([...thinAds, ...ads]);
      const b = await without.tieAds([...thinAds, ...ads]);
      let raised = 0;
      for (let i = 0; i < thinAds.length; i++) {
        const truth = thinAds[i]!.truth;
        assert.equal(a[i]!.candidates[0]?.master, truth, `${thinAds[i]!.name} ranked ${a[i]!.candidates.map((c) => c.master).join(', ')}`);
        const cosA = a[i]!.candidates.find((c) => c.master === truth)!.cosine;
        const cosB = b[i]!.candidates.find((c) => c.master === truth)!.cosine;
        assert.ok(cosA >= cosB - 1e-6, 'a master keeps the better of its view and strip similarities');
        if (cosA > cosB + 0.01) raised++;
      }
      assert.ok(raised >= 3, `the master's strip is the best match of most leaderboards (${raised} of ${thinAds.length})`);
      // Near-square ads never meet strips: the same candidates, the same similarities.
      for (let i = thinAds.length; i < a.length; i++) {
        assert.deepEqual(a[i]!.byCosine, b[i]!.byCosine);
      }
    } finally {
      await withStrips.close();
      await without.close();
    }
  });
});

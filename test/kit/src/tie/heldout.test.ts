import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { requireOrSkip } from '../services.js';
import { aspectClass, generateHeldoutDataset } from './heldout.js';
import { findSourcePhotos, SHORT_PACKAGES } from './sources.js';
import { setReport } from './evaluate.js';

test('family B: formats, truth, no-master ads, collages and sibling tiles are as documented', async (t) => {
  if (!requireOrSkip(t, findSourcePhotos(SHORT_PACKAGES).length < 4 && `photos of ${SHORT_PACKAGES.join(', ')} (apt-get install them)`)) return;
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'tie-heldout-'));
  try {
    const ds = await generateHeldoutDataset({ masters: 30, ads: 40, collages: 4, seed: 3, cacheDir, concurrency: 2 });
    assert.equal(ds.masters.length, 30);
    assert.equal(ds.ads.length, 44);
    const masterFiles = new Set(ds.masters.map((m) => m.file));
    for (const a of ds.ads) {
      const meta = await sharp(readFileSync(path.join(ds.adsDir, a.file))).metadata();
      assert.deepEqual([meta.width, meta.height], [a.width, a.height], a.file);
      const ratio = a.width / a.height;
      assert.ok(ratio <= 8.2 && ratio >= 1 / 4.2, `${a.file}: aspect ${ratio}`);
      assert.equal(a.aspect, aspectClass(a.width, a.height));
      for (const m of a.masters) {
        assert.ok(masterFiles.has(m.master), m.master);
        const [x, y, w, h] = m.box;
        assert.ok(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= a.width && y + h <= a.height, `${a.file}: box ${m.box.join(',')}`);
      }
      if (a.layout === 'collage') assert.ok(a.masters.length >= 2 && new Set(a.masters.map((m) => m.master)).size === a.masters.length);
      else if (a.master === null) assert.equal(a.masters.length, 0);
      else assert.equal(ds.truth.get(a.file), a.master);
    }
    assert.ok(ds.noMaster.size >= 1, 'some ads come from photos with no master');
    // No-master ads come from photos no master was cut from.
    const manifest = JSON.parse(readFileSync(path.join(ds.dir, 'manifest.json'), 'utf8')) as { photos: Array<{ id: string; noMaster: boolean }> };
    const orphanPhotos = new Set(manifest.photos.filter((p) => p.noMaster).map((p) => p.id));
    assert.ok(ds.masters.every((m) => !orphanPhotos.has(m.source)));
    // Masters of one photo overlap (siblings are hard negatives).
    const bySource = new Map<string, typeof ds.masters>();
    for (const m of ds.masters) bySource.set(m.source, [...(bySource.get(m.source) ?? []), m]);
    const overlapping = [...bySource.values()].filter((ms) => ms.length > 1 && ms.some((a, i) => ms.some((b, j) => i !== j && a.tile.left < b.tile.left + b.tile.width && b.tile.left < a.tile.left + a.tile.width && a.tile.top < b.tile.top + b.tile.height && b.tile.top < a.tile.top + a.tile.height)));
    assert.ok(overlapping.length > 0);
    // Same seed, same set (from the cache); the files are complete.
    const again = await generateHeldoutDataset({ masters: 30, ads: 40, collages: 4, seed: 3, cacheDir });
    assert.equal(again.generatedInS, 0);
    assert.deepEqual(again.ads, ds.ads);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('setReport: a no-master ad auto-tied is a wrong auto-tie; ads outside the truth are left out', () => {
  const truth = new Map([['a1', 'm1'], ['a2', 'm2']]);
  const r = setReport(
    [
      { ad: 'a1', masters: ['m1', 'm2'], autoTie: 'm1' },
      { ad: 'a2', masters: ['m1', 'm2'], autoTie: null },
      { ad: 'orphan', masters: ['m1'], autoTie: 'm1' },
      { ad: 'collage', masters: ['m9'], autoTie: 'm9' },
    ],
    truth,
    new Set(['orphan']),
  );
  assert.equal(r.ads, 2);
  assert.equal(r.recallAt1, 0.5);
  assert.equal(r.mAP, 0.75);
  assert.equal(r.autoTies, 2);
  assert.equal(r.autoTiesCorrect, 1);
  assert.equal(r.autoTiePrecision, 0.5);
  assert.equal(r.noMasterAutoTies, 1);
});

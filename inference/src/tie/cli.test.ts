import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { photosOrSkip } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { textSink as sink } from '@afterglow/testkit/streams';
import { runTieCommand } from './cli.js';
import { generateTieDataset } from '@afterglow/testkit/tie';

test('afterglow tie: one JSON line per ad, in the contract format, on a tiny generated set of real photos', async (t) => {
  if (!photosOrSkip(t, 6, ['python3-skimage'])) return;
  ensureTestModels(['mobilenet_v2']);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'afterglow-tie-cli-'));
  try {
    const ds = await generateTieDataset({ masters: 6, ads: 8, seed: 42, packages: ['python3-skimage'], cacheDir: path.join(tmp, 'data') });
    assert.equal(ds.masters.length, 6);
    assert.equal(ds.ads.length, 8);
    for (const m of ds.masters) assert.ok(m.source.package === 'python3-skimage' && m.source.license && m.source.path, 'provenance per master');
    const out = path.join(tmp, 'ties.jsonl');
    const stderr = sink();
    process.env.AFTERGLOW_MODELS_DIR = testModelsDir();
    const code = await runTieCommand(['--masters', ds.mastersDir, '--ads', ds.adsDir, '--out', out, '--cache', 'off', '--workers', '1'], { stderr });
    assert.equal(code, 0, stderr.text);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 8);
    const masters = new Set(ds.masters.map((m) => m.file));
    const adNames = lines.map((l) => {
      const r = JSON.parse(l) as { ad: string; candidates: Array<{ master: string; score: number }>; autoTie: string | null };
      assert.deepEqual(Object.keys(r), ['ad', 'candidates', 'autoTie']);
      assert.equal(r.candidates.length, 6, 'min(20, masters) candidates');
      for (const c of r.candidates) {
        assert.deepEqual(Object.keys(c), ['master', 'score']);
        assert.ok(masters.has(c.master));
        assert.ok(c.score >= 0 && c.score <= 1);
      }
      for (let i = 1; i < r.candidates.length; i++) assert.ok(r.candidates[i - 1]!.score >= r.candidates[i]!.score, 'ranked by score');
      assert.ok(r.autoTie === null || r.autoTie === r.candidates[0]!.master);
      return r.ad;
    });
    assert.deepEqual(adNames, [...adNames].sort(), 'ads in file-name order');
    assert.deepEqual(new Set(adNames), new Set(ds.ads.map((a) => a.file)));
    // Most ads of this easy set find their master first.
    const right = lines.filter((l) => {
      const r = JSON.parse(l) as { ad: string; candidates: Array<{ master: string }> };
      return r.candidates[0]!.master === ds.truth.get(r.ad);
    }).length;
    assert.ok(right >= 4, `${right}/8 ads ranked their master first`);
    assert.match(stderr.text, /ads x 6 masters/);
    // --details with --dense 2: the evidence per candidate, the dense check on the best two.
    const detailed = path.join(tmp, 'details.jsonl');
    assert.equal(await runTieCommand(['--masters', ds.mastersDir, '--ads', ds.adsDir, '--out', detailed, '--cache', 'off', '--workers', '1', '--dense', '2', '--details', '--multi', '--quiet'], { stderr: sink() }), 0);
    for (const l of readFileSync(detailed, 'utf8').trimEnd().split('\n')) {
      const r = JSON.parse(l) as { ad: string; candidates: Array<{ inliers: number; dense?: number }>; masters: Array<{ master: string; box: number[]; score: number }> };
      // --multi: every master found with its box inside the ad.
      const ad = ds.ads.find((a) => a.file === r.ad)!;
      assert.ok(Array.isArray(r.masters) && r.masters.length <= 5);
      for (const m of r.masters) {
        assert.ok(masters.has(m.master));
        const [x, y, w, h] = m.box as [number, number, number, number];
        assert.ok(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= ad.width + 1 && y + h <= ad.height + 1, `${r.ad}: box ${m.box.join(',')} in ${ad.width}x${ad.height}`);
      }
      assert.equal(r.candidates.filter((c) => typeof c.dense === 'number' && c.dense >= -1 && c.dense <= 1).length, 2);
      assert.ok(r.candidates.every((c) => typeof c.inliers === 'number'));
    }
    const bad = sink();
    assert.equal(await runTieCommand(['--masters', ds.mastersDir, '--ads', ds.adsDir, '--out', detailed, '--dense', '101'], { stderr: bad }), 2);
    assert.match(bad.text, /--dense must be an integer in \[0, 100\]/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('afterglow tie: usage errors exit 2', async () => {
  const stderr = sink();
  assert.equal(await runTieCommand(['--masters', '/nonexistent'], { stderr }), 2);
  assert.match(stderr.text, /--masters, --ads and --out are required/);
  assert.equal(await runTieCommand(['--bogus'], { stderr: sink() }), 2);
});

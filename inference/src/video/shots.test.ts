import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeClip, renderClip, scoreBoundaries, type GeneratedTransition } from '@afterglow/testkit/video';
import { DEFAULT_DECODER_OPTIONS, decodeAllFrames, fitInside } from './ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS, probeVideo } from './probe.js';
import { detectShots } from './shots.js';

const KINDS: GeneratedTransition[] = ['cut', 'fade', 'dissolve'];

describe('detectShots', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shots-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('finds hard cuts, fades through black and dissolves in encoded clips, not pans', async () => {
    let truth = 0;
    let detected = 0;
    let matched = 0;
    const byKind = new Map<GeneratedTransition, { truth: number; found: number }>();
    for (let c = 0; c < 6; c++) {
      // Six shots, one in three a fast pan; every kind of transition; three encoding qualities.
      const shots = Array.from({ length: 6 }, (_, i) => ({ frames: 30 + ((c * 7 + i * 13) % 40), seed: c * 100 + i + 1, pan: i % 3 === 2 ? 6 : 1 }));
      const transitions = Array.from({ length: 5 }, (_, i) => KINDS[(c + i) % 3]!);
      const clip = renderClip({ width: 256, height: 144, fps: 25, shots, transitions, transitionFrames: 12 });
      const file = path.join(dir, `c${c}.mp4`);
      const bytes = await encodeClip(clip, file, { crf: 20 + (c % 3) * 8 });
      const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
      const size = fitInside(probe.width, probe.height, 64);
      const { frames } = await decodeAllFrames(file, probe, size, DEFAULT_DECODER_OPTIONS);
      const found = detectShots({ ...size, frames }, { fps: probe.fps });
      assert.equal(found[0]!.startFrame, 0);
      assert.equal(found[found.length - 1]!.endFrame, frames.length);
      for (const s of found) {
        assert.ok(s.keyframes.every((k) => k >= s.startFrame && k < s.endFrame), `keyframes ${s.keyframes} in [${s.startFrame}, ${s.endFrame})`);
        assert.ok(s.keyframes[0] <= s.keyframes[1] && s.keyframes[1] <= s.keyframes[2]);
      }
      const starts = found.slice(1).map((s) => s.startFrame);
      const score = scoreBoundaries(clip.boundaries, starts);
      truth += score.truth;
      detected += score.detected;
      matched += score.matched;
      for (const b of clip.boundaries) {
        const k = byKind.get(b.transition) ?? { truth: 0, found: 0 };
        k.truth++;
        if (starts.some((s) => s >= b.from - 2 && s <= b.to + 2)) k.found++;
        byKind.set(b.transition, k);
      }
    }
    const precision = matched / detected;
    const recall = matched / truth;
    assert.ok(precision >= 0.95, `precision ${precision.toFixed(3)} (${matched}/${detected})`);
    assert.ok(recall >= 0.9, `recall ${recall.toFixed(3)} (${matched}/${truth})`);
    for (const [kind, k] of byKind) assert.ok(k.found / k.truth >= 0.8, `${kind}: ${k.found}/${k.truth}`);
  });

  it('keeps one shot for a single continuous scene, however fast it pans', () => {
    const clip = renderClip({ width: 128, height: 72, fps: 25, shots: [{ frames: 100, seed: 7, pan: 8 }], transitions: [] });
    const shots = detectShots({ width: 128, height: 72, frames: clip.frames }, { fps: 25 });
    assert.equal(shots.length, 1);
    assert.deepEqual([shots[0]!.start, shots[0]!.end], [0, 4]);
  });

  it('takes no keyframe from the black of a fade', () => {
    const clip = renderClip({ width: 128, height: 72, fps: 25, shots: [{ frames: 40, seed: 1 }, { frames: 40, seed: 2 }], transitions: ['fade'], transitionFrames: 10 });
    const shots = detectShots({ width: 128, height: 72, frames: clip.frames }, { fps: 25 });
    assert.equal(shots.length, 2);
    assert.equal(shots[1]!.transition, 'fade');
    const [b] = clip.boundaries;
    for (const k of shots.flatMap((s) => s.keyframes)) assert.ok(k < b!.from || k >= b!.to, `keyframe ${k} inside the fade [${b!.from}, ${b!.to})`);
  });

  // Built from family A's scenes by hand: white frames are not in its generator.
  const W = 128;
  const H = 72;
  const twoShots = () => renderClip({ width: W, height: H, fps: 25, shots: [{ frames: 40, seed: 11 }, { frames: 40, seed: 12 }], transitions: ['cut'] }).frames;
  const towards = (f: Uint8Array, level: number, t: number) => f.map((v) => Math.round(v * (1 - t) + level * t));

  it('finds a fade through white and a flash frame as one boundary each, with no keyframe from the white', () => {
    const [a, b] = [twoShots().slice(0, 40), twoShots().slice(40)];
    const fade = [...a, ...[1, 2, 3, 4, 5, 6].map((j) => towards(a[39]!, 255, j / 6)), ...[0, 1, 2, 3, 4, 5].map((j) => towards(b[0]!, 255, 1 - j / 6)), ...b];
    const shots = detectShots({ width: W, height: H, frames: fade }, { fps: 25 });
    assert.deepEqual(shots.map((s) => s.transition), ['start', 'fade']);
    assert.ok(shots[1]!.startFrame >= 40 && shots[1]!.startFrame <= 52, `boundary ${shots[1]!.startFrame} inside the fade [40, 52)`);
    for (const k of shots.flatMap((s) => s.keyframes)) assert.ok(k < 44 || k >= 50, `keyframe ${k} from the white`);
    const flash = [...a, new Uint8Array(W * H * 3).fill(255), ...b];
    const withFlash = detectShots({ width: W, height: H, frames: flash }, { fps: 25 });
    assert.equal(withFlash.length, 2, JSON.stringify(withFlash.map((s) => s.startFrame)));
    assert.ok(Math.abs(withFlash[1]!.startFrame - 40) <= 1);
  });
});

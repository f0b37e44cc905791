import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { encodeClip, renderClip } from '@afterglow/testkit/video';
import { analyzeVideo, capShots } from './analyze.js';
import { DEFAULT_DECODER_OPTIONS } from './ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS } from './probe.js';
import type { Shot } from './shots.js';

describe('analyzeVideo', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'analyze-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('gives the shots with times, their keyframes, a poster, a thumbnail and a storyboard of one tile per shot', async () => {
    const clip = renderClip({ width: 320, height: 180, fps: 25, shots: [{ frames: 40, seed: 1 }, { frames: 50, seed: 2 }, { frames: 35, seed: 3 }], transitions: ['cut', 'fade'], transitionFrames: 10 });
    const bytes = await encodeClip(clip, path.join(dir, 'ad.mp4'), { crf: 20, audio: true });
    const a = await analyzeVideo(bytes, DEFAULT_VIDEO_LIMITS, DEFAULT_DECODER_OPTIONS);
    assert.equal(a.probe.audio, true);
    assert.equal(a.probe.frames, clip.frames.length);
    assert.equal(a.shots.length, 3);
    assert.deepEqual(a.shots.map((s) => s.transition), ['start', 'cut', 'fade']);
    assert.equal(a.shots[1]!.start, 40 / 25);
    assert.equal(a.shots[2]!.end, clip.frames.length / 25);
    const poster = await sharp(a.poster).metadata();
    assert.deepEqual([poster.format, poster.width, poster.height], ['webp', 320, 180]);
    const thumb = await sharp(a.thumbnail).metadata();
    assert.deepEqual([thumb.width, thumb.height], [256, 144]);
    const board = await sharp(a.storyboard).metadata();
    assert.deepEqual([board.width, board.height], [3 * 160, 90]);
    // Keyframes are real frames of their shot: the middle one looks like the rendered frame.
    for (const s of a.shots) {
      const k = s.keyframes[1];
      const { data, info } = await sharp(s.keyframeImages[1]).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height], [320, 180]);
      const truth = clip.frames[k]!;
      let diff = 0;
      for (let i = 0; i < truth.length; i++) diff += Math.abs(truth[i]! - data[i]!);
      assert.ok(diff / truth.length < 12, `shot ${s.index} keyframe ${k}: mean difference ${(diff / truth.length).toFixed(1)}`);
    }
  });

  it('merges the shortest shots when there are too many', () => {
    const shot = (i: number, len: number, at: number): Shot => ({ index: i, startFrame: at, endFrame: at + len, start: at / 10, end: (at + len) / 10, transition: i ? 'cut' : 'start', keyframes: [at, at + (len >> 1), at + len - 1] });
    const lens = [10, 2, 10, 3, 10];
    let at = 0;
    const shots = lens.map((len, i) => {
      const s = shot(i, len, at);
      at += len;
      return s;
    });
    const capped = capShots(shots, 3);
    assert.deepEqual(capped.map((s) => [s.startFrame, s.endFrame]), [[0, 12], [12, 25], [25, 35]]);
    assert.deepEqual(capped.map((s) => s.index), [0, 1, 2]);
  });
});

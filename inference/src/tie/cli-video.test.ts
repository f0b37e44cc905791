/**
 * `afterglow tie` with videos among the masters and the ads (the evaluation contract): real photos
 * (python3-skimage), MobileNetV2, ORB, the packaged ffmpeg; videos rendered here as Ken Burns moves.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { findSamplePhotos, photosOrSkip } from '@afterglow/testkit/images';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/models';
import { textSink as sink } from '@afterglow/testkit/streams';
import { encodeClip, kenBurns } from '@afterglow/testkit/video';
import { runTieCommand } from './cli.js';

const W = 320;
const H = 180;

test('afterglow tie: a video ad gets segments (its shots) tied to photo masters and to the shot of master footage they came from', async (t) => {
  if (!photosOrSkip(t, 6, ['python3-skimage'])) return;
  ensureTestModels(['mobilenet_v2']);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'afterglow-tie-video-'));
  try {
    const found = findSamplePhotos(['python3-skimage']);
    const photo = async (name: string) => {
      const p = found.find((x) => path.basename(x.path).startsWith(`${name}.`))!;
      const { data, info } = await sharp(p.path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      return { file: p.path, data: new Uint8Array(data), width: info.width, height: info.height };
    };
    const [astronaut, coffee, retina, hubble, moto] = await Promise.all(['astronaut', 'coffee', 'retina', 'hubble_deep_field', 'motorcycle_left'].map(photo));
    const crop = (p: { width: number; height: number }, l: number, tp: number, w: number): [number, number, number, number] => [l, tp, w, (w * p.width * H) / (W * p.height)];
    const masters = path.join(tmp, 'masters');
    const ads = path.join(tmp, 'ads');
    mkdirSync(masters);
    mkdirSync(ads);
    copyFileSync(astronaut!.file, path.join(masters, 'astronaut.png'));
    copyFileSync(coffee!.file, path.join(masters, 'coffee.png'));
    const footage = [
      ...kenBurns({ photo: retina!, frames: 40, from: crop(retina!, 0.05, 0.1, 0.85), to: crop(retina!, 0.1, 0.15, 0.7) }, W, H),
      ...kenBurns({ photo: hubble!, frames: 40, from: crop(hubble!, 0.0, 0.05, 0.9), to: crop(hubble!, 0.05, 0.1, 0.8) }, W, H),
    ];
    await encodeClip({ width: W, height: H, fps: 25, frames: footage }, path.join(masters, 'footage.mp4'), { crf: 20 });
    // The ad: a tighter move inside the footage's second shot, the coffee photo, then B-roll.
    const frames = [
      ...kenBurns({ photo: hubble!, frames: 30, from: crop(hubble!, 0.1, 0.1, 0.7), to: crop(hubble!, 0.15, 0.15, 0.6) }, W, H),
      ...kenBurns({ photo: coffee!, frames: 30, from: crop(coffee!, 0.0, 0.1, 0.9), to: crop(coffee!, 0.1, 0.15, 0.75) }, W, H),
      ...kenBurns({ photo: moto!, frames: 25, from: crop(moto!, 0.0, 0.0, 1), to: crop(moto!, 0.1, 0.05, 0.85) }, W, H),
    ];
    await encodeClip({ width: W, height: H, fps: 25, frames }, path.join(ads, 'spot.mp4'), { crf: 30 });
    const still = await sharp(astronaut!.file).extract({ left: 60, top: 40, width: 380, height: 380 }).jpeg({ quality: 85 }).toBuffer();
    writeFileSync(path.join(ads, 'banner.jpg'), still);

    const out = path.join(tmp, 'ties.jsonl');
    const stderr = sink();
    process.env.AFTERGLOW_MODELS_DIR = testModelsDir();
    assert.equal(await runTieCommand(['--masters', masters, '--ads', ads, '--out', out, '--cache', 'off', '--workers', '1', '--quiet'], { stderr }), 0, stderr.text);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    assert.deepEqual(lines.map((l) => l.ad), ['banner.jpg', 'spot.mp4']);
    const names = new Set(['astronaut.png', 'coffee.png', 'footage.mp4']);

    const [banner, spot] = lines;
    assert.deepEqual(Object.keys(banner!), ['ad', 'candidates', 'autoTie'], 'an image ad keeps its line');
    assert.equal(banner!.candidates[0].master, 'astronaut.png');
    assert.ok(banner!.candidates.every((c: { master: string }) => names.has(c.master)), 'video masters appear once, by file');

    assert.deepEqual(Object.keys(spot!), ['ad', 'candidates', 'autoTie', 'segments']);
    const segments = spot!.segments as Array<{ start: number; end: number; candidates: Array<{ master: string; score: number }>; autoTie: string | null }>;
    assert.equal(segments.length, 3);
    assert.equal(segments[0]!.start, 0);
    for (let i = 1; i < segments.length; i++) assert.equal(segments[i]!.start, segments[i - 1]!.end, 'segments cover the video in order');
    assert.equal(segments[2]!.end, 85 / 25);
    assert.equal(segments[0]!.candidates[0]!.master, 'footage.mp4', JSON.stringify(segments[0]!.candidates));
    assert.equal(segments[1]!.candidates[0]!.master, 'coffee.png', JSON.stringify(segments[1]!.candidates));
    assert.equal(segments[2]!.autoTie, null, 'B-roll ties to nothing');
    assert.deepEqual(spot!.candidates.slice(0, 2).map((c: { master: string }) => c.master).sort(), ['coffee.png', 'footage.mp4']);
    assert.ok(spot!.candidates.every((c: { master: string }) => names.has(c.master)));
    assert.match(stderr.text, /2 ads x 4 master views \(1 video master\(s\) as one view a shot\)/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

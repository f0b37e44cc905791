import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeClip, lavfiClip } from '@afterglow/testkit/video';
import { DEFAULT_DECODER_OPTIONS, decodeAllFrames, decodeFramesAt, fitInside, packagedFfmpeg, runFfmpeg } from './ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS, probeVideo } from './probe.js';
import { VideoRejectedError } from './types.js';

const rejectedWith = (reason: string) => (err: unknown) => {
  assert.ok(err instanceof VideoRejectedError, `expected a VideoRejectedError, got ${String(err)}`);
  assert.equal(err.reason, reason, err.message);
  return true;
};

/** Solid frames of one colour each: which frame came back is readable from its pixels. */
function colourFrames(n: number, width: number, height: number): Uint8Array[] {
  return Array.from({ length: n }, (_, k) => {
    const f = new Uint8Array(width * height * 3);
    for (let i = 0; i < f.length; i += 3) {
      f[i] = (k * 40) % 256;
      f[i + 1] = 128;
      f[i + 2] = 255 - ((k * 40) % 256);
    }
    return f;
  });
}

describe('the packaged ffmpeg decoder', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ffmpeg-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('ships with the package (no system ffmpeg) and decodes H.264, H.265, VP9 and AV1', async () => {
    const bin = packagedFfmpeg();
    assert.ok(bin, '@ffmpeg-installer/linux-x64 must be installed (npm ci on linux x64)');
    assert.match(bin, /node_modules\/@ffmpeg-installer\/linux-x64\/ffmpeg$/);
    const { stdout } = await runFfmpeg(['-decoders'], { ...DEFAULT_DECODER_OPTIONS, maxStdout: 1 << 20 });
    const decoders = new Set(
      stdout
        .toString()
        .split('\n')
        .map((l) => /^\s*V\S*\s+(\S+)/.exec(l)?.[1])
        .filter(Boolean),
    );
    for (const d of ['h264', 'hevc', 'vp9', 'vp8', 'libaom-av1']) assert.ok(decoders.has(d), `decoder ${d}`);
  });

  it('decodes every frame, and the frames asked for by index', async () => {
    const frames = colourFrames(6, 64, 48);
    const file = path.join(dir, 'colours.mp4');
    const bytes = await encodeClip({ width: 64, height: 48, fps: 10, frames }, file, { crf: 10 });
    const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
    const size = fitInside(64, 48, 32);
    assert.deepEqual(size, { width: 32, height: 24 });
    const all = await decodeAllFrames(file, probe, size, DEFAULT_DECODER_OPTIONS);
    assert.equal(all.frames.length, 6);
    const red = (f: Uint8Array) => f[3 * (12 * 32 + 16)]!;
    all.frames.forEach((f, k) => assert.ok(Math.abs(red(f) - k * 40) < 12, `frame ${k}: red ${red(f)}`));
    const picked = await decodeFramesAt(file, probe, [4, 1, 4], size, DEFAULT_DECODER_OPTIONS);
    assert.deepEqual(
      picked.map((f) => Math.round(red(f) / 40)),
      [4, 1, 4],
    );
  });

  it('decodes AV1 and VP9 in WebM and H.265 in MP4', async () => {
    for (const codec of ['av1', 'vp9', 'hevc'] as const) {
      const file = path.join(dir, `${codec}.video`);
      const bytes = await lavfiClip(file, { width: 64, height: 64, fps: 10, seconds: 0.5, codec });
      const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
      assert.equal(probe.codec, codec);
      const all = await decodeAllFrames(file, probe, { width: 32, height: 32 }, DEFAULT_DECODER_OPTIONS);
      assert.equal(all.frames.length, 5, codec);
    }
  });

  it('kills a decode past its time limit and one past its memory limit', async () => {
    const file = path.join(dir, 'long.mp4');
    const bytes = await lavfiClip(file, { width: 320, height: 240, fps: 25, seconds: 4 });
    const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
    await assert.rejects(decodeAllFrames(file, probe, { width: 32, height: 24 }, { ...DEFAULT_DECODER_OPTIONS, timeoutMs: 1 }), rejectedWith('decode_timeout'));
    await assert.rejects(decodeAllFrames(file, probe, { width: 32, height: 24 }, { ...DEFAULT_DECODER_OPTIONS, memoryMb: 64 }), rejectedWith('decode_failed'));
  });

  it('refuses a stream whose frames cannot all be decoded (media data overwritten)', async () => {
    const file = path.join(dir, 'broken.mp4');
    const bytes = await lavfiClip(file, { width: 160, height: 96, fps: 25, seconds: 2 });
    const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
    const mdat = bytes.indexOf('mdat', 0, 'latin1');
    const { writeFile } = await import('node:fs/promises');
    // Garbage over the media data: the container still tiles, the frames are not there.
    bytes.fill(0xff, mdat + 4, mdat + 4 + Math.floor((bytes.byteLength - mdat) * 0.6));
    await writeFile(file, bytes);
    await assert.rejects(decodeAllFrames(file, probe, { width: 32, height: 24 }, DEFAULT_DECODER_OPTIONS), (err: unknown) => {
      assert.ok(err instanceof VideoRejectedError);
      assert.ok(['truncated', 'decode_failed'].includes(err.reason), err.reason);
      return true;
    });
  });
});

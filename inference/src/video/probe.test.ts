import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ffmpeg, lavfiClip } from '@afterglow/testkit/video';
import { DEFAULT_VIDEO_LIMITS, MAX_METADATA_BYTES, probeVideo, sniffVideo } from './probe.js';
import { VideoRejectedError, type VideoLimits } from './types.js';

const refused = (fn: () => unknown, reason: string) =>
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof VideoRejectedError, `expected a VideoRejectedError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    return true;
  });

const limits = (over: Partial<VideoLimits> = {}): VideoLimits => ({ ...DEFAULT_VIDEO_LIMITS, ...over });

const u32 = (b: Uint8Array, i: number) => new DataView(b.buffer, b.byteOffset).getUint32(i);
const setU32 = (b: Uint8Array, i: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(i, v);
const indexOf = (b: Uint8Array, s: string, from = 0) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).indexOf(s, from, 'latin1');
const box = (type: string, payload: Uint8Array) => {
  const out = Buffer.alloc(8 + payload.byteLength);
  out.writeUInt32BE(out.byteLength, 0);
  out.write(type, 4, 'latin1');
  out.set(payload, 8);
  return out;
};
/** A zip archive's local header and end-of-central-directory record: what a polyglot hides. */
const ZIP = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(26), Buffer.from('payload.html<script>alert(1)</script>'), Buffer.from('PK\x05\x06', 'latin1'), Buffer.alloc(18)]);

describe('probeVideo', () => {
  let dir: string;
  let mp4: Buffer;
  let mov: Buffer;
  let webm: Buffer;
  let hevc: Buffer;
  let withAudio: Buffer;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'probe-test-'));
    const clip = { width: 160, height: 96, fps: 25, seconds: 1 };
    [mp4, mov, webm, hevc, withAudio] = await Promise.all([
      lavfiClip(path.join(dir, 'a.mp4'), clip),
      lavfiClip(path.join(dir, 'a.mov'), { ...clip, container: 'mov' }),
      lavfiClip(path.join(dir, 'a.webm'), { ...clip, codec: 'vp9' }),
      lavfiClip(path.join(dir, 'h.mp4'), { ...clip, codec: 'hevc' }),
      lavfiClip(path.join(dir, 's.mp4'), { ...clip, audio: true }),
    ]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads container, codec, size, duration, frame count, fps and audio from the container tables', () => {
    const p = probeVideo(mp4, limits());
    assert.deepEqual({ ...p, bytes: 0 }, { container: 'mp4', codec: 'h264', width: 160, height: 96, durationS: 1, frames: 25, fps: 25, audio: false, bytes: 0 });
    assert.equal(probeVideo(mov, limits()).container, 'mov');
    const w = probeVideo(webm, limits());
    assert.equal(w.container, 'webm');
    assert.equal(w.codec, 'vp9');
    assert.equal(w.frames, 25);
    assert.ok(Math.abs(w.durationS - 1) < 0.05, String(w.durationS));
    assert.equal(probeVideo(hevc, limits()).codec, 'hevc');
    assert.equal(probeVideo(withAudio, limits()).audio, true);
  });

  it('reads a streamed WebM (unknown sizes, no duration: what browsers record)', async () => {
    const streamed = await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x96:rate=25:duration=2', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '0', '-crf', '40', '-f', 'webm', 'pipe:1']);
    // The segment's size field is "unknown" (all ones): the muxer could not seek back to write it.
    const segment = streamed.indexOf(Buffer.from([0x18, 0x53, 0x80, 0x67]));
    assert.equal(streamed[segment + 4], 0x01);
    assert.ok(streamed.subarray(segment + 5, segment + 12).every((x) => x === 0xff));
    const p = probeVideo(streamed, limits());
    assert.deepEqual([p.container, p.codec, p.frames, p.fps, p.durationS], ['webm', 'vp9', 50, 25, 2]);
  });

  it('refuses what is not an accepted video: images, Matroska, other ISO media, empty, too many bytes', () => {
    refused(() => probeVideo(new Uint8Array(0), limits()), 'empty');
    refused(() => probeVideo(Buffer.from('\x89PNG\r\n\x1a\n0000', 'latin1'), limits()), 'unknown_format');
    const avif = Buffer.from(mp4);
    avif.write('avif', 8, 'latin1');
    assert.equal(sniffVideo(avif), undefined);
    refused(() => probeVideo(mp4, limits({ maxBytes: mp4.byteLength - 1 })), 'too_many_bytes');
    const threegp = Buffer.from(mp4);
    threegp.write('3gp4', 8, 'latin1');
    for (let i = 16; i < u32(threegp, 0); i += 4) threegp.write('3gp4', i, 'latin1');
    refused(() => probeVideo(threegp, limits()), 'unsupported_container');
  });

  it('refuses Matroska that is not WebM', () => {
    const doc = indexOf(webm, 'webm');
    assert.ok(doc > 0);
    // DocType "webm" -> "mkvx": same length, every size stays valid, another document type.
    const mkv = Buffer.from(webm);
    mkv.write('mkvx', doc, 'latin1');
    refused(() => probeVideo(mkv, limits()), 'unsupported_container');
  });

  it('refuses a truncated upload (MP4 and WebM), wherever it was cut', () => {
    for (const cut of [0.3, 0.6, 0.95]) {
      refused(() => probeVideo(mp4.subarray(0, Math.floor(mp4.byteLength * cut)), limits()), 'truncated');
      refused(() => probeVideo(webm.subarray(0, Math.floor(webm.byteLength * cut)), limits()), 'truncated');
    }
  });

  it('refuses polyglots: an archive after the video, in a padding box, or in media data no sample uses', () => {
    refused(() => probeVideo(Buffer.concat([mp4, ZIP]), limits()), 'trailing_data');
    refused(() => probeVideo(Buffer.concat([webm, ZIP]), limits()), 'trailing_data');
    refused(() => probeVideo(Buffer.concat([mp4, box('free', Buffer.concat([Buffer.alloc(MAX_METADATA_BYTES), ZIP]))]), limits()), 'embedded_payload');
    // Grow the last mdat by an archive: a valid box layout, but bytes no sample references.
    const mdat = indexOf(mp4, 'mdat') - 4;
    const size = u32(mp4, mdat);
    assert.ok(mdat > 0 && mdat + size <= mp4.byteLength, 'mdat found');
    const extra = Buffer.concat([Buffer.alloc(2 * 1024 * 1024), ZIP]);
    const grown = Buffer.concat([mp4.subarray(0, mdat + size), extra, mp4.subarray(mdat + size)]);
    setU32(grown, mdat, size + extra.byteLength);
    // The chunk offsets after the grown mdat would move too; the probe refuses before reading them.
    refused(() => probeVideo(grown, limits()), 'embedded_payload');
  });

  it('refuses absurd dimensions from the header, before any decoder allocates them', () => {
    const huge = Buffer.from(mp4);
    const entry = indexOf(huge, 'avc1', indexOf(huge, 'stsd')); // the sample entry, not the ftyp brand
    huge.writeUInt16BE(30_000, entry + 4 + 24);
    huge.writeUInt16BE(30_000, entry + 4 + 26);
    refused(() => probeVideo(huge, limits()), 'too_large_side');
    refused(() => probeVideo(mp4, limits({ maxPixels: 160 * 96 - 1 })), 'too_many_pixels');
    refused(() => probeVideo(mp4, limits({ minSide: 100 })), 'too_small');
  });

  it('refuses a frame-count bomb, too long and too fast videos, and codecs off the allow-list', async () => {
    const bomb = await lavfiClip(path.join(dir, 'bomb.mp4'), { width: 32, height: 32, fps: 120, seconds: 30, crf: 51 });
    assert.ok(bomb.byteLength < 200_000, `a small file (${bomb.byteLength} bytes)`);
    refused(() => probeVideo(bomb, limits({ maxFrames: 1000 })), 'too_many_frames');
    refused(() => probeVideo(bomb, limits({ maxFps: 60 })), 'too_high_fps');
    refused(() => probeVideo(mp4, limits({ maxDurationS: 0.5 })), 'too_long');
    refused(() => probeVideo(hevc, limits({ codecs: ['h264', 'vp9'] })), 'unsupported_codec');
    // A header that claims millions of samples without the table to back them.
    const claims = Buffer.from(mp4);
    const stsz = indexOf(claims, 'stsz');
    setU32(claims, stsz + 12, 10_000_000);
    refused(() => probeVideo(claims, limits()), 'corrupt');
  });

  it('refuses an MP4 with a codec off the list (MPEG-4 Part 2)', async () => {
    const file = path.join(dir, 'mp4v.mp4');
    await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x96:rate=25:duration=1', '-c:v', 'mpeg4', '-an', '-f', 'mp4', `file:${file}`]);
    const bytes = await readFile(file);
    refused(() => probeVideo(bytes, limits()), 'unsupported_codec');
  });
});

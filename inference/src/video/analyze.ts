/**
 * One uploaded video -> everything the registry stores about it: probe (container tables only) ->
 * decode every frame small, in a child process -> shots -> decode the keyframes (first/middle/last
 * of each shot; the poster is one) in a second child process -> encoded images: the poster, a
 * 256-px thumbnail of it, a storyboard (one tile per shot, in order) and each shot's keyframes as
 * JPEG (what the tie models embed). Nothing here blocks the event loop for long: decodes are child
 * processes, shot detection a worker thread, image encodes sharp (libvips threads).
 */
import sharp from 'sharp';
import { decodeAllFrames, decodeFramesAt, fitInside, withTempVideo, type DecoderOptions, type FrameSize } from './ffmpeg.js';
import { probeVideo } from './probe.js';
import type { Shot } from './shots.js';
import { detectShotsInWorker } from './shots-thread.js';
import type { ProbedVideo, VideoLimits } from './types.js';

/** Longest side of the frames the shot detector reads. */
export const ANALYSIS_SIDE = 64;
/** Longest side of the keyframes (embedded by the tie models, shown in review). */
export const KEYFRAME_SIDE = 512;
export const THUMBNAIL_SIDE = 256;
export const STORYBOARD_TILE = 160;
export const STORYBOARD_COLUMNS = 8;
/** More shots than this merge (shortest into a neighbour): bounds keyframe memory and the storyboard. */
export const MAX_SHOTS = 120;

export interface AnalyzedShot extends Shot {
  /** The three keyframes as JPEG (KEYFRAME_SIDE), in keyframe order. */
  keyframeImages: [Buffer, Buffer, Buffer];
}

export interface VideoAnalysis {
  probe: ProbedVideo;
  shots: AnalyzedShot[];
  /** Frame shown before playback (the first shot's middle keyframe, KEYFRAME_SIDE), WebP. */
  poster: Buffer;
  posterFrame: number;
  thumbnail: Buffer;
  storyboard: Buffer;
  keyframeSize: FrameSize;
}

/** Merges the shortest shot into its shorter neighbour until at most `max` remain. */
export function capShots(shots: Shot[], max: number): Shot[] {
  const out = shots.map((s) => ({ ...s }));
  while (out.length > max) {
    let k = 0;
    for (let i = 1; i < out.length; i++) if (out[i]!.endFrame - out[i]!.startFrame < out[k]!.endFrame - out[k]!.startFrame) k = i;
    const into = k === 0 ? 1 : k === out.length - 1 ? k - 1 : out[k - 1]!.endFrame - out[k - 1]!.startFrame <= out[k + 1]!.endFrame - out[k + 1]!.startFrame ? k - 1 : k + 1;
    const [a, b] = into < k ? [out[into]!, out[k]!] : [out[k]!, out[into]!];
    const merged: Shot = { ...a, endFrame: b.endFrame, end: b.end, keyframes: [a.keyframes[0], into < k ? a.keyframes[1] : b.keyframes[1], b.keyframes[2]] };
    out.splice(Math.min(k, into), 2, merged);
  }
  return out.map((s, index) => ({ ...s, index }));
}

const raw = (_data: Uint8Array, size: FrameSize) => ({ raw: { width: size.width, height: size.height, channels: 3 as const } });

export async function analyzeVideo(bytes: Uint8Array, limits: VideoLimits, decoder: DecoderOptions): Promise<VideoAnalysis> {
  const probe = probeVideo(bytes, limits);
  return withTempVideo(bytes, async (file) => {
    const small = fitInside(probe.width, probe.height, ANALYSIS_SIDE);
    const { frames, pixels } = await decodeAllFrames(file, probe, small, decoder);
    const fps = probe.fps > 0 ? probe.fps : frames.length / probe.durationS;
    const shots = capShots(await detectShotsInWorker({ ...small, pixels }, { fps }), MAX_SHOTS);

    const keyframeSize = fitInside(probe.width, probe.height, KEYFRAME_SIDE);
    const wanted = shots.flatMap((s) => s.keyframes);
    const posterFrame = shots[0]!.keyframes[1];
    // One more decode for the keyframes; the poster is one of them (a third decode at a larger size
    // cost as much as the other two on H.264, more on VP9).
    const keyframes = await decodeFramesAt(file, probe, wanted, keyframeSize, decoder);
    const posterPixels = keyframes[1];
    const posterSize = keyframeSize;
    const jpeg = (data: Uint8Array) => sharp(data, raw(data, keyframeSize)).jpeg({ quality: 92 }).toBuffer();
    const analyzed: AnalyzedShot[] = await Promise.all(
      shots.map(async (s, i) => ({ ...s, keyframeImages: (await Promise.all([0, 1, 2].map((k) => jpeg(keyframes[3 * i + k]!)))) as [Buffer, Buffer, Buffer] })),
    );
    const posterImage = sharp(posterPixels!, raw(posterPixels!, posterSize));
    const [poster, thumbnail, storyboard] = await Promise.all([
      posterImage.clone().webp({ quality: 85 }).toBuffer(),
      posterImage.clone().resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer(),
      storyboardOf(shots.map((_shot, i) => keyframes[3 * i + 1]!), keyframeSize),
    ]);
    return { probe, shots: analyzed, poster, posterFrame, thumbnail, storyboard, keyframeSize };
  });
}

/** One tile per shot (its middle keyframe), left to right, top to bottom. */
async function storyboardOf(middles: Uint8Array[], size: FrameSize): Promise<Buffer> {
  const tile = fitInside(size.width, size.height, STORYBOARD_TILE);
  const tiles = await Promise.all(middles.map((m) => sharp(m, raw(m, size)).resize(tile.width, tile.height, { fit: 'fill' }).png().toBuffer()));
  const columns = Math.min(STORYBOARD_COLUMNS, tiles.length);
  const rows = Math.ceil(tiles.length / columns);
  return sharp({ create: { width: columns * tile.width, height: rows * tile.height, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite(tiles.map((input, i) => ({ input, left: (i % columns) * tile.width, top: Math.floor(i / columns) * tile.height })))
    .webp({ quality: 80 })
    .toBuffer();
}

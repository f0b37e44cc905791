/**
 * The video decoder: the static ffmpeg that the `@ffmpeg-installer/linux-x64` package ships inside its
 * npm tarball (nothing is downloaded at install or run), run as a child process:
 *
 * - fixed arguments only: the input is a file this process wrote under a fresh private temp dir, the
 *   demuxer is forced from our own probe (`-f mov|matroska`), protocols are limited to `file`, and
 *   nothing a client sent (names, metadata) ever reaches the command line;
 * - a wall-clock limit (SIGKILL past it: `decode_timeout`) and an address-space limit (`ulimit -v`
 *   through /bin/sh with the limit as a positional argument, then `exec`), plus ffmpeg's own
 *   `-max_alloc` per allocation;
 * - output read from a pipe with a byte cap, so the event loop only ever handles chunks.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { VideoDecoderUnavailableError, VideoRejectedError, type ProbedVideo } from './types.js';

export interface DecoderOptions {
  /** Path of the ffmpeg executable; default: the packaged one. */
  ffmpegPath?: string | undefined;
  timeoutMs: number;
  memoryMb: number;
  /** 0 = ffmpeg's choice. */
  threads: number;
}

export const DEFAULT_DECODER_OPTIONS: Readonly<DecoderOptions> = Object.freeze({ timeoutMs: 120_000, memoryMb: 2048, threads: 1 });

/** The packaged ffmpeg, or undefined when the optional package is not installed (another platform). */
export function packagedFfmpeg(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('@ffmpeg-installer/linux-x64/package.json');
    const bin = path.join(path.dirname(pkg), 'ffmpeg');
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

export function resolveFfmpeg(configured?: string): string {
  const bin = configured ?? packagedFfmpeg();
  if (!bin) throw new VideoDecoderUnavailableError('no ffmpeg: @ffmpeg-installer/linux-x64 is not installed (linux x64 only) and VIDEO_FFMPEG_PATH is not set');
  return bin;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

/** Keeps the last bytes of stderr only: a hostile file can make ffmpeg log a line per frame. */
const STDERR_KEEP = 8192;

/**
 * Runs ffmpeg with `args` (all chosen by this module) under the limits; resolves with stdout (at most
 * `maxStdout` bytes, more is `decode_failed`), rejects with `decode_timeout` / `decode_failed`.
 */
export function runFfmpeg(args: readonly string[], options: DecoderOptions & { maxStdout: number; onChunk?: (chunk: Buffer) => void }): Promise<RunResult> {
  const bin = resolveFfmpeg(options.ffmpegPath);
  const kb = String(Math.max(64, options.memoryMb) * 1024);
  // $1 is the limit, the rest is the command: no string is ever parsed by the shell.
  const child = spawn('/bin/sh', ['-c', 'ulimit -v "$1" || exit 126; shift; exec "$@"', 'sh', kb, bin, '-nostdin', '-hide_banner', '-loglevel', 'error', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  return new Promise<RunResult>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let failure: Error | undefined;
    const timer = setTimeout(() => {
      failure ??= new VideoRejectedError('decode_timeout', `decoding took over ${options.timeoutMs} ms`);
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > options.maxStdout) {
        failure ??= new VideoRejectedError('decode_failed', `the decoder produced over ${options.maxStdout} bytes (more frames than the container declares)`);
        child.kill('SIGKILL');
        return;
      }
      if (options.onChunk) options.onChunk(chunk);
      else chunks.push(chunk);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      stderr = (stderr + s).slice(-STDERR_KEEP);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new VideoDecoderUnavailableError(`cannot run ffmpeg (${bin}): ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) return reject(failure);
      if (code === 126 || code === 127) return reject(new VideoDecoderUnavailableError(`cannot run ffmpeg (${bin}): exit ${code}`));
      if (code !== 0) {
        const last = stderr.trim().split('\n').slice(-2).join(' | ').slice(0, 300);
        return reject(new VideoRejectedError('decode_failed', `decoder ${signal ? `killed by ${signal}` : `exit ${code}`}${last ? `: ${last}` : ''}`));
      }
      resolve({ stdout: Buffer.concat(chunks), stderr });
    });
  });
}

/** The upload as a file of ours (ffmpeg needs to seek in an MP4 whose index is at the end). */
export async function withTempVideo<T>(bytes: Uint8Array, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'afterglow-video-'));
  try {
    const file = path.join(dir, 'input');
    await writeFile(file, bytes, { mode: 0o600 });
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Input arguments: the demuxer our probe identified, local files only, no external references. */
export function inputArgs(probe: Pick<ProbedVideo, 'container'>, file: string, threads: number): string[] {
  const demuxer = probe.container === 'webm' ? 'matroska' : 'mov';
  return ['-max_alloc', String(512 * 1024 * 1024), '-protocol_whitelist', 'file', '-threads', String(threads), '-noautorotate', '-f', demuxer, '-i', `file:${file}`];
}

export interface FrameSize {
  width: number;
  height: number;
}

/** Scales (w, h) to fit in `side` x `side` (never up), even sides (what yuv formats need). */
export function fitInside(width: number, height: number, side: number): FrameSize {
  const k = Math.min(1, side / Math.max(width, height));
  const even = (x: number) => Math.max(2, 2 * Math.round((x * k) / 2));
  return { width: even(width), height: even(height) };
}

export interface DecodedFrames {
  size: FrameSize;
  /** RGB, 3 bytes a pixel: views into `pixels`, one a frame. */
  frames: Uint8Array[];
  /** Every frame back to back (one allocation: it can be handed to a worker thread without a copy). */
  pixels: Uint8Array;
}

/**
 * Every frame of the first video track, scaled to `size`, RGB. Fails when the decoder produces a
 * different number of frames than the probe counted by more than a few (a damaged stream).
 */
export async function decodeAllFrames(file: string, probe: ProbedVideo, size: FrameSize, options: DecoderOptions): Promise<DecodedFrames> {
  const frameBytes = size.width * size.height * 3;
  const maxFrames = probe.frames + 2;
  // Sized by the probe's frame count (already within VIDEO_MAX_FRAMES); the byte cap below keeps the decoder inside it.
  const all = new Uint8Array(maxFrames * frameBytes);
  let filled = 0;
  await runFfmpeg(
    [...inputArgs(probe, file, options.threads), '-map', '0:v:0', '-an', '-sn', '-dn', '-vsync', 'passthrough', '-frames:v', String(maxFrames),
      '-vf', `scale=${size.width}:${size.height}:flags=area,format=rgb24`, '-f', 'rawvideo', 'pipe:1'],
    {
      ...options,
      maxStdout: maxFrames * frameBytes,
      onChunk: (chunk) => {
        all.set(chunk, filled);
        filled += chunk.byteLength;
      },
    },
  );
  const count = Math.floor(filled / frameBytes);
  const pixels = all.subarray(0, count * frameBytes);
  const frames = Array.from({ length: count }, (_, i) => pixels.subarray(i * frameBytes, (i + 1) * frameBytes));
  const missing = probe.frames - frames.length;
  if (frames.length === 0) throw new VideoRejectedError('decode_failed', 'no frame could be decoded');
  if (missing > Math.max(2, probe.frames * 0.02)) throw new VideoRejectedError('truncated', `decoded ${frames.length} of the ${probe.frames} frames the container declares`);
  return { size, frames, pixels };
}

/** The frames at `indices` (decode order of presentation, 0-based), scaled to `size`, RGB, in index order. */
export async function decodeFramesAt(file: string, probe: ProbedVideo, indices: readonly number[], size: FrameSize, options: DecoderOptions): Promise<Uint8Array[]> {
  const wanted = [...new Set(indices.map((i) => Math.max(0, Math.floor(i))))].sort((a, b) => a - b);
  if (wanted.length === 0) return [];
  const frameBytes = size.width * size.height * 3;
  const select = wanted.map((i) => `eq(n\\,${i})`).join('+');
  const { stdout } = await runFfmpeg(
    [...inputArgs(probe, file, options.threads), '-map', '0:v:0', '-an', '-sn', '-dn', '-vsync', 'passthrough',
      '-vf', `select=${select},scale=${size.width}:${size.height}:flags=bicubic,format=rgb24`, '-frames:v', String(wanted.length), '-f', 'rawvideo', 'pipe:1'],
    { ...options, maxStdout: wanted.length * frameBytes },
  );
  const out: Uint8Array[] = [];
  for (let off = 0; off + frameBytes <= stdout.byteLength; off += frameBytes) out.push(new Uint8Array(stdout.subarray(off, off + frameBytes)));
  const byIndex = new Map(wanted.map((w, k) => [w, out[Math.min(k, out.length - 1)]!]));
  if (out.length === 0) throw new VideoRejectedError('decode_failed', 'no frame could be decoded');
  return indices.map((i) => byIndex.get(Math.max(0, Math.floor(i)))!);
}

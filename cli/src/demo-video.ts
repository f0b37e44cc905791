import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mulberry32, ulid, type EngagementEvent, type EventKind, type Logger } from '@afterglow/core';
import { ApiError, createApiClient, type ApiClient } from '@afterglow/core/api';
import { DEMO_TENANT } from './demo.js';

/**
 * The demo's video ads: short clips rendered here from the demo's master photos (a slow zoom over
 * one master, a pan over another, an end card that is no master), encoded with the packaged ffmpeg
 * the inference role decodes with, and registered like the other demo ads so the tie engine ties
 * their shots to the masters. `DemoVideoPlays` sends their plays (start, the 3 s hook, quartiles,
 * complete, watch time) with a hook and a completion rate of their own, as the web SDK would.
 */

export interface DemoVideoAd {
  campaign: string;
  asset: string;
  /** Indexes of the campaign's masters the first two shots are cut from. */
  masters: readonly [number, number];
  endCard: string;
  /** Share of plays that leave before the 3 s hook. */
  earlyExit: number;
  /** Share of the hooked plays that watch to the end. */
  finish: number;
  /** Plays per second, on average. */
  playsPerS: number;
}

export const DEMO_VIDEO_SECONDS = 8;
const FPS = 25;
const WIDTH = 480;
const HEIGHT = 270;
/** Seconds of each shot: master A, master B, end card. */
const SHOTS = [3, 3, 2] as const;

export const DEMO_VIDEO_ADS: readonly DemoVideoAd[] = [
  { campaign: 'spring-sale', asset: 'spring-sale-video-8s', masters: [0, 1], endCard: 'SPRING SALE', earlyExit: 0.28, finish: 0.52, playsPerS: 1.2 },
  { campaign: 'summer-launch', asset: 'summer-launch-video-8s', masters: [1, 2], endCard: 'SUMMER', earlyExit: 0.45, finish: 0.34, playsPerS: 0.8 },
];

type Crop = [left: number, top: number, width: number];

/** Frames (rgb24) of a slow move over a photo from one crop to another (fractions of the photo's width/height; the height follows the frame's shape). */
async function move(file: string, frames: number, from: Crop, to: Crop): Promise<Buffer[]> {
  const { default: sharp } = await import('sharp');
  const { data, info } = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const out: Buffer[] = [];
  for (let f = 0; f < frames; f++) {
    const k = frames > 1 ? f / (frames - 1) : 0;
    const [l, t, w] = from.map((v, i) => v + (to[i]! - v) * k) as Crop;
    const width = Math.max(16, Math.min(info.width, Math.round(w * info.width)));
    const height = Math.max(9, Math.min(info.height, Math.round((width * HEIGHT) / WIDTH)));
    const left = Math.max(0, Math.min(info.width - width, Math.round(l * info.width)));
    const top = Math.max(0, Math.min(info.height - height, Math.round(t * info.height)));
    out.push(
      await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
        .extract({ left, top, width, height })
        .resize(WIDTH, HEIGHT, { fit: 'fill' })
        .raw()
        .toBuffer(),
    );
  }
  return out;
}

/** A still end card: the campaign's word on a dark ground (no master is in it). */
async function endCard(text: string, frames: number): Promise<Buffer[]> {
  const { default: sharp } = await import('sharp');
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}"><rect width="100%" height="100%" fill="#141820"/>` +
    `<text x="50%" y="48%" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-weight="bold" font-size="40" fill="#f4f1ea">${text}</text>` +
    `<text x="50%" y="68%" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="18" fill="#e0a050">shop now</text></svg>`;
  const frame = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
  return Array.from({ length: frames }, () => frame);
}

/** Encodes rgb24 frames to MP4 (H.264) bytes with `ffmpeg` (through a temp file: MP4 is written with seeks). */
export async function encodeFrames(ffmpeg: string, frames: readonly Buffer[]): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'afterglow-demo-video-'));
  const file = path.join(dir, 'out.mp4');
  try {
    const args = ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${WIDTH}x${HEIGHT}`, '-r', String(FPS), '-i', 'pipe:0'];
    args.push('-c:v', 'libx264', '-preset', 'veryfast', '-crf', '26', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-an', '-f', 'mp4', `file:${file}`);
    const child = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (stderr = (stderr + s).slice(-2000)));
    const closed = new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exit ${code}: ${stderr.trim().slice(-300)}`))));
    });
    child.stdin.on('error', () => undefined); // a failed ffmpeg says why on close
    for (const f of frames) if (!child.stdin.write(f)) await new Promise((r) => child.stdin.once('drain', r));
    child.stdin.end();
    await closed;
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The video ad's MP4: a zoom into master A, a pan over master B, the end card. */
export async function renderDemoVideo(ad: DemoVideoAd, masterFiles: readonly [string, string], ffmpeg: string): Promise<Buffer> {
  const frames = [
    ...(await move(masterFiles[0], SHOTS[0] * FPS, [0.05, 0.05, 0.85], [0.2, 0.15, 0.6])),
    ...(await move(masterFiles[1], SHOTS[1] * FPS, [0.0, 0.1, 0.75], [0.25, 0.12, 0.75])),
    ...(await endCard(ad.endCard, SHOTS[2] * FPS)),
  ];
  return encodeFrames(ffmpeg, frames);
}

/** One play's events as the web SDK sends them, from how far it got (0..1 of the duration). */
export function playEvents(ad: DemoVideoAd, reached: number, now: number, viewer: string, random: () => number): EngagementEvent[] {
  const seconds = reached * DEMO_VIDEO_SECONDS;
  const at = now - Math.round(seconds * 1000);
  const events: EngagementEvent[] = [];
  const emit = (kind: EventKind, value: number, offsetS: number) =>
    events.push({
      event_id: ulid(now),
      tenant_id: DEMO_TENANT,
      campaign_id: ad.campaign,
      asset_id: ad.asset,
      kind,
      value,
      occurred_at: at + Math.round(offsetS * 1000),
      received_at: 0,
      channel: 'video',
      device: random() < 0.7 ? 'mobile' : 'desktop',
      viewer_id: viewer,
    });
  emit('video_start', 1, 0);
  if (seconds >= 3) emit('video_seconds', 3, 3);
  for (const q of [25, 50, 75]) if (reached * 100 >= q) emit('video_progress', q, (q / 100) * DEMO_VIDEO_SECONDS);
  if (reached >= 1) emit('video_complete', 1, DEMO_VIDEO_SECONDS);
  emit('video_watch', Math.max(150, Math.round(seconds * 1000)), seconds);
  return events;
}

/** How far a play gets: gone before the hook, to the end, or somewhere in between. */
export function drawReach(ad: DemoVideoAd, random: () => number): number {
  const hook = 3 / DEMO_VIDEO_SECONDS;
  if (random() < ad.earlyExit) return random() * hook * 0.98;
  if (random() < ad.finish) return 1;
  return hook + random() * (1 - hook) * 0.99;
}

export interface DemoVideoPlaysOptions {
  baseUrl: string;
  log: Logger;
  /** The demo tenant's ingest key. */
  headers?: Record<string, string>;
  tickMs?: number;
  random?: () => number;
}

/** Sends the demo video ads' plays every tick (Poisson-ish counts at each ad's rate). */
export class DemoVideoPlays {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private readonly random: () => number;
  sent = 0;
  refused = 0;

  private readonly api: ApiClient;

  constructor(private readonly options: DemoVideoPlaysOptions) {
    this.api = createApiClient({ baseUrl: options.baseUrl, headers: () => options.headers ?? {} });
    this.random = options.random ?? mulberry32(0x7f1d30);
  }

  start(): void {
    const tick = this.options.tickMs ?? 2_000;
    this.timer = setInterval(() => void this.tick(tick), tick);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  generate(now: number, tickMs: number): EngagementEvent[] {
    const events: EngagementEvent[] = [];
    for (const ad of DEMO_VIDEO_ADS) {
      const expected = ad.playsPerS * (tickMs / 1000);
      // A few plays per tick: the whole part, plus one more with the fraction's chance.
      const plays = Math.floor(expected) + (this.random() < expected % 1 ? 1 : 0);
      for (let p = 0; p < plays; p++) {
        const viewer = `demo-viewer-${Math.floor(this.random() * 5000)}`;
        events.push(...playEvents(ad, drawReach(ad, this.random), now, viewer, this.random));
      }
    }
    return events;
  }

  private async tick(tickMs: number): Promise<void> {
    if (this.inFlight) return;
    const events = this.generate(Date.now(), tickMs);
    if (events.length === 0) return;
    this.inFlight = true;
    try {
      await this.api.postEvents({ body: events });
      this.sent += events.length;
    } catch (err) {
      this.refused += events.length;
      if (err instanceof ApiError) this.options.log.warn({ status: err.status, error: err.code }, 'demo video plays refused');
      else this.options.log.debug({ err }, 'demo video plays post failed');
    } finally {
      this.inFlight = false;
    }
  }
}

/**
 * Registering an asset: untrusted upload -> checks before any full decode (bytes, magic, header:
 * pixel and side limits; ../models/image.ts probeImage) -> one bounded decode (decodeImage: a
 * truncated or corrupt image fails here) -> a 256-px WebP thumbnail -> original and thumbnail into
 * the blob store (content-addressed) -> the asset row -> `assets.changes`. Nothing is stored unless
 * every check passed. The same asset_id with the same content is a no-op (200); with other content
 * or another role/campaign it is a conflict (409): an asset's pixels never change under its id,
 * which is what keeps embeddings, candidates and decisions about it true.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import {
  ASSET_ROLES,
  BadRequestError,
  TOPICS,
  assetChangeSchema,
  blobKey,
  type AssetRole,
  type BlobStore,
  type BusProducer,
  type Logger,
} from '@afterglow/core';
import { decodeImage, probeImage } from '../models/image.js';
import { Limiter } from '../models/limiter.js';
import { ImageRejectedError, type ImageLimits } from '../models/types.js';
import { analyzeVideo, type VideoAnalysis } from '../video/analyze.js';
import { DEFAULT_DECODER_OPTIONS, type DecoderOptions } from '../video/ffmpeg.js';
import { DEFAULT_VIDEO_LIMITS, looksLikeVideo, probeVideo } from '../video/probe.js';
import { VIDEO_CONTENT_TYPES, VideoDecoderUnavailableError, VideoRejectedError, type VideoLimits } from '../video/types.js';
import type { AssetRecord, AssetRepository, VideoRecord } from './repository.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const THUMBNAIL_SIDE = 256;

export const CONTENT_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  avif: 'image/avif',
  ...VIDEO_CONTENT_TYPES,
};

/** Formats that are videos (the `format` of their asset row). */
export const VIDEO_FORMATS: ReadonlySet<string> = new Set(Object.keys(VIDEO_CONTENT_TYPES));

export interface RegisterInput {
  tenant: string;
  role: string | undefined;
  campaign?: string | undefined;
  name?: string | undefined;
  channel?: string | undefined;
  assetId?: string | undefined;
  /** File name of the upload (default name). */
  filename?: string | undefined;
  bytes: Uint8Array;
}

export interface Registered {
  asset: AssetRecord;
  /** False when the same asset (id and content) was already registered. */
  created: boolean;
}

/** The HTTP status of each image refusal: limits 413, not an accepted image 415, broken 422. */
export function imageRejection(err: ImageRejectedError): BadRequestError {
  const status = ['too_many_bytes', 'too_many_pixels', 'too_large_side'].includes(err.reason) ? 413 : ['unknown_format', 'unsupported_format'].includes(err.reason) ? 415 : 422;
  return new BadRequestError(err.reason, err.message, status);
}

/** The HTTP status of each video refusal: limits 413, not an accepted container/codec 415, broken 422; no decoder 503. */
export function videoRejection(err: VideoRejectedError | VideoDecoderUnavailableError): BadRequestError {
  if (err instanceof VideoDecoderUnavailableError) return new BadRequestError(err.code, err.message, 503);
  const limits = ['too_many_bytes', 'too_large_side', 'too_many_pixels', 'too_long', 'too_many_frames', 'too_high_fps'];
  const status = limits.includes(err.reason) ? 413 : ['unknown_format', 'unsupported_container', 'unsupported_codec'].includes(err.reason) ? 415 : 422;
  return new BadRequestError(err.reason, err.message, status);
}

export interface VideoRegistryOptions {
  limits: VideoLimits;
  decoder: DecoderOptions;
  /** Video analyses at once, and how many uploads may wait for one. */
  concurrency: number;
  queue: number;
}

export interface AssetRegistryOptions {
  repo: AssetRepository;
  blobs: BlobStore;
  producer: BusProducer;
  limits: ImageLimits;
  log: Logger;
  clock?: () => number;
  /** Decodes (and thumbnails) at once, and how many uploads may wait for one; default: unbounded. */
  decodeConcurrency?: number;
  decodeQueue?: number;
  /** Video uploads; default: DEFAULT_VIDEO_LIMITS, the packaged ffmpeg, one analysis at once. */
  videos?: VideoRegistryOptions;
}

export class AssetRegistry {
  private readonly clock: () => number;
  /**
   * A full decode holds up to IMAGE_MAX_PIXELS of memory and a libvips thread: uploads beyond the
   * cores wait here, and past the queue they are refused (503) rather than piling up in memory.
   */
  readonly decodes: Limiter;

  constructor(private readonly options: AssetRegistryOptions) {
    this.clock = options.clock ?? Date.now;
    this.decodes = new Limiter(options.decodeConcurrency ?? Infinity, options.decodeQueue ?? Infinity, 'image decodes');
    this.videos = options.videos ?? { limits: DEFAULT_VIDEO_LIMITS, decoder: DEFAULT_DECODER_OPTIONS, concurrency: 1, queue: 16 };
    this.videoDecodes = new Limiter(this.videos.concurrency, this.videos.queue, 'video analyses');
  }

  private readonly videos: VideoRegistryOptions;
  /** A video analysis is two decoder processes and up to MAX_SHOTS x 3 keyframes in memory: few at once, a bounded queue. */
  readonly videoDecodes: Limiter;

  get repo(): AssetRepository {
    return this.options.repo;
  }

  get blobs(): BlobStore {
    return this.options.blobs;
  }

  async register(input: RegisterInput): Promise<Registered> {
    const meta = validateMeta(input);
    const { bytes } = input;
    const contentHash = blobKey(bytes);
    const assetId = meta.assetId ?? deriveAssetId(meta.role, meta.campaign, contentHash);

    const existing = await this.options.repo.getAsset(input.tenant, assetId);
    if (existing) {
      if (existing.content_hash === contentHash && existing.role === meta.role && existing.campaign_id === meta.campaign) return { asset: existing, created: false };
      throw new BadRequestError(
        'asset_conflict',
        existing.content_hash !== contentHash
          ? `asset ${assetId} is already registered with other content; register new pixels under a new asset_id`
          : `asset ${assetId} is already registered as ${existing.role}${existing.campaign_id ? ` in campaign ${existing.campaign_id}` : ''}`,
        409,
      );
    }

    if (looksLikeVideo(bytes)) return this.registerVideo(input, meta, assetId, bytes);

    // Header checks first (probeImage inside decodeImage), then one bounded decode.
    let thumbnail: Buffer;
    let probed: { format: string; width: number; height: number };
    try {
      probed = await probeImage(bytes, this.options.limits);
      thumbnail = await this.decodes.run(async () => {
        const raw = await decodeImage(bytes, this.options.limits, { maxSide: 1024 });
        return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } })
          .resize(THUMBNAIL_SIDE, THUMBNAIL_SIDE, { fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' })
          .webp({ quality: 80 })
          .toBuffer();
      });
    } catch (err) {
      if (err instanceof ImageRejectedError) throw imageRejection(err);
      throw err;
    }

    const contentType = CONTENT_TYPES[probed.format] ?? 'application/octet-stream';
    const [original, thumb] = await Promise.all([this.options.blobs.put(bytes, { contentType }), this.options.blobs.put(thumbnail, { contentType: 'image/webp' })]);
    const now = this.clock();
    const asset = assetRecord(input.tenant, assetId, meta, { content: original.key, thumbnail: thumb.key }, { format: probed.format, bytes: bytes.byteLength, width: probed.width, height: probed.height }, now);
    await this.options.repo.insertAsset(asset);
    await this.announceRegistered(asset, now, {});
    this.options.log.info({ tenant: asset.tenant_id, asset: asset.asset_id, role: asset.role, bytes: asset.bytes }, 'asset registered');
    return { asset, created: true };
  }

  /**
   * A video: the container is checked before the upload waits for a decoder (a hostile file is refused
   * at once), then analysed (shots, keyframes, poster, storyboard) in child processes. The video row
   * is written before the asset row, so an asset that is visible always has its analysis.
   */
  private async registerVideo(input: RegisterInput, meta: Meta, assetId: string, bytes: Uint8Array): Promise<Registered> {
    const { limits, decoder } = this.videos;
    let analysis: VideoAnalysis;
    try {
      probeVideo(bytes, limits);
      analysis = await this.videoDecodes.run(() => analyzeVideo(bytes, limits, decoder));
    } catch (err) {
      if (err instanceof VideoRejectedError || err instanceof VideoDecoderUnavailableError) throw videoRejection(err);
      throw err;
    }
    const { probe } = analysis;
    const put = (b: Uint8Array, contentType: string) => this.options.blobs.put(b, { contentType });
    const [original, thumb, poster, storyboard, keyframes] = await Promise.all([
      put(bytes, VIDEO_CONTENT_TYPES[probe.container]),
      put(analysis.thumbnail, 'image/webp'),
      put(analysis.poster, 'image/webp'),
      put(analysis.storyboard, 'image/webp'),
      Promise.all(analysis.shots.map((s) => Promise.all(s.keyframeImages.map((k) => put(k, 'image/jpeg'))))),
    ]);
    const now = this.clock();
    const video: VideoRecord = {
      tenant_id: input.tenant,
      asset_id: assetId,
      container: probe.container,
      codec: probe.codec,
      duration_s: probe.durationS,
      fps: probe.fps,
      frames: probe.frames,
      audio: probe.audio,
      poster_hash: poster.key,
      poster_frame: analysis.posterFrame,
      storyboard_hash: storyboard.key,
      shots: analysis.shots.map((s, i) => ({
        index: s.index,
        start: s.start,
        end: s.end,
        start_frame: s.startFrame,
        end_frame: s.endFrame,
        transition: s.transition,
        keyframes: s.keyframes.map((frame, k) => ({ frame, hash: keyframes[i]![k]!.key })),
      })),
    };
    const asset = assetRecord(input.tenant, assetId, meta, { content: original.key, thumbnail: thumb.key }, { format: probe.container, bytes: bytes.byteLength, width: probe.width, height: probe.height }, now);
    await this.options.repo.insertVideo(video);
    await this.options.repo.insertAsset(asset);
    await this.announceRegistered(asset, now, { media: 'video', duration_ms: Math.round(probe.durationS * 1000), shots: video.shots.length });
    this.options.log.info({ tenant: asset.tenant_id, asset: asset.asset_id, role: asset.role, bytes: asset.bytes, shots: video.shots.length, duration_s: probe.durationS }, 'video asset registered');
    return { asset, created: true };
  }

  /** The `registered` change on assets.changes (what a video adds: media, duration, shots). */
  private async announceRegistered(asset: AssetRecord, at: number, video: { media?: 'video'; duration_ms?: number; shots?: number }): Promise<void> {
    const change = assetChangeSchema.parse({
      type: 'registered',
      tenant_id: asset.tenant_id,
      asset_id: asset.asset_id,
      role: asset.role,
      ...(asset.campaign_id ? { campaign_id: asset.campaign_id } : {}),
      name: asset.name,
      ...(asset.channel ? { channel: asset.channel } : {}),
      content_hash: asset.content_hash,
      width: asset.width,
      height: asset.height,
      ...video,
      at,
    });
    await this.options.producer.send(TOPICS.assetsChanges, [{ key: asset.asset_id, value: Buffer.from(JSON.stringify(change)) }]);
  }

  /** The original's bytes (undefined when the blob is missing). */
  async original(asset: AssetRecord): Promise<Uint8Array | undefined> {
    return this.options.blobs.get(asset.content_hash);
  }
}

interface Meta {
  role: AssetRole;
  campaign: string;
  name: string;
  channel: string;
  assetId: string | undefined;
}

/** A new asset's row, image or video: who registered it, its blobs, its media, and when. */
export function assetRecord(
  tenant: string,
  assetId: string,
  meta: Pick<Meta, 'role' | 'campaign' | 'name' | 'channel'>,
  blobs: { content: string; thumbnail: string },
  media: Pick<AssetRecord, 'format' | 'bytes' | 'width' | 'height'>,
  now: number,
): AssetRecord {
  return {
    tenant_id: tenant,
    asset_id: assetId,
    role: meta.role,
    campaign_id: meta.campaign,
    name: meta.name,
    channel: meta.channel,
    content_hash: blobs.content,
    thumbnail_hash: blobs.thumbnail,
    format: media.format,
    bytes: media.bytes,
    width: media.width,
    height: media.height,
    created_at: now,
    updated_at: now,
  };
}

function validateMeta(input: RegisterInput): Meta {
  if (!input.role || !(ASSET_ROLES as readonly string[]).includes(input.role)) throw new BadRequestError('invalid_role', `role must be one of ${ASSET_ROLES.join(', ')}`);
  const role = input.role as AssetRole;
  const campaign = input.campaign ?? '';
  if (role === 'ad' && !campaign) throw new BadRequestError('campaign_required', 'campaign_id is required for ads');
  if (campaign && !ID_PATTERN.test(campaign)) throw new BadRequestError('invalid_campaign_id', 'campaign_id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  if (role === 'master' && campaign) throw new BadRequestError('invalid_campaign_id', 'masters belong to no campaign (campaign_id is for ads)');
  if (input.assetId !== undefined && input.assetId !== '' && !ID_PATTERN.test(input.assetId)) throw new BadRequestError('invalid_asset_id', 'asset_id must match [A-Za-z0-9][A-Za-z0-9._:-]{0,127}');
  const name = (input.name || input.filename || '').trim();
  if (name.length > 256) throw new BadRequestError('invalid_name', 'name is at most 256 characters');
  const channel = (input.channel ?? '').trim();
  if (channel.length > 128) throw new BadRequestError('invalid_channel', 'channel is at most 128 characters');
  return { role, campaign, name, channel, assetId: input.assetId || undefined };
}

/**
 * An id from the content (and, for ads, the campaign): registering the same file twice is
 * idempotent, and one image used in two campaigns is two ads.
 */
export function deriveAssetId(role: AssetRole, campaign: string, contentHash: string): string {
  if (role === 'master') return `m-${contentHash.slice(0, 24)}`;
  return `a-${createHash('sha256').update(`${campaign}\n${contentHash}`).digest('hex').slice(0, 24)}`;
}

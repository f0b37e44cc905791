/**
 * Video creatives: the probe's findings, the limits they are checked against, and the typed refusal.
 * Like ../models/types.ts, no import of @afterglow/core (these modules also load in worker code).
 */

export type VideoContainer = 'mp4' | 'mov' | 'webm';
export type VideoCodec = 'h264' | 'hevc' | 'vp8' | 'vp9' | 'av1';

export const VIDEO_CONTENT_TYPES: Readonly<Record<VideoContainer, string>> = Object.freeze({
  mp4: 'video/mp4',
  mov: 'video/quicktime',
  webm: 'video/webm',
});

/** What the container's own tables say about a video, read without decoding any frame. */
export interface ProbedVideo {
  container: VideoContainer;
  codec: VideoCodec;
  /** Coded size of the first video track. */
  width: number;
  height: number;
  durationS: number;
  /** Frames of the first video track (sample table / blocks), and their mean rate. */
  frames: number;
  fps: number;
  audio: boolean;
  bytes: number;
}

export interface VideoLimits {
  maxBytes: number;
  maxDurationS: number;
  maxSide: number;
  maxPixels: number;
  minSide: number;
  maxFps: number;
  maxFrames: number;
  codecs: readonly VideoCodec[];
}

export type VideoRejectReason =
  | 'empty'
  | 'too_many_bytes'
  | 'unknown_format'
  | 'unsupported_container'
  | 'unsupported_codec'
  | 'no_video_track'
  | 'truncated'
  | 'trailing_data'
  | 'embedded_payload'
  | 'corrupt'
  | 'too_large_side'
  | 'too_many_pixels'
  | 'too_small'
  | 'too_long'
  | 'too_many_frames'
  | 'too_high_fps'
  | 'decode_failed'
  | 'decode_timeout';

/** An upload refused as a video; `reason` is stable and safe to show a client. */
export class VideoRejectedError extends Error {
  readonly code = 'video_rejected' as const;
  constructor(
    readonly reason: VideoRejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'VideoRejectedError';
  }
}

/** The decoder binary is missing or cannot run (an install problem, not the upload's fault). */
export class VideoDecoderUnavailableError extends Error {
  readonly code = 'video_decoder_unavailable' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VideoDecoderUnavailableError';
  }
}

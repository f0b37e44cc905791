export * from './types.js';
export { probeVideo, sniffVideo, looksLikeVideo, DEFAULT_VIDEO_LIMITS, MAX_METADATA_BYTES, MAX_UNREFERENCED_BYTES } from './probe.js';
export { packagedFfmpeg, resolveFfmpeg, runFfmpeg, withTempVideo, decodeAllFrames, decodeFramesAt, fitInside, DEFAULT_DECODER_OPTIONS, type DecoderOptions, type FrameSize } from './ffmpeg.js';
export { detectShots, type Shot, type ShotOptions, type Transition, type FrameInput } from './shots.js';
export { analyzeVideo, capShots, KEYFRAME_SIDE, MAX_SHOTS, type VideoAnalysis, type AnalyzedShot } from './analyze.js';

/**
 * Untrusted video bytes -> what the container claims, refused before any decoder sees them. The
 * container is walked here, in TypeScript, with every size checked against its parent and the file:
 *
 * - MP4/MOV (ISO BMFF, `ftyp` first): top-level boxes must tile the file exactly (a box past the end
 *   is `truncated`, bytes after the last one `trailing_data`); `moov` gives the first video track's
 *   codec (sample entry fourcc), coded size (sample entry), duration (mdhd), frame count (stsz) and
 *   whether an audio track exists. Fragmented files (moof) are refused: their frame count is not
 *   in the header. `mdat` bytes no sample references, and padding boxes over a budget, are
 *   `embedded_payload` (a zip or HTML hidden in a valid video: a polyglot).
 * - WebM (EBML, DocType `webm`; Matroska is refused): the Segment must end at the end of the file;
 *   Info gives the duration, Tracks the codec and size, and every SimpleBlock/Block of the video
 *   track is counted (the frame count a WebM header does not state). Attachments are refused.
 *
 * Then the limits: codec allow-list, side, pixels, duration, frame rate and frame count. A
 * frame-count bomb (a small file whose sample table claims millions of frames) fails here, before a
 * decoder allocates anything. The walk is linear in the file and allocates nothing per box.
 */
import { VideoRejectedError, type ProbedVideo, type VideoCodec, type VideoContainer, type VideoLimits } from './types.js';

/** Bytes of padding/metadata (free, skip, udta, Void, Tags, unknown boxes...) tolerated in one file. */
export const MAX_METADATA_BYTES = 1024 * 1024;
/** Bytes of `mdat` that no sample may leave unreferenced (encoders leave a few; a hidden archive is more). */
export const MAX_UNREFERENCED_BYTES = 1024 * 1024;
const MAX_UNITS = 20_000_000;

export const DEFAULT_VIDEO_LIMITS: Readonly<VideoLimits> = Object.freeze({
  maxBytes: 128 * 1024 * 1024,
  maxDurationS: 180,
  maxSide: 4096,
  maxPixels: 4096 * 2304,
  minSide: 32,
  maxFps: 120,
  maxFrames: 120 * 180,
  codecs: ['h264', 'hevc', 'vp8', 'vp9', 'av1'] as const,
});

const reject = (reason: ConstructorParameters<typeof VideoRejectedError>[0], message: string) => new VideoRejectedError(reason, message);

const ascii = (b: Uint8Array, i: number, s: string) => [...s].every((c, k) => b[i + k] === c.charCodeAt(0));
const fourcc = (b: Uint8Array, i: number) => String.fromCharCode(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!);
const u16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const u32 = (b: Uint8Array, i: number) => ((b[i]! << 24) >>> 0) + (b[i + 1]! << 16) + (b[i + 2]! << 8) + b[i + 3]!;
const u64 = (b: Uint8Array, i: number) => u32(b, i) * 2 ** 32 + u32(b, i + 4);

const MP4_BRANDS = new Set(['isom', 'iso2', 'iso3', 'iso4', 'iso5', 'iso6', 'iso7', 'iso8', 'iso9', 'mp41', 'mp42', 'avc1', 'M4V ', 'M4VP', 'dash', 'av01', 'mmp4', 'MSNV', 'XAVC']);
const IMAGE_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'mif1', 'msf1', 'heim', 'heis', 'hevc', 'hevx']);

/** The container the first bytes announce: a video we accept, one we refuse by name, or nothing. */
export function sniffVideo(b: Uint8Array): VideoContainer | 'matroska' | 'other_bmff' | undefined {
  if (b.byteLength >= 12 && ascii(b, 4, 'ftyp')) {
    const major = fourcc(b, 8);
    if (IMAGE_BRANDS.has(major)) return undefined;
    if (major === 'qt  ') return 'mov';
    if (MP4_BRANDS.has(major)) return 'mp4';
    // Compatible brands decide for an unknown major brand.
    const size = Math.min(u32(b, 0), b.byteLength);
    for (let i = 16; i + 4 <= size; i += 4) {
      const brand = fourcc(b, i);
      if (brand === 'qt  ') return 'mov';
      if (MP4_BRANDS.has(brand)) return 'mp4';
    }
    return 'other_bmff';
  }
  if (b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) {
    const docType = ebmlDocType(b);
    if (docType === 'webm') return 'webm';
    return 'matroska';
  }
  return undefined;
}

/** True when the first bytes announce a video container (accepted or not): the upload goes the video way. */
export function looksLikeVideo(b: Uint8Array): boolean {
  const s = sniffVideo(b);
  return s !== undefined;
}

/** Checks bytes, container structure and the container's own tables against the limits, decoding nothing. */
export function probeVideo(bytes: Uint8Array, limits: VideoLimits): ProbedVideo {
  if (bytes.byteLength === 0) throw reject('empty', 'empty video');
  if (bytes.byteLength > limits.maxBytes) throw reject('too_many_bytes', `video of ${bytes.byteLength} bytes is over the ${limits.maxBytes}-byte limit`);
  const kind = sniffVideo(bytes);
  if (kind === undefined) throw reject('unknown_format', 'not an MP4, MOV or WebM video (magic number)');
  if (kind === 'matroska') throw reject('unsupported_container', 'Matroska (other than WebM) is not accepted; MP4, MOV or WebM');
  if (kind === 'other_bmff') throw reject('unsupported_container', `ISO media with brand "${fourcc(bytes, 8).trim()}" is not MP4 or MOV`);
  const found = kind === 'webm' ? walkWebm(bytes) : walkBmff(bytes, kind);
  return checkLimits({ ...found, container: kind, bytes: bytes.byteLength }, limits);
}

function checkLimits(v: ProbedVideo, limits: VideoLimits): ProbedVideo {
  if (!limits.codecs.includes(v.codec)) throw reject('unsupported_codec', `${v.codec} is not accepted (${limits.codecs.join(', ')})`);
  if (!(v.width > 0 && v.height > 0)) throw reject('corrupt', 'video track has no dimensions');
  if (v.width > limits.maxSide || v.height > limits.maxSide) throw reject('too_large_side', `video ${v.width}x${v.height} is over the ${limits.maxSide}-pixel side limit`);
  if (v.width * v.height > limits.maxPixels) throw reject('too_many_pixels', `video ${v.width}x${v.height} is over the ${limits.maxPixels}-pixel frame limit`);
  if (v.width < limits.minSide || v.height < limits.minSide) throw reject('too_small', `video ${v.width}x${v.height} is under the ${limits.minSide}-pixel minimum side`);
  if (v.frames === 0) throw reject('corrupt', 'video track has no frames');
  if (v.frames > limits.maxFrames) throw reject('too_many_frames', `video track of ${v.frames} frames is over the ${limits.maxFrames}-frame limit`);
  if (!(v.durationS > 0) || !Number.isFinite(v.durationS)) throw reject('corrupt', 'video has no duration');
  if (v.durationS > limits.maxDurationS) throw reject('too_long', `video of ${v.durationS.toFixed(1)} s is over the ${limits.maxDurationS}-second limit`);
  if (v.fps > limits.maxFps) throw reject('too_high_fps', `video at ${v.fps.toFixed(1)} frames/s is over the ${limits.maxFps} frames/s limit`);
  return v;
}

type Found = Omit<ProbedVideo, 'container' | 'bytes'>;

// ---- ISO BMFF (MP4, MOV) ------------------------------------------------------------------------

interface Box {
  type: string;
  /** Start of the payload and end of the box. */
  start: number;
  end: number;
}

/** The boxes directly inside [from, to); each must fit in it. */
function* boxes(b: Uint8Array, from: number, to: number, where: string): Generator<Box> {
  let off = from;
  let n = 0;
  while (off < to) {
    if (++n > MAX_UNITS) throw reject('corrupt', `over ${MAX_UNITS} boxes in ${where}`);
    if (to - off < 8) {
      if (where === 'file') throw reject('trailing_data', `${to - off} bytes after the last box (polyglot or appended data)`);
      throw reject('corrupt', `${to - off} stray bytes in ${where}`);
    }
    let size = u32(b, off);
    const type = fourcc(b, off + 4);
    // Past the boxes a video file has, what follows is another file (a zip's "PK\x03\x04", "<htm"...).
    if (where === 'file' && !TOP_LEVEL.has(type)) throw reject('trailing_data', `${to - off} bytes of something else than MP4 boxes after byte ${off} (polyglot or appended data)`);
    let header = 8;
    if (size === 1) {
      if (to - off < 16) throw reject('truncated', `truncated ${type} box header`);
      size = u64(b, off + 8);
      header = 16;
    } else if (size === 0) {
      if (where !== 'file') throw reject('corrupt', `${type} box of size 0 inside ${where}`);
      size = to - off;
    }
    if (size < header) throw reject('corrupt', `${type} box of ${size} bytes`);
    if (off + size > to) throw reject(where === 'file' ? 'truncated' : 'corrupt', `${type} box ends ${off + size - to} bytes past ${where === 'file' ? 'the end of the file' : `its ${where} box`}`);
    yield { type, start: off + header, end: off + size };
    off += size;
  }
}

const child = (b: Uint8Array, parent: Box, type: string): Box | undefined => {
  for (const x of boxes(b, parent.start, parent.end, parent.type)) if (x.type === type) return x;
  return undefined;
};

interface Track {
  handler: string;
  codec: string;
  width: number;
  height: number;
  timescale: number;
  duration: number;
  samples: number;
  sampleBytes: number;
}

/** Top-level boxes of progressive and fragmented MP4/MOV (fragmented are named to be refused by name). */
const TOP_LEVEL = new Set(['ftyp', 'moov', 'mdat', 'free', 'skip', 'wide', 'uuid', 'meta', 'udta', 'pdin', 'junk', 'PICT', 'moof', 'mfra', 'styp', 'sidx', 'ssix', 'prft', 'emsg']);
const BMFF_CODECS: Record<string, VideoCodec> = { avc1: 'h264', avc3: 'h264', hvc1: 'hevc', hev1: 'hevc', vp08: 'vp8', vp09: 'vp9', av01: 'av1' };
const PADDING_BOXES = new Set(['free', 'skip', 'wide', 'uuid', 'udta', 'meta', 'pdin', 'junk', 'PICT']);

function walkBmff(b: Uint8Array, container: 'mp4' | 'mov'): Found {
  let moov: Box | undefined;
  let mdatBytes = 0;
  let metadata = 0;
  let first = true;
  for (const box of boxes(b, 0, b.byteLength, 'file')) {
    if (first && box.type !== 'ftyp') throw reject('corrupt', 'ftyp is not the first box');
    first = false;
    if (box.type === 'ftyp') continue;
    if (box.type === 'moov') {
      if (moov) throw reject('corrupt', 'two moov boxes');
      moov = box;
    } else if (box.type === 'mdat') mdatBytes += box.end - box.start;
    else if (box.type === 'moof' || box.type === 'mfra' || box.type === 'sidx' || box.type === 'styp')
      throw reject('unsupported_container', 'fragmented MP4 is not accepted (its frame count is not in the header); upload a progressive file');
    else metadata += box.end - box.start;
  }
  if (!moov) throw reject('truncated', 'no moov box (the header of an MP4/MOV; missing in a truncated upload)');
  const tracks: Track[] = [];
  for (const box of boxes(b, moov.start, moov.end, 'moov')) {
    if (box.type === 'trak') tracks.push(readTrak(b, box));
    else if (box.type === 'mvex') throw reject('unsupported_container', 'fragmented MP4 is not accepted (its frame count is not in the header); upload a progressive file');
    else if (PADDING_BOXES.has(box.type)) metadata += box.end - box.start;
  }
  if (metadata > MAX_METADATA_BYTES) throw reject('embedded_payload', `${metadata} bytes of padding and metadata boxes (over ${MAX_METADATA_BYTES}): a file hidden in the video?`);
  const referenced = tracks.reduce((s, t) => s + t.sampleBytes, 0);
  if (referenced > mdatBytes) throw reject('truncated', `samples reference ${referenced} bytes but the media data holds ${mdatBytes}`);
  if (mdatBytes - referenced > MAX_UNREFERENCED_BYTES) throw reject('embedded_payload', `${mdatBytes - referenced} bytes of media data belong to no sample: a file hidden in the video?`);
  const video = tracks.find((t) => t.handler === 'vide');
  if (!video) throw reject('no_video_track', 'no video track');
  const codec = BMFF_CODECS[video.codec];
  if (!codec) throw reject('unsupported_codec', `video codec "${video.codec.trim()}" is not H.264, H.265, VP8, VP9 or AV1`);
  if (container === 'mov' && codec !== 'h264' && codec !== 'hevc') throw reject('unsupported_codec', `${codec} in a QuickTime file`);
  if (!(video.timescale > 0)) throw reject('corrupt', 'video track has no timescale');
  const durationS = video.duration / video.timescale;
  return {
    codec,
    width: video.width,
    height: video.height,
    durationS,
    frames: video.samples,
    fps: durationS > 0 ? video.samples / durationS : 0,
    audio: tracks.some((t) => t.handler === 'soun' && t.samples > 0),
  };
}

function readTrak(b: Uint8Array, trak: Box): Track {
  const t: Track = { handler: '', codec: '', width: 0, height: 0, timescale: 0, duration: 0, samples: 0, sampleBytes: 0 };
  const mdia = child(b, trak, 'mdia');
  if (!mdia) return t;
  const need = (box: Box, n: number) => {
    if (box.end - box.start < n) throw reject('corrupt', `${box.type} box of ${box.end - box.start} bytes`);
  };
  const mdhd = child(b, mdia, 'mdhd');
  if (mdhd) {
    const v1 = b[mdhd.start] === 1;
    need(mdhd, v1 ? 32 : 20);
    t.timescale = u32(b, mdhd.start + (v1 ? 20 : 12));
    t.duration = v1 ? u64(b, mdhd.start + 24) : u32(b, mdhd.start + 16);
  }
  const hdlr = child(b, mdia, 'hdlr');
  if (hdlr) {
    need(hdlr, 12);
    t.handler = fourcc(b, hdlr.start + 8);
  }
  const minf = child(b, mdia, 'minf');
  const stbl = minf && child(b, minf, 'stbl');
  if (!stbl) return t;
  const stsd = child(b, stbl, 'stsd');
  if (stsd) {
    need(stsd, 16);
    t.codec = fourcc(b, stsd.start + 12);
    if (t.handler === 'vide') {
      need(stsd, 8 + 36);
      t.width = u16(b, stsd.start + 8 + 32);
      t.height = u16(b, stsd.start + 8 + 34);
    }
  }
  const stsz = child(b, stbl, 'stsz');
  const stz2 = child(b, stbl, 'stz2');
  if (stsz) {
    need(stsz, 12);
    const sampleSize = u32(b, stsz.start + 4);
    t.samples = u32(b, stsz.start + 8);
    if (sampleSize > 0) t.sampleBytes = sampleSize * t.samples;
    else {
      if (stsz.start + 12 + t.samples * 4 > stsz.end) throw reject('corrupt', `stsz claims ${t.samples} samples in ${stsz.end - stsz.start} bytes`);
      for (let i = 0, off = stsz.start + 12; i < t.samples; i++, off += 4) t.sampleBytes += u32(b, off);
    }
  } else if (stz2) {
    need(stz2, 12);
    const field = b[stz2.start + 7]!;
    t.samples = u32(b, stz2.start + 8);
    if (![4, 8, 16].includes(field)) throw reject('corrupt', `stz2 field size ${field}`);
    if (stz2.start + 12 + Math.ceil((t.samples * field) / 8) > stz2.end) throw reject('corrupt', `stz2 claims ${t.samples} samples in ${stz2.end - stz2.start} bytes`);
    for (let i = 0; i < t.samples; i++) {
      const at = stz2.start + 12;
      t.sampleBytes += field === 16 ? u16(b, at + 2 * i) : field === 8 ? b[at + i]! : (b[at + (i >> 1)]! >> (i & 1 ? 0 : 4)) & 15;
    }
  }
  if (t.duration === 0) {
    // mdhd may leave the duration 0 (written before the end was known): the time-to-sample table has it.
    const stts = child(b, stbl, 'stts');
    if (stts) {
      need(stts, 8);
      const n = u32(b, stts.start + 4);
      if (stts.start + 8 + n * 8 > stts.end) throw reject('corrupt', `stts claims ${n} entries in ${stts.end - stts.start} bytes`);
      for (let i = 0, off = stts.start + 8; i < n; i++, off += 8) t.duration += u32(b, off) * u32(b, off + 4);
    }
  }
  return t;
}

// ---- EBML (WebM) --------------------------------------------------------------------------------

const ID = {
  ebml: 0x1a45dfa3,
  docType: 0x4282,
  segment: 0x18538067,
  info: 0x1549a966,
  timecodeScale: 0x2ad7b1,
  duration: 0x4489,
  tracks: 0x1654ae6b,
  trackEntry: 0xae,
  trackNumber: 0xd7,
  trackType: 0x83,
  codecId: 0x86,
  defaultDuration: 0x23e383,
  video: 0xe0,
  pixelWidth: 0xb0,
  pixelHeight: 0xba,
  cluster: 0x1f43b675,
  clusterTimecode: 0xe7,
  simpleBlock: 0xa3,
  blockGroup: 0xa0,
  block: 0xa1,
  seekHead: 0x114d9b74,
  cues: 0x1c53bb6b,
  attachments: 0x1941a469,
  chapters: 0x1043a770,
  tags: 0x1254c367,
  void: 0xec,
  crc32: 0xbf,
} as const;
const SEGMENT_CHILDREN = new Set<number>([ID.seekHead, ID.info, ID.tracks, ID.cluster, ID.cues, ID.attachments, ID.chapters, ID.tags, ID.void]);

interface Element {
  id: number;
  start: number;
  /** End of the payload; for an unknown size, the end of the parent (the caller finds the real end). */
  end: number;
  unknownSize: boolean;
}

/** One variable-length integer: its value (marker removed unless `keepMarker`) and length. */
function vint(b: Uint8Array, off: number, keepMarker: boolean): { value: number; length: number; allOnes: boolean } {
  const first = b[off];
  if (first === undefined) throw reject('truncated', 'truncated EBML element');
  if (first === 0) throw reject('corrupt', `invalid EBML length at byte ${off}`);
  const length = Math.clz32(first) - 23;
  if (off + length > b.byteLength) throw reject('truncated', 'truncated EBML element');
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    value = value * 256 + b[off + i]!;
    if (b[off + i] !== 0xff) allOnes = false;
  }
  return { value, length, allOnes };
}

function readElement(b: Uint8Array, off: number, parentEnd: number, where: string): Element {
  const id = vint(b, off, true);
  if (id.length > 4) throw reject('corrupt', `EBML id of ${id.length} bytes at byte ${off}`);
  const size = vint(b, off + id.length, false);
  const start = off + id.length + size.length;
  if (size.allOnes) return { id: id.value, start, end: parentEnd, unknownSize: true };
  const end = start + size.value;
  if (end > parentEnd) throw reject(parentEnd === b.byteLength ? 'truncated' : 'corrupt', `EBML element 0x${id.value.toString(16)} ends past ${where}`);
  return { id: id.value, start, end, unknownSize: false };
}

function* elements(b: Uint8Array, from: number, to: number, where: string): Generator<Element> {
  let off = from;
  let n = 0;
  while (off < to) {
    if (++n > MAX_UNITS) throw reject('corrupt', `over ${MAX_UNITS} elements in ${where}`);
    const e = readElement(b, off, to, where);
    yield e;
    off = e.end;
  }
}

const uint = (b: Uint8Array, e: Element) => {
  let v = 0;
  for (let i = e.start; i < e.end; i++) v = v * 256 + b[i]!;
  return v;
};
const str = (b: Uint8Array, e: Element) => String.fromCharCode(...b.subarray(e.start, Math.min(e.end, e.start + 64))).replace(/\0+$/, '');
const float = (b: Uint8Array, e: Element) => {
  const view = new DataView(b.buffer, b.byteOffset + e.start, e.end - e.start);
  return e.end - e.start === 4 ? view.getFloat32(0) : e.end - e.start === 8 ? view.getFloat64(0) : NaN;
};

function ebmlDocType(b: Uint8Array): string | undefined {
  try {
    const header = readElement(b, 0, b.byteLength, 'the file');
    for (const e of elements(b, header.start, header.end, 'the EBML header')) if (e.id === ID.docType) return str(b, e);
  } catch {
    return undefined;
  }
  return undefined;
}

interface WebmTrack {
  number: number;
  type: number;
  codec: string;
  width: number;
  height: number;
  defaultDurationNs: number;
}

const WEBM_CODECS: Record<string, VideoCodec> = { V_VP8: 'vp8', V_VP9: 'vp9', V_AV1: 'av1' };

function walkWebm(b: Uint8Array): Found {
  const header = readElement(b, 0, b.byteLength, 'the file');
  const segment = readElement(b, header.end, b.byteLength, 'the file');
  if (segment.id !== ID.segment) throw reject('corrupt', 'no Segment after the EBML header');
  if (segment.end < b.byteLength) throw reject('trailing_data', `${b.byteLength - segment.end} bytes after the end of the WebM segment (polyglot or appended data)`);
  let timecodeScale = 1_000_000;
  let durationTicks = NaN;
  const tracks: WebmTrack[] = [];
  const blocks = new Map<number, number>();
  let lastTicks = 0;
  let metadata = 0;
  let off = segment.start;
  let n = 0;
  while (off < segment.end) {
    if (++n > MAX_UNITS) throw reject('corrupt', `over ${MAX_UNITS} elements in the segment`);
    const e = readElement(b, off, segment.end, 'the segment');
    if (e.id === ID.info) {
      for (const c of elements(b, e.start, e.end, 'Info')) {
        if (c.id === ID.timecodeScale) timecodeScale = uint(b, c);
        else if (c.id === ID.duration) durationTicks = float(b, c);
      }
    } else if (e.id === ID.tracks) {
      for (const entry of elements(b, e.start, e.end, 'Tracks')) if (entry.id === ID.trackEntry) tracks.push(readTrackEntry(b, entry));
    } else if (e.id === ID.cluster) {
      e.end = walkCluster(b, e, blocks, (ticks) => (lastTicks = Math.max(lastTicks, ticks)));
    } else if (e.id === ID.attachments) {
      throw reject('embedded_payload', 'WebM with attached files is not accepted');
    } else if (e.id !== ID.seekHead && e.id !== ID.cues) {
      if (e.unknownSize) throw reject('corrupt', `element 0x${e.id.toString(16)} of unknown size in the segment`);
      metadata += e.end - e.start;
    }
    off = e.end;
  }
  if (metadata > MAX_METADATA_BYTES) throw reject('embedded_payload', `${metadata} bytes of padding and metadata elements (over ${MAX_METADATA_BYTES}): a file hidden in the video?`);
  const video = tracks.find((t) => t.type === 1);
  if (!video) throw reject('no_video_track', 'no video track');
  const codec = WEBM_CODECS[video.codec];
  if (!codec) throw reject('unsupported_codec', `video codec "${video.codec}" is not VP8, VP9 or AV1 (what WebM carries)`);
  const frames = blocks.get(video.number) ?? 0;
  // A streamed WebM (MediaRecorder, live muxers) has no Duration: the last block's time, plus one frame.
  const fromTicks = Number.isFinite(durationTicks) ? durationTicks : frames > 1 ? (lastTicks * frames) / (frames - 1) : lastTicks;
  let durationS = (fromTicks * timecodeScale) / 1e9;
  if (!(durationS > 0) && video.defaultDurationNs > 0) durationS = (frames * video.defaultDurationNs) / 1e9;
  const fps = video.defaultDurationNs > 0 ? 1e9 / video.defaultDurationNs : durationS > 0 ? frames / durationS : 0;
  return {
    codec,
    width: video.width,
    height: video.height,
    durationS,
    frames,
    fps,
    audio: tracks.some((t) => t.type === 2 && (blocks.get(t.number) ?? 0) > 0),
  };
}

function readTrackEntry(b: Uint8Array, entry: Element): WebmTrack {
  const t: WebmTrack = { number: 0, type: 0, codec: '', width: 0, height: 0, defaultDurationNs: 0 };
  for (const c of elements(b, entry.start, entry.end, 'TrackEntry')) {
    if (c.id === ID.trackNumber) t.number = uint(b, c);
    else if (c.id === ID.trackType) t.type = uint(b, c);
    else if (c.id === ID.codecId) t.codec = str(b, c);
    else if (c.id === ID.defaultDuration) t.defaultDurationNs = uint(b, c);
    else if (c.id === ID.video) {
      for (const v of elements(b, c.start, c.end, 'Video')) {
        if (v.id === ID.pixelWidth) t.width = uint(b, v);
        else if (v.id === ID.pixelHeight) t.height = uint(b, v);
      }
    }
  }
  return t;
}

/** Counts the frames of each track in one cluster; returns where the cluster ends (an unknown size ends at the next segment child). */
function walkCluster(b: Uint8Array, cluster: Element, blocks: Map<number, number>, onTicks: (ticks: number) => void): number {
  let clusterTicks = 0;
  let off = cluster.start;
  let n = 0;
  const countBlock = (e: Element) => {
    const track = vint(b, e.start, false);
    const at = e.start + track.length;
    if (at + 3 > e.end) throw reject('corrupt', 'block shorter than its header');
    const rel = ((b[at]! << 8) | b[at + 1]!) << 16 >> 16;
    const flags = b[at + 2]!;
    const laced = (flags & 0x06) !== 0;
    if (laced && at + 4 > e.end) throw reject('corrupt', 'laced block without a frame count');
    blocks.set(track.value, (blocks.get(track.value) ?? 0) + (laced ? b[at + 3]! + 1 : 1));
    onTicks(clusterTicks + rel);
  };
  while (off < cluster.end) {
    if (++n > MAX_UNITS) throw reject('corrupt', `over ${MAX_UNITS} elements in a cluster`);
    const e = readElement(b, off, cluster.end, 'its cluster');
    if (cluster.unknownSize && SEGMENT_CHILDREN.has(e.id) && e.id !== ID.void) return off;
    if (e.unknownSize) throw reject('corrupt', `element 0x${e.id.toString(16)} of unknown size in a cluster`);
    if (e.id === ID.clusterTimecode) clusterTicks = uint(b, e);
    else if (e.id === ID.simpleBlock) countBlock(e);
    else if (e.id === ID.blockGroup) {
      for (const g of elements(b, e.start, e.end, 'BlockGroup')) if (g.id === ID.block) countBlock(g);
    }
    off = e.end;
  }
  return cluster.end;
}

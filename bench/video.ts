/**
 * bench/video: the video decoder and analysis on this machine's CPU, with generated media only.
 *
 *   node bench/dist/video.js [--short] [--clips N] [--heldout-clips N] [--tie-ads N] [--codecs 0|1] [--seed S] [--threads N]
 *
 * Held-out first: the detector's thresholds were fitted on family A (../test/kit/src/video.ts), so its
 * figure on family B (../test/kit/src/video-heldout.ts: real photos under a moving camera, seven
 * transition kinds, in-shot whip pans / text / end cards, four aspect ratios, five frame rates, H.264
 * CRF 18-38; written apart from A) is the one to quote; A's is printed after it, as the fitting figure.
 * No threshold has been fitted on family B: fades through white and flash frames are flat runs with
 * the two thresholds of the black ones (fitted on A) mirrored.
 *
 * 1. Shot boundary accuracy on family B (`--heldout-clips`, default 24, --short 4; seeds S+0..): precision,
 *    recall and F1 with a detection counting when it falls inside the transition ±2 frames, recall
 *    per transition kind, false boundaries by what caused them (whip pan, text, CTA card, other).
 * 2. Video tying on family B (`--tie-ads`, default 12, --short 1; seeds S+500..): `afterglow tie` over
 *    ads rendered from the sample photos against 16 of them as masters (the other 8 B-roll): video-level
 *    recall@20 of the masters an ad uses, shot-level R@1/R@5/mAP (each true shot by the detected segment
 *    covering most of it), segment auto-tie precision and coverage, seconds per minute of video.
 * 3. Shot boundary accuracy on family A clips (6 shots each, one in three a fast pan; cuts, fades
 *    through black, dissolves; H.264 at CRF 18/28/36 and VP9): precision, recall and F1 per kind,
 *    a detection counting when it falls inside the transition ±2 frames.
 * 4. The packaged ffmpeg (@ffmpeg-installer/linux-x64): its size, and the time to decode a 10 s (--short: 3 s)
 *    1280x720 30 fps clip (testsrc2) in H.264, H.265 and VP9 (AV1: a 1 s 480x270 clip, libaom's
 *    encoder being too slow for more here), with `--threads` decoder threads (default 1, the
 *    registry's default); and the whole analysis of an upload (probe, every frame small, shots,
 *    keyframes, poster, storyboard) per codec, as seconds per minute of video.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { analyzeVideo, DEFAULT_DECODER_OPTIONS, DEFAULT_VIDEO_LIMITS, decodeAllFrames, detectShots, fitInside, packagedFfmpeg, probeVideo, runFfmpeg, runTieCommand } from '@afterglow/inference';
import { ensureTestModels, testModelsDir } from '@afterglow/testkit/inference';
import { textSink } from '@afterglow/testkit/streams';
import { findSourcePhotos, SHORT_PACKAGES } from '@afterglow/testkit/tie';
import { encodeClip, type GeneratedTransition, lavfiClip, renderClip, scoreBoundaries } from '@afterglow/testkit/video';
import { HELDOUT_TRANSITIONS, type HeldoutEventKind, loadHeldoutPhotos, renderHeldoutClip, scoreHeldout } from '@afterglow/testkit/video-heldout';
import { flag, opt } from './args.js';

const SHORT = flag('short');
const CLIPS = opt('clips', SHORT ? 6 : 24);
const HELDOUT_CLIPS = opt('heldout-clips', SHORT ? 4 : 24);
const SEED = opt('seed', 1);
/** Frames either side of a transition within which a detected boundary counts. */
const TOLERANCE = 2;
/** Family B ads tied to photo masters (0: skip). */
const TIE_ADS = opt('tie-ads', SHORT ? 1 : 12);
/** The decoder timings per codec (0: skip). */
const CODECS = opt('codecs', 1) > 0;
const THREADS = opt('threads', 1);
const decoder = { ...DEFAULT_DECODER_OPTIONS, threads: THREADS };

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, (performance.now() - t0) / 1000];
}

const pct = (x: number) => (100 * x).toFixed(1);
const f1 = (p: number, r: number) => (p + r > 0 ? (2 * p * r) / (p + r) : 0);

/** Family B (held out): rendered, encoded, decoded to 64 px and scored like an upload would be. */
async function heldoutShots(dir: string): Promise<void> {
  const sources = findSourcePhotos(SHORT_PACKAGES);
  if (sources.length < 8) throw new Error(`family B needs the sample photos of ${SHORT_PACKAGES.join(', ')} (found ${sources.length}): install them or allow apt-get download`);
  const photos = await loadHeldoutPhotos(sources);
  const byTransition = new Map(HELDOUT_TRANSITIONS.map((t) => [t, { truth: 0, found: 0 }]));
  const falseBy = new Map<HeldoutEventKind | 'other', number>();
  const events = new Map<HeldoutEventKind, number>();
  const formats = new Map<string, { truth: number; detected: number; matched: number }>();
  let truth = 0;
  let detected = 0;
  let matched = 0;
  let samePhoto = 0;
  let samePhotoFound = 0;
  let videoS = 0;
  let shotS = 0;
  for (let c = 0; c < HELDOUT_CLIPS; c++) {
    const clip = renderHeldoutClip(photos, { seed: SEED + c });
    const file = path.join(dir, `heldout-${c}.mp4`);
    const bytes = await encodeClip(clip, file, { crf: clip.crf });
    const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
    const size = fitInside(probe.width, probe.height, 64);
    const { frames } = await decodeAllFrames(file, probe, size, decoder);
    const t0 = performance.now();
    const found = detectShots({ ...size, frames }, { fps: probe.fps });
    shotS += (performance.now() - t0) / 1000;
    videoS += frames.length / probe.fps;
    const starts = found.slice(1).map((s) => s.startFrame);
    const s = scoreHeldout(clip, starts, TOLERANCE);
    truth += s.truth;
    detected += s.detected;
    matched += s.matched;
    for (const [k, v] of s.byTransition) {
      const t = byTransition.get(k)!;
      t.truth += v.truth;
      t.found += v.found;
    }
    for (const [k, v] of s.falseBy) falseBy.set(k, (falseBy.get(k) ?? 0) + v);
    for (const e of clip.events) events.set(e.kind, (events.get(e.kind) ?? 0) + 1);
    for (const b of clip.boundaries) {
      if (!b.samePhoto) continue;
      samePhoto++;
      if (starts.some((x) => x >= b.from - TOLERANCE && x <= b.to + TOLERANCE)) samePhotoFound++;
    }
    for (const key of [clip.aspect, `${clip.fps} fps`]) {
      const fmt = formats.get(key) ?? { truth: 0, detected: 0, matched: 0 };
      fmt.truth += s.truth;
      fmt.detected += s.detected;
      fmt.matched += s.matched;
      formats.set(key, fmt);
    }
  }
  const p = detected ? matched / detected : 1;
  const r = truth ? matched / truth : 1;
  console.log(
    `video: HELD-OUT shots, family B (real photos, ${HELDOUT_CLIPS} clips, seeds ${SEED}-${SEED + HELDOUT_CLIPS - 1}, ${videoS.toFixed(0)} s of video, ${truth} transitions, ±${TOLERANCE} frames): ` +
      `precision ${pct(p)} %, recall ${pct(r)} %, F1 ${pct(f1(p, r))} % (${matched} matched, ${detected - matched} false, ${truth - matched} missed)`,
  );
  for (const [kind, k] of byTransition) if (k.truth) console.log(`video:   B ${kind.padEnd(10)} ${k.found}/${k.truth} found (${pct(k.found / k.truth)} %)`);
  if (samePhoto) console.log(`video:   B boundaries between two framings of one photo: ${samePhotoFound}/${samePhoto} found`);
  const causes = ['whip-pan', 'text', 'cta', 'other'] as const;
  console.log(
    `video:   B false boundaries by cause: ${causes.map((k) => `${k} ${falseBy.get(k) ?? 0}${k === 'other' ? '' : `/${events.get(k) ?? 0} events`}`).join(', ')}`,
  );
  console.log(`video:   B by aspect ratio and frame rate (P / R %): ${[...formats].map(([k, v]) => `${k} ${pct(v.detected ? v.matched / v.detected : 1)} / ${pct(v.truth ? v.matched / v.truth : 1)}`).join(', ')}`);
  console.log(`video:   B shot detection itself ${((shotS / videoS) * 60 * 1000).toFixed(0)} ms per minute of video (64-px frames)`);
}

/**
 * Video tying on family B: ads rendered from the sample photos, two in three of which are masters
 * (the rest B-roll with no master; motorcycle_left/right are one shoot, a hard negative), tied by
 * `afterglow tie` (MobileNetV2, the configured verification) as a user would run it.
 */
async function heldoutTying(dir: string): Promise<void> {
  const sources = findSourcePhotos(SHORT_PACKAGES);
  const photos = await loadHeldoutPhotos(sources);
  const mastersDir = path.join(dir, 'tie-masters');
  const adsDir = path.join(dir, 'tie-ads');
  mkdirSync(mastersDir, { recursive: true });
  mkdirSync(adsDir, { recursive: true });
  const masterOf = new Map<string, string>();
  sources.forEach((p, i) => {
    if (i % 3 === 2) return;
    const name = `${String(i).padStart(2, '0')}-${p.slug}${path.extname(p.path).toLowerCase()}`;
    copyFileSync(p.path, path.join(mastersDir, name));
    masterOf.set(p.id, name);
  });
  const clips = new Map<string, ReturnType<typeof renderHeldoutClip>>();
  let videoS = 0;
  for (let c = 0; c < TIE_ADS; c++) {
    const clip = renderHeldoutClip(photos, { seed: SEED + 500 + c });
    const name = `ad-${c}.mp4`;
    await encodeClip(clip, path.join(adsDir, name), { crf: clip.crf });
    clips.set(name, clip);
    videoS += clip.frames.length / clip.fps;
  }
  ensureTestModels(['mobilenet_v2']);
  process.env.AFTERGLOW_MODELS_DIR = testModelsDir();
  const out = path.join(dir, 'ties.jsonl');
  const stderr = textSink();
  const t0 = performance.now();
  const code = await runTieCommand(['--masters', mastersDir, '--ads', adsDir, '--out', out, '--cache', 'off', '--quiet'], { stderr });
  const tieS = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`afterglow tie failed (${code}): ${stderr.text}`);
  type Ranked = { candidates: Array<{ master: string }>; autoTie: string | null };
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Ranked & { ad: string; segments: Array<Ranked & { start: number; end: number }> });
  let used = 0;
  let usedAt20 = 0;
  let usedAt5 = 0;
  let shots = 0;
  let at1 = 0;
  let at5 = 0;
  let ap = 0;
  let segments = 0;
  let segmentsWithMaster = 0;
  let autoTied = 0;
  let autoCorrect = 0;
  for (const line of lines) {
    const clip = clips.get(line.ad)!;
    const truthShots = clip.shots.map((s) => ({ start: s.from / clip.fps, end: s.to / clip.fps, master: masterOf.get(s.photo) ?? null }));
    const masters = new Set(truthShots.flatMap((s) => (s.master ? [s.master] : [])));
    const top20 = new Set(line.candidates.slice(0, 20).map((c) => c.master));
    const top5 = new Set(line.candidates.slice(0, 5).map((c) => c.master));
    used += masters.size;
    for (const m of masters) if (top20.has(m)) usedAt20++;
    for (const m of masters) if (top5.has(m)) usedAt5++;
    const overlap = (a: { start: number; end: number }, b: { start: number; end: number }) => Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));
    // Each true shot with a master: the detected segment that overlaps it most, and where its master ranks there.
    for (const s of truthShots) {
      if (!s.master) continue;
      shots++;
      const seg = line.segments.reduce((best, x) => (overlap(x, s) > overlap(best, s) ? x : best), line.segments[0]!);
      const rank = seg ? seg.candidates.findIndex((c) => c.master === s.master) : -1;
      if (rank === 0) at1++;
      if (rank >= 0 && rank < 5) at5++;
      if (rank >= 0) ap += 1 / (rank + 1);
    }
    // Each detected segment: the true shot it overlaps most says which master (or none) it shows.
    for (const seg of line.segments) {
      segments++;
      const truth = truthShots.reduce((best, x) => (overlap(x, seg) > overlap(best, seg) ? x : best), truthShots[0]!).master;
      if (truth) segmentsWithMaster++;
      if (seg.autoTie) {
        autoTied++;
        if (seg.autoTie === truth) autoCorrect++;
      }
    }
  }
  console.log(
    `video: HELD-OUT tying, family B: ${TIE_ADS} video ads (${videoS.toFixed(0)} s) x ${masterOf.size} photo masters (${sources.length - masterOf.size} more photos as B-roll with no master), afterglow tie (model mobilenet_v2):`,
  );
  console.log(
    `video:   B video level: recall@20 of the masters an ad uses ${usedAt20}/${used} (${pct(used ? usedAt20 / used : 1)} %${masterOf.size <= 20 ? `; vacuous with ${masterOf.size} masters` : ''}), ` +
      `recall@5 ${usedAt5}/${used} (${pct(used ? usedAt5 / used : 1)} %; an ad uses ${(used / TIE_ADS).toFixed(1)} masters on average)`,
  );
  console.log(`video:   B shot level (${shots} true shots with a master, each by the detected segment over most of it): R@1 ${pct(at1 / shots)} %, R@5 ${pct(at5 / shots)} %, mAP ${pct(ap / shots)} %`);
  console.log(
    `video:   B segment auto-tie: ${autoTied} of ${segments} segments auto-tied, ${autoCorrect} correct (precision ${pct(autoTied ? autoCorrect / autoTied : 1)} %); ` +
      `coverage ${pct(segmentsWithMaster ? autoCorrect / segmentsWithMaster : 1)} % of the ${segmentsWithMaster} segments showing a master`,
  );
  console.log(`video:   B processing: ${tieS.toFixed(1)} s for the whole tie command = ${((tieS / videoS) * 60).toFixed(1)} s per minute of video (embedding the ${masterOf.size} masters included), ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
}

/** Family A (the fitting set): textured scenes, cuts / fades through black / dissolves. */
async function fittingShots(dir: string): Promise<void> {
  const kinds: GeneratedTransition[] = ['cut', 'fade', 'dissolve'];
  const encodings = [{ crf: 18 }, { crf: 28 }, { crf: 36 }, { codec: 'vp9' as const, crf: 36 }];
  const per = new Map<GeneratedTransition, { truth: number; found: number }>();
  let truth = 0;
  let detected = 0;
  let matched = 0;
  let videoS = 0;
  let shotS = 0;
  for (let c = 0; c < CLIPS; c++) {
    const shots = Array.from({ length: 6 }, (_, i) => ({ frames: 25 + ((c * 7 + i * 13) % 50), seed: 1000 + c * 100 + i, pan: i % 3 === 2 ? 6 : 1 }));
    const transitions = Array.from({ length: 5 }, (_, i) => kinds[(c + i * 2) % 3]!);
    const clip = renderClip({ width: 320, height: 180, fps: 25, shots, transitions, transitionFrames: 8 + (c % 3) * 4 });
    const enc = encodings[c % encodings.length]!;
    const file = path.join(dir, `shots-${c}`);
    const bytes = await encodeClip(clip, file, enc);
    const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
    const size = fitInside(probe.width, probe.height, 64);
    const { frames } = await decodeAllFrames(file, probe, size, decoder);
    const t0 = performance.now();
    const found = detectShots({ ...size, frames }, { fps: probe.fps });
    shotS += (performance.now() - t0) / 1000;
    videoS += frames.length / probe.fps;
    const starts = found.slice(1).map((s) => s.startFrame);
    const s = scoreBoundaries(clip.boundaries, starts);
    truth += s.truth;
    detected += s.detected;
    matched += s.matched;
    for (const b of clip.boundaries) {
      const k = per.get(b.transition) ?? { truth: 0, found: 0 };
      k.truth++;
      if (starts.some((x) => x >= b.from - 2 && x <= b.to + 2)) k.found++;
      per.set(b.transition, k);
    }
  }
  const p = matched / detected;
  const r = matched / truth;
  console.log(`video: fitting set, family A (the detector's thresholds were developed on it): shots on ${CLIPS} generated clips (${videoS.toFixed(0)} s of video, ${truth} transitions): precision ${(100 * p).toFixed(1)} %, recall ${(100 * r).toFixed(1)} %, F1 ${((200 * p * r) / (p + r)).toFixed(1)} %`);
  for (const [kind, k] of per) console.log(`video:   A ${kind}: ${k.found}/${k.truth} found (${((100 * k.found) / k.truth).toFixed(1)} %)`);
  console.log(`video:   A shot detection itself ${((shotS / videoS) * 60 * 1000).toFixed(0)} ms per minute of video (64-px frames)`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'afterglow-bench-video-'));
  try {
    const bin = packagedFfmpeg();
    if (!bin) throw new Error('the packaged ffmpeg is missing (npm ci on linux x64)');
    if (HELDOUT_CLIPS > 0) await heldoutShots(dir);
    if (TIE_ADS > 0) await heldoutTying(dir);
    if (CLIPS > 0) await fittingShots(dir);
    if (!CODECS) return;
    console.log(`video: decoder ${bin} (${(statSync(bin).size / 1e6).toFixed(1)} MB), ${THREADS} decoder thread(s), ${os.availableParallelism()} cores`);

    // --short (CI): 3 s clips, AV1 at 320x180 (its encoder is the slow part here).
    const seconds = SHORT ? 3 : 10;
    const clips = [
      { codec: 'h264' as const, width: 1280, height: 720, seconds },
      { codec: 'hevc' as const, width: 1280, height: 720, seconds },
      { codec: 'vp9' as const, width: 1280, height: 720, seconds },
      { codec: 'av1' as const, width: SHORT ? 320 : 480, height: SHORT ? 180 : 270, seconds: 1 },
    ];
    for (const c of clips) {
      const file = path.join(dir, `${c.codec}.video`);
      const [bytes, encodeS] = await timed(() => lavfiClip(file, { ...c, fps: 30, crf: 28 }));
      const probe = probeVideo(bytes, DEFAULT_VIDEO_LIMITS);
      const [, decodeS] = await timed(() => runFfmpeg(['-threads', String(THREADS), '-i', `file:${file}`, '-f', 'null', '-'], { ...decoder, maxStdout: 1 << 20 }));
      const [, smallS] = await timed(() => decodeAllFrames(file, probe, fitInside(probe.width, probe.height, 64), decoder));
      const [a, analyzeS] = await timed(() => analyzeVideo(bytes, DEFAULT_VIDEO_LIMITS, decoder));
      console.log(
        `video: ${c.codec} ${c.width}x${c.height} ${c.seconds} s (${(bytes.byteLength / 1e6).toFixed(2)} MB, encoded in ${encodeS.toFixed(1)} s): ` +
          `decode ${decodeS.toFixed(2)} s (${(c.seconds / decodeS).toFixed(1)}x real time), every frame to 64 px ${smallS.toFixed(2)} s, ` +
          `whole analysis ${analyzeS.toFixed(2)} s = ${((analyzeS / c.seconds) * 60).toFixed(1)} s per minute of video (${a.shots.length} shot(s))`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

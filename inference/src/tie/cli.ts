/**
 * `afterglow tie --masters DIR --ads DIR --out FILE.jsonl` (the evaluation contract, kept stable):
 * one JSON line per ad, in file-name order,
 *
 *   {"ad":"<file name>","candidates":[{"master":"<file name>","score":0.93}, ... up to 20],"autoTie":"<file name>"|null}
 *
 * (plus `"error"` for an ad that could not be read or decoded, with no candidates; with `--multi`,
 * `"masters":[{"master":"<file name>","box":[x,y,w,h],"score":0.71}, ...]`, every master found in the
 * ad with its region in ad pixels, beside the unchanged candidates), and a progress bar on stderr.
 * Videos (mp4, m4v, mov, webm) may be among the masters and the ads: a video master enters as one
 * view per shot, a video ad is ranked shot by shot (../video, ./video-fold.ts) and its line adds the
 * shots as segments, in order, covering the video:
 *
 *   {"ad":"<file>","candidates":[...top 20 over the whole video...],"autoTie":null|"<file>",
 *    "segments":[{"start":0,"end":1.6,"candidates":[{"master":"<file>","score":0.93},...],"autoTie":"<file>"|null},...]}
 * Options override the TIE_* / INFERENCE_* settings of the environment.
 */
import { createWriteStream, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseCommandArgs } from '../cli-args.js';
import type { Embedder } from '../models/types.js';
import { TieEngine, type AssetRef, type TieResult } from './engine.js';
import { configuredEngineOptions, createConfiguredEmbedder } from './setup.js';
import { collapseMasterShots, foldKeyframeResults, foldVideo, masterViewName, parseMasterName, shotQueryName } from './video-fold.js';
import { analyzeVideo } from '../video/analyze.js';

export const TIE_USAGE = `usage: afterglow tie --masters DIR --ads DIR --out FILE.jsonl [options]

Ties every ad image or video in --ads to the master photos and footage in --masters: one JSON line per ad,
  {"ad":"<file>","candidates":[{"master":"<file>","score":0.93},...],"autoTie":"<file>"|null}
a video ad's line adds "segments":[{"start":s,"end":s,"candidates":[...],"autoTie":"<file>"|null},...] (its shots, in order)

options (default from the environment, see README.md):
  --candidates N     candidates per ad (TIE_CANDIDATES, 20)
  --top-k K          masters kept per ad by embedding similarity (TIE_TOP_K, 500)
  --verify N         candidates verified with keypoints per list (TIE_VERIFY_TOP, 5)
  --dense N          best candidates checked densely, the ad located in each (TIE_DENSE_TOP, 8, and 20 when
                     keypoints verified none strongly; given here, exactly N; 0 = off)
  --model ID         mobilenet_v2 | inception_v3 (TIE_MODEL)
  --threshold X      auto-tie at calibrated score >= X (TIE_AUTO_TIE_THRESHOLD; default calibrated)
  --workers N        keypoint worker threads (TIE_VERIFY_WORKERS; 0 = cores)
  --cache DIR|off    embeddings and keypoints cache (TIE_CACHE_DIR)
  --multi            also list every master found in the ad (collages, split panels) with its region:
                     "masters":[{"master":"<file>","box":[x,y,w,h],"score":0.71},...] (score: the region's similarity)
  --details          add per-candidate evidence (cosine, euclidean, inliers, dense) and the two raw lists
  --quiet            no progress bar`;

const IMAGE_EXT = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

/** Image files of a directory (not recursive, no hidden files), sorted by name. */
export function listImages(dir: string): AssetRef[] {
  const names = readdirSync(dir).filter((n) => !n.startsWith('.') && IMAGE_EXT.test(n));
  return names
    .filter((n) => statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, path: path.join(dir, name) }));
}

const VIDEO_EXT = /\.(mp4|m4v|mov|webm)$/i;

/** Video files of a directory (not recursive, no hidden files), sorted by name. */
export function listVideos(dir: string): Array<{ name: string; path: string }> {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && VIDEO_EXT.test(n) && statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, path: path.join(dir, name) }));
}

/** A video ad's line: the whole video's candidates and auto-tie, and one segment per shot. */
export function videoLine(r: TieResult, segments: ReadonlyArray<{ start: number; end: number; result: TieResult | undefined }>): string {
  const cands = (x: TieResult) => x.candidates.map((c) => ({ master: c.master, score: round4(c.score) }));
  return JSON.stringify({
    ad: r.ad,
    candidates: cands(r),
    autoTie: r.autoTie,
    ...(r.error ? { error: r.error } : {}),
    segments: segments.map((s) => ({ start: round4(s.start), end: round4(s.end), candidates: s.result && !s.result.error ? cands(s.result) : [], autoTie: s.result?.autoTie ?? null })),
  });
}

/** One output line (the contract), scores rounded to 4 decimals. */
export function resultLine(r: TieResult, details = false): string {
  const out: Record<string, unknown> = {
    ad: r.ad,
    candidates: r.candidates.map((c) =>
      details
        ? { master: c.master, score: round4(c.score), cosine: round4(c.cosine), euclidean: round4(c.euclidean), verified: c.verified, matches: c.matches, inliers: c.inliers, flipped: c.flipped, ...(c.dense !== undefined ? { dense: round4(c.dense) } : {}) }
        : { master: c.master, score: round4(c.score) },
    ),
    autoTie: r.autoTie,
  };
  if (r.masters) out.masters = r.masters;
  if (r.error) out.error = r.error;
  if (details) {
    out.byCosine = r.byCosine.map((c) => ({ master: c.master, value: round4(c.value) }));
    out.byEuclidean = r.byEuclidean.map((c) => ({ master: c.master, value: round4(c.value) }));
  }
  return JSON.stringify(out);
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** A one-line progress bar on a TTY; on a pipe or file, a line every 10 % (stderr stays readable in logs). */
export class ProgressBar {
  private lastDraw = 0;
  private lastTenth = -1;
  private readonly t0 = performance.now();
  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly enabled = true,
  ) {}

  update(label: string, done: number, total: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    const secs = (now - this.t0) / 1000;
    if (this.out.isTTY) {
      if (done < total && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const width = 30;
      const filled = total > 0 ? Math.round((done / total) * width) : width;
      const rate = done > 0 ? secs / done : 0;
      const eta = done > 0 && done < total ? ` ETA ${Math.ceil(rate * (total - done))}s` : '';
      this.out.write(`\r${label.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${secs.toFixed(1)}s${eta}\x1b[K`);
      if (done >= total) this.out.write('\n');
    } else {
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
      if (tenth === this.lastTenth && done < total) return;
      this.lastTenth = tenth;
      this.out.write(`${label} ${done}/${total} (${total > 0 ? Math.round((100 * done) / total) : 100}%) ${secs.toFixed(1)}s\n`);
    }
  }
}

/** Runs the command; returns the exit code (0 ok, 1 failure, 2 usage). Everything but the JSONL goes to stderr. */
export async function runTieCommand(argv: readonly string[], io: { stderr?: NodeJS.WritableStream & { isTTY?: boolean } } = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const parsed = parseCommandArgs(
    argv,
    {
      masters: { type: 'string' },
      ads: { type: 'string' },
      out: { type: 'string' },
      candidates: { type: 'string' },
      'top-k': { type: 'string' },
      verify: { type: 'string' },
      dense: { type: 'string' },
      model: { type: 'string' },
      threshold: { type: 'string' },
      workers: { type: 'string' },
      cache: { type: 'string' },
      details: { type: 'boolean' },
      multi: { type: 'boolean' },
      quiet: { type: 'boolean' },
    },
    TIE_USAGE,
    { stderr },
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (typeof values.masters !== 'string' || typeof values.ads !== 'string' || typeof values.out !== 'string') {
    stderr.write(`--masters, --ads and --out are required\n\n${TIE_USAGE}\n`);
    return 2;
  }
  const num = (name: string, v: unknown, min: number, max: number, int = true): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    return n;
  };
  const { loadConfig } = await import('@afterglow/core');
  const config = loadConfig(process.env);
  const tie = config.tie;
  let engine: TieEngine | undefined;
  let embedder: Embedder | undefined;
  try {
    const candidates = num('candidates', values.candidates, 1, 1000);
    const topK = num('top-k', values['top-k'], 1, 100_000);
    const verifyTop = num('verify', values.verify, 0, 1000);
    const denseTop = num('dense', values.dense, 0, 100);
    const threshold = num('threshold', values.threshold, 0, 1, false);
    const workers = num('workers', values.workers, 0, 256);
    const model = (values.model as string | undefined) ?? tie.model;
    if (model !== 'mobilenet_v2' && model !== 'inception_v3') throw new UsageError('--model must be mobilenet_v2 or inception_v3');
    const cacheOpt = values.cache as string | undefined;
    const cacheDir = cacheOpt === 'off' ? undefined : cacheOpt ? path.resolve(cacheOpt) : tie.cacheDir;
    for (const [flag, dir] of [['--masters', values.masters], ['--ads', values.ads]] as const) {
      if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${flag} ${dir}: not a directory`);
    }
    const masters = listImages(values.masters);
    const ads = listImages(values.ads);
    const videoMasters = listVideos(values.masters);
    const videoAds = listVideos(values.ads);
    if (masters.length + videoMasters.length === 0) throw new UsageError(`--masters ${values.masters}: no images (jpg, png, webp, gif, tiff, avif) or videos (mp4, m4v, mov, webm)`);
    const decoder = { ffmpegPath: config.videos.ffmpegPath, timeoutMs: config.videos.decodeTimeoutMs, memoryMb: config.videos.decodeMemoryMb, threads: config.videos.decodeThreads };

    embedder = await createConfiguredEmbedder(config, { cacheDir, log: (msg) => stderr.write(`[afterglow tie] ${msg}\n`) });
    engine = new TieEngine({
      embedder,
      ...configuredEngineOptions(config, { cacheDir, model, topK, candidates, verifyTop, denseTop, autoTieThreshold: threshold, workers }),
      multiMaster: values.multi === true,
    });
    const bar = new ProgressBar(stderr, !values.quiet);
    const t0 = performance.now();
    // A video master is one view per shot (its middle keyframe), named master#shot.
    const videoMasterNames = new Set<string>();
    const views: AssetRef[] = [...masters];
    for (const [i, v] of videoMasters.entries()) {
      try {
        const a = await analyzeVideo(readFileSync(v.path), config.videos, decoder);
        for (const shot of a.shots) views.push({ name: masterViewName(v.name, shot.index), bytes: shot.keyframeImages[1] });
        videoMasterNames.add(v.name);
      } catch (err) {
        stderr.write(`[afterglow tie] master ${v.name} skipped: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      bar.update('video masters', i + 1, videoMasters.length);
    }
    const added = await engine.addMasters(views, (p) => bar.update('masters', p.done, p.total));
    for (const f of added.failed) stderr.write(`[afterglow tie] master ${f.name} skipped: ${f.error}\n`);
    if (added.added === 0) throw new Error('no master could be read');
    const fold = (r: TieResult) => (videoMasterNames.size ? collapseMasterShots(r, videoMasterNames) : r);
    const keep = candidates ?? tie.candidates;

    const out = createWriteStream(values.out);
    const opened = new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    });
    await opened;
    let autoTies = 0;
    let failedAds = 0;
    const write = async (line: string) => {
      if (!out.write(`${line}\n`)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    };
    await engine.tieAds(
      ads,
      async (raw) => {
        const r = fold(raw);
        if (r.autoTie) autoTies++;
        if (r.error) failedAds++;
        await write(resultLine(r, values.details === true));
      },
      (p) => bar.update('ads', p.done, p.total),
    );
    for (const [i, v] of videoAds.entries()) {
      let line: string;
      try {
        const a = await analyzeVideo(readFileSync(v.path), config.videos, decoder);
        const queries = a.shots.flatMap((shot) => shot.keyframeImages.map((bytes, k) => ({ name: shotQueryName(v.name, shot.index, k), bytes })));
        const results = (await engine.tieAds(queries)).map(fold);
        const byShot = new Map<number, TieResult[]>();
        results.forEach((r, q) => {
          const shot = Number(parseMasterName(queries[q]!.name.slice(v.name.length + 1)).master);
          byShot.set(shot, [...(byShot.get(shot) ?? []), r]);
        });
        const perShot = new Map([...byShot].map(([shot, rs]) => [shot, foldKeyframeResults(rs)]));
        const r = foldVideo(v.name, a.shots, perShot, keep);
        if (r.autoTie) autoTies++;
        if (r.error) failedAds++;
        line = videoLine(r, a.shots.map((shot) => ({ start: shot.start, end: shot.end, result: perShot.get(shot.index) && { ...perShot.get(shot.index)!, candidates: perShot.get(shot.index)!.candidates.slice(0, keep) } })));
      } catch (err) {
        failedAds++;
        line = JSON.stringify({ ad: v.name, candidates: [], autoTie: null, error: err instanceof Error ? err.message : String(err), segments: [] });
      }
      await write(line);
      bar.update('video ads', i + 1, videoAds.length);
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const secs = (performance.now() - t0) / 1000;
    stderr.write(
      `[afterglow tie] ${ads.length + videoAds.length} ads x ${added.added} ${videoMasterNames.size ? `master views (${videoMasterNames.size} video master(s) as one view a shot)` : 'masters'} in ${secs.toFixed(1)} s: ${autoTies} auto-tied (threshold ${engine.autoTie.threshold.toFixed(4)})` +
        `${failedAds ? `, ${failedAds} unreadable` : ''}${engine.denseFailures ? `, ${engine.denseFailures} ranked without their dense check (it failed)` : ''} -> ${values.out}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      stderr.write(`${err.message}\n\n${TIE_USAGE}\n`);
      return 2;
    }
    stderr.write(`[afterglow tie] failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await engine?.close();
    await embedder?.close();
  }
}

class UsageError extends Error {}

/**
 * Videos in the tie engine, which ranks images: a video ad is ranked shot by shot, each of a shot's
 * keyframes (first, middle, last: a zoom or pan shows different parts of its photo) one query; a shot's
 * ranking is each master at its best keyframe, the video's the union of its shots' (each master at its
 * best shot's score); its auto-tie is the master auto-tied by the shots that are longest on screen
 * together. A video master enters the engine as its most representative frame: the middle keyframe
 * of its longest shot (footage-by-segment alignment is a later step).
 */
import type { TieCandidate, TieResult } from '../tie/engine.js';
import type { VideoRecord, VideoShotRecord } from '../registry/repository.js';

/** Separates an ad's asset id from its shot number in the engine's query names (asset ids never contain it). */
export const SHOT_SEPARATOR = '#';

export const shotQueryName = (adId: string, shot: number, keyframe = 1) => `${adId}${SHOT_SEPARATOR}${shot}${SHOT_SEPARATOR}${keyframe}`;

/** The keyframe blob a video master is tied by. */
export function masterKeyframe(video: VideoRecord): string | undefined {
  let best: VideoShotRecord | undefined;
  for (const s of video.shots) if (!best || s.end - s.start > best.end - best.start) best = s;
  return best?.keyframes[1]?.hash ?? best?.keyframes[0]?.hash;
}

/** The keyframe blobs each shot of a video ad is ranked by (a keyframe repeated in a short shot once). */
export function adShotKeyframes(video: VideoRecord): Array<{ shot: number; keyframe: number; hash: string }> {
  return video.shots.flatMap((s) => {
    const seen = new Set<string>();
    const out: Array<{ shot: number; keyframe: number; hash: string }> = [];
    s.keyframes.forEach((k, i) => {
      if (seen.has(k.hash)) return;
      seen.add(k.hash);
      out.push({ shot: s.index, keyframe: i, hash: k.hash });
    });
    return out;
  });
}

/** One shot's result from its keyframes' results: each master at its best keyframe; the auto-tie of the keyframe whose best score is highest. */
export function foldKeyframeResults(results: readonly TieResult[]): TieResult {
  const ok = results.filter((r) => !r.error);
  if (ok.length === 0) return results[0]!;
  const candidates = bestBy<TieCandidate>(ok.map((r) => r.candidates), (c) => c.master, (a, b) => a.score > b.score).sort((a, b) => b.score - a.score);
  const top = [...ok].sort((a, b) => (b.candidates[0]?.score ?? 0) - (a.candidates[0]?.score ?? 0))[0]!;
  return {
    ad: top.ad,
    candidates,
    autoTie: top.autoTie,
    byCosine: bestBy(ok.map((r) => r.byCosine), (c) => c.master, (a, b) => a.value > b.value).sort((a, b) => b.value - a.value),
    byEuclidean: bestBy(ok.map((r) => r.byEuclidean), (c) => c.master, (a, b) => a.value < b.value).sort((a, b) => a.value - b.value),
    ...(top.embedding ? { embedding: top.embedding } : {}),
  };
}

const bestBy = <T>(lists: T[][], key: (x: T) => string, better: (a: T, b: T) => boolean): T[] => {
  const out = new Map<string, T>();
  for (const list of lists) for (const x of list) {
    const k = key(x);
    const cur = out.get(k);
    if (!cur || better(x, cur)) out.set(k, x);
  }
  return [...out.values()];
};

/**
 * Folds the per-shot results of one video ad into its video-level result and its shots' records
 * (top `keep` masters per shot, the shot's auto-tie).
 */
export function foldShotResults(adId: string, video: VideoRecord, perShot: ReadonlyMap<number, TieResult>, keep: number): { result: TieResult; shots: VideoShotRecord[] } {
  const results = [...perShot.values()];
  const errors = results.filter((r) => r.error);
  const ok = results.filter((r) => !r.error);
  const candidates = bestBy<TieCandidate>(ok.map((r) => r.candidates), (c) => c.master, (a, b) => a.score > b.score)
    .sort((a, b) => b.score - a.score)
    .slice(0, keep);
  const byCosine = bestBy(ok.map((r) => r.byCosine), (c) => c.master, (a, b) => a.value > b.value)
    .sort((a, b) => b.value - a.value)
    .slice(0, keep);
  const byEuclidean = bestBy(ok.map((r) => r.byEuclidean), (c) => c.master, (a, b) => a.value < b.value)
    .sort((a, b) => a.value - b.value)
    .slice(0, keep);
  // Screen time per auto-tied master: the video's tie is the master it shows longest.
  const screen = new Map<string, number>();
  const shots = video.shots.map((s) => {
    const r = perShot.get(s.index);
    if (!r || r.error) return { ...s };
    if (r.autoTie) screen.set(r.autoTie, (screen.get(r.autoTie) ?? 0) + (s.end - s.start));
    return { ...s, candidates: r.candidates.slice(0, keep).map((c) => ({ master_asset_id: c.master, score: c.score })), auto_tie: r.autoTie };
  });
  let autoTie: string | null = null;
  for (const [m, t] of screen) if (autoTie === null || t > screen.get(autoTie)!) autoTie = m;
  const longest = [...ok].sort((a, b) => shotLength(video, b) - shotLength(video, a))[0];
  const result: TieResult = {
    ad: adId,
    candidates,
    autoTie,
    byCosine,
    byEuclidean,
    ...(ok.length === 0 ? { error: errors[0]?.error ?? 'no shot of the video could be ranked' } : {}),
    ...(longest?.embedding ? { embedding: longest.embedding } : {}),
  };
  return { result, shots };
}

function shotLength(video: VideoRecord, r: TieResult): number {
  const i = Number(r.ad.split(SHOT_SEPARATOR)[1]);
  const s = video.shots[i];
  return s ? s.end - s.start : 0;
}

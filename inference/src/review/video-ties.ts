/**
 * Videos in the tie engine, which ranks images: a video ad is ranked shot by shot, each of a shot's
 * keyframes (first, middle, last: a zoom or pan shows different parts of its photo) one query; a shot's
 * ranking is each master at its best keyframe, the video's the union of its shots' (each master at its
 * best shot's score); its auto-tie is the master auto-tied by the shots that are longest on screen
 * together. A video master (footage) enters the engine as one view per shot (its middle keyframe):
 * an ad's shot then names which shot of which master clip it was cut from (`master_shot`, whose time
 * range is in the master's shot list); a frame-level temporal alignment is a later step.
 */
import type { TieCandidate, TieResult } from '../tie/engine.js';
import type { VideoRecord, VideoShotRecord } from '../registry/repository.js';

/** Separates an ad's asset id from its shot number in the engine's query names (asset ids never contain it). */
export const SHOT_SEPARATOR = '#';

export const shotQueryName = (adId: string, shot: number, keyframe = 1) => `${adId}${SHOT_SEPARATOR}${shot}${SHOT_SEPARATOR}${keyframe}`;

/** The engine's name for one shot of a video master (asset ids never contain the separator). */
export const masterViewName = (masterId: string, shot: number) => `${masterId}${SHOT_SEPARATOR}${shot}`;

/** The view (middle keyframe) each shot of a video master enters the engine with. */
export function masterShotKeyframes(video: VideoRecord): Array<{ shot: number; hash: string }> {
  return video.shots.flatMap((s) => {
    const k = s.keyframes[1] ?? s.keyframes[0];
    return k ? [{ shot: s.index, hash: k.hash }] : [];
  });
}

/** A master name from the engine as (asset id, shot of a video master or undefined). */
export function parseMasterName(name: string): { master: string; shot: number | undefined } {
  const at = name.indexOf(SHOT_SEPARATOR);
  return at < 0 ? { master: name, shot: undefined } : { master: name.slice(0, at), shot: Number(name.slice(at + 1)) };
}

/**
 * One engine result with a video master's shots folded into the master: each master at its best
 * shot, that shot kept on the candidate (`masterShot`), the auto-tie named by asset id.
 */
export function collapseMasterShots(r: TieResult): TieResult {
  const shotOf = new Map<string, number>();
  const candidates = bestBy<TieCandidate>(
    [r.candidates.map((c) => ({ ...c, master: parseMasterName(c.master).master }))],
    (c) => c.master,
    (a, b) => a.score > b.score,
  );
  for (const c of [...r.candidates].sort((a, b) => a.score - b.score)) {
    const p = parseMasterName(c.master);
    if (p.shot !== undefined) shotOf.set(p.master, p.shot);
  }
  const collapse = (xs: Array<{ master: string; value: number }>, better: (a: number, b: number) => boolean) =>
    bestBy([xs.map((x) => ({ ...x, master: parseMasterName(x.master).master }))], (x) => x.master, (a, b) => better(a.value, b.value));
  return {
    ...r,
    candidates: candidates.sort((a, b) => b.score - a.score).map((c) => (shotOf.has(c.master) ? { ...c, masterShot: shotOf.get(c.master)! } : c)),
    autoTie: r.autoTie === null ? null : parseMasterName(r.autoTie).master,
    byCosine: collapse(r.byCosine, (a, b) => a > b).sort((a, b) => b.value - a.value),
    byEuclidean: collapse(r.byEuclidean, (a, b) => a < b).sort((a, b) => a.value - b.value),
  };
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
    const candidates = r.candidates.slice(0, keep).map((c) => {
      const shot = (c as TieCandidate & { masterShot?: number }).masterShot;
      return { master_asset_id: c.master, score: c.score, ...(shot !== undefined ? { master_shot: shot } : {}) };
    });
    return { ...s, candidates, auto_tie: r.autoTie };
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

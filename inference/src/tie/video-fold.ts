/**
 * Videos in the tie engine, which ranks images (shared by the registry's tiers and `afterglow tie`):
 * a video ad is ranked shot by shot, each of a shot's keyframes (first, middle, last: a zoom or pan
 * shows different parts of its photo) one query; a shot's ranking is each master at its best
 * keyframe, the video's the union of its shots' (each master at its best shot's score); its auto-tie
 * is the master auto-tied by the shots that are longest on screen together. A video master (footage)
 * enters the engine as one view per shot (its middle keyframe), named `master#shot`; every result is
 * folded back to master names, each master at its best shot (kept as `masterShot`).
 */
import type { TieCandidate, TieResult } from './engine.js';

/** Separates a name from its shot (and keyframe) number in the engine's view and query names. */
export const SHOT_SEPARATOR = '#';

export const shotQueryName = (adName: string, shot: number, keyframe = 1) => `${adName}${SHOT_SEPARATOR}${shot}${SHOT_SEPARATOR}${keyframe}`;

/** The engine's name for one shot of a video master. */
export const masterViewName = (master: string, shot: number) => `${master}${SHOT_SEPARATOR}${shot}`;

/** A candidate with the shot of a video master it matched. */
export type ShotCandidate = TieCandidate & { masterShot?: number };

/**
 * A master name from the engine as (master, shot of a video master or undefined). With `videoMasters`
 * (names that may themselves contain the separator, e.g. file names), only those are split.
 */
export function parseMasterName(name: string, videoMasters?: ReadonlySet<string>): { master: string; shot: number | undefined } {
  const at = videoMasters ? name.lastIndexOf(SHOT_SEPARATOR) : name.indexOf(SHOT_SEPARATOR);
  if (at < 0 || (videoMasters && !videoMasters.has(name.slice(0, at)))) return { master: name, shot: undefined };
  return { master: name.slice(0, at), shot: Number(name.slice(at + 1)) };
}

export const bestBy = <T>(lists: T[][], key: (x: T) => string, better: (a: T, b: T) => boolean): T[] => {
  const out = new Map<string, T>();
  for (const list of lists) for (const x of list) {
    const k = key(x);
    const cur = out.get(k);
    if (!cur || better(x, cur)) out.set(k, x);
  }
  return [...out.values()];
};

/** One engine result with each video master's shots folded into the master (at its best shot, kept on the candidate). */
export function collapseMasterShots(r: TieResult, videoMasters?: ReadonlySet<string>): TieResult {
  const parse = (name: string) => parseMasterName(name, videoMasters);
  const shotOf = new Map<string, number>();
  for (const c of [...r.candidates].sort((a, b) => a.score - b.score)) {
    const p = parse(c.master);
    if (p.shot !== undefined) shotOf.set(p.master, p.shot);
  }
  const candidates = bestBy<TieCandidate>([r.candidates.map((c) => ({ ...c, master: parse(c.master).master }))], (c) => c.master, (a, b) => a.score > b.score);
  const collapse = (xs: Array<{ master: string; value: number }>, better: (a: number, b: number) => boolean) =>
    bestBy([xs.map((x) => ({ ...x, master: parse(x.master).master }))], (x) => x.master, (a, b) => better(a.value, b.value));
  return {
    ...r,
    candidates: candidates.sort((a, b) => b.score - a.score).map((c): ShotCandidate => (shotOf.has(c.master) ? { ...c, masterShot: shotOf.get(c.master)! } : c)),
    autoTie: r.autoTie === null ? null : parse(r.autoTie).master,
    byCosine: collapse(r.byCosine, (a, b) => a > b).sort((a, b) => b.value - a.value),
    byEuclidean: collapse(r.byEuclidean, (a, b) => a < b).sort((a, b) => a.value - b.value),
  };
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

/**
 * A video ad's result from its shots' (each master at its best shot, top `keep`); its auto-tie the
 * auto-tied master longest on screen; its embedding the longest ranked shot's.
 */
export function foldVideo(ad: string, shots: ReadonlyArray<{ index: number; start: number; end: number }>, perShot: ReadonlyMap<number, TieResult>, keep: number): TieResult {
  const ok = shots.flatMap((s) => {
    const r = perShot.get(s.index);
    return r && !r.error ? [{ s, r }] : [];
  });
  const first = [...perShot.values()].find((r) => r.error);
  const screen = new Map<string, number>();
  for (const { s, r } of ok) if (r.autoTie) screen.set(r.autoTie, (screen.get(r.autoTie) ?? 0) + (s.end - s.start));
  let autoTie: string | null = null;
  for (const [m, t] of screen) if (autoTie === null || t > screen.get(autoTie)!) autoTie = m;
  const longest = [...ok].sort((a, b) => b.s.end - b.s.start - (a.s.end - a.s.start))[0];
  return {
    ad,
    candidates: bestBy<TieCandidate>(ok.map((x) => x.r.candidates), (c) => c.master, (a, b) => a.score > b.score).sort((a, b) => b.score - a.score).slice(0, keep),
    autoTie,
    byCosine: bestBy(ok.map((x) => x.r.byCosine), (c) => c.master, (a, b) => a.value > b.value).sort((a, b) => b.value - a.value).slice(0, keep),
    byEuclidean: bestBy(ok.map((x) => x.r.byEuclidean), (c) => c.master, (a, b) => a.value < b.value).sort((a, b) => a.value - b.value).slice(0, keep),
    ...(ok.length === 0 ? { error: first?.error ?? 'no shot of the video could be ranked' } : {}),
    ...(longest?.r.embedding ? { embedding: longest.r.embedding } : {}),
  };
}

/**
 * Video assets in the registry's tie engines (./tiers.ts), by the folding rules of ../tie/video-fold.ts:
 * which keyframes enter the engine for a video master and a video ad, and a ranked video ad's shots
 * as stored records (each shot its top masters, the shot of a video master it matched, its auto-tie:
 * `null` for B-roll and end cards).
 */
import { foldVideo, type ShotCandidate } from '../tie/video-fold.js';
import type { TieResult } from '../tie/engine.js';
import type { VideoRecord, VideoShotRecord } from '../registry/repository.js';

export { collapseMasterShots, foldKeyframeResults, masterViewName, shotQueryName } from '../tie/video-fold.js';

/** The view (middle keyframe) each shot of a video master enters the engine with. */
export function masterShotKeyframes(video: VideoRecord): Array<{ shot: number; hash: string }> {
  return video.shots.flatMap((s) => {
    const k = s.keyframes[1] ?? s.keyframes[0];
    return k ? [{ shot: s.index, hash: k.hash }] : [];
  });
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

/** A video ad's result and its shots' records from the per-shot results (top `keep` masters each). */
export function foldShotResults(adId: string, video: VideoRecord, perShot: ReadonlyMap<number, TieResult>, keep: number): { result: TieResult; shots: VideoShotRecord[] } {
  const shots = video.shots.map((s) => {
    const r = perShot.get(s.index);
    if (!r || r.error) return { ...s };
    const candidates = r.candidates.slice(0, keep).map((c) => {
      const shot = (c as ShotCandidate).masterShot;
      return { master_asset_id: c.master, score: c.score, ...(shot !== undefined ? { master_shot: shot } : {}) };
    });
    return { ...s, candidates, auto_tie: r.autoTie };
  });
  return { result: foldVideo(adId, video.shots, perShot, keep), shots };
}

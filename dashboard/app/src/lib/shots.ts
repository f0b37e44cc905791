/**
 * What these helpers read of a shot (GET /v1/assets/:id/video; api.ts VideoShotJson has it all), kept
 * apart from api.ts so they stay plain functions with no app state behind them.
 */
export interface ShotFacts {
  index: number;
  start: number;
  end: number;
  candidates?: { master_asset_id: string; score: number }[];
  auto_tie?: string | null;
  review?: { action: 'tie' | 'no_sim'; master_asset_id: string | null; score: number | null; decided_by: string };
}

/** Seconds as m:ss.s (a shot's bounds are to the frame; tenths tell shots of one second apart). */
export function fmtVideoTime(s: number): string {
  const t = Math.max(0, s);
  const m = Math.floor(t / 60);
  const rest = t - m * 60;
  return `${m}:${rest.toFixed(1).padStart(4, '0')}`;
}

export function fmtShotRange(shot: Pick<ShotFacts, 'start' | 'end'>): string {
  return `${fmtVideoTime(shot.start)}–${fmtVideoTime(shot.end)}`;
}

/**
 * Which master a shot counts as cut from, by whose word: a person's review first, then the engine's
 * auto-tie; `none` when ranked and nothing clears the threshold (B-roll, end cards), with the best
 * guess for the reviewer; `unranked` before the video is ranked.
 */
export type ShotMaster =
  | { kind: 'reviewed'; master: string; score: number | null; by: string }
  | { kind: 'reviewed_none'; by: string }
  | { kind: 'auto'; master: string; score: number | null }
  | { kind: 'none'; best: { master: string; score: number } | null }
  | { kind: 'unranked' };

export function shotMaster(shot: ShotFacts): ShotMaster {
  const r = shot.review;
  if (r?.action === 'tie' && r.master_asset_id) return { kind: 'reviewed', master: r.master_asset_id, score: r.score, by: r.decided_by };
  if (r?.action === 'no_sim') return { kind: 'reviewed_none', by: r.decided_by };
  if (!shot.candidates) return { kind: 'unranked' };
  if (shot.auto_tie) return { kind: 'auto', master: shot.auto_tie, score: shot.candidates.find((c) => c.master_asset_id === shot.auto_tie)?.score ?? null };
  const best = shot.candidates[0];
  return { kind: 'none', best: best ? { master: best.master_asset_id, score: best.score } : null };
}

/** The shot on screen at `t` seconds (the last one whose start is at or before it). */
export function shotAt(shots: readonly ShotFacts[], t: number): number | null {
  let at: number | null = null;
  for (const s of shots) if (s.start <= t + 1e-3) at = s.index;
  return at;
}

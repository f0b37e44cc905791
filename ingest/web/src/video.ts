/**
 * Plays of one <video> creative, free of the DOM so a test can drive it: the element's playing,
 * pause, timeupdate and ended events go in, Afterglow's video events come out (their values are
 * the ones core/src/events.ts accepts):
 *   video_start     once per play (a play begins at the first `playing`, and again after `ended`)
 *   video_seconds 3 once per play, at 3 s of the video, or at its end when it is shorter (the hook)
 *   video_progress  25, 50, 75: once per play each, when the playhead passes that percent
 *   video_complete  once per play, at `ended`
 *   video_watch     milliseconds played (by the page's clock, while playing) since the last report;
 *                   reported at pause, each milestone, the end, and whenever the page is hidden
 */

export type VideoKind = 'video_start' | 'video_progress' | 'video_seconds' | 'video_complete' | 'video_watch';

const HOOK_S = 3;
const QUARTILES = [25, 50, 75];
/** The most one video_watch may carry (the server refuses more); longer stretches go as several. */
const WATCH_MAX_MS = 3_600_000;

export class VideoPlays {
  private inPlay = false;
  private reached = new Set<number>();
  private playingSince: number | undefined;
  private watched = 0;

  constructor(private readonly send: (kind: VideoKind, value: number, at: number) => void) {}

  playing(at: number): void {
    if (!this.inPlay) {
      this.inPlay = true;
      this.reached.clear();
      this.send('video_start', 1, at);
    }
    this.playingSince ??= at;
  }

  paused(at: number): void {
    this.report(at, false);
  }

  /** `timeupdate`: the playhead (s) and the duration (s, NaN/Infinity while unknown or live). */
  time(current: number, duration: number, at: number): void {
    if (!this.inPlay) return;
    let crossed = false;
    if (current >= HOOK_S) crossed = this.mark(-HOOK_S, 'video_seconds', HOOK_S, at) || crossed;
    if (duration > 0 && Number.isFinite(duration)) {
      for (const q of QUARTILES) if ((current / duration) * 100 >= q) crossed = this.mark(q, 'video_progress', q, at) || crossed;
    }
    if (crossed) this.report(at, true);
  }

  ended(at: number): void {
    if (!this.inPlay) return;
    // A short video (or a coarse timeupdate) ends before its milestones were seen: they were reached.
    this.mark(-HOOK_S, 'video_seconds', HOOK_S, at);
    for (const q of QUARTILES) this.mark(q, 'video_progress', q, at);
    this.send('video_complete', 1, at);
    this.report(at, false);
    this.inPlay = false;
  }

  /** Page hidden or tracker stopped: what was watched so far is reported (playing goes on counting). */
  flush(at: number): void {
    this.report(at, this.playingSince !== undefined);
  }

  private mark(key: number, kind: VideoKind, value: number, at: number): boolean {
    if (this.reached.has(key)) return false;
    this.reached.add(key);
    this.send(kind, value, at);
    return true;
  }

  private report(at: number, stillPlaying: boolean): void {
    if (this.playingSince !== undefined) this.watched += Math.max(0, at - this.playingSince);
    this.playingSince = stillPlaying ? at : undefined;
    while (this.watched >= 1) {
      const ms = Math.min(Math.round(this.watched), WATCH_MAX_MS);
      this.send('video_watch', ms, at);
      this.watched = Math.max(0, this.watched - ms);
    }
  }
}

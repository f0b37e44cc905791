/**
 * The MRC/IAB viewability rule for one creative, free of the DOM so it can be tested on a clock
 * the test controls: a display creative is viewable once at least 50 % of its pixels have been in
 * view for one continuous second (video: 50 % for two continuous seconds). "In view" also needs
 * the page itself to be visible: a background tab stops the clock, and coming back starts a new
 * continuous period rather than resuming the old one.
 */

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ViewabilityRule {
  /** Fraction of the creative's pixels that must be in view. */
  ratio: number;
  /** How long, continuously, in milliseconds. */
  ms: number;
}

export const DISPLAY_RULE: ViewabilityRule = { ratio: 0.5, ms: 1000 };
export const VIDEO_RULE: ViewabilityRule = { ratio: 0.5, ms: 2000 };

/** IntersectionObserver reports 0.4999... for a creative cut exactly in half. */
const RATIO_SLACK = 0.005;

export interface ViewabilityEvents {
  /** Once: the rule was met (at = clock time it was met). */
  viewable(at: number): void;
  /** Each period in view that ends after the creative was viewable: its length in ms. */
  dwell(ms: number, at: number): void;
}

export class ViewabilityTimer {
  private ratio = 0;
  private inViewSince: number | undefined;
  private timer: unknown;
  private met = false;

  constructor(
    private readonly rule: ViewabilityRule,
    private readonly clock: Clock,
    private readonly on: ViewabilityEvents,
    private pageVisible = true,
  ) {}

  get viewable(): boolean {
    return this.met;
  }

  /** The fraction of the creative in view now (IntersectionObserver's intersectionRatio). */
  setRatio(ratio: number, at = this.clock.now()): void {
    this.ratio = ratio;
    this.update(at);
  }

  setPageVisible(visible: boolean, at = this.clock.now()): void {
    this.pageVisible = visible;
    this.update(at);
  }

  /** The creative is gone (removed, page left): an open period in view ends here. */
  stop(at = this.clock.now()): void {
    this.ratio = 0;
    this.update(at);
  }

  private update(at: number): void {
    const inView = this.pageVisible && this.ratio >= this.rule.ratio - RATIO_SLACK;
    if (inView && this.inViewSince === undefined) {
      this.inViewSince = at;
      if (!this.met) this.arm(this.rule.ms - (this.clock.now() - at));
    } else if (!inView && this.inViewSince !== undefined) {
      const since = this.inViewSince;
      this.inViewSince = undefined;
      this.disarm();
      if (this.met && at > since) this.on.dwell(at - since, at);
    }
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = this.clock.setTimeout(() => this.check(), Math.max(0, ms));
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    this.timer = undefined;
    const since = this.inViewSince;
    if (since === undefined || this.met) return;
    const now = this.clock.now();
    // Timers may fire early (clamping, clock adjustments): wait out the rest.
    if (now - since < this.rule.ms) return this.arm(this.rule.ms - (now - since));
    this.met = true;
    this.on.viewable(now);
  }
}

/**
 * Engagement decay: how fast a creative's interest fades after its peak.
 *
 * The data are engagement counts over time bins (any widths: 1-minute buckets, ClickHouse rollups at
 * a `step`, or the adaptive bins of a DecayTracker). Counts are modelled as Poisson with a rate
 * that decays from the peak, fitted by maximum likelihood (IRLS on a log-link GLM with the bin
 * width as exposure, so zero-count bins and uneven bins are handled exactly):
 *
 *   exponential  rate(t) = r0 * exp(-lambda * t)            half-life = ln 2 / lambda
 *   power law    rate(t) = r0 * (1 + t / tau)^(-alpha)       half-life = tau * (2^(1/alpha) - 1)
 *
 * with t the time since the peak. The power law's tau is found by a grid then golden-section search
 * (for a fixed tau it is a GLM in log(1 + t/tau)). The model is chosen by quasi-AIC (deviance over the
 * dispersion, plus 2 per parameter), so the 3-parameter power law has to earn its extra parameter.
 * Intervals on the half-life come from the decay parameter's standard error, inflated by the
 * Pearson dispersion when the data are burstier than Poisson (quasi-Poisson), which keeps them
 * honest on noisy traffic. The fatigue forecast is when the fitted rate falls below
 * `fatigueFraction` of its value at the peak.
 */

export interface DecayBin {
  /** Epoch ms, [start, end). */
  start: number;
  end: number;
  count: number;
}

export type DecayModelName = 'exponential' | 'power_law';

export interface ModelFit {
  model: DecayModelName;
  /** Fitted rate at the peak, events per minute. */
  rate0_per_min: number;
  /** Exponential: decay constant per minute. */
  lambda_per_min?: number;
  /** Power law: time scale (minutes) and exponent. */
  tau_min?: number;
  alpha?: number;
  half_life_ms: number | null;
  /** 95% interval; the upper end is null when the data cannot rule out "not decaying". */
  half_life_ci: [number, number | null] | null;
  deviance: number;
  /** Quasi-AIC used for the choice (lower is better). */
  qaic: number;
}

export interface DecayCurvePoint {
  t: number;
  observed_per_min: number;
  /** The chosen model's rate (after the peak only). */
  fitted_per_min: number | null;
}

export interface DecayFit {
  status: 'ok' | 'insufficient_data' | 'not_decaying';
  /** Engagements in the series. */
  events: number;
  peak_at: number | null;
  peak_rate_per_min: number | null;
  model: DecayModelName | null;
  half_life_ms: number | null;
  half_life_ci: [number, number | null] | null;
  fatigue_fraction: number;
  /** When the fitted rate falls below fatigue_fraction x its peak value. */
  fatigue_at: number | null;
  fatigued: boolean;
  /** Pearson dispersion of the chosen fit (1 = Poisson; bursty traffic is higher). */
  dispersion: number | null;
  models: { exponential: ModelFit | null; power_law: ModelFit | null };
  curve?: DecayCurvePoint[];
  /** The chosen model extrapolated from the last bin to the fatigue time (or 24 h). */
  forecast?: { t: number; fitted_per_min: number }[];
}

export interface FitOptions {
  fatigueFraction: number;
  now: number;
  /** Fewer engagements than this (after the peak) is insufficient data. Default 30. */
  minEvents?: number;
  /** Fewer bins after the peak than this is insufficient data. Default 4. */
  minBins?: number;
  /** Include the observed/fitted curve and a forecast. */
  curve?: boolean;
}

const MINUTE = 60_000;
const Z95 = 1.959963984540054;
const POWER_LAW_MARGIN = 10;

interface GlmResult {
  b0: number;
  b1: number;
  /** Standard error of b1, before the dispersion is applied. */
  se1: number;
  /** Deviance, each bin's share weighted by its robustness weight. */
  deviance: number;
  /** Dispersion (1 = Poisson), from the robust scale of the Pearson residuals. */
  dispersion: number;
}

/** Huber's tuning constant on scaled Pearson residuals: about 95% efficiency on clean data. */
const HUBER_C = 2;

/**
 * Robust Poisson regression log(mu) = offset + b0 + b1 * x by iteratively reweighted least
 * squares. Bins whose Pearson residual, over a robust (MAD) scale, exceeds HUBER_C get weight
 * c/|r| (Huber), so one viral burst cannot drag the decay curve towards itself, while clean
 * Poisson data keep nearly full weight. Starts from weighted least squares on log((y + 0.5) / exposure).
 */
export function poissonGlm(x: readonly number[], y: readonly number[], offset: readonly number[], robust = true, init?: { b0: number; b1: number }): GlmResult | undefined {
  const n = x.length;
  if (n < 2) return undefined;
  let b0: number;
  let b1: number;
  if (init && Number.isFinite(init.b0) && Number.isFinite(init.b1)) {
    b0 = init.b0;
    b1 = init.b1;
  } else {
    let sw = 0, sx = 0, sz = 0, sxx = 0, sxz = 0;
    for (let i = 0; i < n; i++) {
      const w = y[i]! + 0.5;
      const z = Math.log(y[i]! + 0.5) - offset[i]!;
      sw += w; sx += w * x[i]!; sz += w * z; sxx += w * x[i]! * x[i]!; sxz += w * x[i]! * z;
    }
    const det = sw * sxx - sx * sx;
    if (!(Math.abs(det) > 1e-12)) return undefined;
    b1 = (sw * sxz - sx * sz) / det;
    b0 = (sz - b1 * sx) / sw;
  }
  const mu = new Array<number>(n);
  const r = new Array<number>(n);
  const h = new Array<number>(n).fill(1);
  let scale = 1;
  const update = (robust: boolean) => {
    for (let i = 0; i < n; i++) {
      const m = Math.max(Math.exp(Math.min(offset[i]! + b0 + b1 * x[i]!, 700)), 1e-300);
      mu[i] = m;
      r[i] = (y[i]! - m) / Math.sqrt(m);
      if (robust) {
        const a = Math.abs(r[i]!) / scale;
        h[i] = a <= HUBER_C ? 1 : HUBER_C / a;
      }
    }
  };
  /** IRLS steps to convergence with the weights as they are (Huber weights follow mu when robust). */
  const iterate = (robust: boolean) => {
    update(robust);
    for (let iter = 0; iter < 60; iter++) {
      let sw = 0, sx = 0, sz = 0, sxx = 0, sxz = 0;
      for (let i = 0; i < n; i++) {
        const m = mu[i]!;
        const z = b0 + b1 * x[i]! + (y[i]! - m) / m;
        const w = m * h[i]!;
        sw += w; sx += w * x[i]!; sz += w * z; sxx += w * x[i]! * x[i]!; sxz += w * x[i]! * z;
      }
      const det = sw * sxx - sx * sx;
      if (!(det > 0) || !Number.isFinite(det)) return;
      const nb1 = (sw * sxz - sx * sz) / det;
      const nb0 = (sz - nb1 * sx) / sw;
      const step = Math.abs(nb1 - b1) + Math.abs(nb0 - b0);
      b0 = nb0;
      b1 = nb1;
      update(robust);
      if (step < 1e-9 * (1 + Math.abs(b0) + Math.abs(b1))) return;
    }
  };
  // Plain Poisson first; then a robust scale of its residuals (MAD, never below Poisson) fixes the
  // Huber cut-off for the reweighted fit.
  iterate(false);
  if (robust) {
    scale = Math.max(1, 1.4826 * median(r.map(Math.abs)));
    iterate(true);
  }
  if (!Number.isFinite(b0) || !Number.isFinite(b1)) return undefined;
  let sw = 0, sx = 0, sxx = 0, deviance = 0, pearson = 0, hsum = 0;
  for (let i = 0; i < n; i++) {
    const m = mu[i]!;
    const w = m * h[i]!;
    sw += w; sx += w * x[i]!; sxx += w * x[i]! * x[i]!;
    const yi = y[i]!;
    deviance += h[i]! * 2 * ((yi > 0 ? yi * Math.log(yi / m) : 0) - (yi - m));
    pearson += h[i]! * r[i]! * r[i]!;
    hsum += h[i]!;
  }
  const det = sw * sxx - sx * sx;
  const se1 = det > 0 ? Math.sqrt(sw / det) : Infinity;
  // Dispersion: the larger of the robust scale and the (weighted) Pearson estimate, never below Poisson.
  const dispersion = Math.max(1, scale * scale, n > 2 ? pearson / Math.max(hsum - 2, 1) : 1);
  return { b0, b1, se1, deviance, dispersion };
}

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

interface Prepared {
  /** Minutes since the peak bin's midpoint, per post-peak bin. */
  x: number[];
  y: number[];
  /** log(width in minutes). */
  offset: number[];
  t0: number;
  peakRate: number;
  events: number;
  span: number;
  minWidth: number;
}

/** Sorted, non-empty bins; the peak by a 3-bin smoothed rate; the bins from the peak on. */
function prepare(bins: readonly DecayBin[]): { all: DecayBin[]; post?: Prepared; events: number } {
  const all = bins.filter((b) => b.end > b.start && Number.isFinite(b.count) && b.count >= 0).sort((a, b) => a.start - b.start);
  const events = all.reduce((a, b) => a + b.count, 0);
  if (all.length === 0) return { all, events };
  // The peak: first the maximum of a running median over ~1/25 of the series (at least 5 bins),
  // so a burst or a spike does not pass for the peak, then the maximum of a 3-bin running median
  // near it, because a wide median drifts before an asymmetric (fast-decaying) peak.
  const half = Math.max(2, Math.round(all.length / 50));
  const rates = all.map((b) => b.count / (b.end - b.start));
  const runningMedian = (h: number) => rates.map((_, i) => median(rates.slice(Math.max(0, i - h), Math.min(all.length, i + h + 1))));
  const wide = runningMedian(half);
  const coarse = wide.indexOf(Math.max(...wide));
  const narrow = runningMedian(1);
  let peak = coarse;
  for (let i = Math.max(0, coarse - half); i <= Math.min(all.length - 1, coarse + half); i++) if (narrow[i]! > narrow[peak]!) peak = i;
  const best = narrow[peak]!;
  const t0 = (all[peak]!.start + all[peak]!.end) / 2;
  const postBins = all.slice(peak);
  const x: number[] = [];
  const y: number[] = [];
  const offset: number[] = [];
  let postEvents = 0;
  let minWidth = Infinity;
  for (const b of postBins) {
    const width = (b.end - b.start) / MINUTE;
    x.push(((b.start + b.end) / 2 - t0) / MINUTE);
    y.push(b.count);
    offset.push(Math.log(width));
    postEvents += b.count;
    minWidth = Math.min(minWidth, width);
  }
  return {
    all,
    events,
    post: { x, y, offset, t0, peakRate: best * MINUTE, events: postEvents, span: x[x.length - 1]! + minWidth, minWidth },
  };
}

function fitExponential(p: Prepared): { fit: ModelFit; glm: GlmResult } | undefined {
  const glm = poissonGlm(p.x, p.y, p.offset);
  if (!glm) return undefined;
  const lambda = -glm.b1;
  const fit: ModelFit = {
    model: 'exponential',
    rate0_per_min: Math.exp(glm.b0),
    lambda_per_min: lambda,
    half_life_ms: lambda > 0 ? (Math.LN2 / lambda) * MINUTE : null,
    half_life_ci: null,
    deviance: glm.deviance,
    qaic: 0,
  };
  return { fit, glm };
}

function powerGlm(p: Prepared, tau: number, robust: boolean, init?: GlmResult): GlmResult | undefined {
  return poissonGlm(
    p.x.map((x) => Math.log1p(Math.max(x, 0) / tau)),
    p.y,
    p.offset,
    robust,
    init,
  );
}

function fitPowerLaw(p: Prepared): { fit: ModelFit; glm: GlmResult; tau: number } | undefined {
  // tau from a fraction of the finest bin to well past the observed span, log-spaced.
  const lo = Math.log(Math.max(p.minWidth * 0.05, 1e-3));
  const hi = Math.log(Math.max(p.span * 20, p.minWidth * 10));
  const GRID = 16;
  let bestI = -1;
  let bestD = Infinity;
  let bestFit: GlmResult | undefined;
  const grid: number[] = [];
  // Each fit starts from its neighbour's solution: a few IRLS steps instead of a cold start.
  let warm: GlmResult | undefined;
  for (let i = 0; i < GRID; i++) {
    const lt = lo + ((hi - lo) * i) / (GRID - 1);
    grid.push(lt);
    const g = powerGlm(p, Math.exp(lt), false, warm);
    if (g) warm = g;
    if (g && g.deviance < bestD) {
      bestD = g.deviance;
      bestI = i;
      bestFit = g;
    }
  }
  if (bestI < 0) return undefined;
  // Golden-section refinement of log(tau) around the best grid point.
  let a = grid[Math.max(0, bestI - 1)]!;
  let b = grid[Math.min(GRID - 1, bestI + 1)]!;
  const phi = (Math.sqrt(5) - 1) / 2;
  // tau is searched on the plain Poisson deviance: robust weights would reward a wrong tau for
  // turning well-fitted bins into outliers.
  const dev = (lt: number) => powerGlm(p, Math.exp(lt), false, bestFit)?.deviance ?? Infinity;
  let c = b - phi * (b - a);
  let d = a + phi * (b - a);
  let fc = dev(c);
  let fd = dev(d);
  for (let i = 0; i < 30 && b - a > 0.01; i++) {
    if (fc < fd) {
      b = d; d = c; fd = fc; c = b - phi * (b - a); fc = dev(c);
    } else {
      a = c; c = d; fc = fd; d = a + phi * (b - a); fd = dev(d);
    }
  }
  const candidates = [grid[bestI]!, c, d];
  let tauLog = candidates[0]!;
  let best = Infinity;
  for (const lt of candidates) {
    const v = dev(lt);
    if (v < best) {
      best = v;
      tauLog = lt;
    }
  }
  const tau = Math.exp(tauLog);
  const glm = powerGlm(p, tau, true, bestFit);
  if (!glm) return undefined;
  const alpha = -glm.b1;
  const fit: ModelFit = {
    model: 'power_law',
    rate0_per_min: Math.exp(glm.b0),
    tau_min: tau,
    alpha,
    half_life_ms: alpha > 0 ? tau * (2 ** (1 / alpha) - 1) * MINUTE : null,
    half_life_ci: null,
    deviance: glm.deviance,
    qaic: 0,
  };
  return { fit, glm, tau };
}

/** Fit both models to `bins` and choose; see the module comment. */
export function fitDecay(bins: readonly DecayBin[], options: FitOptions): DecayFit {
  const minEvents = options.minEvents ?? 30;
  const minBins = options.minBins ?? 4;
  const f = options.fatigueFraction;
  const { all, post, events } = prepare(bins);
  const empty: DecayFit = {
    status: 'insufficient_data',
    events,
    peak_at: post ? Math.round(post.t0) : null,
    peak_rate_per_min: post ? round(post.peakRate, 4) : null,
    model: null,
    half_life_ms: null,
    half_life_ci: null,
    fatigue_fraction: f,
    fatigue_at: null,
    fatigued: false,
    dispersion: null,
    models: { exponential: null, power_law: null },
  };
  if (!post || post.x.length < minBins || post.events < minEvents) {
    if (options.curve) empty.curve = curveOf(all, undefined);
    return empty;
  }
  const exp = fitExponential(post);
  const pow = post.x.length >= 4 ? fitPowerLaw(post) : undefined;
  // One dispersion for both (from the richer model), as quasi-AIC requires.
  const phi = (pow?.glm ?? exp?.glm)?.dispersion ?? 1;
  if (exp) {
    exp.fit.qaic = exp.glm.deviance / phi + 4;
    const lambda = exp.fit.lambda_per_min!;
    const se = exp.glm.se1 * Math.sqrt(phi);
    exp.fit.half_life_ci = lambda > 0 ? ciOf((l) => (Math.LN2 / l) * MINUTE, lambda, se) : null;
  }
  if (pow) {
    pow.fit.qaic = pow.glm.deviance / phi + 6;
    const alpha = pow.fit.alpha!;
    const tau = pow.tau;
    const se = pow.glm.se1 * Math.sqrt(phi);
    pow.fit.half_life_ci = alpha > 0 ? ciOf((a) => tau * (2 ** (1 / a) - 1) * MINUTE, alpha, se) : null;
  }
  // The power law must leave the exponential "essentially no support" (a QAIC gain over 10,
  // Burnham & Anderson) to be chosen: on bursty exponential traffic its extra parameter buys a few
  // units by chasing bursts, on a real power law it wins by hundreds.
  const chosen = !pow ? exp : !exp ? pow : pow.fit.qaic < exp.fit.qaic - POWER_LAW_MARGIN ? pow : exp;
  const result: DecayFit = {
    ...empty,
    models: { exponential: exp ? roundFit(exp.fit) : null, power_law: pow ? roundFit(pow.fit) : null },
  };
  if (!chosen) return result;
  const fit = chosen.fit;
  result.model = fit.model;
  result.dispersion = round(phi, 3);
  result.status = fit.half_life_ms === null ? 'not_decaying' : 'ok';
  result.half_life_ms = fit.half_life_ms === null ? null : Math.round(fit.half_life_ms);
  result.half_life_ci = fit.half_life_ci;
  const toFatigue = fatigueMinutes(fit, f);
  result.fatigue_at = toFatigue === null ? null : Math.round(post.t0 + toFatigue * MINUTE);
  result.fatigued = result.fatigue_at !== null && options.now >= result.fatigue_at;
  if (options.curve) {
    result.curve = curveOf(all, (t) => (t < post.t0 ? null : rateAt(fit, (t - post.t0) / MINUTE)));
    const last = all[all.length - 1]!.end;
    // Up to the fatigue time if it is ahead; otherwise two half-lives (at least an hour) ahead.
    const ahead = Math.max(2 * (result.half_life_ms ?? 12 * 60 * MINUTE), 60 * MINUTE);
    const until = result.fatigue_at !== null && result.fatigue_at > last ? result.fatigue_at : last + ahead;
    const horizon = Math.min(until, last + 30 * 24 * 60 * MINUTE);
    const forecast: { t: number; fitted_per_min: number }[] = [];
    for (let i = 1; i <= 12; i++) {
      const t = last + ((horizon - last) * i) / 12;
      if (t <= last) break;
      forecast.push({ t: Math.round(t), fitted_per_min: round(rateAt(fit, (t - post.t0) / MINUTE), 4) });
    }
    result.forecast = forecast;
  }
  return result;
}

/** Interval of g(theta) for theta +- z*se, g decreasing in theta (a half-life from a decay rate). */
function ciOf(g: (theta: number) => number, theta: number, se: number): [number, number | null] {
  if (!Number.isFinite(se)) return [0, null];
  const hiTheta = theta + Z95 * se;
  const loTheta = theta - Z95 * se;
  return [Math.round(g(hiTheta)), loTheta > 0 ? Math.round(g(loTheta)) : null];
}

function rateAt(fit: ModelFit, minutes: number): number {
  if (fit.model === 'exponential') return fit.rate0_per_min * Math.exp(-fit.lambda_per_min! * minutes);
  return fit.rate0_per_min * (1 + Math.max(minutes, 0) / fit.tau_min!) ** -fit.alpha!;
}

function fatigueMinutes(fit: ModelFit, f: number): number | null {
  if (fit.model === 'exponential') return fit.lambda_per_min! > 0 ? Math.log(1 / f) / fit.lambda_per_min! : null;
  return fit.alpha! > 0 ? fit.tau_min! * (f ** (-1 / fit.alpha!) - 1) : null;
}

function curveOf(all: readonly DecayBin[], fitted: ((t: number) => number | null) | undefined): DecayCurvePoint[] {
  return all.map((b) => {
    const t = Math.round((b.start + b.end) / 2);
    const y = fitted?.(t) ?? null;
    return { t, observed_per_min: round(b.count / ((b.end - b.start) / MINUTE), 4), fitted_per_min: y === null ? null : round(y, 4) };
  });
}

function roundFit(fit: ModelFit): ModelFit {
  const out: ModelFit = {
    ...fit,
    rate0_per_min: round(fit.rate0_per_min, 4),
    half_life_ms: fit.half_life_ms === null ? null : Math.round(fit.half_life_ms),
    deviance: round(fit.deviance, 3),
    qaic: round(fit.qaic, 3),
  };
  if (fit.lambda_per_min !== undefined) out.lambda_per_min = round(fit.lambda_per_min, 6);
  if (fit.tau_min !== undefined) out.tau_min = round(fit.tau_min, 4);
  if (fit.alpha !== undefined) out.alpha = round(fit.alpha, 4);
  return out;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export interface TrackerOptions {
  /** Bins kept at most; the closest adjacent pair is merged beyond it. Default 64. */
  maxBins?: number;
  /** A bin stays open (absorbs the next minutes) until it holds this many engagements... Default 10. */
  minBinCount?: number;
  /** ...or spans this many minutes. Default 120. */
  maxBinMinutes?: number;
}

/**
 * The online half of decay fitting, one per asset: finished minutes (older than the live late
 * window, so their counts are final) are absorbed into adaptive bins that close once they hold
 * enough engagements, so the peak keeps minute resolution and the quiet tail gets wide bins. The
 * state is bounded (maxBins) however long the asset lives, costs O(1) per minute, and is small
 * enough to travel with the asset's hot state and deltas; a fit runs on these bins plus the
 * minutes still in the live ring.
 */
export class DecayTracker {
  /** Minutes (epoch minute numbers) are [start, end) with a count. */
  private bins: [number, number, number][] = [];
  /** Every minute before this one has been absorbed. */
  absorbedUntil = -1;
  private readonly maxBins: number;
  private readonly minBinCount: number;
  private readonly maxBinMinutes: number;

  constructor(options: TrackerOptions = {}) {
    this.maxBins = options.maxBins ?? 64;
    this.minBinCount = options.minBinCount ?? 10;
    this.maxBinMinutes = options.maxBinMinutes ?? 120;
  }

  get binCount(): number {
    return this.bins.length;
  }

  /** Absorb minute `minute` with `count` engagements; minutes skipped since the last one count 0. */
  absorb(minute: number, count: number): void {
    if (minute < this.absorbedUntil) return;
    if (this.absorbedUntil >= 0 && minute > this.absorbedUntil) this.span(this.absorbedUntil, minute, 0);
    this.span(minute, minute + 1, count);
    this.absorbedUntil = minute + 1;
  }

  /** Absorb the zero minutes up to (not including) `minute`. */
  skipTo(minute: number): void {
    if (this.absorbedUntil >= 0 && minute > this.absorbedUntil) {
      this.span(this.absorbedUntil, minute, 0);
      this.absorbedUntil = minute;
    }
  }

  private span(start: number, end: number, count: number): void {
    const last = this.bins[this.bins.length - 1];
    if (last && last[1] === start && last[2] < this.minBinCount && last[1] - last[0] < this.maxBinMinutes) {
      last[1] = end;
      last[2] += count;
    } else if (this.bins.length > 0 || count > 0) {
      // Leading zeros (before the first engagement) carry nothing.
      this.bins.push([start, end, count]);
    }
    while (this.bins.length > this.maxBins) this.mergeClosest();
  }

  /** Merge the adjacent pair spanning the least time (uniform resolution over the history). */
  private mergeClosest(): void {
    let best = 0;
    let bestWidth = Infinity;
    // The newest bin stays as it is: it may still be open.
    for (let i = 0; i + 2 < this.bins.length; i++) {
      const w = this.bins[i + 1]![1] - this.bins[i]![0];
      if (w < bestWidth) {
        bestWidth = w;
        best = i;
      }
    }
    const a = this.bins[best]!;
    const b = this.bins[best + 1]!;
    this.bins.splice(best, 2, [a[0], b[1], a[2] + b[2]]);
  }

  /** The bins in ms, for fitDecay. */
  toBins(): DecayBin[] {
    return this.bins.map(([s, e, c]) => ({ start: s * MINUTE, end: e * MINUTE, count: c }));
  }

  toJSON(): string {
    return JSON.stringify({ u: this.absorbedUntil, b: this.bins });
  }

  static fromJSON(text: string | undefined, options: TrackerOptions = {}): DecayTracker {
    const t = new DecayTracker(options);
    if (!text) return t;
    try {
      const v = JSON.parse(text) as { u?: unknown; b?: unknown };
      if (typeof v.u === 'number' && Number.isInteger(v.u)) t.absorbedUntil = v.u;
      if (Array.isArray(v.b)) {
        t.bins = v.b
          .filter((x): x is [number, number, number] => Array.isArray(x) && x.length === 3 && x.every((n) => typeof n === 'number' && Number.isFinite(n)) && x[1] > x[0] && x[2] >= 0)
          .slice(-t.maxBins);
      }
    } catch {
      // A corrupt value starts the history afresh; the live windows are unaffected.
    }
    return t;
  }
}

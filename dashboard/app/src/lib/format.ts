/** Number and time formatting for the dashboard (one place, so every view reads the same). */

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

export function fmtInt(n: number): string {
  return int.format(n);
}

/** 1,234 below 100k, then 123.4K / 1.2M. */
export function fmtCount(n: number): string {
  return Math.abs(n) < 100_000 ? int.format(n) : compact.format(n);
}

/** A proportion as a percentage with enough digits to tell close rates apart. */
export function fmtPct(p: number): string {
  const v = p * 100;
  if (v === 0) return '0%';
  const a = Math.abs(v);
  const digits = a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.1 ? 2 : 3;
  return `${v.toFixed(digits)}%`;
}

/** A 95% interval of a proportion: `1.52–2.87%`. */
export function fmtPctRange(low: number, high: number): string {
  return `${fmtPct(low).replace('%', '')}–${fmtPct(high)}`;
}

export function fmtNum(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1000) return fmtCount(n);
  return n.toFixed(a >= 100 ? 0 : a >= 10 ? Math.min(digits, 1) : digits);
}

export function fmtRange(low: number, high: number, digits = 1): string {
  return `${fmtNum(low, digits)}–${fmtNum(high, digits)}`;
}

/** 45 s, 4.2 min, 1 h 20 min, 2.5 d. */
export function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.abs(ms) / 1000;
  if (s < 90) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = s / 60;
  if (m < 90) return `${m < 10 ? m.toFixed(1) : Math.round(m)} min`;
  // Whole minutes first, so 2 h 59.9 min reads "3 h 0 min", not "2 h 60 min".
  const mins = Math.round(m);
  if (mins < 36 * 60) return `${Math.floor(mins / 60)} h ${mins % 60} min`;
  const h = m / 60;
  return `${(h / 24).toFixed(1)} d`;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const clockShort = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function fmtClock(ms: number, seconds = true): string {
  return (seconds ? clock : clockShort).format(ms);
}

/** "in 4.2 min" / "3 s ago". */
export function fmtRelative(ms: number, now: number): string {
  const d = ms - now;
  if (Math.abs(d) < 1000) return 'now';
  return d > 0 ? `in ${fmtDuration(d)}` : `${fmtDuration(-d)} ago`;
}

const FULL_AVG_MS = 15 * 60_000;

/**
 * The label of the 15-minute average, which the server takes over the part of the 15 minutes that
 * has data: "15 min avg" when it covers them, else "2.5 min avg" (the time it divides by).
 */
export function avgLabel(avgMs: number): string {
  return avgMs >= FULL_AVG_MS - 30_000 ? '15 min avg' : `${fmtDuration(avgMs)} avg`;
}

// Model quality labels live in models.ts (pure, unit-tested); re-exported here for the lazily
// loaded views, which take their formatting from this module.
export { WEAK_R2, fmtR2, modelFit } from './models.ts';

/**
 * A long name cut in the middle, so both ends stay readable: a master's shoot number usually
 * closes its name ("brand-spring-shoot-…-0417"). The full name goes in a title attribute.
 */
export function midTrim(name: string, max = 28): string {
  if (name.length <= max) return name;
  const tail = Math.ceil((max - 1) / 2);
  return `${name.slice(0, max - 1 - tail)}…${name.slice(-tail)}`;
}

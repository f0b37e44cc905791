import { fmtDuration, fmtPct, fmtRelative } from './format.ts';

/**
 * A trigger firing's numbers (the rule's evidence: `numbers` of GET /v1/triggers/log) in the units a
 * person reads: times as dates and relative times, `*_ms` as durations, rates as percentages with
 * their 95% interval beside them, p-values and ratios as such. Pure; keys it does not know are shown
 * with their name and value as sent.
 */

export interface NumberLine {
  key: string;
  label: string;
  text: string;
  /** Exact value (an ISO time, the raw number) for a tooltip. */
  title?: string;
}

const RATE_KEYS = new Set(['engagement_rate', 'engagement_rate_15m', 'median_rate', 'others_rate', 'predicted', 'threshold', 'fatigue_fraction']);
const SHARE_KEYS = new Set(['of_peak', 'fraction']);
const LABELS: Record<string, string> = {
  p_value: 'p-value',
  z: 'z',
  of_peak: 'of peak',
  fraction: 'fatigue threshold',
  peak_rate_per_min: 'smoothed peak',
  fitted_now_per_min: 'fitted now',
  fitted_peak_per_min: 'fitted peak',
  baseline_per_min: 'baseline',
  engagements_1m: 'engagements, last minute',
  impressions_1m: 'impressions, last minute',
  engagement_rate_15m: 'engagement rate, 15 min',
  predicted: 'predicted rate',
  threshold: 'threshold rate',
  median_rate: 'campaign median rate',
  median_asset_id: 'median creative',
  others_rate: 'other ads’ rate',
  others_impressions: 'other ads’ impressions',
  other_ads: 'other ads',
  assets_compared: 'creatives compared',
  half_life_ms: 'half-life',
  forecast_in_ms: 'forecast in',
  fatigue_at: 'fatigue at',
  model_version: 'model',
  master_asset_id: 'master',
};

const dateTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Epoch ms as a time (with the date when it is not today) and how long ago / how soon. */
export function fmtWhen(ms: number, now: number): string {
  const sameDay = new Date(ms).toDateString() === new Date(now).toDateString();
  return `${(sameDay ? time : dateTime).format(ms)} (${fmtRelative(ms, now)})`;
}

function fmtP(p: number): string {
  return p < 0.001 ? '< 0.001' : p < 0.01 ? p.toFixed(3) : p.toFixed(2);
}

function plain(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? int.format(v) : Math.abs(v) < 1 ? v.toPrecision(3) : v.toFixed(2);
  if (v === null || v === undefined) return '—';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function label(key: string): string {
  return LABELS[key] ?? key.replace(/_ms$/, '').replace(/_at$/, ' at').replaceAll('_', ' ');
}

/** Whether `key` is an interval bound shown with another number (then it gets no line of its own). */
function boundOf(key: string, numbers: Record<string, unknown>): string | null {
  const m = /^(.*?)_?(ci_)?(low|high)$/.exec(key);
  if (!m) return null;
  const base = m[1] ? (m[1] === 'median' ? 'median_rate' : m[1]) : 'engagement_rate';
  return base in numbers ? base : null;
}

export function triggerNumbers(numbers: Record<string, unknown>, now: number): NumberLine[] {
  const out: NumberLine[] = [];
  for (const [key, v] of Object.entries(numbers ?? {})) {
    if (boundOf(key, numbers)) continue;
    const lbl = label(key);
    if (v === null || v === undefined) {
      out.push({ key, label: lbl, text: '—' });
      continue;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      out.push({ key, label: lbl, text: plain(v) });
      continue;
    }
    const raw = String(v);
    if (key.endsWith('_at')) {
      out.push({ key, label: lbl, text: fmtWhen(v, now), title: new Date(v).toISOString() });
    } else if (key.endsWith('_ms')) {
      out.push({ key, label: lbl, text: fmtDuration(v), title: `${int.format(v)} ms` });
    } else if (key === 'p_value') {
      out.push({ key, label: lbl, text: fmtP(v), title: raw });
    } else if (key === 'z') {
      out.push({ key, label: lbl, text: v.toFixed(2), title: raw });
    } else if (key === 'ratio' || key === 'factor') {
      out.push({ key, label: lbl, text: `×${v < 10 ? v.toFixed(2) : v.toFixed(1)}`, title: raw });
    } else if (key.endsWith('_per_min')) {
      out.push({ key, label: lbl, text: `${v < 10 ? v.toFixed(1) : int.format(v)}/min`, title: raw });
    } else if (RATE_KEYS.has(key)) {
      // Its interval, when the rule sent one (X_low/X_high, or ci_low/ci_high for the rate itself).
      const lo = numbers[`${key}_low`] ?? (key === 'engagement_rate' ? numbers.ci_low : key === 'median_rate' ? numbers.median_ci_low : undefined);
      const hi = numbers[`${key}_high`] ?? (key === 'engagement_rate' ? numbers.ci_high : key === 'median_rate' ? numbers.median_ci_high : undefined);
      const ci = typeof lo === 'number' && typeof hi === 'number' ? ` (95% CI ${fmtPct(lo).replace('%', '')}–${fmtPct(hi)})` : '';
      out.push({ key, label: lbl, text: `${fmtPct(v)}${ci}`, title: raw });
    } else if (SHARE_KEYS.has(key)) {
      out.push({ key, label: lbl, text: `${Math.round(v * 1000) / 10}%`, title: raw });
    } else out.push({ key, label: lbl, text: plain(v) });
  }
  return out;
}

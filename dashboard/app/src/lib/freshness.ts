import type { FreshnessJson } from './api.ts';
import { fmtDuration } from './format.ts';

/**
 * Data freshness for the header (pure: the badge polls, this decides). Connection state says the
 * WebSocket is up; this says whether events are still being counted, so a page can be "connected"
 * and still show that intake stopped.
 */

/** fresh: an event in the last 30 s; stale: none for 30 s; stopped: none for 2 min, or none in the
 * last minute after traffic; idle: no event counted yet (nothing to be stale about). */
export type FreshLevel = 'fresh' | 'stale' | 'stopped' | 'idle';

export const STALE_AFTER_MS = 30_000;
export const STOPPED_AFTER_MS = 120_000;

export interface Freshness {
  level: FreshLevel;
  /** Age of the newest counted event now (server clock plus the time since the answer). */
  ageMs: number | null;
  text: string;
  /** The same without "last event" (narrow screens). */
  short: string;
}

const rate = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 2,140 ev/s · 12.5 ev/s · 0.35 ev/s. */
export function fmtEventsPerSec(v: number): string {
  const n = v >= 100 ? rate.format(v) : v >= 10 ? v.toFixed(1) : v > 0 ? v.toPrecision(2) : '0';
  return `${n} ev/s`;
}

/**
 * @param f the server's answer
 * @param sinceAnswerMs browser time elapsed since the answer arrived (the age keeps growing between polls)
 * @param hadTraffic the tenant had counted events earlier in this page's life
 */
export function freshnessOf(f: FreshnessJson, sinceAnswerMs: number, hadTraffic: boolean): Freshness {
  const seen = hadTraffic || f.last_event_at !== null;
  if (f.last_event_at === null) {
    // Seen before and gone now: the live role restarted or lost its state, and nothing is counted.
    return seen
      ? { level: 'stopped', ageMs: null, text: `no event counted since restart · ${fmtEventsPerSec(f.events_per_sec)}`, short: 'no events since restart' }
      : { level: 'idle', ageMs: null, text: 'no events yet', short: 'no events yet' };
  }
  const ageMs = Math.max(0, f.as_of - f.last_event_at + Math.max(0, sinceAnswerMs));
  const level: FreshLevel = ageMs > STOPPED_AFTER_MS || (f.events_per_sec === 0 && seen) ? 'stopped' : ageMs > STALE_AFTER_MS ? 'stale' : 'fresh';
  const short = `${fmtDuration(ageMs)} ago · ${fmtEventsPerSec(f.events_per_sec)}`;
  return { level, ageMs, text: `last event ${short}`, short };
}

export const FRESHNESS_HELP =
  'Data freshness: when the live role last counted an event for this tenant, and how many it counts per second (over the last minute). ' +
  'Green: an event in the last 30 s. Amber: none for 30 s. Red: none for 2 min, or none in the last minute after traffic — numbers on screen are not moving because nothing arrives, not because nothing happens. ' +
  'The connection badge beside it only says whether this page is connected.';

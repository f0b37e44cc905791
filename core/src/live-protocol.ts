/**
 * The /v1/live wire format, shared by the server (stream/live/src/live: gateway.ts, replica.ts, rates.ts)
 * and the browser (dashboard/app). Browser-safe: no imports, no Node APIs; published as
 * `@afterglow/core/live-protocol` so the dashboard's bundle carries this file and nothing else of core.
 *
 * Server -> client messages are one frame object or a JSON array of frames:
 *   {"type":"snapshot","topic":"campaign:x","seq":N,"at":ms,"legend":{...},"entities":[view,...]}
 *   {"type":"delta","topic":"campaign:x","prev":N-1,"seq":N,"at":ms,"entities":[view,...][,"coalesced":true]}
 *   {"type":"error","code":"...","message":"...","topic"?:...} {"type":"unsubscribed","topic"} {"type":"pong","id"?}
 * A view is compact: per window the 8 counts (EVENT_KINDS order), dwell ms, conversion value, then
 * [value, low, high, enough] for ctr, engagement_rate, shares_per_1k; `vel` is
 * [per_min, per_min_15m, trend, direction, avg_ms]. The snapshot's `legend` names those positions; the
 * decoder follows it, so a reordering on the server is picked up.
 */

export const WINDOW_NAMES = ['1m', '15m', '1h', '24h'] as const;
export type WindowName = (typeof WINDOW_NAMES)[number];
export const EVENT_KINDS = ['impression', 'view', 'click', 'like', 'share', 'comment', 'conversion', 'dwell'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
/** Video play kinds: taken in and stored, but not counted in the live windows (their own rollup measures them). */
export const VIDEO_KINDS = ['video_start', 'video_progress', 'video_seconds', 'video_complete', 'video_watch'] as const;
export type Counts = Record<EventKind, number>;
/** What counts as an engagement (stream/live/src/live/rates.ts ENGAGEMENT_KINDS). */
export const ENGAGEMENT_KINDS: readonly EventKind[] = ['click', 'like', 'share', 'comment'];
export type TopicKind = 'campaign' | 'asset' | 'master';
export type EntityKind = TopicKind;

export interface Legend {
  w: string[];
  rate: string[];
  vel: string[];
  windows: string[];
}

/** The legend the server sends (stream/live/src/live/replica.ts LEGEND is built to match it). */
export const DEFAULT_LEGEND: Legend = {
  w: [...EVENT_KINDS, 'dwell_ms', 'conversion_value', 'ctr', 'engagement_rate', 'shares_per_1k'],
  rate: ['value', 'low', 'high', 'enough'],
  vel: ['per_min', 'per_min_15m', 'trend', 'direction', 'avg_ms'],
  windows: [...WINDOW_NAMES],
};

export type RateWire = [number, number, number, number];
export type WindowWire = (number | RateWire)[];
export interface ViewWire {
  kind: EntityKind;
  id: string;
  campaign_id?: string | null;
  master_id?: string | null;
  n: number;
  w: Record<string, WindowWire>;
  vel: (number | string)[];
  decay?: DecaySummary | null;
}

export interface SnapshotFrame {
  type: 'snapshot';
  topic: string;
  seq: number;
  at: number;
  legend?: Legend;
  entities: ViewWire[];
}
export interface DeltaFrame {
  type: 'delta';
  topic: string;
  prev: number;
  seq: number;
  at: number;
  coalesced?: boolean;
  entities: ViewWire[];
}
export interface ControlFrame {
  type: 'error' | 'unsubscribed' | 'pong';
  code?: string;
  message?: string;
  topic?: string;
  id?: unknown;
}
export type Frame = SnapshotFrame | DeltaFrame | ControlFrame;

export interface Rate {
  value: number;
  low: number;
  high: number;
  /** False: the interval is too wide to rank on ("not enough data"). */
  enough: boolean;
}

export interface WindowStats {
  counts: Counts;
  impressions: number;
  engagements: number;
  dwellMs: number;
  conversionValue: number;
  ctr: Rate;
  engagementRate: Rate;
  sharesPer1k: Rate;
}

export type Direction = 'rising' | 'falling' | 'steady';
export interface Velocity {
  perMin: number;
  perMin15m: number;
  /** The time perMin15m averages over: the part of the last 15 min that has data (15 min from a server that does not say). */
  avgMs: number;
  trend: number;
  direction: Direction;
}

/** The decay summary the gateway adds to an asset watched through an asset topic (replica.ts View). */
export interface DecaySummary {
  status: string;
  model: string | null;
  half_life_ms: number | null;
  half_life_ci: [number, number | null] | null;
  peak_at: number | null;
  fatigue_at: number | null;
  fatigued: boolean;
}

export interface Entity {
  kind: EntityKind;
  id: string;
  campaignId: string | null;
  masterId: string | null;
  /** The writer's version: grows with every applied event. */
  n: number;
  windows: Record<WindowName, WindowStats>;
  velocity: Velocity;
  /** Present only on asset topics; undefined when the server did not send it. */
  decay: DecaySummary | null | undefined;
  /** Server time of the frame that carried this version. */
  at: number;
}

const NO_RATE: Rate = { value: 0, low: 0, high: 1, enough: false };

/** A decoder bound to one legend (positions looked up once). */
export class ViewDecoder {
  private readonly counts: number[];
  private readonly dwell: number;
  private readonly conv: number;
  private readonly ctr: number;
  private readonly er: number;
  private readonly spk: number;
  private readonly rate: [number, number, number, number];
  private readonly vel: [number, number, number, number, number];

  constructor(readonly legend: Legend = DEFAULT_LEGEND) {
    const w = (name: string) => legend.w.indexOf(name);
    this.counts = EVENT_KINDS.map(w);
    this.dwell = w('dwell_ms');
    this.conv = w('conversion_value');
    this.ctr = w('ctr');
    this.er = w('engagement_rate');
    this.spk = w('shares_per_1k');
    const r = (name: string) => legend.rate.indexOf(name);
    this.rate = [r('value'), r('low'), r('high'), r('enough')];
    const v = (name: string) => legend.vel.indexOf(name);
    this.vel = [v('per_min'), v('per_min_15m'), v('trend'), v('direction'), v('avg_ms')];
  }

  decode(view: ViewWire, at: number): Entity {
    const windows = {} as Record<WindowName, WindowStats>;
    for (const name of WINDOW_NAMES) windows[name] = this.window(view.w?.[name]);
    const vel = view.vel ?? [];
    const dir = vel[this.vel[3]];
    return {
      kind: view.kind,
      id: view.id,
      campaignId: view.campaign_id ?? null,
      masterId: view.master_id ?? null,
      n: view.n ?? 0,
      windows,
      velocity: {
        perMin: num(vel[this.vel[0]]),
        perMin15m: num(vel[this.vel[1]]),
        avgMs: num(vel[this.vel[4]]) || 15 * 60_000,
        trend: num(vel[this.vel[2]]),
        direction: dir === 'rising' || dir === 'falling' ? dir : 'steady',
      },
      decay: view.decay,
      at,
    };
  }

  private window(w: WindowWire | undefined): WindowStats {
    const counts = {} as Counts;
    let engagements = 0;
    EVENT_KINDS.forEach((k, i) => {
      const c = num(w?.[this.counts[i]!]);
      counts[k] = c;
      if (ENGAGEMENT_KINDS.includes(k)) engagements += c;
    });
    return {
      counts,
      impressions: counts.impression,
      engagements,
      dwellMs: num(w?.[this.dwell]),
      conversionValue: num(w?.[this.conv]),
      ctr: this.rateAt(w, this.ctr),
      engagementRate: this.rateAt(w, this.er),
      sharesPer1k: this.rateAt(w, this.spk),
    };
  }

  private rateAt(w: WindowWire | undefined, i: number): Rate {
    const r = w?.[i];
    if (!Array.isArray(r)) return NO_RATE;
    return { value: num(r[this.rate[0]]), low: num(r[this.rate[1]]), high: num(r[this.rate[2]]), enough: r[this.rate[3]] === 1 };
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** `campaign:spring-sale` -> ['campaign', 'spring-sale']. */
export function parseTopic(topic: string): [TopicKind, string] | undefined {
  const i = topic.indexOf(':');
  if (i < 0) return undefined;
  const kind = topic.slice(0, i);
  if (kind !== 'campaign' && kind !== 'asset' && kind !== 'master') return undefined;
  return [kind, topic.slice(i + 1)];
}

export function topicName(kind: TopicKind, id: string): string {
  return `${kind}:${id}`;
}

/** Ids the gateway accepts (the same rule as core's event and asset ids). */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * The six views of an ad (Knot-Tie, section III): the whole ad plus five crops chosen to isolate a
 * master photo embedded in a banner layout — a centre crop by aspect ratio, the left, right, upper and
 * lower halves. Pure geometry, in source pixels; every rect is integral, non-empty and inside the image.
 */
import type { Rect } from '../models/types.js';

export type ViewName = 'whole' | 'centre' | 'left' | 'right' | 'upper' | 'lower' | 'window';

/** The order of the views everywhere (embeddings are stored per ad in this order). */
export const VIEW_NAMES: readonly ViewName[] = Object.freeze(['whole', 'centre', 'left', 'right', 'upper', 'lower']);
export const VIEWS_PER_AD = VIEW_NAMES.length;

export interface View {
  name: ViewName;
  rect: Rect;
}

/** Ads whose aspect ratio (long/short) is at most this count as "near square". */
export const NEAR_SQUARE_ASPECT = 4 / 3;
/** Share of each side that the centre crop of a near-square ad keeps. */
export const NEAR_SQUARE_CENTRE = 0.75;

/**
 * The centre crop "horizontal or vertical depending on the height-width ratio":
 * - a wide ad (w/h > 4/3) keeps its full height and the central 4/3 x h of its width;
 * - a tall ad (h/w > 4/3) keeps its full width and the central 4/3 x w of its height;
 * - a near-square ad (aspect within 4/3) keeps the central 75 % of both sides (drops frames, borders,
 *   corner logos and text bands, which is what the crop is for).
 */
export function centreCrop(width: number, height: number): Rect {
  checkSize(width, height);
  if (width >= height * NEAR_SQUARE_ASPECT) {
    const w = Math.max(1, Math.min(width, Math.round(height * NEAR_SQUARE_ASPECT)));
    return { left: Math.floor((width - w) / 2), top: 0, width: w, height };
  }
  if (height >= width * NEAR_SQUARE_ASPECT) {
    const h = Math.max(1, Math.min(height, Math.round(width * NEAR_SQUARE_ASPECT)));
    return { left: 0, top: Math.floor((height - h) / 2), width, height: h };
  }
  const w = Math.max(1, Math.round(width * NEAR_SQUARE_CENTRE));
  const h = Math.max(1, Math.round(height * NEAR_SQUARE_CENTRE));
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/** The six views of a `width` x `height` ad, in `VIEW_NAMES` order. A 1-pixel side has no halves on that axis: the whole side is used. */
export function adViews(width: number, height: number): View[] {
  checkSize(width, height);
  const halfW = Math.max(1, Math.ceil(width / 2));
  const halfH = Math.max(1, Math.ceil(height / 2));
  return [
    { name: 'whole', rect: { left: 0, top: 0, width, height } },
    { name: 'centre', rect: centreCrop(width, height) },
    { name: 'left', rect: { left: 0, top: 0, width: halfW, height } },
    { name: 'right', rect: { left: width - halfW, top: 0, width: halfW, height } },
    { name: 'upper', rect: { left: 0, top: 0, width, height: halfH } },
    { name: 'lower', rect: { left: 0, top: height - halfH, width, height: halfH } },
  ];
}

/** Thin ads (long side at least this many times the short one) get sliding windows (`adWindows`). */
export const WINDOW_MIN_ASPECT = 2.5;
/** Window length along the long side, in short sides (about a 16:10 photo). */
export const WINDOW_ASPECT = 1.6;
export const MAX_WINDOWS = 12;

/**
 * Extra views of a thin ad (an addition to Knot-Tie): windows of `WINDOW_ASPECT` x the short side,
 * sliding along the long side, evenly spaced from end to end, steps of at most one window (half-window
 * steps cost 40 % more views for no gain on the tie set). A leaderboard (728x90) or skyscraper (160x600)
 * often shows its photo small, "contained" somewhere along the banner or in a side panel; no half or
 * centre crop isolates it, one of these windows does. Near-square ads get none.
 */
export function adWindows(width: number, height: number): View[] {
  const thin = thinness(width, height);
  if (!thin) return [];
  const wide = thin === 'wide';
  const long = wide ? width : height;
  const short = wide ? height : width;
  const len = Math.max(1, Math.min(long, Math.round(short * WINDOW_ASPECT)));
  const n = Math.min(MAX_WINDOWS, Math.ceil((long - len) / len) + 1);
  const out: View[] = [];
  for (let i = 0; i < n; i++) {
    const at = n === 1 ? Math.floor((long - len) / 2) : Math.round((i * (long - len)) / (n - 1));
    out.push({ name: 'window', rect: wide ? { left: at, top: 0, width: len, height } : { left: 0, top: at, width, height: len } });
  }
  return out;
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`image size must be positive integers, got ${width}x${height}`);
  }
}

/** Share of each side kept by a master's centre view. */
export const MASTER_CENTRE = 0.7;

/**
 * Views of a master (an addition to Knot-Tie, which embeds masters whole): ads are mostly zoomed-in
 * crops of their master, so a master is also embedded by its central 70 % ('centre'), and optionally
 * by four 60 % corners ('corners'). A master's similarity is the best over ad views x master views.
 */
export type MasterViewSet = 'whole' | 'centre' | 'corners';

export function masterViews(width: number, height: number, set: MasterViewSet): Rect[] {
  checkSize(width, height);
  const r = (l: number, t: number, w: number, h: number): Rect => {
    const left = Math.min(width - 1, Math.round(l * width));
    const top = Math.min(height - 1, Math.round(t * height));
    return { left, top, width: Math.max(1, Math.min(width - left, Math.round(w * width))), height: Math.max(1, Math.min(height - top, Math.round(h * height))) };
  };
  const out: Rect[] = [{ left: 0, top: 0, width, height }];
  if (set === 'whole') return out;
  const m = (1 - MASTER_CENTRE) / 2;
  out.push(r(m, m, MASTER_CENTRE, MASTER_CENTRE));
  if (set === 'centre') return out;
  out.push(r(0, 0, 0.6, 0.6), r(0.4, 0, 0.6, 0.6), r(0, 0.4, 0.6, 0.6), r(0.4, 0.4, 0.6, 0.6));
  return out;
}

export function masterViewCount(set: MasterViewSet): number {
  return set === 'whole' ? 1 : set === 'centre' ? 2 : 6;
}

/** Whether an ad is thin (long side >= `WINDOW_MIN_ASPECT` x short side), and which way. */
export function thinness(width: number, height: number): 'wide' | 'tall' | undefined {
  checkSize(width, height);
  if (width >= height * WINDOW_MIN_ASPECT) return 'wide';
  if (height >= width * WINDOW_MIN_ASPECT) return 'tall';
  return undefined;
}

/**
 * Strip views of a master, compared only with thin ads (an addition to Knot-Tie). A leaderboard
 * (728x90) cover-crops its master to a full-width strip of about 8:1 (or 3:1 in a split layout's photo
 * panel), a skyscraper (160x600) to a full-height strip of about 1:3.75; fitted to the CNN's square
 * input, such a strip is stretched 3-8x, so no whole or centre view of the master looks like it. A
 * strip of the master of the same shape, stretched alike, does.
 *   wide: a 3:1 strip through the middle, and 8:1 strips centred at 35, 50 and 65 % of the height
 *         (ads crop around a focal point in the middle 40 %);
 *   tall: a 1:3.75 strip through the middle.
 * Measured on two generated sets (descriptors and colour, offline): these five views took mAP from
 * 86.5 / 84.3 to 89.0 / 88.2, leaderboards from 64 / 61 to 77 / 82; three 3:1, 8:1 and 1:3.75 strips
 * each at three heights gave 89.1 / 88.1 for four more views per master.
 */
export const WIDE_STRIPS: ReadonlyArray<{ aspect: number; centre: number }> = Object.freeze([
  { aspect: 3, centre: 0.5 },
  { aspect: 8, centre: 0.35 },
  { aspect: 8, centre: 0.5 },
  { aspect: 8, centre: 0.65 },
]);
export const TALL_STRIPS: ReadonlyArray<{ aspect: number; centre: number }> = Object.freeze([{ aspect: 3.75, centre: 0.5 }]);

/** A master's strip views for thin ads of one orientation (`WIDE_STRIPS` / `TALL_STRIPS` order). */
export function masterStrips(width: number, height: number, orientation: 'wide' | 'tall'): Rect[] {
  checkSize(width, height);
  if (orientation === 'wide') {
    return WIDE_STRIPS.map(({ aspect, centre }) => {
      const h = Math.max(1, Math.min(height, Math.round(width / aspect)));
      const top = Math.max(0, Math.min(height - h, Math.round(centre * height - h / 2)));
      return { left: 0, top, width, height: h };
    });
  }
  return TALL_STRIPS.map(({ aspect, centre }) => {
    const w = Math.max(1, Math.min(width, Math.round(height / aspect)));
    const left = Math.max(0, Math.min(width - w, Math.round(centre * width - w / 2)));
    return { left, top: 0, width: w, height };
  });
}

/** Which of an ad's `adViews` are compared with master strips: the whole ad and its four halves (not the centre crop, not the windows). */
export const STRIP_AD_VIEWS: readonly number[] = Object.freeze((['whole', 'left', 'right', 'upper', 'lower'] as const).map((v) => VIEW_NAMES.indexOf(v)));

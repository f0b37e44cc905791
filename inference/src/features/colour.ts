/**
 * Colour measurements on 8-bit sRGB pixels: CIE Lab (D65), named colour buckets, dominant colours by
 * k-means in Lab (deterministic), colourfulness (Hasler & Süsstrunk 2003), brightness and RMS
 * contrast (L* mean and standard deviation), circular mean hue. Pure functions, no I/O.
 */
import type { ColorName, DominantColor } from './types.js';

export const COLOR_NAMES: readonly ColorName[] = Object.freeze([
  'red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink', 'brown', 'white', 'silver', 'grey', 'black',
] as const);

/** Representative sRGB of each name (the recolour edit's targets; see ../edits). */
export const NAMED_RGB: Readonly<Record<ColorName, [number, number, number]>> = Object.freeze({
  red: [200, 30, 35],
  orange: [240, 130, 20],
  yellow: [240, 210, 40],
  green: [40, 160, 60],
  cyan: [30, 190, 200],
  blue: [30, 70, 200],
  purple: [120, 50, 170],
  pink: [240, 120, 180],
  brown: [120, 75, 40],
  white: [245, 245, 245],
  silver: [192, 192, 196],
  grey: [120, 120, 120],
  black: [20, 20, 20],
});

const LIN = new Float64Array(256);
for (let i = 0; i < 256; i++) {
  const c = i / 255;
  LIN[i] = c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

function fLab(t: number): number {
  return t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116;
}

/** sRGB (0..255) -> CIE L*a*b* (D65). */
export function rgbToLab(r: number, g: number, b: number): [number, number, number] {
  const R = LIN[r]!;
  const G = LIN[g]!;
  const B = LIN[b]!;
  const x = (0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / 0.95047;
  const y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const z = (0.0193339 * R + 0.119192 * G + 0.9503041 * B) / 1.08883;
  const fx = fLab(x);
  const fy = fLab(y);
  const fz = fLab(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/** sRGB -> HSV: hue in degrees [0, 360), saturation and value in [0, 1]. */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const d = max - min;
  let h = 0;
  if (d > 0) {
    if (max === r) h = ((g - b) / d) % 6;
    else if (max === g) h = (b - r) / d + 2;
    else h = (r - g) / d + 4;
    h *= 60;
    if (h < 0) h += 360;
  }
  return [h, max === 0 ? 0 : d / max, max / 255];
}

/** The colour bucket of one pixel (HSV rules; achromatic first). */
export function colorName(r: number, g: number, b: number): ColorName {
  const [h, s, v] = rgbToHsv(r, g, b);
  if (v < 0.2) return 'black';
  if (s < 0.15 || (s < 0.25 && v < 0.35)) {
    if (v > 0.88) return 'white';
    if (v > 0.6) return 'silver';
    return v > 0.3 ? 'grey' : 'black';
  }
  if ((h < 45 && v < 0.55) || (h < 30 && s < 0.45 && v < 0.75)) return 'brown';
  if (h < 15 || h >= 345) return 'red';
  if (h < 40) return 'orange';
  if (h < 70) return 'yellow';
  if (h < 160) return 'green';
  if (h < 195) return 'cyan';
  if (h < 255) return 'blue';
  if (h < 290) return 'purple';
  return 'pink';
}

export interface ColourStats {
  /** Mean L* / 100. */
  brightness: number;
  /** Standard deviation of L* / 100 (RMS contrast). */
  contrast: number;
  /** Hasler-Süsstrunk M / 100 (0 = grey; ~0.33 "moderately", ~0.59 "quite", >1 "extremely" colourful). */
  colourfulness: number;
  /** Mean HSV saturation. */
  saturation: number;
  /** Share of (weighted) pixels per colour name. */
  shares: Record<ColorName, number>;
  /** Saturation-weighted circular mean hue (degrees) and its strength (0..1, resultant length). */
  hue: number;
  hueStrength: number;
  /** Weight (pixels, or summed mask) measured. */
  weight: number;
}

/**
 * Measures RGB pixels, each weighted by `weights[i] / 255` when given (a mask) — pixels with zero
 * weight are ignored.
 */
export function colourStats(rgb: Uint8Array, weights?: Uint8Array): ColourStats {
  const n = rgb.length / 3;
  let W = 0;
  let sL = 0;
  let sL2 = 0;
  let sRg = 0;
  let sRg2 = 0;
  let sYb = 0;
  let sYb2 = 0;
  let sS = 0;
  let hx = 0;
  let hy = 0;
  let hw = 0;
  const shares = Object.fromEntries(COLOR_NAMES.map((c) => [c, 0])) as Record<ColorName, number>;
  for (let i = 0; i < n; i++) {
    const w = weights ? weights[i]! / 255 : 1;
    if (w <= 0) continue;
    const r = rgb[3 * i]!;
    const g = rgb[3 * i + 1]!;
    const b = rgb[3 * i + 2]!;
    const L = rgbToLab(r, g, b)[0];
    const rg = r - g;
    const yb = 0.5 * (r + g) - b;
    const [h, s] = rgbToHsv(r, g, b);
    W += w;
    sL += w * L;
    sL2 += w * L * L;
    sRg += w * rg;
    sRg2 += w * rg * rg;
    sYb += w * yb;
    sYb2 += w * yb * yb;
    sS += w * s;
    const rad = (h * Math.PI) / 180;
    hx += w * s * Math.cos(rad);
    hy += w * s * Math.sin(rad);
    hw += w * s;
    shares[colorName(r, g, b)] += w;
  }
  if (W === 0) {
    return { brightness: 0, contrast: 0, colourfulness: 0, saturation: 0, shares, hue: 0, hueStrength: 0, weight: 0 };
  }
  for (const c of COLOR_NAMES) shares[c] /= W;
  const mL = sL / W;
  const mRg = sRg / W;
  const mYb = sYb / W;
  const sdRg = Math.sqrt(Math.max(0, sRg2 / W - mRg * mRg));
  const sdYb = Math.sqrt(Math.max(0, sYb2 / W - mYb * mYb));
  const M = Math.sqrt(sdRg * sdRg + sdYb * sdYb) + 0.3 * Math.sqrt(mRg * mRg + mYb * mYb);
  let hue = (Math.atan2(hy, hx) * 180) / Math.PI;
  if (hue < 0) hue += 360;
  return {
    brightness: mL / 100,
    contrast: Math.sqrt(Math.max(0, sL2 / W - mL * mL)) / 100,
    colourfulness: M / 100,
    saturation: sS / W,
    shares,
    hue,
    hueStrength: hw > 0 ? Math.hypot(hx, hy) / hw : 0,
    weight: W,
  };
}

/**
 * Dominant colours: k-means (Lloyd, `k` clusters, `iterations` rounds) in Lab over the pixels,
 * deterministically seeded by farthest-point initialisation from the mean colour. Largest first.
 */
export function dominantColors(rgb: Uint8Array, k = 5, iterations = 12): DominantColor[] {
  const n = rgb.length / 3;
  if (n === 0) return [];
  const lab = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const [L, a, b] = rgbToLab(rgb[3 * i]!, rgb[3 * i + 1]!, rgb[3 * i + 2]!);
    lab[3 * i] = L;
    lab[3 * i + 1] = a;
    lab[3 * i + 2] = b;
  }
  const kk = Math.min(k, n);
  const centres = new Float64Array(kk * 3);
  // Seed: the pixel farthest from the mean, then repeatedly the pixel farthest from all chosen centres.
  const mean = [0, 0, 0];
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) mean[c]! += lab[3 * i + c]! / n;
  const dist = new Float64Array(n).fill(Infinity);
  let ref: number[] = mean;
  for (let j = 0; j < kk; j++) {
    let best = 0;
    let bestD = -1;
    for (let i = 0; i < n; i++) {
      const d = (lab[3 * i]! - ref[0]!) ** 2 + (lab[3 * i + 1]! - ref[1]!) ** 2 + (lab[3 * i + 2]! - ref[2]!) ** 2;
      if (j > 0) dist[i] = Math.min(dist[i]!, d);
      const score = j > 0 ? dist[i]! : d;
      if (score > bestD) {
        bestD = score;
        best = i;
      }
    }
    for (let c = 0; c < 3; c++) centres[3 * j + c] = lab[3 * best + c]!;
    ref = [centres[3 * j]!, centres[3 * j + 1]!, centres[3 * j + 2]!];
    if (j === 0) for (let i = 0; i < n; i++) dist[i] = (lab[3 * i]! - ref[0]!) ** 2 + (lab[3 * i + 1]! - ref[1]!) ** 2 + (lab[3 * i + 2]! - ref[2]!) ** 2;
  }
  const assign = new Int32Array(n);
  for (let it = 0; it < iterations; it++) {
    const sums = new Float64Array(kk * 4);
    for (let i = 0; i < n; i++) {
      let best = 0;
      let bestD = Infinity;
      for (let j = 0; j < kk; j++) {
        const d = (lab[3 * i]! - centres[3 * j]!) ** 2 + (lab[3 * i + 1]! - centres[3 * j + 1]!) ** 2 + (lab[3 * i + 2]! - centres[3 * j + 2]!) ** 2;
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      }
      assign[i] = best;
      sums[4 * best]! += lab[3 * i]!;
      sums[4 * best + 1]! += lab[3 * i + 1]!;
      sums[4 * best + 2]! += lab[3 * i + 2]!;
      sums[4 * best + 3]! += 1;
    }
    for (let j = 0; j < kk; j++) {
      const c = sums[4 * j + 3]!;
      if (c > 0) for (let d = 0; d < 3; d++) centres[3 * j + d] = sums[4 * j + d]! / c;
    }
  }
  const out: DominantColor[] = [];
  for (let j = 0; j < kk; j++) {
    let count = 0;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let i = 0; i < n; i++) {
      if (assign[i] !== j) continue;
      count++;
      r += rgb[3 * i]!;
      g += rgb[3 * i + 1]!;
      b += rgb[3 * i + 2]!;
    }
    if (count === 0) continue;
    const px: [number, number, number] = [Math.round(r / count), Math.round(g / count), Math.round(b / count)];
    const l = rgbToLab(px[0], px[1], px[2]);
    out.push({ rgb: px, lab: [round2(l[0]), round2(l[1]), round2(l[2])], share: count / n, name: colorName(px[0], px[1], px[2]) });
  }
  return out.sort((x, y) => y.share - x.share || x.lab[0] - y.lab[0]);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * Grey views for colour-blind matching: greyscale, duotone, hue-shifted and re-graded ads keep their
 * photo's luminance up to an affine map (duotone inks map luma linearly between a dark and a light
 * colour; a hue rotation in LCh keeps lightness), which a percentile stretch undoes.
 */
import type { RawImage } from '../models/types.js';

/**
 * The image in grey (luma), as RGB; with `stretch`, its luma mapped linearly so that the 1st and 99th
 * percentiles become black and white (an affine change of luminance, as duotone inks make, undone).
 */
export function greyOf(raw: RawImage, stretch = false): RawImage {
  const n = raw.width * raw.height;
  const ch = raw.channels;
  const luma = new Uint8Array(n);
  const hist = new Uint32Array(256);
  for (let i = 0; i < n; i++) {
    const o = i * ch;
    const y = ch >= 3 ? Math.round(0.299 * raw.data[o]! + 0.587 * raw.data[o + 1]! + 0.114 * raw.data[o + 2]!) : raw.data[o]!;
    luma[i] = y;
    hist[y]!++;
  }
  let lo = 0;
  let hi = 255;
  if (stretch) {
    const cut = Math.floor(n * STRETCH_PERCENTILE);
    for (let acc = 0; lo < 255 && acc + hist[lo]! <= cut; lo++) acc += hist[lo]!;
    for (let acc = 0; hi > 0 && acc + hist[hi]! <= cut; hi--) acc += hist[hi]!;
    // A near-flat image (one tone) is left as it is: stretching would blow up its noise.
    if (hi - lo < 8) [lo, hi] = [0, 255];
  }
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, Math.round(((v - lo) * 255) / (hi - lo))));
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = lut[luma[i]!]!;
  return { data: out, width: raw.width, height: raw.height, channels: 3 };
}

/** Share of pixels clipped at each end when a grey view's luminance is stretched. */
export const STRETCH_PERCENTILE = 0.01;

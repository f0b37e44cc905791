/**
 * Ads rendered from a master photo the way creative teams cut banners: a banner format, a layout
 * (cover crop, split panel, contain with a fill, framed), the photo flipped, graded or blurred,
 * headline + CTA + badge + logo overlays (SVG), then low resolution and JPEG/PNG/WebP encoding.
 * Deterministic for an rng. The demo registers these as its ads; the tie evaluation set
 * (@afterglow/testkit) derives its ads with the same renderer.
 */
import sharp, { type OverlayOptions } from 'sharp';
import type { Rect } from '@afterglow/inference';

export const AD_FORMATS = [
  { name: 'leaderboard', width: 728, height: 90, weight: 1 },
  { name: 'mrec', width: 300, height: 250, weight: 1.2 },
  { name: 'skyscraper', width: 160, height: 600, weight: 0.8 },
  { name: 'square', width: 1080, height: 1080, weight: 1.2 },
  { name: 'story', width: 1080, height: 1920, weight: 1 },
  { name: 'landscape', width: 1200, height: 628, weight: 1 },
] as const;


const HEADLINES = ['Summer Sale', 'New Collection', 'Up to 50% off', 'Discover the range', 'Limited Edition', 'Made to last', 'Feel the difference', 'This season only', 'Autumn Drop', 'The Weekend Edit', 'Go further', 'Fresh arrivals'];
const CTAS = ['Shop now', 'Learn more', 'Book today', 'Discover', 'Get yours', 'Sign up', 'Explore'];
const BRANDS = ['NORDIK', 'Aurora', 'VELOCE', 'Maison Lume', 'KAIRO', 'Pinecrest', 'Solenne', 'ORBIT'];
const BADGES = ['-30%', 'NEW', '2 for 1', 'SALE', '-50%'];

export interface RenderedAd {
  bytes: Buffer;
  ext: 'jpg' | 'png' | 'webp';
  format: string;
  width: number;
  height: number;
  layout: string;
  transforms: string[];
}

type Layout = 'cover' | 'split' | 'contain' | 'frame';

function pickWeighted<T>(items: ReadonlyArray<readonly [T, number]>, rng: () => number): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let r = rng() * total;
  for (const [v, w] of items) {
    r -= w;
    if (r <= 0) return v;
  }
  return items[items.length - 1]![0];
}

function hsl(h: number, s: number, l: number): string {
  return `hsl(${Math.round(h)},${Math.round(s)}%,${Math.round(l)}%)`;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** One ad from a master file. */
export async function renderAd(masterPath: string, rng: () => number): Promise<RenderedAd> {
  const fmt = pickWeighted(AD_FORMATS.map((f) => [f, f.weight] as const), rng);
  const W: number = fmt.width;
  const H: number = fmt.height;
  const thin = fmt.name === 'leaderboard' || fmt.name === 'skyscraper';
  const layout: Layout = thin
    ? pickWeighted<Layout>([['split', 0.5], ['cover', 0.3], ['contain', 0.2]], rng)
    : pickWeighted<Layout>([['cover', 0.4], ['split', 0.25], ['contain', 0.2], ['frame', 0.15]], rng);
  const tf: string[] = [`${fmt.name} ${W}x${H}`, layout];
  const brandHue = rng() * 360;
  const brand = hsl(brandHue, 40 + rng() * 50, 18 + rng() * 40);
  const accent = hsl((brandHue + 150 + rng() * 60) % 360, 70 + rng() * 30, 45 + rng() * 15);

  // Photo region within the banner.
  let region: Rect = { left: 0, top: 0, width: W, height: H };
  let panel: Rect | undefined;
  const wide = W >= H;
  if (layout === 'split') {
    const share = thin ? 0.3 + rng() * 0.18 : 0.5 + rng() * 0.22;
    const first = rng() < 0.5;
    if (wide) {
      const pw = Math.round(W * share);
      region = { left: first ? 0 : W - pw, top: 0, width: pw, height: H };
      panel = { left: first ? pw : 0, top: 0, width: W - pw, height: H };
    } else {
      const ph = Math.round(H * share);
      region = { left: 0, top: first ? 0 : H - ph, width: W, height: ph };
      panel = { left: 0, top: first ? ph : 0, width: W, height: H - ph };
    }
    tf.push(`photo ${Math.round(share * 100)}% ${first ? (wide ? 'left' : 'top') : wide ? 'right' : 'bottom'}`);
  } else if (layout === 'frame') {
    const t = Math.round(Math.min(W, H) * (0.04 + rng() * 0.05));
    const bar = Math.round(H * (0.12 + rng() * 0.06));
    region = { left: t, top: t, width: W - 2 * t, height: H - 2 * t - bar };
    panel = { left: 0, top: H - t - bar, width: W, height: bar + t };
    tf.push(`frame ${t}px`);
  }

  // Photo: cover-crop (zoom, focal point) or contain.
  const meta = await sharp(masterPath).metadata();
  const mw = meta.width ?? 1;
  const mh = meta.height ?? 1;
  let photo = sharp(masterPath);
  let photoW = region.width;
  let photoH = region.height;
  let photoLeft = region.left;
  let photoTop = region.top;
  let fillBlur = false;
  if (layout === 'contain') {
    const margin = 0.82 + rng() * 0.16;
    const s = Math.min(region.width / mw, region.height / mh) * margin;
    photoW = Math.max(8, Math.round(mw * s));
    photoH = Math.max(8, Math.round(mh * s));
    photoLeft = region.left + Math.round((region.width - photoW) * (wide ? 0.15 + rng() * 0.7 : 0.5));
    photoTop = region.top + Math.round((region.height - photoH) * (wide ? 0.5 : 0.15 + rng() * 0.7));
    photo = photo.resize(photoW, photoH, { fit: 'fill' });
    fillBlur = rng() < 0.4;
    tf.push(`contain ${Math.round(margin * 100)}%${fillBlur ? ' blurred fill' : ''}`);
    // Copy goes in the wider free space beside the contained photo when there is room for it, as a
    // designer sets it (v4 laid the headline band and CTA across thin banners, over the photo).
    const before = wide ? photoLeft - region.left : photoTop - region.top;
    const after = wide ? region.left + region.width - photoLeft - photoW : region.top + region.height - photoTop - photoH;
    const free = Math.max(before, after);
    if (free >= 0.25 * (wide ? W : H)) {
      panel = wide
        ? { left: before >= after ? region.left : photoLeft + photoW, top: 0, width: free, height: H }
        : { left: 0, top: before >= after ? region.top : photoTop + photoH, width: W, height: free };
    }
  } else {
    const zoom = 1 + rng() * (thin ? 0.3 : 0.6);
    const s = Math.max(region.width / mw, region.height / mh) * zoom;
    const ww = Math.min(mw, Math.max(4, Math.round(region.width / s)));
    const wh = Math.min(mh, Math.max(4, Math.round(region.height / s)));
    const fx = 0.3 + rng() * 0.4;
    const fy = 0.3 + rng() * 0.4;
    const left = Math.max(0, Math.min(mw - ww, Math.round(fx * mw - ww / 2)));
    const top = Math.max(0, Math.min(mh - wh, Math.round(fy * mh - wh / 2)));
    photo = photo.extract({ left, top, width: ww, height: wh }).resize(region.width, region.height, { fit: 'fill' });
    tf.push(`cover zoom ${zoom.toFixed(2)} window ${ww}x${wh}@${left},${top}`);
  }
  if (rng() < 0.2) {
    photo = photo.flop();
    tf.push('flipped');
  }
  if (rng() < 0.75) {
    const b = 0.85 + rng() * 0.3;
    const sat = 0.65 + rng() * 0.7;
    const hue = Math.round((rng() - 0.5) * 30);
    const a = 0.85 + rng() * 0.35;
    const c = Math.round((rng() - 0.5) * 30);
    photo = photo.modulate({ brightness: b, saturation: sat, hue }).linear(a, c);
    tf.push(`grade b${b.toFixed(2)} s${sat.toFixed(2)} h${hue} c${a.toFixed(2)}/${c}`);
  }
  if (rng() < 0.1) {
    const warm = rng() < 0.5;
    photo = photo.recomb(warm ? [[1.08, 0.02, 0], [0, 1, 0], [0, 0, 0.88]] : [[0.9, 0, 0], [0, 1, 0.02], [0, 0.02, 1.1]]);
    tf.push(warm ? 'warm' : 'cool');
  }
  if (rng() < 0.15) {
    const sigma = 0.6 + rng() * 1.0;
    photo = photo.blur(sigma);
    tf.push(`blur ${sigma.toFixed(1)}`);
  }
  const photoBuf = await photo.removeAlpha().png({ compressionLevel: 1 }).toBuffer();

  // Background: brand colour, or the photo itself blurred (contain with blurred fill).
  const layers: OverlayOptions[] = [];
  if (fillBlur) {
    const bg = await sharp(masterPath).resize(region.width, region.height, { fit: 'cover' }).blur(12).modulate({ brightness: 0.7 }).png({ compressionLevel: 1 }).toBuffer();
    layers.push({ input: bg, left: region.left, top: region.top });
  }
  layers.push({ input: photoBuf, left: photoLeft, top: photoTop });
  layers.push({ input: Buffer.from(overlaySvg(W, H, layout, panel, brand, accent, rng, tf)), left: 0, top: 0 });
  const base = layout === 'contain' && !fillBlur ? (rng() < 0.5 ? brand : '#f4f1ea') : brand;
  let out = sharp({ create: { width: W, height: H, channels: 3, background: base } }).composite(layers);
  let width = W;
  let height = H;
  let buf = await out.png({ compressionLevel: 1 }).toBuffer();
  if (rng() < 0.15) {
    const f = 2 + rng() * 1.5;
    const sw = Math.max(16, Math.round(W / f));
    const sh = Math.max(16, Math.round(H / f));
    if (thin || rng() < 0.5) {
      buf = await sharp(buf).resize(sw, sh, { fit: 'fill' }).resize(W, H, { fit: 'fill', kernel: 'nearest' }).png({ compressionLevel: 1 }).toBuffer();
      tf.push(`low-res x${f.toFixed(1)} upscaled`);
    } else {
      buf = await sharp(buf).resize(sw, sh, { fit: 'fill' }).png({ compressionLevel: 1 }).toBuffer();
      width = sw;
      height = sh;
      tf.push(`low-res delivered ${sw}x${sh}`);
    }
  }
  out = sharp(buf);
  const enc = rng();
  let bytes: Buffer;
  let ext: RenderedAd['ext'];
  if (enc < 0.85) {
    const q = Math.round(40 + rng() * 52);
    bytes = await out.jpeg({ quality: q }).toBuffer();
    ext = 'jpg';
    tf.push(`jpeg q${q}`);
  } else if (enc < 0.95) {
    bytes = await out.png().toBuffer();
    ext = 'png';
    tf.push('png');
  } else {
    const q = Math.round(50 + rng() * 40);
    bytes = await out.webp({ quality: q }).toBuffer();
    ext = 'webp';
    tf.push(`webp q${q}`);
  }
  return { bytes, ext, format: fmt.name, width, height, layout, transforms: tf };
}

/** Headline, CTA button, badge, logo and (on photos) a legibility gradient, as one SVG layer. */
function overlaySvg(W: number, H: number, layout: Layout, panel: Rect | undefined, brand: string, accent: string, rng: () => number, tf: string[]): string {
  const parts: string[] = [];
  const headline = HEADLINES[Math.floor(rng() * HEADLINES.length)]!;
  const cta = CTAS[Math.floor(rng() * CTAS.length)]!;
  const brandName = BRANDS[Math.floor(rng() * BRANDS.length)]!;
  const light = rng() < 0.7;
  const ink = light ? '#ffffff' : '#111111';
  const font = rng() < 0.5 ? 'DejaVu Sans' : 'DejaVu Serif';
  // Text area: the panel, or a band over the photo (bottom or top) with a gradient behind it.
  let area: Rect;
  if (panel && layout === 'split') area = panel;
  else if (panel) area = panel;
  else {
    const band = Math.round(H * (W > 3 * H ? 1 : 0.32));
    const atTop = rng() < 0.3;
    area = { left: 0, top: atTop ? 0 : H - band, width: W, height: band };
    if (W <= 3 * H) {
      parts.push(
        `<defs><linearGradient id="g" x1="0" y1="${atTop ? 1 : 0}" x2="0" y2="${atTop ? 0 : 1}"><stop offset="0" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="${(0.35 + rng() * 0.3).toFixed(2)}"/></linearGradient></defs>`,
        `<rect x="0" y="${area.top}" width="${W}" height="${band}" fill="url(#g)"/>`,
      );
    }
  }
  const horizontal = area.width >= area.height * 2.2;
  // Font size: fits the area; on one line, headline + CTA button (~0.62 em per character) fit its width.
  let unit = Math.max(10, Math.min(area.height * (horizontal ? 0.34 : 0.09), area.width * 0.085));
  if (horizontal) unit = Math.max(8, Math.min(unit, area.width / (0.62 * (headline.length + cta.length) + 3.6)));
  else unit = Math.max(8, Math.min(unit, area.width / (0.62 * headline.length + 1.4)));
  const pad = Math.round(unit * 0.6);
  // Headline
  const hx = area.left + pad;
  const hy = horizontal ? area.top + area.height / 2 + unit * 0.35 : area.top + pad + unit;
  parts.push(`<text x="${hx}" y="${hy.toFixed(0)}" font-family="${font}" font-weight="bold" font-size="${unit.toFixed(0)}" fill="${panel && layout === 'split' && !light ? '#111' : ink}">${esc(headline)}</text>`);
  // CTA button
  const bw = Math.round(unit * 0.62 * cta.length + unit * 1.2);
  const bh = Math.round(unit * 1.5);
  const bx = horizontal ? area.left + area.width - bw - pad : area.left + pad;
  const by = horizontal ? area.top + (area.height - bh) / 2 : Math.min(area.top + area.height - bh - pad, hy + unit * 0.9);
  parts.push(
    `<rect x="${bx}" y="${by.toFixed(0)}" width="${bw}" height="${bh}" rx="${Math.round(bh / 2)}" fill="${accent}"/>`,
    `<text x="${bx + bw / 2}" y="${(by + bh * 0.68).toFixed(0)}" text-anchor="middle" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(unit * 0.8)}" fill="#fff">${esc(cta)}</text>`,
  );
  tf.push(`text "${headline}" cta "${cta}"`);
  // Logo in a corner
  if (rng() < 0.8) {
    const ls = Math.max(10, Math.round(Math.min(W, H) * 0.07));
    const right = rng() < 0.5;
    const lx = right ? W - ls * 5 - ls * 0.5 : ls * 0.5;
    const ly = ls * 0.5;
    parts.push(
      `<circle cx="${lx + ls / 2}" cy="${ly + ls / 2}" r="${ls / 2}" fill="${accent}" stroke="#fff" stroke-width="${Math.max(1, ls / 12).toFixed(1)}"/>`,
      `<text x="${lx + ls * 1.2}" y="${ly + ls * 0.8}" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(ls * 0.8)}" fill="${ink}">${esc(brandName)}</text>`,
    );
    tf.push(`logo ${brandName}`);
  }
  // Badge
  if (rng() < 0.25) {
    const r = Math.max(10, Math.round(Math.min(W, H) * 0.1));
    const cx = W - r * 1.3;
    const cy = H > 2 * r * 3 ? r * 2.6 : H / 2;
    parts.push(
      `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${brand}" stroke="${accent}" stroke-width="${Math.max(1, r / 8).toFixed(1)}"/>`,
      `<text x="${cx}" y="${cy + r * 0.25}" text-anchor="middle" font-family="DejaVu Sans" font-weight="bold" font-size="${Math.round(r * 0.7)}" fill="#fff">${esc(BADGES[Math.floor(rng() * BADGES.length)]!)}</text>`,
    );
    tf.push('badge');
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
}

// Helpers


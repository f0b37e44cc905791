import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import type { RawImage } from '../models/types.js';
import { greyOf } from './grey.js';

/** A textured RGB image: smooth gradients plus noise, so that every luma level is used. */
function photo(width: number, height: number): RawImage {
  const rng = mulberry32(7);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = Math.round((255 * x) / width * 0.8 + rng() * 50);
      data[o + 1] = Math.round((255 * y) / height * 0.7 + rng() * 60);
      data[o + 2] = Math.round(128 + 100 * Math.sin(x / 9) * Math.cos(y / 7) * 0.9 + rng() * 20);
    }
  }
  return { data, width, height, channels: 3 };
}

/** Luma mapped between a dark and a light ink, as a duotone treatment does. */
function duotone(raw: RawImage, dark: readonly number[], light: readonly number[]): RawImage {
  const data = new Uint8Array(raw.data.length);
  for (let i = 0; i < raw.data.length; i += 3) {
    const y = (0.299 * raw.data[i]! + 0.587 * raw.data[i + 1]! + 0.114 * raw.data[i + 2]!) / 255;
    for (let c = 0; c < 3; c++) data[i + c] = Math.round(dark[c]! + (light[c]! - dark[c]!) * y);
  }
  return { ...raw, data };
}

const meanAbsDiff = (a: RawImage, b: RawImage) => a.data.reduce((acc, v, i) => acc + Math.abs(v - b.data[i]!), 0) / a.data.length;

test('greyOf: a stretched grey view undoes a duotone treatment; an unstretched one does not', () => {
  const original = photo(96, 64);
  const treated = duotone(original, [70, 50, 90], [170, 190, 160]);
  const stretched = meanAbsDiff(greyOf(original, true), greyOf(treated, true));
  const plain = meanAbsDiff(greyOf(original), greyOf(treated));
  assert.ok(stretched < 4, `stretched grey views differ by ${stretched.toFixed(2)} levels on average`);
  assert.ok(plain > 15, `plain grey views differ by ${plain.toFixed(2)} levels (the treatment is not a no-op)`);
  const g = greyOf(treated, true);
  for (let i = 0; i < g.data.length; i += 3) assert.ok(g.data[i] === g.data[i + 1] && g.data[i] === g.data[i + 2], 'grey as RGB');
});

test('greyOf: a near-flat image is not stretched (its noise is not blown up)', () => {
  const data = new Uint8Array(32 * 32 * 3);
  for (let i = 0; i < data.length; i++) data[i] = 120 + (i % 5);
  const g = greyOf({ data, width: 32, height: 32, channels: 3 }, true);
  const values = new Set(g.data);
  assert.ok(Math.max(...values) - Math.min(...values) <= 6, `levels ${Math.min(...values)}..${Math.max(...values)}`);
});

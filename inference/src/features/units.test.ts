/**
 * The featurizer's pure parts, no models: colour measurements (Lab, named buckets, colourfulness,
 * k-means dominant colours), DB box extraction and CTC decoding, the feature schema and `toVector`,
 * and the ISNet graph re-fixing refusing a resolution it cannot scale to.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refixIsnet } from '../models/feature-models.js';
import { colorName, colourStats, dominantColors, rgbToLab } from './colour.js';
import { ctcDecode, dbBoxes, detSize, wordsOf } from './ocr.js';
import { buildFeatureSchema, NAMED_FEATURES, schemaColumns, toVector } from './schema.js';

function solid(n: number, rgb: [number, number, number]): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) out.set(rgb, 3 * i);
  return out;
}

describe('colour', () => {
  it('converts sRGB to Lab at the reference points', () => {
    const white = rgbToLab(255, 255, 255);
    assert.ok(Math.abs(white[0] - 100) < 0.01 && Math.abs(white[1]) < 0.01 && Math.abs(white[2]) < 0.01, String(white));
    const red = rgbToLab(255, 0, 0);
    assert.ok(Math.abs(red[0] - 53.24) < 0.05 && Math.abs(red[1] - 80.09) < 0.05 && Math.abs(red[2] - 67.2) < 0.05, String(red));
    assert.deepEqual(rgbToLab(0, 0, 0).map((x) => Math.round(x * 1000) / 1000), [0, 0, 0]);
  });

  it('names colours', () => {
    assert.equal(colorName(200, 30, 35), 'red');
    assert.equal(colorName(30, 70, 200), 'blue');
    assert.equal(colorName(40, 160, 60), 'green');
    assert.equal(colorName(245, 245, 245), 'white');
    assert.equal(colorName(192, 192, 196), 'silver');
    assert.equal(colorName(120, 120, 120), 'grey');
    assert.equal(colorName(15, 15, 15), 'black');
    assert.equal(colorName(120, 75, 40), 'brown');
  });

  it('measures colourfulness 0 for grey and high for saturated halves; brightness and contrast from L*', () => {
    const grey = colourStats(solid(100, [128, 128, 128]));
    assert.equal(grey.colourfulness, 0);
    assert.equal(grey.contrast, 0);
    assert.ok(Math.abs(grey.brightness - rgbToLab(128, 128, 128)[0] / 100) < 1e-9);
    const half = new Uint8Array([...solid(50, [255, 0, 0]), ...solid(50, [0, 0, 255])]);
    const s = colourStats(half);
    assert.ok(s.colourfulness > 1, `colourfulness ${s.colourfulness}`);
    assert.ok(s.contrast > 0.1);
    assert.ok(Math.abs(s.shares.red - 0.5) < 1e-9 && Math.abs(s.shares.blue - 0.5) < 1e-9);
  });

  it('weights by a mask: only the masked pixels count', () => {
    const px = new Uint8Array([...solid(10, [200, 30, 35]), ...solid(30, [30, 70, 200])]);
    const w = new Uint8Array(40);
    w.fill(255, 0, 10);
    const s = colourStats(px, w);
    assert.equal(s.shares.red, 1);
    assert.ok(s.hue < 15 || s.hue > 345, `hue ${s.hue}`);
    assert.ok(s.hueStrength > 0.99);
  });

  it('finds dominant colours with their shares, deterministically', () => {
    const px = new Uint8Array([...solid(60, [200, 30, 35]), ...solid(30, [30, 70, 200]), ...solid(10, [245, 245, 245])]);
    const d = dominantColors(px, 3);
    assert.deepEqual(d.map((c) => c.name), ['red', 'blue', 'white']);
    assert.deepEqual(d.map((c) => Math.round(c.share * 100)), [60, 30, 10]);
    assert.deepEqual(dominantColors(px, 3), d);
  });
});

describe('OCR post-processing', () => {
  it('sizes the detector input to multiples of 32 within 960', () => {
    assert.deepEqual(detSize(1080, 1920), [544, 960]);
    assert.deepEqual(detSize(300, 250), [288, 256]);
    assert.deepEqual(detSize(10, 10), [32, 32]);
  });

  it('turns probability blobs into scored, unclipped boxes in reading order', () => {
    const w = 100;
    const h = 60;
    const p = new Float32Array(w * h);
    const blob = (x0: number, y0: number, x1: number, y1: number, v: number) => {
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) p[y * w + x] = v;
    };
    blob(60, 10, 90, 20, 0.9); // right, top row
    blob(10, 12, 40, 20, 0.95); // left, same row
    blob(10, 40, 50, 50, 0.5); // below the box threshold
    blob(5, 55, 7, 58, 0.99); // too thin
    const boxes = dbBoxes(p, w, h);
    assert.equal(boxes.length, 2);
    assert.ok(boxes[0]!.left < boxes[1]!.left, 'left box first on the same row');
    const b = boxes[1]!;
    // 30x10 box, d = 300 * 1.5 / 80 = 5.625 on each side
    assert.ok(Math.abs(b.left - (60 - 5.625)) < 1e-9 && Math.abs(b.width - (30 + 11.25)) < 1e-9, JSON.stringify(b));
    assert.ok(Math.abs(b.score - 0.9) < 1e-6);
  });

  it('decodes CTC: merges repeats, drops blanks, maps the last class to a space', () => {
    const keys = ['a', 'b', 'c'];
    const classes = keys.length + 2;
    const seq = [1, 1, 0, 1, 2, 4, 3, 3, 0];
    const probs = new Float32Array(seq.length * classes);
    seq.forEach((c, t) => {
      probs[t * classes + c] = 0.9;
    });
    const { text, score } = ctcDecode(probs, 0, seq.length, classes, keys);
    assert.equal(text, 'aab c');
    assert.ok(Math.abs(score - 0.9) < 1e-6);
  });

  it('splits recognised lines into lower-case words', () => {
    const box = { left: 0, top: 0, width: 1, height: 1, detScore: 1, recScore: 1 };
    assert.deepEqual(wordsOf([{ ...box, text: 'Up to 50% OFF' }, { ...box, text: "Shop now — it's new!" }]), ['up', 'to', '50', 'off', 'shop', 'now', "it's", 'new']);
  });
});

describe('feature schema', () => {
  const named = Object.fromEntries(NAMED_FEATURES.map((n, i) => [n, i / 10]));
  const a = { named, meta: { channel: 'instagram', region: 'uk' }, words: ['sale', 'now', 'sale'], embedding: new Float32Array([0.6, 0.8]) };
  const b = { named: { ...named, 'extra.x': 5 }, meta: { channel: 'tiktok' }, words: ['sale', 'new'], embedding: new Float32Array([1, 0]) };

  it('lays features out in stable columns: named, one-hot metadata, words, embedding', () => {
    const schema = buildFeatureSchema([a, b], { minWordAssets: 2 });
    assert.deepEqual(schema.named.slice(0, NAMED_FEATURES.length), [...NAMED_FEATURES]);
    assert.equal(schema.named.at(-1), 'extra.x');
    assert.deepEqual(schema.meta.find((m) => m.field === 'channel')!.values, ['instagram', 'tiktok']);
    assert.deepEqual(schema.words, ['sale']);
    assert.equal(schema.embeddingDims, 2);
    const cols = schemaColumns(schema);
    const v = toVector(a, schema);
    assert.equal(v.length, cols.length);
    assert.equal(v[cols.indexOf('color.brightness')], Math.fround(named['color.brightness']!));
    assert.ok(Number.isNaN(v[cols.indexOf('extra.x')]!), 'missing named feature is NaN');
    assert.equal(v[cols.indexOf('meta.channel=instagram')], 1);
    assert.equal(v[cols.indexOf('meta.channel=tiktok')], 0);
    assert.equal(v[cols.indexOf('meta.region=uk')], 1);
    assert.equal(v[cols.indexOf('word=sale')], 1);
    assert.ok(Math.abs(v[cols.indexOf('emb.1')]! - 0.8) < 1e-7);
    // unseen metadata value -> all zero; the schema survives JSON
    const c = toVector({ ...b, meta: { channel: 'snapchat' } }, JSON.parse(JSON.stringify(schema)));
    assert.equal(c[cols.indexOf('meta.channel=instagram')]! + c[cols.indexOf('meta.channel=tiktok')]!, 0);
    assert.throws(() => toVector({ ...a, embedding: new Float32Array(3) }, schema), /3 dims/);
  });
});

describe('ISNet re-fixing', () => {
  it('refuses a resolution that is not a multiple of 32', () => {
    assert.throws(() => refixIsnet(new Uint8Array(0), 300, 'input', 'output'), /multiple of 32/);
  });
});

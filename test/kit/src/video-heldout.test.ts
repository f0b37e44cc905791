/**
 * Family B's generator: deterministic for a seed, and the truth it records agrees with the frames it
 * renders (a cut is a jump, a fade passes through its colour, a flash is white, an overlay changes
 * only its part of the picture, a whip pan moves the picture as much as a cut does). Hermetic:
 * procedurally drawn "photos", plus one run over the real sample photos.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { mulberry32 } from '@afterglow/core';
import { photosOrSkip } from './images.js';
import { findSourcePhotos, SHORT_PACKAGES } from './tie/sources.js';
import { HELDOUT_FORMATS, HELDOUT_TRANSITIONS, type HeldoutClip, type HeldoutPhoto, loadHeldoutPhotos, renderHeldoutClip, scoreHeldout } from './video-heldout.js';

/** A textured picture: two-colour gradient, a ripple, a few discs and grain, its own palette per seed. */
function drawnPhoto(seed: number, width = 400, height = 300): HeldoutPhoto {
  const r = mulberry32(seed);
  const a = [r() * 255, r() * 255, r() * 255];
  const b = [r() * 255, r() * 255, r() * 255];
  const fx = 0.02 + r() * 0.08;
  const fy = 0.02 + r() * 0.08;
  const discs = Array.from({ length: 8 }, () => ({ x: r() * width, y: r() * height, s: 8 + r() * 40, c: [r() * 255, r() * 255, r() * 255] }));
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x / width + y / height) / 2;
      const ripple = 40 * Math.sin(x * fx + 3 * Math.sin(y * fy));
      const disc = discs.find((d) => (x - d.x) ** 2 + (y - d.y) ** 2 < d.s * d.s);
      for (let c = 0; c < 3; c++) {
        const v = disc ? disc.c[c]! : a[c]! * (1 - t) + b[c]! * t + ripple;
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, v + (r() - 0.5) * 16));
      }
    }
  }
  return { id: `drawn-${seed}`, data, width, height };
}

/** Clips of 8 shots, each with every transition kind once (in a rotated order). */
const SEEDS = 3;
const SHOTS = 8;
const order = (seed: number) => HELDOUT_TRANSITIONS.map((_, i) => HELDOUT_TRANSITIONS[(i + seed) % HELDOUT_TRANSITIONS.length]!);
const PHOTOS = Array.from({ length: 6 }, (_, i) => drawnPhoto(100 + i));

/** Mean absolute difference of two frames (0-255), optionally over rows [y0, y1) only. */
function diff(a: Uint8Array, b: Uint8Array, width: number, rows?: [number, number]): number {
  const from = rows ? rows[0] * width * 3 : 0;
  const to = rows ? rows[1] * width * 3 : a.length;
  let s = 0;
  for (let i = from; i < to; i++) s += Math.abs(a[i]! - b[i]!);
  return s / (to - from);
}

function lumaStats(f: Uint8Array): { mean: number; spread: number } {
  let s = 0;
  let q = 0;
  const n = f.length / 3;
  for (let i = 0; i < f.length; i += 3) {
    const y = 0.299 * f[i]! + 0.587 * f[i + 1]! + 0.114 * f[i + 2]!;
    s += y;
    q += y * y;
  }
  const mean = s / n;
  return { mean, spread: Math.sqrt(Math.max(0, q / n - mean * mean)) };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;

/** Frame-to-frame differences inside a shot's own frames, away from its events. */
function calmDiffs(clip: HeldoutClip, shot: { from: number; to: number }): number[] {
  const out: number[] = [];
  for (let t = shot.from + 1; t < shot.to; t++) {
    if (clip.events.some((e) => t >= e.from - 1 && t <= e.to + 1)) continue;
    out.push(diff(clip.frames[t - 1]!, clip.frames[t]!, clip.width));
  }
  return out;
}

const hash = (clip: HeldoutClip) => {
  const h = createHash('sha256');
  for (const f of clip.frames) h.update(f);
  h.update(JSON.stringify([clip.boundaries, clip.events, clip.shots, clip.fps, clip.crf, clip.width, clip.height]));
  return h.digest('hex');
};

test('family B: one seed renders the same clip and truth; another seed another clip', () => {
  const a = renderHeldoutClip(PHOTOS, { seed: 7, shots: 3 });
  const b = renderHeldoutClip(PHOTOS, { seed: 7, shots: 3 });
  const c = renderHeldoutClip(PHOTOS, { seed: 8, shots: 3 });
  assert.equal(hash(a), hash(b));
  assert.notEqual(hash(a), hash(c));
  assert.ok(a.frames.every((f) => f.length === a.width * a.height * 3));
  assert.ok(HELDOUT_FORMATS.some((f) => f.width === a.width && f.height === a.height));
});

test('family B: the recorded transitions, shots and in-shot events agree with the rendered frames', () => {
  const seen = new Set<string>();
  const eventKinds = new Set<string>();
  for (let seed = 1; seed <= SEEDS; seed++) {
    const clip = renderHeldoutClip(PHOTOS, { seed, shots: SHOTS, transitions: order(seed) });
    const { frames, width, height, boundaries, shots } = clip;
    const where = (what: string) => `seed ${seed} (${clip.aspect} ${clip.fps} fps): ${what}`;
    // Shots and transitions tile the clip in order.
    assert.equal(shots.length, boundaries.length + 1, where('one more shot than transitions'));
    assert.equal(shots[0]!.from, 0);
    assert.equal(shots.at(-1)!.to, frames.length);
    boundaries.forEach((b, i) => {
      assert.equal(shots[i]!.to, b.from, where(`shot ${i} ends where transition ${i} starts`));
      assert.equal(shots[i + 1]!.from, b.to, where(`shot ${i + 1} starts where transition ${i} ends`));
      assert.equal(b.to - b.from, b.frames, where(`${b.transition} ${i} lasts its frames`));
      assert.ok(shots[i + 1]!.to - shots[i + 1]!.from >= 2, where(`shot ${i + 1} has frames of its own`));
    });
    for (const e of clip.events) {
      const owner = shots.find((s) => e.from >= s.from && e.to <= s.to);
      assert.ok(owner, where(`${e.kind} [${e.from}, ${e.to}) lies inside one shot's own frames`));
      eventKinds.add(e.kind);
    }
    boundaries.forEach((b, i) => {
      seen.add(b.transition);
      const before = frames[b.from - 1]!;
      const after = frames[b.to]!;
      const calm = median([...calmDiffs(clip, shots[i]!), ...calmDiffs(clip, shots[i + 1]!)]);
      // The picture on each side belongs to another shot: the jump is far above the in-shot motion.
      const jump = diff(before, after, width);
      assert.ok(jump > 3 * calm + 4, where(`${b.transition} ${i}: jump ${jump.toFixed(1)} vs in-shot ${calm.toFixed(1)}`));
      const inside = frames.slice(b.from, b.to);
      if (b.transition === 'cut') assert.equal(b.frames, 0);
      if (b.transition === 'fade-black') assert.ok(inside.some((f) => lumaStats(f).mean < 15 && lumaStats(f).spread < 5), where('a fade through black reaches black'));
      if (b.transition === 'fade-white') assert.ok(inside.some((f) => lumaStats(f).mean > 235 && lumaStats(f).spread < 5), where('a fade through white reaches white'));
      if (b.transition === 'flash') assert.ok(inside.every((f) => lumaStats(f).mean > 225), where('flash frames are near white'));
      if (b.transition === 'dissolve' || b.transition === 'wipe' || b.transition === 'push') {
        // On the way from one shot to the other: the first frame inside is still nearer the outgoing
        // shot, the last nearer the incoming one, and the middle one is neither.
        const first = inside[0]!;
        const last = inside.at(-1)!;
        const mid = inside[inside.length >> 1]!;
        assert.ok(diff(first, before, width) < diff(first, after, width), where(`${b.transition} ${i}: first frame inside nearer the outgoing shot`));
        assert.ok(diff(last, after, width) < diff(last, before, width), where(`${b.transition} ${i}: last frame inside nearer the incoming shot`));
        if (inside.length >= 3) assert.ok(Math.min(diff(mid, before, width), diff(mid, after, width)) > 0.15 * jump, where(`${b.transition} ${i}: the middle frame is a mix`));
      }
    });
    for (const e of clip.events) {
      const before = frames[e.from - 1]!;
      if (e.kind === 'whip-pan') {
        const after = frames[Math.min(frames.length - 1, e.to)]!;
        const owner = shots.find((s) => e.from >= s.from && e.to <= s.to)!;
        const calm = median(calmDiffs(clip, owner));
        assert.ok(diff(before, after, width) > 3 * calm, where(`a whip pan moves the picture (${diff(before, after, width).toFixed(1)} vs ${calm.toFixed(1)})`));
      }
    }
    // Overlays: the same clip rendered without them is the same picture up to each overlay's first
    // frame, and after it differs in the lower part only.
    const overlays = clip.events.filter((e) => e.kind !== 'whip-pan');
    if (overlays.length === 0) continue;
    const bare = renderHeldoutClip(PHOTOS, { seed, shots: SHOTS, transitions: order(seed), overlays: false });
    const firstOverlay = Math.min(...overlays.map((e) => e.from));
    for (let t = 0; t < firstOverlay; t++) assert.ok(Buffer.from(bare.frames[t]!).equals(frames[t]!), where(`frame ${t} before any overlay`));
    for (const e of overlays) {
      const changedRows = new Set<number>();
      for (let t = e.from; t < e.to; t++) {
        const a = bare.frames[t]!;
        const b = frames[t]!;
        for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) changedRows.add(Math.floor(i / (3 * width)));
      }
      assert.ok(changedRows.size > 0.05 * height, where(`${e.kind} at ${e.from} changes the picture`));
      assert.ok(Math.min(...changedRows) >= 0.5 * height, where(`${e.kind} at ${e.from} changes the lower half only (from row ${Math.min(...changedRows)})`));
    }
  }
  assert.deepEqual([...seen].sort(), [...HELDOUT_TRANSITIONS].sort(), 'every transition kind was checked');
  assert.deepEqual([...eventKinds].sort(), ['cta', 'text', 'whip-pan'], 'every event kind was checked');
});

test('family B scoring: one detection per boundary within the widened range; false ones are put down to the event they fall in', () => {
  const clip = {
    boundaries: [
      { from: 10, to: 10, transition: 'cut' as const, frames: 0, samePhoto: false },
      { from: 30, to: 40, transition: 'dissolve' as const, frames: 10, samePhoto: false },
      { from: 60, to: 62, transition: 'flash' as const, frames: 2, samePhoto: false },
    ],
    events: [{ from: 80, to: 86, kind: 'whip-pan' as const }],
  };
  const s = scoreHeldout(clip, [9, 11, 35, 65, 84, 120], 2);
  assert.equal(s.truth, 3);
  assert.equal(s.detected, 6);
  assert.equal(s.matched, 2, 'frame 9 takes the cut, 11 is a duplicate, 35 the dissolve, 65 is 3 frames past the flash');
  assert.deepEqual(s.byTransition.get('cut'), { truth: 1, found: 1 });
  assert.deepEqual(s.byTransition.get('flash'), { truth: 1, found: 0 });
  assert.equal(s.falseBy.get('whip-pan'), 1);
  assert.equal(s.falseBy.get('other'), 3);
  assert.equal(scoreHeldout(clip, [64], 2).matched, 1, 'the flash ends at 62: 64 is within 2 frames');
});

test('family B from the real sample photos: every shot shows one of them, at the clip size', async (t) => {
  if (!photosOrSkip(t, 8, SHORT_PACKAGES)) return;
  const sources = findSourcePhotos(SHORT_PACKAGES).slice(0, 8);
  const photos = await loadHeldoutPhotos(sources, 400);
  assert.ok(photos.every((p) => Math.max(p.width, p.height) <= 400 && p.data.length === p.width * p.height * 3));
  const clip = renderHeldoutClip(photos, { seed: 3, shots: 4, format: 0 });
  assert.equal(clip.width, HELDOUT_FORMATS[0].width);
  assert.ok(clip.shots.every((s) => sources.some((p) => p.id === s.photo)));
  for (const s of clip.shots) assert.ok(lumaStats(clip.frames[(s.from + s.to) >> 1]!).spread > 3, 'a shot shows a picture, not a flat colour');
});

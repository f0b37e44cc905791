import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adViews, adWindows, centreCrop, masterStrips, masterViews, STRIP_AD_VIEWS, TALL_STRIPS, thinness, VIEW_NAMES, WIDE_STRIPS } from './views.js';

const inside = (r: { left: number; top: number; width: number; height: number }, w: number, h: number) =>
  Number.isInteger(r.left) && Number.isInteger(r.top) && Number.isInteger(r.width) && Number.isInteger(r.height) &&
  r.width >= 1 && r.height >= 1 && r.left >= 0 && r.top >= 0 && r.left + r.width <= w && r.top + r.height <= h;

test('six views in order, all inside the image, for every banner format and odd sizes', () => {
  for (const [w, h] of [[728, 90], [300, 250], [160, 600], [1080, 1080], [1080, 1920], [1200, 628], [1, 1], [2, 1], [3, 7], [999, 1001]] as const) {
    const v = adViews(w, h);
    assert.deepEqual(v.map((x) => x.name), VIEW_NAMES);
    for (const x of v) assert.ok(inside(x.rect, w, h), `${w}x${h} ${x.name} ${JSON.stringify(x.rect)}`);
    assert.deepEqual(v[0]!.rect, { left: 0, top: 0, width: w, height: h });
  }
});

test('halves cover the image and meet in the middle', () => {
  const v = adViews(301, 251);
  const [, , left, right, upper, lower] = v.map((x) => x.rect);
  assert.equal(left!.width, 151);
  assert.equal(right!.left + right!.width, 301);
  assert.ok(left!.width + right!.width >= 301);
  assert.equal(upper!.height, 126);
  assert.equal(lower!.top + lower!.height, 251);
  assert.ok(upper!.height + lower!.height >= 251);
});

test('centre crop: horizontal for wide ads, vertical for tall ads, 75 % box for near-square ads', () => {
  assert.deepEqual(centreCrop(728, 90), { left: 304, top: 0, width: 120, height: 90 }); // 4:3 x full height
  assert.deepEqual(centreCrop(1200, 628), { left: 181, top: 0, width: 837, height: 628 });
  assert.deepEqual(centreCrop(160, 600), { left: 0, top: 193, width: 160, height: 213 });
  assert.deepEqual(centreCrop(1080, 1920), { left: 0, top: 240, width: 1080, height: 1440 });
  assert.deepEqual(centreCrop(1080, 1080), { left: 135, top: 135, width: 810, height: 810 });
  assert.deepEqual(centreCrop(300, 250), { left: 37, top: 31, width: 225, height: 188 });
  // centred
  for (const [w, h] of [[728, 90], [160, 600], [300, 250]] as const) {
    const c = centreCrop(w, h);
    assert.ok(Math.abs(c.left + c.width / 2 - w / 2) <= 1 && Math.abs(c.top + c.height / 2 - h / 2) <= 1);
  }
});

test('master views: whole, + central 70 %, + four corners', () => {
  assert.equal(masterViews(1800, 1200, 'whole').length, 1);
  const c = masterViews(1800, 1200, 'centre');
  assert.deepEqual(c[1], { left: 270, top: 180, width: 1260, height: 840 });
  const k = masterViews(1800, 1200, 'corners');
  assert.equal(k.length, 6);
  for (const r of k) assert.ok(inside(r, 1800, 1200));
});

test('rejects non-integer or empty sizes', () => {
  assert.throws(() => adViews(0, 10), RangeError);
  assert.throws(() => adViews(10.5, 10), RangeError);
});

test('thin ads get sliding windows along the long side that cover it end to end; near-square ads none', () => {
  for (const [w, h] of [[728, 90], [160, 600], [5000, 3], [3, 5000]] as const) {
    const v = adWindows(w, h);
    assert.ok(v.length >= 1 && v.length <= 12, `${w}x${h}: ${v.length} windows`);
    for (const x of v) {
      assert.equal(x.name, 'window');
      assert.ok(inside(x.rect, w, h), `${w}x${h} ${JSON.stringify(x.rect)}`);
    }
    const wide = w >= h;
    const first = v[0]!.rect;
    const last = v[v.length - 1]!.rect;
    assert.equal(wide ? first.left : first.top, 0);
    assert.equal(wide ? last.left + last.width : last.top + last.height, wide ? w : h);
  }
  // A 728x90 leaderboard: six 144-px windows (1.6 x 90), steps of at most one window (no gaps).
  const lb = adWindows(728, 90);
  assert.equal(lb.length, 6);
  assert.ok(lb.every((x) => x.rect.width === 144 && x.rect.height === 90));
  for (let i = 1; i < lb.length; i++) assert.ok(lb[i]!.rect.left - lb[i - 1]!.rect.left <= 144);
  assert.equal(adWindows(160, 600).length, 3);
  for (const [w, h] of [[300, 250], [1080, 1080], [1080, 1920], [1200, 628], [1, 1]] as const) assert.deepEqual(adWindows(w, h), []);
});

test('thinness: long side >= 2.5 x short side, and which way', () => {
  assert.equal(thinness(728, 90), 'wide');
  assert.equal(thinness(160, 600), 'tall');
  assert.equal(thinness(300, 250), undefined);
  assert.equal(thinness(1200, 628), undefined);
  assert.equal(thinness(250, 100), 'wide', 'exactly 2.5');
});

test('masterStrips: full-width wide strips and a full-height tall one, of the declared shapes, inside the image', () => {
  for (const [w, h] of [[1024, 683], [683, 1024], [1024, 100], [40, 1000], [1, 1]] as const) {
    const wide = masterStrips(w, h, 'wide');
    const tall = masterStrips(w, h, 'tall');
    assert.equal(wide.length, WIDE_STRIPS.length);
    assert.equal(tall.length, TALL_STRIPS.length);
    for (const r of [...wide, ...tall]) {
      assert.ok(r.left >= 0 && r.top >= 0 && r.width >= 1 && r.height >= 1 && r.left + r.width <= w && r.top + r.height <= h, `${w}x${h}: ${JSON.stringify(r)}`);
    }
    wide.forEach((r, i) => {
      assert.equal(r.width, w, 'wide strips span the width');
      // Where the image is tall enough, the strip has its aspect and is centred where declared.
      const sh = Math.round(w / WIDE_STRIPS[i]!.aspect);
      if (sh >= 1 && sh <= h) {
        assert.ok(Math.abs(r.width / r.height - WIDE_STRIPS[i]!.aspect) < 0.05 * WIDE_STRIPS[i]!.aspect + 1 / r.height);
        const centre = (r.top + r.height / 2) / h;
        const room = r.height / 2 / h;
        assert.ok(Math.abs(centre - Math.min(1 - room, Math.max(room, WIDE_STRIPS[i]!.centre))) < 1 / h + 1e-9, `centre ${centre}`);
      }
    });
    for (const r of tall) assert.equal(r.height, h, 'tall strips span the height');
  }
  // 8:1 strips at three heights of a 3:2 photo are distinct and ordered top to bottom.
  const tops = masterStrips(1024, 683, 'wide').slice(1).map((r) => r.top);
  assert.ok(tops[0]! < tops[1]! && tops[1]! < tops[2]!);
});

test('thin ads meet strips with their whole and halves, never the centre crop or windows', () => {
  const views = [...adViews(728, 90), ...adWindows(728, 90)];
  assert.deepEqual(STRIP_AD_VIEWS.map((i) => views[i]!.name), ['whole', 'left', 'right', 'upper', 'lower']);
  assert.equal(adWindows(300, 250).length, 0, 'near-square ads have no windows');
  assert.ok(adWindows(728, 90).length > 0 && adWindows(160, 600).length > 0);
});

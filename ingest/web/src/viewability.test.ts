import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DISPLAY_RULE, VIDEO_RULE, ViewabilityTimer, type Clock, type ViewabilityRule } from './viewability.js';

/** A clock the test moves by hand: timers fire only inside advance(). */
class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get armed(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

function setup(rule: ViewabilityRule = DISPLAY_RULE, pageVisible = true) {
  const clock = new ManualClock();
  const viewable: number[] = [];
  const dwell: number[] = [];
  const timer = new ViewabilityTimer(rule, clock, { viewable: (at) => viewable.push(at), dwell: (ms) => dwell.push(ms) }, pageVisible);
  return { clock, timer, viewable, dwell };
}

describe('viewability timer (MRC rule)', () => {
  test('50 % in view for one continuous second is an impression, at the second', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(0.5);
    clock.advance(999);
    assert.deepEqual(viewable, []);
    clock.advance(1);
    assert.deepEqual(viewable, [1000]);
    clock.advance(60_000);
    assert.equal(viewable.length, 1, 'one impression per creative');
  });

  test('under 50 % never counts, however long', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(0.49);
    clock.advance(10_000);
    assert.deepEqual(viewable, []);
    assert.equal(clock.armed, 0);
  });

  test('a ratio reported a hair under one half (rounding) counts as half', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(0.4999);
    clock.advance(1000);
    assert.equal(viewable.length, 1);
  });

  test('the second must be continuous: leaving view restarts it', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(1);
    clock.advance(700);
    timer.setRatio(0.2);
    clock.advance(100);
    timer.setRatio(0.8);
    clock.advance(700);
    assert.deepEqual(viewable, [], '700 + 700 ms in two periods is not one second');
    clock.advance(300);
    assert.deepEqual(viewable, [1800]);
  });

  test('briefly visible (under a second) is no impression', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(1);
    clock.advance(400);
    timer.setRatio(0);
    clock.advance(5000);
    assert.deepEqual(viewable, []);
  });

  test('a hidden page stops the clock; coming back starts a new continuous second', () => {
    const { clock, timer, viewable } = setup();
    timer.setRatio(1);
    clock.advance(800);
    timer.setPageVisible(false);
    clock.advance(5000);
    assert.deepEqual(viewable, []);
    timer.setPageVisible(true);
    clock.advance(800);
    assert.deepEqual(viewable, [], 'the 800 ms before hiding are not carried over');
    clock.advance(200);
    assert.deepEqual(viewable, [6800]);
  });

  test('a creative in view on a page opened in the background waits for the page', () => {
    const { clock, timer, viewable } = setup(DISPLAY_RULE, false);
    timer.setRatio(1);
    clock.advance(3000);
    assert.deepEqual(viewable, []);
    timer.setPageVisible(true);
    clock.advance(1000);
    assert.deepEqual(viewable, [4000]);
  });

  test('video needs two continuous seconds', () => {
    const { clock, timer, viewable } = setup(VIDEO_RULE);
    timer.setRatio(0.6);
    clock.advance(1500);
    assert.deepEqual(viewable, []);
    clock.advance(500);
    assert.deepEqual(viewable, [2000]);
  });

  test('a period that started before an IntersectionObserver callback ran counts from its entry time', () => {
    const { clock, timer, viewable } = setup();
    clock.advance(300);
    timer.setRatio(1, 0);
    clock.advance(699);
    assert.deepEqual(viewable, []);
    clock.advance(1);
    assert.deepEqual(viewable, [1000]);
  });

  test('dwell: each period in view after the impression, whole length, ends on leave, hide or stop', () => {
    const { clock, timer, dwell } = setup();
    timer.setRatio(1);
    clock.advance(2500);
    timer.setRatio(0.1);
    assert.deepEqual(dwell, [2500]);
    timer.setRatio(0.9);
    clock.advance(400);
    timer.setPageVisible(false);
    assert.deepEqual(dwell, [2500, 400], 'after the impression even short periods count');
    timer.setPageVisible(true);
    clock.advance(1200);
    timer.stop();
    assert.deepEqual(dwell, [2500, 400, 1200]);
  });

  test('no dwell without an impression', () => {
    const { clock, timer, dwell, viewable } = setup();
    timer.setRatio(1);
    clock.advance(600);
    timer.stop();
    assert.deepEqual(viewable, []);
    assert.deepEqual(dwell, []);
  });

  test('a timer firing early waits out the rest of the second', () => {
    const viewable: number[] = [];
    let t = 0;
    let pending: (() => void) | undefined;
    const early: Clock = { now: () => t, setTimeout: (fn) => {
        pending = fn;
        return 1;
      }, clearTimeout: () => (pending = undefined) };
    const timer = new ViewabilityTimer(DISPLAY_RULE, early, { viewable: (at) => viewable.push(at), dwell: () => {} });
    timer.setRatio(1);
    t = 900;
    pending!();
    assert.deepEqual(viewable, []);
    t = 1000;
    pending!();
    assert.deepEqual(viewable, [1000]);
  });
});

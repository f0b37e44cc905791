// Unit tests of the dashboard app's framework-free logic (dashboard/app/src/lib): the /v1/live
// connection (sequence gaps, resync, reconnect, heartbeat), the wire decoder and the leaderboard
// ordering. Runs in Node with a fake socket; excluded from the server tsconfig (the app has its own,
// checked by svelte-check).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { LiveConnection, type ConnInfo, type SocketLike, type SyncReason } from '../app/src/lib/live.ts';
import { DEFAULT_LEGEND, ViewDecoder, type Entity, type ViewWire } from '@afterglow/core/live-protocol';
import { order, rowOf } from '../app/src/lib/leaderboard.ts';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  closedWith: number | undefined;
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code?: number): void {
    this.readyState = 3;
    this.closedWith = code;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code });
  }
}

function view(id: string, impressions: number, clicks: number, enough = 1, kind: 'asset' | 'campaign' = 'asset', half = 0.01): ViewWire {
  const p = clicks / Math.max(1, impressions);
  const w = [impressions, 0, clicks, 0, 0, 0, 0, 0, 0, 0, [p, Math.max(0, p - half), p + half, enough], [0, 0, 1, 0], [0, 0, 1, 0]];
  return { kind, id, campaign_id: 'c1', master_id: null, n: impressions + clicks, w: { '1m': w, '15m': w, '1h': w, '24h': w }, vel: [impressions, 1, 0.5, 'rising'] };
}

const snapshot = (topic: string, seq: number, entities: ViewWire[]) => ({ type: 'snapshot', topic, seq, at: 1000 + seq, legend: DEFAULT_LEGEND, entities });
const delta = (topic: string, prev: number, seq: number, entities: ViewWire[]) => ({ type: 'delta', topic, prev, seq, at: 1000 + seq, entities });

describe('LiveConnection', () => {
  let sockets: FakeSocket[];
  let states: ConnInfo[];
  let now: number;
  let conn: LiveConnection;
  let got: { kind: 'snapshot' | 'delta'; ids: string[]; reason?: SyncReason }[];

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    sockets = [];
    states = [];
    got = [];
    now = 0;
    conn = new LiveConnection({
      url: 'ws://x/v1/live?tenant_id=t',
      createSocket: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      onInfo: (i) => states.push(i),
      random: () => 1,
      now: () => now,
      minDelayMs: 100,
      maxDelayMs: 1000,
      resyncedHoldMs: 3000,
      pingEveryMs: 10_000,
      pongTimeoutMs: 5_000,
    });
    conn.start();
    conn.subscribe('campaign:c1', {
      snapshot: (es, _at, reason) => got.push({ kind: 'snapshot', ids: es.map((e) => e.id), reason }),
      delta: (es) => got.push({ kind: 'delta', ids: es.map((e) => e.id) }),
    });
  });
  afterEach(() => {
    conn.stop();
    mock.timers.reset();
  });

  const state = () => states.at(-1)!.state;

  test('subscribes on open, applies a snapshot then in-sequence deltas (single frames and arrays)', () => {
    assert.equal(state(), 'connecting');
    const s = sockets[0]!;
    s.open();
    assert.deepEqual(s.sent, [{ op: 'subscribe', campaigns: ['c1'] }]);
    s.receive(snapshot('campaign:c1', 4, [view('c1', 10, 1, 1, 'campaign'), view('a1', 5, 1)]));
    assert.equal(state(), 'live');
    s.receive([delta('campaign:c1', 4, 5, [view('a1', 6, 1)]), delta('campaign:c1', 5, 6, [view('a2', 1, 0)])]);
    assert.deepEqual(got, [
      { kind: 'snapshot', ids: ['c1', 'a1'], reason: 'initial' },
      { kind: 'delta', ids: ['a1'] },
      { kind: 'delta', ids: ['a2'] },
    ]);
  });

  test('a sequence gap asks for a resync and ignores deltas until the fresh snapshot', () => {
    const s = sockets[0]!;
    s.open();
    s.receive(snapshot('campaign:c1', 1, [view('a1', 5, 1)]));
    s.receive(delta('campaign:c1', 3, 4, [view('a1', 9, 1)])); // 2..3 lost
    assert.deepEqual(s.sent.at(-1), { op: 'resync', campaigns: ['c1'] });
    assert.equal(state(), 'resyncing');
    s.receive(delta('campaign:c1', 4, 5, [view('a1', 10, 1)]));
    s.receive(snapshot('campaign:c1', 5, [view('a1', 10, 1)]));
    assert.equal(state(), 'resynced');
    assert.equal(states.at(-1)!.gaps, 1);
    assert.deepEqual(got.map((g) => `${g.kind}:${g.reason ?? ''}`), ['snapshot:initial', 'snapshot:gap']);
    now += 3100;
    mock.timers.tick(3100);
    assert.equal(state(), 'live');
  });

  test('a server restart: reconnecting with backoff, resubscribed, the snapshot replaces the state (seq restarts at 0)', () => {
    const s = sockets[0]!;
    s.open();
    s.receive(snapshot('campaign:c1', 40, [view('a1', 5, 1)]));
    s.drop(1001);
    assert.equal(state(), 'reconnecting');
    assert.equal(states.at(-1)!.lastClose, 1001);
    mock.timers.tick(99);
    assert.equal(sockets.length, 1);
    mock.timers.tick(1);
    assert.equal(sockets.length, 2);
    // The new server is not up yet: the next attempt waits twice as long.
    sockets[1]!.drop(1006);
    mock.timers.tick(199);
    assert.equal(sockets.length, 2);
    mock.timers.tick(1);
    const s3 = sockets[2]!;
    s3.open();
    assert.deepEqual(s3.sent, [{ op: 'subscribe', campaigns: ['c1'] }]);
    assert.equal(state(), 'resyncing');
    s3.receive(delta('campaign:c1', 0, 1, [view('zz', 1, 0)])); // before the snapshot: ignored
    s3.receive(snapshot('campaign:c1', 0, [view('a9', 1, 0)]));
    assert.equal(state(), 'resynced');
    s3.receive(delta('campaign:c1', 0, 1, [view('a9', 2, 0)]));
    assert.deepEqual(got.map((g) => `${g.kind}:${g.reason ?? ''}:${g.ids.join(',')}`), ['snapshot:initial:a1', 'snapshot:reconnect:a9', 'delta::a9']);
    assert.equal(states.at(-1)!.opens, 2);
  });

  test('no answer to a ping: the connection is dropped and reopened', () => {
    const s = sockets[0]!;
    s.open();
    s.receive(snapshot('campaign:c1', 0, []));
    now = 10_000;
    mock.timers.tick(10_000);
    assert.deepEqual(s.sent.at(-1), { op: 'ping', id: 1 });
    now = 15_000;
    mock.timers.tick(5_000);
    assert.equal(s.closedWith, 4000);
    assert.equal(state(), 'reconnecting');
    mock.timers.tick(100);
    assert.equal(sockets.length, 2);
  });

  test('a pong keeps the connection', () => {
    const s = sockets[0]!;
    s.open();
    now = 10_000;
    mock.timers.tick(10_000);
    now = 10_050;
    s.receive({ type: 'pong', id: 1 });
    now = 15_000;
    mock.timers.tick(5_000);
    assert.equal(s.closedWith, undefined);
    assert.equal(state(), 'live');
  });

  test('an unavailable topic is subscribed again; unsubscribing the last handler unsubscribes', () => {
    const s = sockets[0]!;
    s.open();
    s.receive({ type: 'error', code: 'unavailable', message: 'retry', topic: 'campaign:c1' });
    mock.timers.tick(1000);
    assert.deepEqual(s.sent.at(-1), { op: 'subscribe', campaigns: ['c1'] });
    const off = conn.subscribe('asset:a1', { snapshot() {}, delta() {} });
    assert.deepEqual(s.sent.at(-1), { op: 'subscribe', assets: ['a1'] });
    off();
    assert.deepEqual(s.sent.at(-1), { op: 'unsubscribe', assets: ['a1'] });
  });
});

describe('ViewDecoder', () => {
  test('follows the legend the server sends', () => {
    const e = new ViewDecoder().decode(view('a1', 200, 10), 5);
    assert.equal(e.windows['1h'].impressions, 200);
    assert.equal(e.windows['1h'].counts.click, 10);
    assert.equal(e.windows['1h'].engagements, 10);
    assert.equal(e.windows['1h'].ctr.value, 0.05);
    assert.equal(e.windows['1h'].ctr.enough, true);
    // A server that does not say what the average covers: the nominal 15 min.
    assert.deepEqual(e.velocity, { perMin: 200, perMin15m: 1, avgMs: 900_000, trend: 0.5, direction: 'rising' });
    const legend = { ...DEFAULT_LEGEND, vel: ['direction', 'trend', 'per_min_15m', 'per_min'] };
    const swapped = new ViewDecoder(legend).decode({ ...view('a1', 1, 0), vel: ['falling', -2, 3, 4] }, 5);
    assert.deepEqual(swapped.velocity, { perMin: 4, perMin15m: 3, avgMs: 900_000, trend: -2, direction: 'falling' });
    const withAvg = new ViewDecoder({ ...DEFAULT_LEGEND, vel: ['per_min', 'per_min_15m', 'trend', 'direction', 'avg_ms'] });
    assert.equal(withAvg.decode({ ...view('a1', 1, 0), vel: [4, 3, 0, 'steady', 240_000] }, 5).velocity.avgMs, 240_000);
  });
});

describe('leaderboard order', () => {
  const d = new ViewDecoder();
  const rows = (vs: ViewWire[]) => vs.map((v) => rowOf(d.decode(v, 0) as Entity, '1h'));

  test('rankable rates first by value, "not enough data" after by impressions; filter and hide', () => {
    const rs = rows([view('low', 1000, 10), view('high', 1000, 50), view('weak-big', 300, 30, 0), view('weak-small', 20, 10, 0)]);
    const o = order(rs, 'ctr', 'desc', { text: '', hideNotEnough: false });
    assert.deepEqual(o.ids, ['high', 'low', 'weak-big', 'weak-small']);
    assert.deepEqual([...o.rank], [['high', 1], ['low', 2]]);
    assert.equal(o.tied.size, 0);
    assert.deepEqual(order(rs, 'ctr', 'asc', { text: '', hideNotEnough: false }).ids, ['low', 'high', 'weak-big', 'weak-small']);
    assert.deepEqual(order(rs, 'ctr', 'desc', { text: '', hideNotEnough: true }).ids, ['high', 'low']);
    assert.deepEqual(order(rs, 'impressions', 'desc', { text: 'WEAK', hideNotEnough: false }).ids, ['weak-big', 'weak-small']);
    assert.deepEqual(order(rs, 'asset', 'asc', { text: '', hideNotEnough: false }).ids, ['high', 'low', 'weak-big', 'weak-small']);
    assert.equal(o.total, 4);
  });
});

describe('leaderboard ties', () => {
  const d = new ViewDecoder();
  const rows = (vs: ViewWire[]) => vs.map((v) => rowOf(d.decode(v, 0) as Entity, '1h'));
  test('ranks whose 95% intervals overlap are tied ("=1"), not winner and runner-up', async () => {
    const { rankLabel } = await import('../app/src/lib/leaderboard.ts');
    // CTR 5.0% [4.0, 6.0], 4.8% [3.8, 5.8] overlap; 3.0% [2.5, 3.5] is clearly below both; 2.9% overlaps it.
    const rs = rows([view('a', 1000, 50), view('b', 1000, 48), view('c', 1000, 30, 1, 'asset', 0.005), view('d', 1000, 29, 1, 'asset', 0.005), view('weak', 10, 5, 0)]);
    const o = order(rs, 'ctr', 'desc', { text: '', hideNotEnough: false });
    assert.deepEqual(o.ids, ['a', 'b', 'c', 'd', 'weak']);
    assert.deepEqual(['a', 'b', 'c', 'd', 'weak'].map((id) => rankLabel(o, id)), ['=1', '=1', '=3', '=3', '—']);
    assert.deepEqual([...o.tied], [['b', 'a'], ['a', 'a'], ['d', 'c'], ['c', 'c']]);
    // Counts have no interval: plain ranks.
    const byImp = order(rs, 'impressions', 'desc', { text: '', hideNotEnough: false });
    assert.equal(byImp.tied.size, 0);
    assert.equal(rankLabel(byImp, 'a'), '1');
  });
});

describe('API key in the URL fragment', () => {
  test('is taken out, and the route is left as it was', async () => {
    const { takeKeyFromHash } = await import('../app/src/lib/hash-key.ts');
    assert.deepEqual(takeKeyFromHash('#key=ag_k1.s3cr3t'), ['ag_k1.s3cr3t', '#/']);
    assert.deepEqual(takeKeyFromHash('#/c/spring&key=ag_k1.s%2Bx'), ['ag_k1.s+x', '#/c/spring']);
    assert.deepEqual(takeKeyFromHash('#/review/ad-1&key=k&x=1'), ['k', '#/review/ad-1&x=1']);
    assert.deepEqual(takeKeyFromHash('#/a/monkey'), [null, '#/a/monkey']);
    assert.deepEqual(takeKeyFromHash('#key='), [null, '#/']);
  });
});

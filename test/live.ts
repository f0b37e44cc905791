import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_KINDS, createBus, createFanOut, createHotState, createLogger, ulid, type EngagementEvent, type Env, type EventKind } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { LiveAggregator, LiveKeys } from '@afterglow/live';
import { authFetch, fetchTotals, postAll, postEvents, startApp, waitForSinkDrained, zeroCounts, type TestApp } from './support.js';
import { LiveTestClient, percentile, type Counts } from './live-client.js';

/**
 * The live path end to end as a dashboard sees it: events over HTTP -> bus -> live aggregators ->
 * fan-out -> /v1/live WebSocket, plus the live REST routes. Run on real Kafka + Redis + NATS and
 * on the embedded adapters with the same assertions.
 */
export function liveScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  const tenant = uniqueName('tenant');
  const clients: LiveTestClient[] = [];
  const extra: (() => Promise<unknown>)[] = [];

  before(async () => {
    const e = env();
    if (!e) return; // not-a-skip: env() is undefined only where the tests then skipOrFail (realServicesEnv throws under CI)
    app = await startApp(
      {
        SINK_GROUP_ID: uniqueName('sink'),
        LIVE_GROUP_ID: uniqueName('live'),
        LIVE_KEY_PREFIX: uniqueName('live'),
        LIVE_FLUSH_MS: '200',
        LIVE_WS_MAX_UPDATES_PER_SEC: '20',
        LIVE_WS_COALESCE_BYTES: String(32 * 1024),
        LIVE_WS_STALL_MS: '3000',
        LIVE_WS_MAX_BUFFER_BYTES: String(2 * 1024 * 1024),
        ...e,
      },
      ['ingest', 'stream', 'live'],
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const close of extra) await close().catch(() => undefined);
    await app?.close();
  });

  const connect = async () => {
    const c = await LiveTestClient.connect(app!.running.url, tenant);
    clients.push(c);
    return c;
  };

  test(`${label}: events in -> deltas out on a WebSocket client, with the right numbers`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const url = app.running.url;
    const campaign = uniqueName('c');
    const client = await connect();
    client.send({ op: 'subscribe', campaign, asset: `${campaign}-a0` });
    await client.waitFor(() => client.snapshots === 2, 20_000, 'two snapshots');

    const now = Date.now();
    const inWindow = makeEvents(3000, campaign, 8, (i) => now - (i % 20) * 1000);
    // Out of order but inside the late window (5 min ago): in the 15 min+ windows, not in 1 min.
    const outOfOrder = makeEvents(40, campaign, 8, () => now - 5 * 60_000, 'share');
    // Later than the live late window (10 min): counted in ClickHouse, flagged, not live.
    const late = makeEvents(25, campaign, 8, () => now - 15 * 60_000, 'like');
    const all = [...inWindow.events, ...outOfOrder.events, ...late.events];
    assert.equal(await postAll(url, all, 1000), all.length);

    const live = merge(inWindow.expected, outOfOrder.expected);
    const matches = () =>
      [...live].every(([key, exp]) => {
        const [kind, id] = key.split('|') as ['asset' | 'campaign', string];
        return (['15m', '1h', '24h'] as const).every((w) => same(client.counts(kind, id, w), exp));
      });
    await client.waitFor(matches, 30_000, 'live counts');
    assert.equal(client.gaps, 0, 'no sequence gap');
    const c1m = client.counts('campaign', campaign, '1m');
    assert.equal(c1m.share, inWindow.expected.get(`campaign|${campaign}`)!.share, 'the 5-minute-old shares are outside the 1 min window');
    assert.equal(c1m.impression, inWindow.expected.get(`campaign|${campaign}`)!.impression);
    const total = live.get(`campaign|${campaign}`)!;
    const [ctr, low, high, enough] = client.rate('campaign', campaign, '24h', 'ctr')!;
    assert.ok(Math.abs(ctr! - total.click / total.impression) < 1e-4, 'CTR = clicks / impressions');
    assert.ok(low! <= ctr! && ctr! <= high! && enough === 1);
    assert.equal(client.entity('asset', `${campaign}-a0`)!.campaign_id, campaign);
    assert.ok(client.entity('asset', `${campaign}-a0`)!.decay, 'an asset subscription carries its decay summary');

    // REST, from hot state.
    // Hot state follows within a flush interval.
    const q = `tenant_id=${encodeURIComponent(tenant)}`;
    const assetCounts = async () =>
      ((await (await authFetch(`${url}/v1/assets/${campaign}-a3/metrics?${q}`)).json()) as { windows: Record<string, { counts: Counts }> }).windows['24h']!.counts;
    await eventually(async () => (same(await assetCounts(), live.get(`asset|${campaign}-a3`)!) ? true : undefined), 10_000, 100).catch(() => undefined);
    assert.deepEqual(await assetCounts(), live.get(`asset|${campaign}-a3`));
    const board = (await (await authFetch(`${url}/v1/campaigns/${campaign}/leaderboard?${q}&window=24h&metric=impressions&limit=100`)).json()) as {
      ranked: { asset_id: string; value: number; rank: number }[];
    };
    assert.equal(board.ranked.length, 8);
    for (const r of board.ranked) assert.equal(r.value, live.get(`asset|${r.asset_id}`)!.impression);
    assert.deepEqual(
      board.ranked.map((r) => r.value),
      board.ranked.map((r) => r.value).sort((a, b) => b - a),
    );
    const ctrBoard = (await (await authFetch(`${url}/v1/campaigns/${campaign}/leaderboard?${q}&metric=ctr`)).json()) as { ranked: unknown[]; not_enough_data: unknown[] };
    assert.equal(ctrBoard.ranked.length + ctrBoard.not_enough_data.length, 8, 'every asset is ranked or marked not enough data');
    const decay = await authFetch(`${url}/v1/assets/${campaign}-a0/decay?${q}`);
    assert.equal(decay.status, 200);
    // a0's status depends on where the minute edges fall (five shares 5 min ago, the rest in the
    // last 20 s); an asset made to fade says what the fit must find: clicks halving every minute.
    const fading = uniqueName('fading');
    const minute = Math.floor(Date.now() / 60_000);
    const clicks: EngagementEvent[] = [];
    // 256 clicks in the minute 8 minutes ago, 128 in the next, ... 2 a minute ago (inside the 10 min late window).
    for (let k = 8; k >= 1; k--) {
      for (let j = 0; j < 2 ** k; j++) {
        const at = (minute - k) * 60_000 + 30_000 + j;
        clicks.push({ event_id: ulid(at), tenant_id: tenant, campaign_id: fading, asset_id: `${fading}-a`, kind: 'click', value: 1, occurred_at: at, received_at: 0 });
      }
    }
    assert.equal(await postAll(url, clicks, 1000), 510);
    const fit = await eventually(async () => {
      const r = await authFetch(`${url}/v1/assets/${fading}-a/decay?${q}`);
      const body = r.status === 200 ? ((await r.json()) as { status: string; events: number; half_life_ms: number | null }) : undefined;
      return body?.events === 510 ? body : undefined;
    }, 20_000, 100);
    assert.equal(fit.status, 'ok');
    // Halving every minute: a 60 s half-life (the minutes after the last click, with none, pull it a little).
    assert.ok(fit.half_life_ms !== null && Math.abs(fit.half_life_ms - 60_000) < 15_000, `half-life ${fit.half_life_ms} ms`);
    assert.equal((await authFetch(`${url}/v1/assets/nope/metrics?${q}`)).status, 404);
    assert.equal((await authFetch(`${url}/v1/assets/x/metrics?${q}&step=7s`)).status, 400);

    // History from ClickHouse: the late events are there too.
    await waitForSinkDrained(app.running);
    const from = now - 20 * 60_000;
    const hist = (await (await authFetch(`${url}/v1/assets/${campaign}-a1/metrics?${q}&from=${from}&to=${now + 60_000}&step=1m`)).json()) as {
      totals: { counts: Counts };
      series: unknown[];
    };
    assert.deepEqual(hist.totals.counts, merge(live, late.expected).get(`asset|${campaign}-a1`));
    assert.ok(hist.series.length >= 21 && hist.series.length <= 22, `${hist.series.length} points of 1 min`);
    const histDecay = await authFetch(`${url}/v1/assets/${campaign}-a1/decay?${q}&from=${from}&to=${now + 60_000}&step=1m`);
    assert.equal(histDecay.status, 200);
  });

  test(`${label}: two aggregators in one group, one killed mid-stream: the other takes its partitions, numbers stay right`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const running = app.running;
    const { config } = running;
    const first = running.live!.aggregator!;
    const kafka = config.bus.kind === 'kafka';
    // A second member: its own clients on real services (another process, as far as they know),
    // the same in-process bus and hot state when embedded.
    const bus = kafka ? await createBus(config.bus) : running.bus;
    const hot = kafka ? await createHotState(config.hot) : running.live!.hot;
    const fanout = kafka ? await createFanOut(config.fanout) : running.live!.fanout;
    if (kafka) extra.push(() => bus.close(), () => hot.close(), () => fanout.close());
    const second = new LiveAggregator({
      bus,
      hot,
      fanout,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? 'warn', { member: 'second' }),
      limits: config.events,
      groupId: config.live.groupId,
      keys: new LiveKeys(config.live.keyPrefix),
      offsetScope: first.offsetScope,
      flushMs: config.live.flushMs,
      publishMs: config.live.publishMs,
      maxEntities: config.live.maxEntities,
      tiesSweepMs: config.live.tiesSweepMs,
      recordTies: false,
    });
    extra.push(() => second.abandon());
    await second.start();
    const partitions = config.bus.partitions;
    await eventually(
      () => (second.ownedPartitions.length > 0 && first.ownedPartitions.length + second.ownedPartitions.length === partitions ? true : undefined),
      30_000,
      50,
    );

    const campaign = uniqueName('c');
    const client = await connect();
    client.send({ op: 'subscribe', campaign });
    await client.waitFor(() => client.snapshots === 1, 20_000, 'snapshot');
    const now = Date.now();
    const { events, expected } = makeEvents(8000, campaign, 48, (i) => now - (i % 30) * 1000);
    // Kill the second member while the traffic flows: no final flush, publish or commit.
    let killed = false;
    for (let i = 0; i < events.length; i += 500) {
      const r = await postEvents(running.url, events.slice(i, i + 500));
      assert.equal(r.status, 202);
      if (!killed && second.totals.applied > 800) {
        killed = true;
        await second.abandon();
      }
    }
    assert.ok(killed, 'the second member was killed mid-stream');
    await eventually(() => (first.ownedPartitions.length === partitions ? true : undefined), 30_000, 50);
    const matches = () => [...expected].every(([key, exp]) => same(client.counts(key.split('|')[0] as 'asset', key.split('|')[1]!, '24h'), exp));
    await client.waitFor(matches, 30_000, 'exact counts after the takeover').catch(async () => {
      const stored = (await (await authFetch(`${running.url}/v1/campaigns/${campaign}/metrics?tenant_id=${encodeURIComponent(tenant)}`)).json()) as { windows: Record<string, { counts: Counts }> };
      t.diagnostic(`hot state: ${JSON.stringify(stored.windows['24h']!.counts)}`);
      const wrong = [...expected].filter(([key, exp]) => !same(client.counts(key.split('|')[0] as 'asset', key.split('|')[1]!, '24h'), exp));
      const show = wrong.slice(0, 3).map(([key, exp]) => `${key}: got ${JSON.stringify(client.counts(key.split('|')[0] as 'asset', key.split('|')[1]!, '24h'))} want ${JSON.stringify(exp)}`);
      assert.fail(`${wrong.length} entities off; first: ${first.ownedPartitions} ${JSON.stringify(first.totals)}; second: ${JSON.stringify(second.totals)}\n${show.join('\n')}`);
    });
    // And hot state agrees (what a restarted gateway or REST reads).
    const q = `tenant_id=${encodeURIComponent(tenant)}`;
    const stored = async () => {
      const camp = (await (await authFetch(`${running.url}/v1/campaigns/${campaign}/metrics?${q}`)).json()) as { windows: Record<string, { counts: Counts }> };
      return camp.windows['24h']!.counts;
    };
    await eventually(async () => (same(await stored(), expected.get(`campaign|${campaign}`)!) ? true : undefined), 10_000, 100).catch(() => undefined);
    assert.deepEqual(await stored(), expected.get(`campaign|${campaign}`));
  });

  test(`${label}: a re-sent event counts once live and in ClickHouse; a re-used id with other content: the first write wins`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const { running } = app;
    const url = running.url;
    const campaign = uniqueName('c');
    const asset = `${campaign}-a0`;
    const q = `tenant_id=${encodeURIComponent(tenant)}`;
    const now = Date.now();
    const event = (kind: EventKind, occurredAt: number, id = ulid()): EngagementEvent => ({ event_id: id, tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: 1, occurred_at: occurredAt, received_at: 0 });
    const x = event('impression', now - 2_000);
    // A client that lost its responses posts X three times, each in a request of its own.
    for (let i = 0; i < 3; i++) assert.equal((await postEvents(url, [x])).status, 202);
    // Later: X again, claiming to be a click (a re-used id), and X two days earlier (older than
    // every live window, but not in ClickHouse's eyes), with a new event beside them.
    const y = event('click', now - 1_000);
    assert.equal((await postEvents(url, [{ ...x, kind: 'click' }, { ...x, occurred_at: now - 2 * 86_400_000 }, y])).status, 202);
    // A sentinel after everything: once it is counted, every copy before it has been seen.
    const sentinel = event('like', now - 500);
    assert.equal((await postEvents(url, [sentinel])).status, 202);

    const expected = { ...zeroCounts(), impression: 1, click: 1, like: 1 };
    const live = async (kind: 'assets' | 'campaigns', id: string) =>
      ((await (await authFetch(`${url}/v1/${kind}/${id}/metrics?${q}`)).json()) as { windows: Record<string, { counts: Counts }> }).windows['24h']?.counts;
    await eventually(async () => ((await live('assets', asset))?.like === 1 ? true : undefined), 20_000, 100);
    assert.deepEqual(await live('assets', asset), expected, 'the asset, live');
    await eventually(async () => ((await live('campaigns', campaign))?.like === 1 ? true : undefined), 20_000, 100);
    assert.deepEqual(await live('campaigns', campaign), expected, 'the campaign, live');

    await waitForSinkDrained(running);
    for (const source of ['rollup', 'raw'] as const) {
      const stored = await fetchTotals(url, tenant, campaign, source);
      assert.deepEqual(stored.counts, expected, `ClickHouse ${source}`);
      assert.equal(stored.total, 3);
    }
  });

  test(`${label}: a client that never reads does not slow the others down`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const url = app.running.url;
    const campaign = uniqueName('c');
    const probe = `${campaign}-probe`;
    // A campaign with 3,000 assets: its snapshot is ~1.5 MB, what a stuck client gets flooded with.
    const heavy = uniqueName('heavy');
    await postAll(url, makeEvents(3000, heavy, 3000, () => Date.now()).events, 1500);
    const q = `tenant_id=${encodeURIComponent(tenant)}`;
    await eventually(async () => {
      const b = (await (await authFetch(`${url}/v1/campaigns/${heavy}/leaderboard?${q}&metric=impressions&limit=1000`)).json()) as { assets_considered: number };
      return b.assets_considered === 3000 ? true : undefined;
    }, 20_000, 100);

    const fast = await Promise.all([connect(), connect(), connect()]);
    for (const c of fast) c.send({ op: 'subscribe', campaign });
    await Promise.all(fast.map((c) => c.waitFor(() => c.snapshots === 1, 20_000, 'snapshot')));

    // Background traffic over 200 assets of the watched campaign.
    let running = true;
    const background = (async () => {
      while (running) {
        const now = Date.now();
        await postEvents(url, makeEvents(300, campaign, 200, (i) => now - (i % 10) * 1000).events);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let clicks = 0;
    const probeRound = async () => {
      const target = ++clicks;
      const sent = Date.now();
      await postEvents(url, [{ event_id: ulid(), tenant_id: tenant, campaign_id: campaign, asset_id: probe, kind: 'click', value: 1, occurred_at: sent, received_at: 0 }]);
      const seen = await Promise.all(fast.map((c) => c.waitFor(() => c.counts('asset', probe, '24h').click >= target, 10_000, `probe ${target}`)));
      return seen.map((at) => at - sent);
    };
    const measure = async (rounds: number) => {
      const lat: number[] = [];
      for (let i = 0; i < rounds; i++) {
        lat.push(...(await probeRound()));
        await new Promise((r) => setTimeout(r, 100));
      }
      return lat;
    };
    const wsMetric = async (name: string) => {
      // Prometheus' admin listener (METRICS_PORT), not the tenants' port.
      const text = await (await fetch(app!.running.metricsUrl!)).text();
      return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    };
    try {
      await measure(3); // warm up
      const baseline = await measure(10);
      const coalescedBefore = await wsMetric('afterglow_live_ws_coalesced_total');
      // The stuck client: watches the same campaign plus the heavy one, reads nothing, and keeps
      // asking for snapshots (tens of MB) — it must be coalesced and cut off, never waited for.
      const slow = await connect();
      slow.send({ op: 'subscribe', campaigns: [campaign, heavy] });
      await new Promise((r) => setTimeout(r, 100));
      slow.stopReading();
      // Resyncs until the socket backs up (the kernel buffers hold tens of MB on loopback) and
      // the gateway starts coalescing for it; then it just sits there until the stall bound.
      const flood = (async () => {
        while (slow.closeCode === undefined && (await wsMetric('afterglow_live_ws_coalesced_total')) === coalescedBefore) {
          try {
            slow.send({ op: 'resync', campaign: heavy });
          } catch {
            break;
          }
          await new Promise((r) => setTimeout(r, 60));
        }
      })();
      const withSlow = await measure(20);
      await flood;
      const p50a = percentile(baseline, 50);
      const p50b = percentile(withSlow, 50);
      const p95b = percentile(withSlow, 95);
      t.diagnostic(`latency p50 ${p50a} ms -> ${p50b} ms with a stuck client (p95 ${p95b} ms, max ${Math.max(...withSlow)} ms)`);
      // Latency is a figure (bench/live), not an assert: a stuck client that blocked the others
      // shows below as gaps, coalescing or closes on the fast clients.
      for (const c of fast) {
        assert.equal(c.gaps, 0);
        assert.equal(c.coalesced, 0, 'fast clients keep up: nothing coalesced for them');
        assert.equal(c.closeCode, undefined, 'fast clients stay connected');
      }
      // The stuck client is coalesced first, or — when a burst of snapshots passes the byte bound
      // before any delta is held back — cut off at once; either way it must end up disconnected.
      await eventually(async () => ((await wsMetric('afterglow_live_ws_disconnects_total')) > 0 ? true : undefined), 15_000, 200);
      assert.ok(slow.closeCode !== undefined || (await wsMetric('afterglow_live_ws_coalesced_total')) > coalescedBefore, 'the stuck client was coalesced or closed');
    } finally {
      running = false;
      await background;
    }
  });

  function makeEvents(n: number, campaign: string, assets: number, at: (i: number) => number, only?: EventKind) {
    const events: EngagementEvent[] = [];
    const expected = new Map<string, Counts>();
    for (let i = 0; i < n; i++) {
      const kind = only ?? EVENT_KINDS[(i * 3 + (i >> 3)) % EVENT_KINDS.length]!;
      const asset = `${campaign}-a${i % assets}`;
      events.push({ event_id: ulid(), tenant_id: tenant, campaign_id: campaign, asset_id: asset, kind, value: kind === 'dwell' ? 1200 : 1, occurred_at: at(i), received_at: 0 });
      for (const key of [`asset|${asset}`, `campaign|${campaign}`]) {
        if (!expected.has(key)) expected.set(key, zeroCounts());
        expected.get(key)![kind]++;
      }
    }
    return { events, expected };
  }
}

function merge(...maps: Map<string, Counts>[]): Map<string, Counts> {
  const out = new Map<string, Counts>();
  for (const m of maps) {
    for (const [k, c] of m) {
      if (!out.has(k)) out.set(k, zeroCounts());
      for (const kind of EVENT_KINDS) out.get(k)![kind] += c[kind];
    }
  }
  return out;
}

function same(a: Counts, b: Counts): boolean {
  return EVENT_KINDS.every((k) => a[k] === b[k]);
}

// Range reads, breakdowns by label and creative comparison (ingest/src/analytics.ts), on the embedded
// store (chDB in this process) and over the ClickHouse HTTP interface (deploy/local/chdb-http.ts in
// another process, what CLICKHOUSE_URL points at): every expected number is recounted here from the
// events the test posts, never read back from the store.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EVENT_KINDS, ulid, type EngagementEvent, type EventKind } from '@afterglow/core';
import type { Env } from '@afterglow/core';
import { OwnClickHouse } from './faults/services.js';
import { postAll, startApp, waitForSinkDrained, type TestApp } from './support.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T = 'an-tenant';
const OTHER = 'an-other';
const C = 'an-camp';

interface Labels {
  channel?: string;
  placement?: string;
  region?: string;
  device?: string;
}

const CHANNELS = ['social', 'search', undefined];
const PLACEMENTS = ['feed', 'story', undefined];
const REGIONS = ['eu', 'us'];
const DEVICES = ['mobile', 'desktop', 'tv', undefined];
const ASSETS = ['an-a1', 'an-a2', 'an-a3'];

/** The label an event is stored (and so grouped and filtered) under: '' when it has none. */
function stored(e: EngagementEvent, dim: keyof Labels): string {
  // The sink stores a missing channel as the placement (stream/sink/src/sink.ts toRow), so a breakdown by channel sees that.
  if (dim === 'channel') return e.channel ?? e.placement ?? '';
  return e[dim] ?? '';
}

let anchor = 0;
const events: EngagementEvent[] = [];

/** A deterministic mix: kinds, labels and assets vary with i; times in the range, before it, in the period before, and after it. */
function build(): void {
  anchor = Math.floor((Date.now() - 3 * HOUR) / MIN) * MIN;
  const at = [
    (i: number) => anchor + ((i * 7919) % HOUR), // current period
    (i: number) => anchor - HOUR + ((i * 104_729) % HOUR), // previous period
    (i: number) => anchor - HOUR - MIN - ((i * 13) % HOUR), // before both
    (i: number) => anchor + HOUR + ((i * 31) % HOUR), // after the range
  ];
  for (let i = 0; i < 1200; i++) {
    const kind: EventKind = i % 5 === 0 ? 'click' : i % 11 === 0 ? 'like' : 'impression';
    const e: EngagementEvent = {
      event_id: ulid(anchor),
      tenant_id: T,
      campaign_id: C,
      asset_id: ASSETS[i % 3]!,
      kind,
      value: 1,
      occurred_at: at[i % 4]!(i),
      received_at: 0,
    };
    const labels: Labels = { channel: CHANNELS[i % 3], placement: PLACEMENTS[Math.floor(i / 3) % 3], region: REGIONS[Math.floor(i / 2) % 2], device: DEVICES[Math.floor(i / 7) % 4] };
    for (const [k, v] of Object.entries(labels)) if (v !== undefined) (e as unknown as Record<string, string>)[k] = v;
    events.push(e);
  }
  // Another tenant with the same campaign and asset ids: never counted for T.
  for (let i = 0; i < 200; i++) {
    events.push({ event_id: ulid(anchor), tenant_id: OTHER, campaign_id: C, asset_id: ASSETS[i % 3]!, kind: 'impression', value: 1, occurred_at: anchor + i * 1000, received_at: 0, channel: 'social' });
  }
}

type Counts = Record<EventKind, number>;
const zero = (): Counts => Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Counts;

function count(pred: (e: EngagementEvent) => boolean, from: number, to: number): Counts {
  const c = zero();
  for (const e of events) if (e.tenant_id === T && e.occurred_at >= from && e.occurred_at < to && pred(e)) c[e.kind]++;
  return c;
}

function matches(filters: Partial<Record<keyof Labels, string>>) {
  return (e: EngagementEvent) => Object.entries(filters).every(([dim, v]) => stored(e, dim as keyof Labels) === v);
}

interface Totals {
  counts: Counts;
  total: number;
  ctr: number | null;
}

let app: TestApp;
let base: string;

async function get<B>(path: string, tenant = T): Promise<{ status: number; body: B }> {
  const res = await app.request(tenant, path);
  return { status: res.status, body: (await res.json()) as B };
}

const range = () => `from=${new Date(anchor).toISOString()}&to=${new Date(anchor + HOUR).toISOString()}`;

for (const store of ['embedded chDB', 'ClickHouse over HTTP'] as const) {
  describe(`range reads, breakdowns and comparison (${store})`, () => {
    let ch: OwnClickHouse | undefined;
    before(async () => {
      let env: Env = {};
      if (store === 'ClickHouse over HTTP') {
        ch = await OwnClickHouse.started();
        env = { CLICKHOUSE_URL: ch.url, CLICKHOUSE_DATABASE: `an_${Date.now().toString(36)}` };
      }
      app = await startApp(env, ['ingest', 'stream']);
      events.length = 0;
      base = app.running.url;
      build();
      // One post per tenant: a batch is sent with the key of the tenant its first event names.
      await postAll(base, events.filter((e) => e.tenant_id === T));
      await postAll(base, events.filter((e) => e.tenant_id === OTHER));
      await waitForSinkDrained(app.running);
    });
    after(async () => {
      await app?.close();
      await ch?.close();
    });

    test('breakdown by channel, filtered by placement: counts per value in the range and the period before', async () => {
      const paths = [`/v1/campaigns/${C}/breakdown?tenant_id=${T}&by=channel&${range()}&filter[placement]=feed`, `/v1/campaigns/${C}/breakdown?tenant_id=${T}&by=channel&${range()}&filter[placement]=feed&source=raw`];
      for (const path of paths) {
        const { status, body } = await get<{ rows: { value: string; current: Totals; previous: Totals }[]; truncated: boolean; totals: { current: Totals; previous: Totals }; range: { from: string; to: string }; previous_range: { from: string } }>(path);
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.range.from, new Date(anchor).toISOString());
        assert.equal(body.previous_range.from, new Date(anchor - HOUR).toISOString());
        const values = [...new Set(events.filter((e) => e.tenant_id === T).map((e) => stored(e, 'channel')))];
        const expected = values
          .map((v) => ({ value: v, current: count(matches({ channel: v, placement: 'feed' }), anchor, anchor + HOUR), previous: count(matches({ channel: v, placement: 'feed' }), anchor - HOUR, anchor) }))
          .filter((r) => EVENT_KINDS.some((k) => r.current[k] > 0));
        const all = (c: Counts) => EVENT_KINDS.reduce((n, k) => n + c[k], 0);
        expected.sort((a, b) => b.current.impression - a.current.impression || all(b.current) - all(a.current) || (a.value < b.value ? -1 : 1));
        assert.deepEqual(
          body.rows.map((r) => ({ value: r.value, current: r.current.counts, previous: r.previous.counts })),
          expected,
        );
        for (const r of body.rows) assert.equal(r.current.ctr, r.current.counts.impression > 0 ? r.current.counts.click / r.current.counts.impression : null);
        assert.equal(body.truncated, false);
        assert.deepEqual(body.totals.current.counts, count(matches({ placement: 'feed' }), anchor, anchor + HOUR));
        assert.deepEqual(body.totals.previous.counts, count(matches({ placement: 'feed' }), anchor - HOUR, anchor));
      }
    });

    test('breakdown is bounded by limit and says so; the totals still count every value', async () => {
      const { status, body } = await get<{ rows: { value: string; current: Totals }[]; truncated: boolean; totals: { current: Totals } }>(`/v1/campaigns/${C}/breakdown?tenant_id=${T}&by=device&${range()}&limit=2`);
      assert.equal(status, 200);
      assert.equal(body.rows.length, 2);
      assert.equal(body.truncated, true);
      const byImpr = ['mobile', 'desktop', 'tv', '']
        .map((v) => ({ v, n: count(matches({ device: v }), anchor, anchor + HOUR) }))
        .sort((a, b) => b.n.impression - a.n.impression || b.n.click + b.n.like - (a.n.click + a.n.like) || (a.v < b.v ? -1 : 1));
      assert.deepEqual(body.rows.map((r) => r.value), byImpr.slice(0, 2).map((x) => x.v));
      assert.deepEqual(body.totals.current.counts, count(() => true, anchor, anchor + HOUR));
    });

    test('campaign range: totals, previous-period change, per-asset rows and a series that adds up, with a filter', async () => {
      for (const [query, pred] of [
        ['', () => true],
        ['&filter[region]=us', matches({ region: 'us' })],
        ['&filter[device]=mobile&filter[device]=tv', (e: EngagementEvent) => e.device === 'mobile' || e.device === 'tv'],
      ] as const) {
        const { status, body } = await get<{
          current: Totals;
          previous: Totals;
          change: { counts: Record<EventKind, { abs: number; rel: number | null }>; ctr: { abs: number } | null };
          assets: { asset_id: string; current: Totals; previous: Totals }[];
          series: { step_ms: number; points: { t: string; counts: Counts }[] };
        }>(`/v1/campaigns/${C}/range?tenant_id=${T}&${range()}${query}`);
        assert.equal(status, 200, JSON.stringify(body));
        const cur = count(pred, anchor, anchor + HOUR);
        const prev = count(pred, anchor - HOUR, anchor);
        assert.deepEqual(body.current.counts, cur, query);
        assert.deepEqual(body.previous.counts, prev, query);
        assert.equal(body.change.counts.impression.abs, cur.impression - prev.impression);
        assert.equal(body.change.counts.click.rel, prev.click > 0 ? (cur.click - prev.click) / prev.click : null);
        if (cur.impression > 0 && prev.impression > 0) assert.ok(Math.abs(body.change.ctr!.abs - (cur.click / cur.impression - prev.click / prev.impression)) < 1e-12);
        else assert.equal(body.change.ctr, null);
        for (const a of ASSETS) {
          const row = body.assets.find((r) => r.asset_id === a);
          const expected = count((e) => e.asset_id === a && pred(e), anchor, anchor + HOUR);
          // The rows are the assets with events in the range.
          if (EVENT_KINDS.every((k) => expected[k] === 0)) {
            assert.equal(row, undefined);
            continue;
          }
          assert.deepEqual(row?.current.counts, expected, `${a}${query}`);
          assert.deepEqual(row?.previous.counts, count((e) => e.asset_id === a && pred(e), anchor - HOUR, anchor));
        }
        // One hour in one-minute steps: 60 points, each counting its own minute.
        assert.equal(body.series.step_ms, MIN);
        assert.equal(body.series.points.length, 60);
        body.series.points.forEach((p, i) => {
          assert.equal(p.t, new Date(anchor + i * MIN).toISOString());
          assert.deepEqual(p.counts, count(pred, anchor + i * MIN, anchor + (i + 1) * MIN));
        });
      }
    });

    test('asset range and a comparison of assets read only that tenant and those assets', async () => {
      const { body: asset } = await get<{ campaign_id: string; current: Totals; previous: Totals; series: { points: { counts: Counts }[] } }>(`/v1/assets/an-a2/range?tenant_id=${T}&${range()}&filter[channel]=search`);
      assert.equal(asset.campaign_id, C);
      assert.deepEqual(asset.current.counts, count((e) => e.asset_id === 'an-a2' && stored(e, 'channel') === 'search', anchor, anchor + HOUR));
      assert.deepEqual(asset.previous.counts, count((e) => e.asset_id === 'an-a2' && stored(e, 'channel') === 'search', anchor - HOUR, anchor));

      const { status, body } = await get<{ step_ms: number; assets: { asset_id: string; current: Totals; series: { points: { counts: Counts }[] } }[] }>(
        `/v1/compare?tenant_id=${T}&ids=an-a3,an-a1,an-none&${range()}`,
      );
      assert.equal(status, 200, JSON.stringify(body));
      assert.deepEqual(body.assets.map((a) => a.asset_id), ['an-a3', 'an-a1', 'an-none']);
      for (const a of body.assets) {
        const expected = count((e) => e.asset_id === a.asset_id, anchor, anchor + HOUR);
        assert.deepEqual(a.current.counts, expected);
        const summed = zero();
        for (const p of a.series.points) for (const k of EVENT_KINDS) summed[k] += p.counts[k];
        assert.deepEqual(summed, expected);
      }
      // The other tenant's events (same campaign and asset ids, 200 impressions) are its own.
      const { body: theirs } = await get<{ current: Totals }>(`/v1/campaigns/${C}/range?tenant_id=${OTHER}&${range()}`, OTHER);
      assert.equal(theirs.current.counts.impression, 200);
      const { status: forbidden } = await get(`/v1/campaigns/${C}/breakdown?tenant_id=${T}&by=channel`, OTHER);
      assert.equal(forbidden, 403);
    });

    test('bad input gets a coded 400 and reads nothing', async () => {
      const q = `tenant_id=${T}`;
      const cases: [string, string][] = [
        [`/v1/campaigns/${C}/breakdown?${q}&by=colour`, 'invalid_dimension'],
        [`/v1/campaigns/${C}/breakdown?${q}`, 'invalid_dimension'],
        [`/v1/campaigns/${C}/breakdown?${q}&by=channel&filter[colour]=red`, 'invalid_filter'],
        [`/v1/campaigns/${C}/breakdown?${q}&by=channel&filter[region]=${'x'.repeat(129)}`, 'invalid_filter'],
        [`/v1/campaigns/${C}/breakdown?${q}&by=channel&limit=0`, 'invalid_limit'],
        [`/v1/campaigns/${C}/breakdown?${q}&by=channel&limit=501`, 'invalid_limit'],
        [`/v1/campaigns/${C}/range?${q}&from=2026-02-30T00:00:00Z`, 'invalid_range'],
        [`/v1/campaigns/${C}/range?${q}&from=yesterday`, 'invalid_range'],
        [`/v1/campaigns/${C}/range?${q}&from=${anchor + HOUR}&to=${anchor}`, 'invalid_range'],
        [`/v1/campaigns/${C}/range?${q}&from=2020-01-01&to=2021-06-01`, 'range_too_long'],
        [`/v1/campaigns/${C}/range?${q}&to=${Date.now() + 3 * 86_400_000}`, 'invalid_range'],
        [`/v1/campaigns/${C}/range?${q}&from=1&from=2`, 'invalid_parameter'],
        [`/v1/campaigns/${C}/range?${q}&form=2026-01-01`, 'unknown_parameter'],
        [`/v1/campaigns/bad%20id/range?${q}`, 'invalid_id'],
        [`/v1/compare?${q}&ids=an-a1`, 'invalid_ids'],
        [`/v1/compare?${q}&ids=a,b,c,d,e`, 'invalid_ids'],
        [`/v1/compare?${q}&ids=an-a1,'x`, 'invalid_id'],
      ];
      for (const [path, code] of cases) {
        const { status, body } = await get<{ error: string }>(path);
        assert.equal(status, 400, path);
        assert.equal(body.error, code, path);
      }
    });
  });
}

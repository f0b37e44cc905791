import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TABLES, ulid, type Env } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { answerChecker, postAll, postEvents, startApp, waitForSinkDrained, type TestApp } from './support.js';

interface Rate {
  value: number;
  low: number;
  high: number;
}
interface Metrics {
  starts: number;
  hook_rate: Rate;
  hold_rate: Rate;
  completion_rate: Rate;
  avg_watch_ms: number;
  watch_ms: number;
  retention: { percent: number; plays: number; share: Rate }[];
  excess: number;
}
interface Report {
  asset_id: string;
  asset: Metrics;
  master: Metrics & { contributors: { asset_id: string; weight: number; via: string }[] };
}

/**
 * Video engagement end to end: plays over HTTP, the video rollup in the store, and the metrics of
 * GET /v1/assets/:id/video-metrics against figures worked out by hand from what was sent; a retried
 * batch (same event ids) counts once; a master adds the video ad cut from it by time on screen.
 */
export function videoScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  const tenant = uniqueName('vt');
  const campaign = 'launch';
  const master = 'master-film';
  const ad = 'cutdown-6s';

  before(async () => {
    const e = env();
    if (e) app = await startApp({ SINK_GROUP_ID: uniqueName('sink'), ...e }, ['ingest', 'stream', 'live']);
  });
  after(async () => {
    await app?.close();
  });

  const report = async (asset: string, who = tenant): Promise<Report> => {
    const res = await app!.request(who, `/v1/assets/${asset}/video-metrics?tenant_id=${who}`);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Report;
  };

  test(`${label}: video plays over HTTP become hook, hold, completion, watch time and retention; retries count once`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / CLICKHOUSE_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const now = Date.now();
    const ev = (asset: string, kind: string, value?: number, viewer = 'v') => ({
      event_id: ulid(now),
      tenant_id: tenant,
      campaign_id: campaign,
      asset_id: asset,
      kind,
      occurred_at: now - 30_000,
      viewer_id: viewer,
      ...(value !== undefined && { value }),
    });
    // The master: 10 plays. 8 pass 3 s, 7 reach 25 %, 5 reach 50 %, 4 reach 75 %, 3 complete; each play reports its watch time.
    const plays: Record<string, unknown>[] = [];
    const reached = [100, 100, 100, 75, 50, 25, 25, 3, 1, 0];
    const watchMs = [20_000, 20_000, 20_000, 15_500, 10_000, 5_000, 5_500, 3_000, 1_000, 500];
    reached.forEach((r, i) => {
      const viewer = `viewer-${i}`;
      plays.push(ev(master, 'video_start', undefined, viewer));
      if (r >= 3) plays.push(ev(master, 'video_seconds', 3, viewer));
      for (const q of [25, 50, 75]) if (r >= q) plays.push(ev(master, 'video_progress', q, viewer));
      if (r === 100) plays.push(ev(master, 'video_complete', undefined, viewer));
      plays.push(ev(master, 'video_watch', watchMs[i], viewer));
    });
    // The 6 s cut-down: 4 plays, 2 complete; its first 1.5 s come from the master, the rest from nowhere we know.
    for (let i = 0; i < 4; i++) {
      plays.push(ev(ad, 'video_start'), ev(ad, 'video_seconds', 3), ev(ad, 'video_progress', 25), ev(ad, 'video_progress', 50), ev(ad, 'video_watch', 4000));
      if (i < 2) plays.push(ev(ad, 'video_progress', 75), ev(ad, 'video_complete'));
    }
    plays.push(ev(master, 'click'));
    assert.equal(await postAll(app.running.url, plays), plays.length);
    // A flaky network: the whole batch again, same event ids.
    assert.equal(await postAll(app.running.url, plays), plays.length);

    // Hostile values are refused with typed reasons and nothing else of the batch is lost.
    const bad = [ev(master, 'video_progress', 101), ev(master, 'video_seconds', -1), ev(master, 'video_watch', 0), ev(master, 'video_progress', 12.5), ev(master, 'video_progress')];
    const r = await postEvents(app.running.url, [...bad, ev('other-video', 'video_start')]);
    assert.equal(r.status, 202);
    assert.equal(r.body.accepted, 1);
    assert.deepEqual(
      r.body.rejections.map((x) => [x.index, x.reason, x.field]),
      [
        [0, 'value_out_of_range', 'value'],
        [1, 'invalid_field', 'value'],
        [2, 'value_out_of_range', 'value'],
        [3, 'value_out_of_range', 'value'],
        [4, 'missing_field', 'value'],
      ],
    );

    // The shot analysis the registry stores for the cut-down (what inference writes once shots are ranked).
    const store = app.running.store!;
    const shots = [
      { index: 0, start: 0, end: 1.5, auto_tie: master },
      { index: 1, start: 1.5, end: 6, auto_tie: null },
    ];
    await store.client.insert({
      table: store.table(TABLES.assetVideos),
      values: [{ tenant_id: tenant, asset_id: ad, container: 'mp4', codec: 'h264', duration_s: 6, fps: 25, frames: 150, audio: false, poster_hash: '', poster_frame: 0, storyboard_hash: '', shots: JSON.stringify(shots), version: 1 }],
      format: 'JSONEachRow',
    });
    await waitForSinkDrained(app.running);

    const rollup = await store.client.query({
      query: `SELECT toString(kind) AS kind, milestone, sum(events) AS n FROM ${store.table(TABLES.videoMinute)}
              WHERE tenant_id = {tenant:String} AND asset_id = {asset:String} GROUP BY kind, milestone ORDER BY kind, milestone`,
      query_params: { tenant, asset: master },
      format: 'JSONEachRow',
    });
    assert.deepEqual(
      (await rollup.json<{ kind: string; milestone: number; n: string | number }>()).map((x) => [x.kind, Number(x.milestone), Number(x.n)]),
      [
        ['video_complete', 0, 3],
        ['video_progress', 25, 7],
        ['video_progress', 50, 5],
        ['video_progress', 75, 4],
        ['video_seconds', 3, 8],
        ['video_start', 0, 10],
        ['video_watch', 0, 10],
      ],
      'the rollup holds each play once although the batch came twice',
    );

    const m = await report(master);
    assert.equal(m.asset.starts, 10);
    assert.equal(m.asset.hook_rate.value, 0.8);
    assert.equal(m.asset.hold_rate.value, 0.5);
    assert.equal(m.asset.completion_rate.value, 0.3);
    assert.equal(m.asset.watch_ms, 100_500);
    assert.equal(m.asset.avg_watch_ms, 10_050);
    assert.deepEqual(
      m.asset.retention.map((p) => [p.percent, p.plays, p.share.value]),
      [
        [0, 10, 1],
        [25, 7, 0.7],
        [50, 5, 0.5],
        [75, 4, 0.4],
        [100, 3, 0.3],
      ],
    );
    // Wilson 95 % for 4 of 10: [0.168, 0.687].
    assert.deepEqual([m.asset.retention[3]!.share.low.toFixed(3), m.asset.retention[3]!.share.high.toFixed(3)], ['0.168', '0.687']);
    assert.equal(m.asset.excess, 0);

    // As a master: its own 10 plays plus a quarter (1.5 s of 6 s on screen) of the cut-down's 4.
    assert.deepEqual(m.master.contributors, [
      { asset_id: master, weight: 1, via: 'self' },
      { asset_id: ad, weight: 0.25, via: 'shots' },
    ]);
    assert.equal(m.master.starts, 11);
    assert.equal(m.master.hook_rate.value, 9 / 11);
    assert.equal(m.master.hold_rate.value, 6 / 11);
    assert.equal(m.master.completion_rate.value, 3.5 / 11);
    assert.equal(m.master.watch_ms, 104_500);

    // The live windows count the click and none of the plays (those are measured above, from the store).
    const live = await eventually(async () => {
      const res = await app!.request(tenant, `/v1/assets/${master}/metrics?tenant_id=${tenant}`);
      const body = res.status === 200 ? ((await res.json()) as { windows: Record<string, { counts: Record<string, number> }> }) : undefined;
      return body && body.windows['1h']!.counts.click === 1 ? body : undefined;
    }, 30_000);
    assert.deepEqual(Object.keys(live.windows['1h']!.counts).filter((k) => k.startsWith('video')), []);
    assert.equal(Object.values(live.windows['1h']!.counts).reduce((a, b) => a + b, 0), 1);

    // The range analytics count the eight engagement kinds and are not thrown off by the plays beside them.
    const range = await app.request(tenant, `/v1/assets/${master}/range?tenant_id=${tenant}&from=${now - 3_600_000}&to=${now + 60_000}`);
    assert.equal(range.status, 200, await range.clone().text());
    const body = (await range.json()) as { current: { counts: Record<string, unknown>; total: number }; series: { points: { counts: Record<string, unknown> }[] } };
    assert.deepEqual(body.current.counts, { impression: 0, view: 0, click: 1, like: 0, share: 0, comment: 0, conversion: 0, dwell: 0 });
    assert.equal(body.current.total, 1);
    for (const p of body.series.points) for (const n of Object.values(p.counts)) assert.equal(typeof n, 'number');

    // Campaign totals and the campaign list count the plays too, and still answer as documented.
    const { check } = await answerChecker(app.running.url);
    for (const path of [`/v1/campaigns/${campaign}/totals`, '/v1/campaigns']) {
      const res = await app.request(tenant, `${path}?tenant_id=${tenant}`);
      assert.equal(res.status, 200, path);
      const answer = (await res.json()) as { counts?: Record<string, number>; campaigns?: { counts: Record<string, number> }[] };
      check('GET', path, 200, answer);
      const counts = answer.counts ?? answer.campaigns!.find((c) => c.counts.video_start !== undefined)!.counts;
      assert.ok(counts.video_start! > 0 && counts.click === 1, `${path}: ${JSON.stringify(counts)}`);
    }

    const cut = await report(ad);
    assert.deepEqual([cut.asset.starts, cut.asset.completion_rate.value, cut.asset.avg_watch_ms], [4, 0.5, 4000]);
    assert.deepEqual(cut.master.contributors, [{ asset_id: ad, weight: 1, via: 'self' }], 'an ad is no master of anything');

    // One viewer hammering the 50 % mark 500 times (distinct ids: not retries) over 2 plays: the
    // curve cannot pass its starts, and what was cut shows as excess.
    const spam = [ev('spammed', 'video_start', undefined, 'x'), ev('spammed', 'video_start', undefined, 'x'), ev('spammed', 'video_complete', undefined, 'x')];
    for (let i = 0; i < 500; i++) spam.push(ev('spammed', 'video_progress', 50, 'x'));
    assert.equal(await postAll(app.running.url, spam), spam.length);
    await waitForSinkDrained(app.running);
    const spammed = (await report('spammed')).asset;
    assert.deepEqual(
      spammed.retention.map((p) => [p.percent, p.plays]),
      [
        [0, 2],
        [25, 0],
        [50, 2],
        [75, 0],
        [100, 1],
      ],
    );
    assert.equal(spammed.hold_rate.value, 1);
    assert.equal(spammed.excess, 498);

    // Another tenant sees none of it, and cannot ask for this tenant's numbers.
    const other = uniqueName('vt-other');
    assert.equal((await report(master, other)).asset.starts, 0);
    const refused = await app.request(other, `/v1/assets/${master}/video-metrics?tenant_id=${tenant}`);
    assert.equal(refused.status, 403);
  });
}

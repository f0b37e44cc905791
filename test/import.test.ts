import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { EVENT_KINDS, ulid, type EventKind } from '@afterglow/core';
import { runImportCommand } from 'afterglow/import';
import { SpendImport } from '@afterglow/ingest';
import { fetchTotals, postEvents, startApp, waitForSinkDrained, zeroCounts, type Counts, type TestApp } from './support.js';

/**
 * History import end to end: files of three formats through `afterglow import events` into a
 * running server, counted in the rollups exactly once, however often it is run or retried.
 */
const DAY = 86_400_000;
const TENANT = 'hist';

interface Row {
  event_id?: string;
  campaign_id: string;
  asset_id: string;
  kind: EventKind;
  value: number;
  occurred_at: number;
}

/** `n` events spread over `days` days ending a day ago, each with a known kind; the counts to expect. */
function history(n: number, days: number, campaign: string, seed: number): { rows: Row[]; counts: Counts } {
  const counts = zeroCounts();
  const rows: Row[] = [];
  const end = Date.now() - DAY;
  for (let i = 0; i < n; i++) {
    const kind = EVENT_KINDS[(i * 5 + seed) % EVENT_KINDS.length]!;
    counts[kind]++;
    rows.push({
      campaign_id: campaign,
      asset_id: `${campaign}-ad-${i % 7}`,
      kind,
      value: kind === 'dwell' ? 900 + (i % 50) : 1,
      // Spread over `days` distinct days, several events per minute apart within a day.
      occurred_at: end - (i % days) * DAY - (i * 7919) % (DAY / 2),
    });
  }
  return { rows, counts };
}

async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c: Buffer) => (chunks.out += c.toString()));
  err.on('data', (c: Buffer) => (chunks.err += c.toString()));
  const code = await runImportCommand(args, out, err);
  return { code, ...chunks };
}

describe('history import (afterglow import events)', () => {
  let app: TestApp;
  let dir: string;
  let key: string;

  before(async () => {
    app = await startApp({});
    dir = mkdtempSync(path.join(tmpdir(), 'afterglow-import-'));
    key = (await app.authHeaders(TENANT, ['admin'])).authorization!.replace('Bearer ', '');
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes NDJSON, CSV and Parquet history into the rollups once, spanning more day partitions than one insert may', async () => {
    // NDJSON with ids, over 150 days: one batch covers more than 100 day partitions.
    const nd = history(1200, 150, 'imp-nd', 1);
    const ndFile = path.join(dir, 'events.ndjson');
    const badLines = [
      '{not json',
      JSON.stringify({ event_id: ulid(), tenant_id: TENANT, campaign_id: 'imp-nd', asset_id: 'a', kind: 'teleport', occurred_at: Date.now() - 2 * DAY }),
      JSON.stringify({ event_id: ulid(), tenant_id: TENANT, campaign_id: 'imp-nd', asset_id: 'a', kind: 'click', occurred_at: Date.now() - 1000 }),
      JSON.stringify({ event_id: ulid(), tenant_id: 'someone-else', campaign_id: 'imp-nd', asset_id: 'a', kind: 'click', occurred_at: Date.now() - 2 * DAY }),
    ];
    const ndLines = nd.rows.map((r) => JSON.stringify({ ...r, event_id: ulid(r.occurred_at), tenant_id: TENANT }));
    // The bad lines sit at file lines 11, 22, 33 and 44.
    for (let i = 0; i < badLines.length; i++) ndLines.splice(10 + i * 11, 0, badLines[i]!);
    writeFileSync(ndFile, `${ndLines.join('\n')}\n`);
    const rejects = path.join(dir, 'rejects.ndjson');
    const first = await runCli(['events', ndFile, '--url', app.running.url, '--key', key, '--batch', '700', '--rejects', rejects, '--quiet']);
    assert.equal(first.code, 1, first.err);
    assert.match(first.out, /^1204 rows: wrote 1200, already stored 0, refused 4/);
    const refused = readFileSync(rejects, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { row: number; reason: string });
    assert.deepEqual(
      refused.map((r) => [r.row, r.reason]),
      [
        [11, 'undecodable'],
        [22, 'unknown_kind'],
        [33, 'too_recent'],
        [44, 'tenant_forbidden'],
      ],
    );

    // CSV without ids and with the platform's column names, mapped; ids come from the content.
    const csv = history(500, 40, 'imp-csv', 2);
    const csvFile = path.join(dir, 'export.csv');
    writeFileSync(
      csvFile,
      ['ad_id,type,value,ts', ...csv.rows.map((r) => `${r.asset_id},${r.kind},${r.value},${new Date(r.occurred_at).toISOString()}`)].join('\n'),
    );
    const csvArgs = ['events', csvFile, '--tenant', TENANT, '--campaign', 'imp-csv', '--map', 'ad_id=asset_id,type=kind,ts=occurred_at', '--url', app.running.url, '--key', key, '--quiet'];
    const fromCsv = await runCli(csvArgs);
    assert.equal(fromCsv.code, 0, fromCsv.err + fromCsv.out);
    // Rows identical in every column are one event; count the distinct ones independently.
    const distinctCsv = new Set(csv.rows.map((r) => `${r.asset_id},${r.kind},${r.value},${r.occurred_at}`)).size;
    assert.match(fromCsv.out, new RegExp(`^500 rows: wrote ${distinctCsv}, already stored ${500 - distinctCsv}, refused 0`));

    // Parquet with a TIMESTAMP column.
    const pq = history(800, 20, 'imp-pq', 3);
    const pqFile = path.join(dir, 'events.parquet');
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: 'event_id', data: pq.rows.map((r) => ulid(r.occurred_at)), type: 'STRING' },
        { name: 'tenant_id', data: pq.rows.map(() => TENANT), type: 'STRING' },
        { name: 'campaign_id', data: pq.rows.map((r) => r.campaign_id), type: 'STRING' },
        { name: 'asset_id', data: pq.rows.map((r) => r.asset_id), type: 'STRING' },
        { name: 'kind', data: pq.rows.map((r) => r.kind), type: 'STRING' },
        { name: 'value', data: pq.rows.map((r) => r.value), type: 'DOUBLE' },
        { name: 'occurred_at', data: pq.rows.map((r) => new Date(r.occurred_at)), type: 'TIMESTAMP' },
      ],
    });
    writeFileSync(pqFile, Buffer.from(buffer));
    const fromPq = await runCli(['events', pqFile, '--url', app.running.url, '--key', key, '--quiet']);
    assert.equal(fromPq.code, 0, fromPq.err + fromPq.out);
    assert.match(fromPq.out, /^800 rows: wrote 800, already stored 0, refused 0/);

    assert.deepEqual((await fetchTotals(app.running.url, TENANT, 'imp-nd')).counts, nd.counts);
    assert.deepEqual((await fetchTotals(app.running.url, TENANT, 'imp-pq')).counts, pq.counts);
    const csvTotals = await fetchTotals(app.running.url, TENANT, 'imp-csv');
    assert.equal(csvTotals.total, distinctCsv);
    // Every imported event arrived after its live window closed, and is flagged so.
    assert.equal(csvTotals.late, distinctCsv);

    // Run again: nothing new, every valid row found as already stored, totals unchanged.
    const again = await runCli(['events', ndFile, '--url', app.running.url, '--key', key, '--quiet']);
    assert.match(again.out, /^1204 rows: wrote 0, already stored 1200, refused 4/);
    const csvAgain = await runCli(csvArgs);
    assert.match(csvAgain.out, /^500 rows: wrote 0, already stored 500, refused 0/);
    assert.deepEqual((await fetchTotals(app.running.url, TENANT, 'imp-nd')).counts, nd.counts);
    assert.equal((await fetchTotals(app.running.url, TENANT, 'imp-csv')).total, distinctCsv);
    assert.deepEqual((await fetchTotals(app.running.url, TENANT, 'imp-nd', 'raw')).counts, nd.counts);
  });

  it('a daily platform export becomes exact day totals per ad and kind once, and its spend gives costs per result', async () => {
    const file = path.join(dir, 'daily.csv');
    const days = [10, 9, 8].map((ago) => new Date(Date.now() - ago * DAY).toISOString().slice(0, 10));
    const header = 'Day,Ad ID,impressions,clicks,conversions,conversion_value,spend,reach';
    const lines = [header];
    const expected = new Map<string, { impressions: number; clicks: number; conversions: number; value: number; spend: number }>();
    for (const [d, day] of days.entries()) {
      for (const ad of ['banner-1', 'story-2']) {
        const row = { impressions: 40 + d * 7 + ad.length, clicks: 3 + d, conversions: d, value: d * 12.5, spend: 0.37 * (d + 1) + ad.length / 10 };
        const e = expected.get(ad) ?? { impressions: 0, clicks: 0, conversions: 0, value: 0, spend: 0 };
        e.impressions += row.impressions;
        e.clicks += row.clicks;
        e.conversions += row.conversions;
        e.value += row.value;
        e.spend += row.spend;
        expected.set(ad, e);
        lines.push(`${day},${ad},${row.impressions},${row.clicks},${row.conversions},${row.value},${row.spend},${row.impressions - 5}`);
      }
    }
    lines.push(`${days[0]},banner-1,many,1,0,0,0,0`, '2026-02-30,banner-1,1,1,0,0,0,0');
    writeFileSync(file, lines.join('\n'));
    const args = ['daily', file, '--tenant', TENANT, '--campaign', 'imp-daily', '--currency', 'EUR', '--map', 'Day=date,Ad ID=asset_id', '--url', app.running.url, '--key', key, '--quiet'];
    const first = await runCli(args);
    assert.equal(first.code, 1, first.err + first.out);
    const all = [...expected.values()].reduce((t, e) => ({ impressions: t.impressions + e.impressions, clicks: t.clicks + e.clicks, conversions: t.conversions + e.conversions }), { impressions: 0, clicks: 0, conversions: 0 });
    const events = all.impressions + all.clicks + all.conversions;
    assert.match(first.out, new RegExp(`^8 rows \\(${events + 2} events\\): wrote ${events}, already stored 0, refused 2; spend for 6 asset-days`));
    assert.match(first.out, /row 7: invalid_row \(impressions\)/);
    assert.match(first.out, /row 8: invalid_row \(date\)/);
    assert.match(first.err, /columns not imported: reach/);
    const totals = await fetchTotals(app.running.url, TENANT, 'imp-daily');
    assert.equal(totals.counts.impression, all.impressions);
    assert.equal(totals.counts.click, all.clicks);
    assert.equal(totals.counts.conversion, all.conversions);

    const costsOf = async () => {
      const res = await app.request(TENANT, `/v1/campaigns/imp-daily/costs?tenant_id=${TENANT}&from=${days[0]}&to=${days[2]}`);
      assert.equal(res.status, 200);
      return (await res.json()) as { assets: { asset_id: string; currency: string; spend: number; cpm: number; cpc: number; cpa: number | null; roas: number }[]; totals: { currency: string; spend: number }[] };
    };
    const close = (a: number | null, b: number, what: string) => assert.ok(a !== null && Math.abs(a - b) < 1e-9 * Math.max(1, b), `${what}: ${a} vs ${b}`);
    const costs = await costsOf();
    assert.deepEqual(costs.assets.map((a) => [a.asset_id, a.currency]).sort(), [['banner-1', 'EUR'], ['story-2', 'EUR']]);
    for (const a of costs.assets) {
      const e = expected.get(a.asset_id)!;
      close(a.spend, e.spend, `${a.asset_id} spend`);
      close(a.cpm, (e.spend / e.impressions) * 1000, `${a.asset_id} cpm`);
      close(a.cpc, e.spend / e.clicks, `${a.asset_id} cpc`);
      close(a.cpa, e.spend / e.conversions, `${a.asset_id} cpa`);
      close(a.roas, e.value / e.spend, `${a.asset_id} roas`);
    }
    close(costs.totals[0]!.spend, [...expected.values()].reduce((n, e) => n + e.spend, 0), 'total spend');

    // The same export again: no event twice, and spend replaced rather than added.
    const again = await runCli(args);
    assert.match(again.out, new RegExp(`wrote 0, already stored ${events}, refused 2`));
    assert.equal((await fetchTotals(app.running.url, TENANT, 'imp-daily')).total, events);
    close((await costsOf()).totals[0]!.spend, [...expected.values()].reduce((n, e) => n + e.spend, 0), 'spend after re-import');
    // A platform restates one day: that day's figure is replaced.
    const restated = path.join(dir, 'restated.csv');
    writeFileSync(restated, [header, `${days[1]},banner-1,0,0,0,0,100,0`].join('\n'));
    const r = await runCli(['daily', restated, '--tenant', TENANT, '--campaign', 'imp-daily', '--currency', 'EUR', '--map', 'Day=date,Ad ID=asset_id', '--url', app.running.url, '--key', key, '--quiet']);
    assert.equal(r.code, 0, r.err + r.out);
    const banner = (await costsOf()).assets.find((a) => a.asset_id === 'banner-1')!;
    close(banner.spend, expected.get('banner-1')!.spend - (0.37 * 2 + 0.8) + 100, 'restated spend');
    // Spend rows are validated on their own: a bad one is refused with its field, others kept.
    const bad = await app.request(TENANT, `/v1/import/spend`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: [{ campaign_id: 'imp-daily', asset_id: 'x', date: days[0], spend: -3 }, { campaign_id: 'imp-daily', asset_id: 'x', date: '2026-02-30', spend: 1 }, { campaign_id: 'imp-daily', asset_id: 'x', date: days[0], spend: 2, currency: 'eur' }].map((x) => JSON.stringify(x)).join('\n'),
    });
    assert.equal(bad.status, 422);
    assert.deepEqual(((await bad.json()) as { rejections: { field: string }[] }).rejections.map((x) => x.field), ['spend', 'date', 'currency']);
  });

  it('a huge spend body is refused past the row cap; one at the cap is validated while another tenant is answered', async () => {
    const day = new Date(Date.now() - 2 * DAY).toISOString().slice(0, 10);
    const body = (n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ campaign_id: 'hostile', asset_id: `ad-${i % 50}`, placement: `p${i % 7}`, date: day, spend: i % 13 })).join('\n');
    const hostile = (await app.authHeaders('spend-hostile', ['admin'])).authorization!;
    const polite = (await app.authHeaders('spend-polite', ['admin'])).authorization!;
    const post = (auth: string, text: string, onSent?: () => void, dryRun = false) =>
      new Promise<{ status: number; json: { error?: string; received?: number; written?: number; rejected?: number } }>((resolve, reject) => {
        const target = `${app.running.url}/v1/import/spend${dryRun ? '?dry_run=true' : ''}`;
        const req = request(target, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-ndjson' } }, (res) => {
          let data = '';
          res.on('data', (c: Buffer) => (data += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) as never }));
        });
        req.on('error', reject);
        req.end(text, onSent);
      });
    // 100k rows: refused whole with a typed error, nothing written.
    const refused = await post(hostile, body(100_000));
    assert.equal(refused.status, 413);
    assert.equal(refused.json.error, 'too_many_rows');
    // 50k rows (the cap), a dry run: the other tenant's request is sent the moment the server has
    // begun validating them (SpendImport.run wrapped in this process, where the server runs), and
    // must be answered first. Validation that held the event loop would answer the big one first:
    // nothing after it awaits on a dry run.
    const order: string[] = [];
    let politeDone: Promise<unknown> | undefined;
    const run = SpendImport.prototype.run;
    SpendImport.prototype.run = function (this: SpendImport, ...args: Parameters<typeof run>) {
      const result = run.apply(this, args);
      if (args[1]?.tenantId === 'spend-hostile' && !politeDone) {
        politeDone = post(polite, JSON.stringify({ campaign_id: 'polite', asset_id: 'a', date: day, spend: 1 })).then((r) => {
          assert.deepEqual([r.status, r.json.written], [200, 1]);
          order.push('polite');
        });
      }
      return result;
    };
    let dry: Awaited<ReturnType<typeof post>>;
    try {
      dry = await post(hostile, body(50_000), undefined, true);
      order.push('hostile');
      await politeDone;
    } finally {
      SpendImport.prototype.run = run;
    }
    assert.deepEqual([dry.status, dry.json.received, dry.json.written, dry.json.rejected], [200, 50_000, 0, 0]);
    assert.deepEqual(order, ['polite', 'hostile'], 'the other tenant was answered while the big body was validated');
    // And for real: every row of a body at the cap is written.
    const big = await post(hostile, body(50_000));
    assert.deepEqual([big.status, big.json.received, big.json.written, big.json.rejected], [200, 50_000, 50_000, 0]);
  });

  it('a dry run reports what it would write and writes nothing', async () => {
    const dry = history(300, 10, 'imp-dry', 4);
    const file = path.join(dir, 'dry.ndjson');
    writeFileSync(file, dry.rows.map((r) => JSON.stringify({ ...r, tenant_id: TENANT })).join('\n'));
    const r = await runCli(['events', file, '--url', app.running.url, '--key', key, '--dry-run', '--quiet']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^300 rows: would write 300, already stored 0, refused 0 \(dry run: nothing written\)/);
    assert.equal((await fetchTotals(app.running.url, TENANT, 'imp-dry', 'raw')).total, 0);
  });

  it('an id already counted live keeps its first write when history re-sends it with another time', async () => {
    const id = ulid();
    const live = { event_id: id, tenant_id: TENANT, campaign_id: 'imp-live', asset_id: 'x', kind: 'click', occurred_at: Date.now() - 60_000 };
    assert.equal((await postEvents(app.running.url, [live])).status, 202);
    await waitForSinkDrained(app.running);
    const file = path.join(dir, 'resend.ndjson');
    const older = { ...live, kind: 'like', occurred_at: Date.now() - 3 * DAY };
    writeFileSync(file, JSON.stringify(older));
    const r = await runCli(['events', file, '--url', app.running.url, '--key', key, '--quiet']);
    assert.match(r.out, /^1 rows: wrote 0, already stored 1, refused 0/);
    const totals = await fetchTotals(app.running.url, TENANT, 'imp-live');
    assert.equal(totals.total, 1);
    assert.equal(totals.counts.click, 1);
  });

  it('overlapping retries of one batch count once; keys without admin scope are refused', async () => {
    const rows = history(400, 5, 'imp-retry', 5).rows.map((r) => ({ ...r, tenant_id: TENANT, event_id: ulid(r.occurred_at) }));
    const body = rows.map((r) => JSON.stringify(r)).join('\n');
    const send = () =>
      fetch(`${app.running.url}/v1/import/events`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson' }, body });
    const answers = await Promise.all([send(), send(), send()]);
    const results = (await Promise.all(answers.map((a) => a.json()))) as { inserted: number; duplicates: number }[];
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
    assert.equal(results.reduce((n, x) => n + x.inserted, 0), 400);
    assert.equal((await fetchTotals(app.running.url, TENANT, 'imp-retry', 'raw')).total, 400);

    const ingestOnly = await app.authHeaders(TENANT, ['ingest']);
    const refused = await fetch(`${app.running.url}/v1/import/events`, { method: 'POST', headers: { ...ingestOnly, 'content-type': 'application/x-ndjson' }, body });
    assert.equal(refused.status, 403);
    // Another tenant's admin key cannot write this tenant's history.
    const otherKey = await app.authHeaders('other-tenant', ['admin']);
    const foreign = await fetch(`${app.running.url}/v1/import/events`, { method: 'POST', headers: { ...otherKey, 'content-type': 'application/x-ndjson' }, body });
    const foreignResult = (await foreign.json()) as { new: number; rejected: number; rejections: { reason: string }[] };
    assert.equal(foreign.status, 422);
    assert.equal(foreignResult.new, 0);
    assert.ok(foreignResult.rejections.every((x) => x.reason === 'tenant_forbidden'));
  });
});

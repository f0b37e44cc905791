import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { DLQ_HEADERS, TOPICS, ulid, type DeliveredRecord, type Env } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { EventSink } from '@afterglow/sink';
import { authFetch, fetchTotals, makeEvents, postAll, postEvents, startApp, waitForSinkDrained, zeroCounts, type Counts, type TestApp } from './support.js';

/**
 * The spine end to end, as a user sees it: events in over HTTP, exact counts out of ClickHouse.
 * Run against the embedded adapters and against real Kafka with the same assertions.
 */
export function spineScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  const tenant = uniqueName('tenant');
  const campaigns = [uniqueName('spring'), uniqueName('summer')];
  const expected = new Map<string, Counts>(campaigns.map((c) => [c, zeroCounts()]));

  const add = (more: Map<string, Counts>) => {
    for (const [c, counts] of more) for (const [k, n] of Object.entries(counts)) expected.get(c)![k as keyof Counts] += n;
  };
  const assertTotalsExact = async (source: 'rollup' | 'raw' = 'rollup') => {
    for (const c of campaigns) {
      const t = await fetchTotals(app!.running.url, tenant, c, source);
      assert.deepEqual(t.counts, expected.get(c), `${label}: ${source} totals of ${c}`);
    }
  };

  before(async () => {
    const e = env();
    if (e) app = await startApp({ SINK_GROUP_ID: uniqueName('sink'), ...e });
  });
  after(async () => {
    await app?.close();
  });

  test(`${label}: 10,000 events over HTTP come back as exact counts from ClickHouse`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / CLICKHOUSE_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const { events, expected: exp } = makeEvents(10_000, tenant, campaigns);
    assert.equal(await postAll(app.running.url, events), 10_000);
    add(exp);
    await waitForSinkDrained(app.running);
    await assertTotalsExact('rollup');
    await assertTotalsExact('raw');

    // Re-post the very same 10,000: accepted by ingest, never counted twice.
    assert.equal(await postAll(app.running.url, events, 5000), 10_000);
    await waitForSinkDrained(app.running);
    await assertTotalsExact('rollup');
    await assertTotalsExact('raw');
    assert.ok(app.running.sink!.totals.duplicates >= 10_000, 'the sink saw and dropped the duplicates');
  });

  test(`${label}: malformed events are rejected with reasons, the rest still count`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / CLICKHOUSE_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const { events: good, expected: exp } = makeEvents(6, tenant, campaigns);
    const now = Date.now();
    const bad = [
      { ...good[0], event_id: ulid(), kind: 'purchase' },
      { ...good[0], event_id: undefined },
      { ...good[0], event_id: ulid(), occurred_at: now + 3_600_000 },
      { ...good[0], event_id: ulid(), occurred_at: now - 30 * 86_400_000 },
      { ...good[0], event_id: ulid(), attrs: { big: 'x'.repeat(1000), more: 'y'.repeat(1000), most: 'z'.repeat(1000) } },
      'not an event',
    ];
    const mixed = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3], good[4], bad[4], good[5], bad[5]];
    const r = await postEvents(app.running.url, mixed);
    assert.equal(r.status, 202);
    assert.equal(r.body.accepted, 6);
    assert.deepEqual(
      r.body.rejections.map((x) => [x.index, x.reason]),
      [
        [1, 'unknown_kind'],
        [3, 'missing_field'],
        [5, 'too_far_in_future'],
        [7, 'too_old'],
        [9, 'attrs_too_large'],
        [11, 'not_an_object'],
      ],
    );
    // A broken NDJSON line loses nothing else.
    const { events: more, expected: exp2 } = makeEvents(2, tenant, campaigns);
    const res = await authFetch(`${app.running.url}/v1/events`, {
      tenant,
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `${JSON.stringify(more[0])}\n{"event_id": broken\n${JSON.stringify(more[1])}\n`,
    });
    const body = (await res.json()) as { accepted: number; rejections: { index: number; reason: string }[] };
    assert.equal(body.accepted, 2);
    assert.deepEqual(body.rejections.map((x) => [x.index, x.reason]), [[1, 'undecodable']]);
    // All bad: 422; not JSON at all: 400; wrong type: 415.
    assert.equal((await postEvents(app.running.url, [bad[0]])).status, 422);
    const notJson = await authFetch(`${app.running.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{' });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: string }).error, 'invalid_json');
    const wrongType = await authFetch(`${app.running.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'a,b' });
    assert.equal(wrongType.status, 415);

    add(exp);
    add(exp2);
    await waitForSinkDrained(app.running);
    await assertTotalsExact();
  });

  test(`${label}: poison records on the bus go to the DLQ with a reason and the sink keeps going`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / CLICKHOUSE_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const marker = uniqueName('poison');
    const producer = await app.running.bus.producer();
    const { events, expected: exp } = makeEvents(20, tenant, campaigns);
    await producer.send(TOPICS.events, [
      { key: marker, value: Buffer.from('{not json'), headers: { marker } },
      { key: marker, value: Buffer.from(JSON.stringify({ ...events[0], kind: 'teleport', received_at: Date.now() })), headers: { marker } },
      ...events.map((e) => ({ key: e.asset_id, value: Buffer.from(JSON.stringify({ ...e, received_at: Date.now() })) })),
    ]);
    await producer.close();
    add(exp);
    await waitForSinkDrained(app.running);
    await assertTotalsExact();

    const seen: DeliveredRecord[] = [];
    const dlq = app.running.bus.consumer({ groupId: uniqueName('dlq-reader'), topics: [TOPICS.eventsDlq], fromBeginning: true });
    void dlq.run(async (batch) => {
      seen.push(...batch.records.filter((r) => r.headers?.marker === marker));
    });
    try {
      await eventually(() => (seen.length >= 2 ? true : undefined), 30_000);
    } finally {
      await dlq.stop();
    }
    assert.deepEqual(seen.map((r) => r.headers?.[DLQ_HEADERS.reason]).sort(), ['undecodable', 'unknown_kind']);
    assert.equal(seen[0]!.headers?.[DLQ_HEADERS.sourceTopic], TOPICS.events);
  });

  test(`${label}: a consumer stopped mid-stream and restarted loses nothing and counts nothing twice`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / CLICKHOUSE_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const running = app.running;
    const { events, expected: exp } = makeEvents(8000, tenant, campaigns);
    add(exp);
    const posting = postAll(running.url, events, 500);
    // Crash the sink while traffic flows: no final flush, no commit.
    await eventually(() => (running.sink!.totals.received > 1000 ? true : undefined), 30_000, 5);
    await running.sink!.abandon();
    assert.equal(await posting, 8000);
    const { config } = running;
    const replacement = new EventSink({
      bus: running.bus,
      store: running.store!,
      limits: config.events,
      log: running.log,
      groupId: config.sink.groupId,
      batchMaxRows: config.sink.batchMaxRows,
      batchMaxMs: config.sink.batchMaxMs,
      lanes: config.sink.lanes,
    });
    await replacement.start();
    running.sink = replacement;
    await waitForSinkDrained(running);
    await assertTotalsExact('rollup');
    await assertTotalsExact('raw');
  });
}

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createStore, type Store } from '@afterglow/core';
import { serviceUrl, uniqueName } from '@afterglow/testkit/services';
import { metric, postRoundRobin, startCluster, storedCounts, waitAllDrained, type Cluster } from './faults/scale.js';

// Issue 9: two ingest processes, two stream sinks and two live aggregators (six processes) in
// consumer groups on the local Kafka, one shared ClickHouse, the local Redis/NATS: correct totals,
// and every worker of each group did part of the work.
let cluster: Cluster | undefined;
let store: Store | undefined;

before(async () => {
  // not-a-skip: without the services the test below skips (fails under CI) through serviceUrl
  if (!process.env.KAFKA_BROKERS || !process.env.REDIS_URL || !process.env.NATS_URL) return;
  cluster = await startCluster({ ingest: 2, stream: 2, live: 2 });
  store = await createStore({ kind: 'clickhouse', url: cluster.ch.url, user: 'default', password: '', database: 'scale' });
});
after(async () => {
  await store?.close();
  await cluster?.close();
});

test('2 ingest + 2 sinks + 2 live aggregators: exact totals in ClickHouse and in live state; work is shared', async (t) => {
  for (const v of ['KAFKA_BROKERS', 'REDIS_URL', 'NATS_URL'] as const) if (!serviceUrl(t, v)) return;
  const c = cluster!;
  const tenant = uniqueName('scale');
  const campaigns = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
  const { accepted, expected } = await postRoundRobin(c, tenant, campaigns, 30_000);
  assert.equal(accepted, 30_000);
  await waitAllDrained(c);

  const counts = await storedCounts(store!, tenant);
  assert.deepEqual(counts, { stored: 30_000, distinct: 30_000, rollup: 30_000 });
  for (const campaign of campaigns) {
    const rs = await store!.client.query({
      query: `SELECT toString(kind) AS kind, count() AS n FROM scale.events_raw WHERE tenant_id = {t:String} AND campaign_id = {c:String} GROUP BY kind`,
      query_params: { t: tenant, c: campaign },
      format: 'JSONEachRow',
    });
    const got = Object.fromEntries((await rs.json<{ kind: string; n: string | number }>()).map((r) => [r.kind, Number(r.n)]));
    const want = Object.fromEntries(Object.entries(expected.get(campaign)!).filter(([, n]) => n > 0));
    assert.deepEqual(got, want, `per-kind counts of ${campaign}`);
  }

  const perIngest = await Promise.all(c.ingest.map((p) => metric(p.metricsUrl, 'afterglow_ingest_events_accepted_total')));
  const perSink = await Promise.all(c.stream.map((p) => metric(p.metricsUrl, 'afterglow_sink_rows_inserted_total')));
  const perLive = await Promise.all(c.live.map((p) => metric(p.metricsUrl, 'afterglow_live_events_applied_total')));
  t.diagnostic(JSON.stringify({ perIngest, perSink, perLive }));
  assert.equal(perSink.reduce((a, b) => a + b, 0), 30_000, 'the two sinks inserted every event once between them');
  assert.equal(perLive.reduce((a, b) => a + b, 0), 30_000, 'the two aggregators applied every event once between them');
  for (const [name, per] of [['sink', perSink], ['live', perLive]] as const) assert.ok(per.every((n) => n > 0), `every ${name} worker got partitions: ${per}`);
});

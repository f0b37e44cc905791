/**
 * `npm start` stopped and started again in the middle of traffic, with a memory hot state, which
 * starts empty: on the embedded adapters (the in-process log starts empty too) and on Kafka (whose
 * log and consumer-group commits survive the restart: the live group would resume after what the
 * lost windows had counted). ClickHouse (chDB files) keeps everything. The live windows and the
 * ties must come back: after the restart, the live 24 h numbers of every asset, the campaign and
 * the master equal what ClickHouse holds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { TABLES, TOPICS, loadConfig, ulid, type EngagementEvent, type EventKind, type TieDecision } from '@afterglow/core';
import { eventually, serviceUrl, uniqueName } from '@afterglow/testkit/services';
import { start, type Running } from 'afterglow';
import { authFetch, fetchTotals, waitForSinkDrained, zeroCounts, type Counts } from './support.js';

const dataDirs: string[] = [];
after(() => dataDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The bus variables of a scenario; undefined when it cannot run here (skipped; under CI serviceUrl fails instead). */
type BusEnv = (t: TestContext) => Record<string, string> | undefined;

const scenarios: [name: string, busEnv: BusEnv][] = [
  ['embedded', () => ({})],
  [
    'kafka',
    (t) => {
      const brokers = serviceUrl(t, 'KAFKA_BROKERS');
      return brokers ? { KAFKA_BROKERS: brokers, KAFKA_NAMESPACE: uniqueName('restart') } : undefined;
    },
  ],
];

for (const [name, busEnv] of scenarios) {
  test(`${name}: a restart mid-traffic keeps the live windows and the ties: live equals ClickHouse after it`, { timeout: 240_000 }, async (t) => {
    const env = busEnv(t);
    // not-a-skip: serviceUrl skipped the test (and fails it under CI)
    if (!env) return;
    const dataDir = mkdtempSync(path.join(tmpdir(), 'afterglow-restart-test-'));
    dataDirs.push(dataDir);
    const boot = () =>
      start(
        loadConfig({
          PORT: '0',
          LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
          AFTERGLOW_DATA_DIR: dataDir,
          AFTERGLOW_DEMO: '0',
          SINK_BATCH_MAX_MS: '200',
          LIVE_FLUSH_MS: '200',
          PREDICT_WORKERS_ENABLED: '0',
          // Keys live in the store and would survive too, but they are not what this test is about.
          AUTH_MODE: 'off',
          ...env,
        }),
        { roles: ['ingest', 'stream', 'live'], demo: false },
      );
    await restartScenario(t, boot);
  });
}

async function restartScenario(t: TestContext, boot: () => Promise<Running>): Promise<void> {
  const tenant = uniqueName('tenant');
  const campaign = uniqueName('c');
  const assets = [0, 1, 2].map((i) => `${campaign}-ad${i}`);
  const master = `${campaign}-master`;
  const kinds: EventKind[] = ['impression', 'impression', 'impression', 'click', 'like', 'dwell'];
  let seq = 0;
  const batch = (n: number): EngagementEvent[] => {
    const now = Date.now();
    return Array.from({ length: n }, () => {
      const i = seq++;
      const kind = kinds[i % kinds.length]!;
      // Spread over the last 9 minutes (many minute buckets), inside the 10-minute late window:
      // later ones are counted in ClickHouse but, by design, not live.
      return { event_id: ulid(), tenant_id: tenant, campaign_id: campaign, asset_id: assets[i % assets.length]!, kind, value: kind === 'dwell' ? 1500 : 1, occurred_at: now - (i % 9) * 60_000 - 1000, received_at: 0 };
    });
  };

  let running: Running = await boot();
  t.after(() => running.stop());
  // A client posting steadily, through the restart (it retries a batch whose post failed).
  let stop = false;
  let accepted = 0;
  let pending: EngagementEvent[] | undefined;
  const failures: string[] = [];
  const poster = (async () => {
    while (!stop) {
      pending ??= batch(200);
      try {
        // A client gives up on an answer that does not come (a request caught by the stop).
        const res = await fetch(`${running.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pending), signal: AbortSignal.timeout(10_000) });
        const body = (await res.json()) as { accepted: number };
        if (res.status === 202) {
          accepted += body.accepted;
          pending = undefined;
        } else failures.push(`HTTP ${res.status}`);
      } catch (err) {
        // Connection refused while the process restarts: the same batch goes again.
        failures.push(String((err as Error).cause ?? err));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  // ad0 is tied to the master, as the inference role records it: a row in the decisions table and
  // a record on assets.ties.
  const tie: TieDecision = { action: 'tie', tenant_id: tenant, ad_asset_id: assets[0]!, target_asset_id: master, auto: false, decided_by: 'test', decided_at: Date.now(), decision_id: ulid() };
  await running.store!.client.insert({
    table: running.store!.table(TABLES.tieDecisions),
    values: [{ ...tie, decided_at: new Date(tie.decided_at).toISOString(), score: null, because_of: '' }],
    format: 'JSONEachRow',
    clickhouse_settings: { date_time_input_format: 'best_effort' },
  });
  const producer = await running.bus.producer();
  await producer.send(TOPICS.assetsTies, [{ key: tie.ad_asset_id, value: Buffer.from(JSON.stringify(tie)) }]);
  await producer.close();

  await eventually(() => (accepted >= 3_000 ? true : undefined), 60_000, 50);
  await running.stop();
  const before = accepted;
  running = await boot();
  await eventually(() => (accepted >= before + 3_000 ? true : undefined), 60_000, 50);
  stop = true;
  await poster;
  assert.equal(pending, undefined, 'the last batch went through');
  t.diagnostic(`posts retried over the restart: ${failures.length} (${[...new Set(failures)].join('; ')})`);

  await waitForSinkDrained(running);
  const q = `tenant_id=${encodeURIComponent(tenant)}`;
  const live = async (kind: 'assets' | 'campaigns', id: string) => {
    const res = await authFetch(`${running.url}/v1/${kind}/${id}/metrics?${q}`);
    assert.equal(res.status, 200, `${kind}/${id}: ${res.status}`);
    return (await res.json()) as { windows: Record<string, { counts: Counts }>; master?: { ads: number; windows: Record<string, { counts: Counts }> } };
  };
  const stored = await fetchTotals(running.url, tenant, campaign, 'raw');
  assert.equal(stored.total, accepted, 'ClickHouse holds every accepted event once');
  // Live follows within a flush; then it must equal the store exactly.
  const campaignLive = await eventually(async () => {
    const c = (await live('campaigns', campaign)).windows['24h']!.counts;
    return Object.values(c).reduce((a, b) => a + b, 0) === stored.total ? c : undefined;
  }, 20_000, 200).catch(async () => (await live('campaigns', campaign)).windows['24h']!.counts);
  assert.deepEqual(campaignLive, stored.counts, 'the campaign, live 24 h vs ClickHouse');

  // Per asset, against the raw table.
  const rs = await running.store!.client.query({
    query: `SELECT asset_id, toString(kind) AS kind, count() AS n FROM ${running.store!.table(TABLES.eventsRaw)} FINAL WHERE tenant_id = {t:String} GROUP BY asset_id, kind`,
    query_params: { t: tenant },
    format: 'JSONEachRow',
  });
  const perAsset = new Map<string, Counts>(assets.map((a) => [a, zeroCounts()]));
  for (const r of await rs.json<{ asset_id: string; kind: EventKind; n: string }>()) perAsset.get(r.asset_id)![r.kind] = Number(r.n);
  for (const a of assets) assert.deepEqual((await live('assets', a)).windows['24h']!.counts, perAsset.get(a), `${a}, live 24 h vs ClickHouse`);
  const masterView = await live('assets', master);
  assert.deepEqual(masterView.master?.windows['24h']?.counts, perAsset.get(assets[0]!), 'the master rolls up its tied ad, history from before the restart included');
}

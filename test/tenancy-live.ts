import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Env } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { LiveTestClient, type Counts } from './live-client.js';
import { makeEvents, postEvents, startApp, waitForSinkDrained, type TestApp } from './support.js';

/**
 * Tenant isolation in the live path, where the adapters hold it: hot-state keys (Redis), fan-out
 * subjects (NATS) and the bus (Kafka). Two tenants use the SAME campaign and asset ids with
 * different traffic; each must read exactly its own numbers over REST (hot state), over its live
 * WebSocket (fan-out), and from the store's totals. A key or subject that left the tenant out
 * would merge them. Run on the embedded adapters and on Kafka + Redis + NATS.
 */
export function tenantIsolationScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  const clients: LiveTestClient[] = [];
  before(async () => {
    const e = env();
    if (!e) return; // not-a-skip: env() is undefined only where the test then skipOrFail (realServicesEnv throws under CI)
    app = await startApp({ SINK_GROUP_ID: uniqueName('sink'), LIVE_GROUP_ID: uniqueName('live'), LIVE_KEY_PREFIX: uniqueName('live'), LIVE_FLUSH_MS: '200', ...e }, ['ingest', 'stream', 'live']);
  });
  after(async () => {
    for (const c of clients) c.close();
    await app?.close();
  });

  test(`${label}: two tenants with the same campaign and asset ids each see only their own numbers`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const url = app.running.url;
    const campaign = uniqueName('shared-campaign');
    const [a, b] = [uniqueName('tenant-a'), uniqueName('tenant-b')];
    const liveA = await LiveTestClient.connect(url, a);
    const liveB = await LiveTestClient.connect(url, b);
    clients.push(liveA, liveB);
    for (const c of [liveA, liveB]) c.send({ op: 'subscribe', campaign });
    await Promise.all([liveA, liveB].map((c) => c.waitFor(() => c.snapshots >= 1, 20_000, 'snapshot')));

    // Same campaign id, same asset ids (`<campaign>-asset-0..3`), different amounts: 40 vs 120.
    const sentA = makeEvents(40, a, [campaign], 4);
    const sentB = makeEvents(120, b, [campaign], 4);
    assert.equal((await postEvents(url, sentA.events)).status, 202);
    assert.equal((await postEvents(url, sentB.events)).status, 202);
    const want = (s: typeof sentA): Counts => s.expected.get(campaign)!;

    const restCounts = async (tenant: string): Promise<Counts | undefined> => {
      const res = await app!.request(tenant, `/v1/campaigns/${campaign}/metrics?tenant_id=${encodeURIComponent(tenant)}`);
      if (res.status !== 200) return undefined;
      return ((await res.json()) as { windows: Record<string, { counts: Counts }> }).windows['24h']!.counts;
    };
    const same = (x: Counts | undefined, y: Counts) => x !== undefined && Object.entries(y).every(([k, v]) => x[k as keyof Counts] === v);
    // Hot state (REST): each tenant's own totals, exactly.
    await eventually(async () => (same(await restCounts(a), want(sentA)) && same(await restCounts(b), want(sentB)) ? true : undefined), 30_000, 200);
    // Fan-out (WebSocket): each client reaches its own totals, and never the other's or the sum.
    await liveA.waitFor(() => same(liveA.counts('campaign', campaign, '24h'), want(sentA)), 30_000, 'tenant A live totals');
    await liveB.waitFor(() => same(liveB.counts('campaign', campaign, '24h'), want(sentB)), 30_000, 'tenant B live totals');
    // Store (bus -> sink): totals per tenant.
    await waitForSinkDrained(app.running);
    for (const [tenant, sent] of [[a, sentA], [b, sentB]] as const) {
      const res = await app.request(tenant, `/v1/campaigns/${campaign}/totals?tenant_id=${encodeURIComponent(tenant)}`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { total: number }).total, sent.events.length, `${tenant}: store totals`);
    }
    // After everything settled, the live views still hold exactly their own tenant's numbers.
    assert.deepEqual(await restCounts(a), want(sentA));
    assert.deepEqual(await restCounts(b), want(sentB));
    assert.deepEqual(liveA.counts('campaign', campaign, '24h'), want(sentA));
    assert.deepEqual(liveB.counts('campaign', campaign, '24h'), want(sentB));
  });
}

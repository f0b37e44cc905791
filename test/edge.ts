import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { pack, unpack } from 'msgpackr';
import { ulid, type EngagementEvent, type Env } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { EdgeClient } from '@afterglow/ingest';
import { startApp, waitForSinkDrained, zeroCounts, type Counts, type TestApp } from './support.js';

/**
 * The edge protocol end to end with the reference client: events sent over /v1/edge survive
 * dropped connections with exact counts in ClickHouse (resent until acked, duplicates acked but
 * not produced), and the pushed decision moves away from a creative whose engagement fades.
 */
export function edgeScenario(label: string, env: () => Env | undefined): void {
  let app: TestApp | undefined;
  const clients: EdgeClient[] = [];
  const tenant = uniqueName('tenant');

  before(async () => {
    const e = env();
    if (!e) return; // not-a-skip: env() is undefined only where the tests then skipOrFail (realServicesEnv throws under CI)
    app = await startApp(
      {
        SINK_GROUP_ID: uniqueName('sink'),
        EDGE_GROUP_ID: uniqueName('edge'),
        LIVE_KEY_PREFIX: uniqueName('live'),
        EDGE_HALF_LIFE_MS: '60000',
        EDGE_PUSH_MIN_MS: '50',
        ...e,
      },
      ['ingest', 'stream'],
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    await app?.close();
  });

  const client = async (clientId: string, binary: boolean) => {
    const c = new EdgeClient({ url: app!.running.url, clientId, tenantId: tenant, binary, headers: await app!.authHeaders(tenant, ['ingest']), reconnectDelayMs: 50 });
    clients.push(c);
    await c.connect();
    return c;
  };

  const event = (campaign: string, asset: string, placement: string, kind: EngagementEvent['kind'], at: number): Omit<EngagementEvent, 'tenant_id'> => ({
    event_id: ulid(at),
    campaign_id: campaign,
    asset_id: asset,
    placement,
    kind,
    value: 1,
    occurred_at: at,
    received_at: 0,
  });

  const totals = async (campaign: string): Promise<{ counts: Counts; total: number }> => {
    const res = await app!.request(tenant, `/v1/campaigns/${campaign}/totals?tenant_id=${tenant}&source=raw`);
    assert.equal(res.status, 200);
    return (await res.json()) as { counts: Counts; total: number };
  };

  test(`${label}: disconnect mid-stream and resume -> exact counts in ClickHouse`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const campaign = uniqueName('c');
    const c = await client(uniqueName('dev'), true);
    const expected = zeroCounts();
    const acks: Promise<unknown>[] = [];
    const now = Date.now();
    for (let m = 0; m < 60; m++) {
      const events = Array.from({ length: 50 }, (_, i) => {
        const kind = i % 10 === 0 ? 'click' : 'impression';
        expected[kind]++;
        return event(campaign, `${campaign}-a${i % 3}`, 'screen-1', kind, now - m * 100 - i);
      });
      acks.push(c.send(events));
      // Drop the connection twice mid-stream: unacked messages are resent after the welcome.
      if (m === 20 || m === 41) {
        await acks[m - 5];
        c.drop();
      }
    }
    await Promise.all(acks);
    assert.ok(c.reconnects >= 2, `reconnected (${c.reconnects})`);
    assert.equal(c.unacked, 0);

    // A message produced whose ack was lost: the server remembers its seq and does not produce it again.
    const id = uniqueName('raw');
    const url = `${app.running.url.replace(/^http/, 'ws')}/v1/edge?tenant_id=${tenant}`;
    const headers = await app.authHeaders(tenant, ['ingest']);
    const lost = Array.from({ length: 10 }, (_, i) => event(campaign, `${campaign}-a0`, 'screen-1', 'impression', now - 5_000 - i));
    expected.impression += 10;
    const first = new WebSocket(url, { headers });
    await new Promise((r) => first.once('open', r));
    first.send(pack({ type: 'hello', client_id: id }));
    first.send(pack({ type: 'events', seq: 1, events: lost }));
    // The welcome and the ack arrive; the client acts as if the ack was lost with the connection.
    let seen = 0;
    await new Promise<void>((r) => first.on('message', () => ++seen === 2 && r()));
    first.terminate();
    const second = new WebSocket(url, { headers });
    const replies: Record<string, unknown>[] = [];
    second.on('message', (d) => replies.push(unpack(d as Buffer) as Record<string, unknown>));
    await new Promise((r) => second.once('open', r));
    second.send(pack({ type: 'hello', client_id: id }));
    await eventually(() => (replies.length >= 1 ? true : undefined));
    assert.equal(replies[0]!.type, 'welcome');
    assert.equal(replies[0]!.last_seq, 1, 'the server remembers the last produced seq of this client');
    second.send(pack({ type: 'events', seq: 1, events: lost }));
    await eventually(() => (replies.length >= 2 ? true : undefined));
    assert.deepEqual({ type: replies[1]!.type, seq: replies[1]!.seq, duplicate: replies[1]!.duplicate, accepted: replies[1]!.accepted }, { type: 'ack', seq: 1, duplicate: true, accepted: 0 });
    second.close();

    await waitForSinkDrained(app.running);
    const got = await eventually(async () => {
      const r = await totals(campaign);
      return r.total >= 3010 ? r : undefined;
    }, 30_000);
    assert.equal(got.counts.impression, expected.impression);
    assert.equal(got.counts.click, expected.click);
    assert.equal(got.total, 60 * 50 + 10, 'nothing lost, nothing counted twice');
  });

  test(`${label}: the pushed decision leaves a creative that fades`, async (t) => {
    if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
    const campaign = uniqueName('c');
    const placement = uniqueName('p');
    const [a, b] = [`${campaign}-bright`, `${campaign}-steady`];
    const c = await client(uniqueName('dev'), false);
    c.subscribe(placement, [a, b]);
    await eventually(() => c.decision(placement), 10_000);

    const batch = (asset: string, impressions: number, clicks: number, at: number) =>
      Array.from({ length: impressions + clicks }, (_, i) => event(campaign, asset, placement, i < clicks ? 'click' : 'impression', at - i));
    // Three minutes ago (three half-lives): a clearly engages more than b.
    const then = Date.now() - 3 * 60_000;
    for (const events of [batch(a, 1000, 200, then), batch(b, 1000, 50, then)]) await c.send(events);
    // Pushed once both batches count: a is shown almost always.
    const first = await eventually(() => {
      const d = c.decision(placement);
      return d?.asset_id === a && d.shares![a]! > 0.9 ? d : undefined;
    }, 30_000);
    assert.ok(first.means![a]! > first.means![b]!);

    // Now: a's impressions bring no engagement any more, b goes on as before.
    const now = Date.now();
    for (const events of [batch(a, 1000, 0, now), batch(b, 1000, 50, now)]) await c.send(events);
    const second = await eventually(() => {
      const d = c.decision(placement);
      return d?.asset_id === b && d.shares![b]! > 0.9 ? d : undefined;
    }, 30_000);
    assert.ok(second.means![b]! > second.means![a]!, `posterior means: ${JSON.stringify(second.means)}`);
    const drawn = await c.decide(placement);
    assert.ok([a, b].includes(drawn.asset_id!), 'a Thompson draw picks a candidate');
  });
}

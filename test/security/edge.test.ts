import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { ulid, type EngagementEvent, type Env } from '@afterglow/core';
import { eventually, skipOrFail, uniqueName } from '@afterglow/testkit/services';
import { EDGE_CLOSE, EDGE_ERROR, EdgeClient, EdgeError } from '@afterglow/ingest';
import { realServicesEnv, startApp, waitForSinkDrained, type Counts, type TestApp } from '../support.js';

/**
 * The edge attacks, performed against the real server (API keys on) and asserted to fail:
 *   - one tenant POSTs 10,001 events with distinct placements (then a second tenant does too):
 *     the other tenant's decision state is still there;
 *   - a second API key of the tenant says hello with a victim's client_id: refused with
 *     client_id_taken, the victim keeps its connection and its events are acked and counted;
 *   - a message with seq 2^53-1 (or any seq beyond the window) for the victim's client_id:
 *     refused with seq_out_of_window, the victim's last_seq unchanged, its next events counted.
 * On the embedded adapters, and on Kafka + Redis + NATS where the seq and client_id bindings are
 * shared by processes (CI sets the services; locally that variant skips without them).
 */
function edgeSecurityScenario(label: string, env: () => Env | undefined): void {
  describe(label, () => {
    let app: TestApp | undefined;
    const clients: EdgeClient[] = [];
    const sockets: WebSocket[] = [];

    before(async () => {
      const e = env();
      if (!e) return; // not-a-skip: env() is undefined only where the tests then skipOrFail (realServicesEnv throws under CI)
      app = await startApp(
        {
          SINK_GROUP_ID: uniqueName('sink'),
          EDGE_GROUP_ID: uniqueName('edge'),
          LIVE_KEY_PREFIX: uniqueName('live'),
          // Small enough that two flooding tenants pass the process-wide bound too.
          EDGE_MAX_PLACEMENTS: '3000',
          EDGE_MAX_PLACEMENTS_PER_TENANT: '2000',
          ...e,
        },
        ['ingest', 'stream'],
      );
    });
    after(async () => {
      for (const c of clients) c.close();
      for (const s of sockets) s.terminate();
      await app?.close();
    });

    const keyFor = async (tenant: string, name: string): Promise<Record<string, string>> => {
      const keys = app!.running.keys;
      assert.ok(keys, 'these attacks need API keys on');
      const { key } = await keys.create({ tenantId: tenant, scopes: ['ingest'], name });
      return { authorization: `Bearer ${key}` };
    };

    const client = async (tenant: string, clientId: string, headers: Record<string, string>): Promise<EdgeClient> => {
      const c = new EdgeClient({ url: app!.running.url, clientId, tenantId: tenant, headers, reconnectDelayMs: 50 });
      clients.push(c);
      await c.connect();
      return c;
    };

    const event = (campaign: string, asset: string, placement: string, kind: EngagementEvent['kind'], at = Date.now()): Omit<EngagementEvent, 'tenant_id'> => ({
      event_id: ulid(at),
      campaign_id: campaign,
      asset_id: asset,
      placement,
      kind,
      value: 1,
      occurred_at: at,
      received_at: 0,
    });

    /** A raw socket, for what the reference client would never send. */
    const raw = async (tenant: string, headers: Record<string, string>) => {
      const ws = new WebSocket(`${app!.running.url.replace(/^http/, 'ws')}/v1/edge?tenant_id=${tenant}`, { headers });
      sockets.push(ws);
      const messages: Record<string, unknown>[] = [];
      ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>));
      ws.on('error', () => undefined);
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      await new Promise((r) => ws.once('open', r));
      return { ws, messages, closed, send: (m: object) => ws.send(JSON.stringify(m)) };
    };

    const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
      const m = app!.running.registry.getSingleMetric(name);
      if (!m) return 0;
      const { values } = await m.get();
      const v = values.find((x) => Object.entries(labels).every(([k, want]) => String((x.labels as Record<string, unknown>)[k]) === want) && Object.keys(x.labels).length === Object.keys(labels).length);
      return v?.value ?? 0;
    };

    const rawTotal = async (tenant: string, campaign: string): Promise<number> => {
      const res = await app!.request(tenant, `/v1/campaigns/${campaign}/totals?tenant_id=${tenant}&source=raw`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { counts: Counts; total: number }).total;
    };

    test(`${label}: a tenant flooding placements cannot evict another tenant's decision state`, async (t) => {
      if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
      const [a, b, c] = [uniqueName('tenant-a'), uniqueName('tenant-b'), uniqueName('tenant-c')];
      const campaign = uniqueName('c');
      // Tenant A's placement knows its assets only from events (never declared): if its state were
      // dropped, `decide` would answer null.
      const victim = await client(a, uniqueName('screen'), await keyFor(a, 'screen'));
      const placement = 'lobby';
      const now = Date.now();
      await victim.send([
        ...Array.from({ length: 50 }, (_, i) => event(campaign, `${campaign}-bright`, placement, i < 10 ? 'click' : 'impression', now - i)),
        ...Array.from({ length: 50 }, (_, i) => event(campaign, `${campaign}-dim`, placement, i < 1 ? 'click' : 'impression', now - i)),
      ]);
      await eventually(async () => ((await victim.decide(placement)).asset_id ? true : undefined), 20_000);

      // The attack: one POST of 10,001 events, each with a placement of its own; then another tenant does the same.
      const flood = async (tenant: string) => {
        const events = Array.from({ length: 10_001 }, (_, i) => ({ ...event(uniqueName('c'), 'x', `flood-${i}`, 'impression'), tenant_id: tenant }));
        const res = await app!.request(tenant, '/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events), scopes: ['ingest'] });
        assert.equal(res.status, 202);
        assert.equal(((await res.json()) as { accepted: number }).accepted, 10_001);
      };
      await flood(b);
      // Every one of B's placements consumed: past its quota of 2000, each new one evicted one of B's own.
      await eventually(async () => ((await metric('afterglow_edge_placements_evicted_total', { reason: 'tenant' })) >= 10_001 - 2000 ? true : undefined), 60_000);
      assert.equal(await metric('afterglow_edge_placements', { tenant_id: b }), 2000, "B holds its quota");
      assert.equal(await metric('afterglow_edge_placements_evicted_total', { reason: 'total' }), 0);
      assert.ok((await victim.decide(placement)).asset_id, "A's decision survived B's flood");

      await flood(c);
      // 2000 (B) + 2000 (C) + 1 (A) > 3000 in all: the process-wide bound takes from the largest tenants, not from A.
      // Every placement consumed once each insert past the bounds has evicted one: 1 + 2 x 10,001 - 3000.
      const evicted = async () => (await metric('afterglow_edge_placements_evicted_total', { reason: 'tenant' })) + (await metric('afterglow_edge_placements_evicted_total', { reason: 'total' }));
      await eventually(async () => ((await evicted()) >= 1 + 2 * 10_001 - 3000 ? true : undefined), 60_000);
      assert.ok((await metric('afterglow_edge_placements_evicted_total', { reason: 'total' })) > 0, 'the process-wide bound was reached');
      assert.equal(await metric('afterglow_edge_placements'), 3000);
      assert.equal(await metric('afterglow_edge_placements', { tenant_id: a }), 1);
      const [nb, nc] = [await metric('afterglow_edge_placements', { tenant_id: b }), await metric('afterglow_edge_placements', { tenant_id: c })];
      assert.equal(nb + nc, 2999);
      assert.ok(nb >= 999 && nc >= 999, `the two largest shrank: B ${nb}, C ${nc}`);
      const drawn = await victim.decide(placement);
      assert.ok([`${campaign}-bright`, `${campaign}-dim`].includes(drawn.asset_id!), "A's decision survived both floods");
      // And A's counts are still the ones it sent: the pushed decision's means favour the creative that engages.
      victim.subscribe(placement);
      const pushed = await eventually(() => victim.decision(placement), 10_000);
      assert.ok(pushed.means![`${campaign}-bright`]! > pushed.means![`${campaign}-dim`]!, JSON.stringify(pushed.means));
    });

    test(`${label}: another key of the tenant cannot take over a client_id`, async (t) => {
      if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
      const tenant = uniqueName('tenant');
      const campaign = uniqueName('c');
      const id = uniqueName('billboard');
      const victimKey = await keyFor(tenant, 'billboard');
      const attackerKey = await keyFor(tenant, 'other-device');
      const victim = await client(tenant, id, victimKey);
      const batch = () => Array.from({ length: 20 }, (_, i) => event(campaign, `${campaign}-a`, 'station', i % 5 === 0 ? 'click' : 'impression'));
      const first = await victim.send(batch());
      assert.equal(first.accepted, 20);

      // The attack: hello with the victim's client_id from another key, then a seq at the top of the range.
      const attacker = await raw(tenant, attackerKey);
      attacker.send({ type: 'hello', client_id: id });
      attacker.send({ type: 'events', seq: 2 ** 53 - 1, events: batch() });
      assert.equal(await attacker.closed, EDGE_CLOSE.forbidden);
      assert.equal(attacker.messages.length, 1, `only the refusal: ${JSON.stringify(attacker.messages)}`);
      assert.deepEqual({ type: attacker.messages[0]!.type, code: attacker.messages[0]!.code, retryable: attacker.messages[0]!.retryable }, { type: 'error', code: EDGE_ERROR.clientIdTaken, retryable: false });

      // The reference client refuses to go on, and does not retry.
      const other = new EdgeClient({ url: app.running.url, clientId: id, tenantId: tenant, headers: attackerKey, reconnectDelayMs: 50 });
      clients.push(other);
      await assert.rejects(other.connect(), (err: unknown) => err instanceof EdgeError && err.code === EDGE_ERROR.clientIdTaken && err.fatal);

      // The victim was never replaced; its next events are acked (not as duplicates) and counted.
      assert.equal(victim.connected, true);
      assert.equal(victim.reconnects, 0);
      const next = await victim.send(batch());
      assert.deepEqual({ seq: next.seq, accepted: next.accepted, duplicate: next.duplicate }, { seq: 2, accepted: 20, duplicate: undefined });
      await waitForSinkDrained(app.running);
      assert.equal(await eventually(async () => ((await rawTotal(tenant, campaign)) >= 40 ? rawTotal(tenant, campaign) : undefined), 30_000), 40);
      assert.ok((await metric('afterglow_edge_refusals_total', { code: EDGE_ERROR.clientIdTaken })) >= 2);
    });

    test(`${label}: a seq beyond the window is refused and moves nothing`, async (t) => {
      if (!app) return skipOrFail(t, 'KAFKA_BROKERS / REDIS_URL / NATS_URL not set (deploy/local/up.sh, then source deploy/local/env.sh)');
      const tenant = uniqueName('tenant');
      const campaign = uniqueName('c');
      const id = uniqueName('kiosk');
      const key = await keyFor(tenant, 'kiosk');
      const victim = await client(tenant, id, key);
      const batch = () => Array.from({ length: 10 }, () => event(campaign, `${campaign}-a`, 'hall', 'impression'));
      for (let i = 0; i < 3; i++) await victim.send(batch());

      // The same key (say, a fleet key copied off one device) says hello with the client_id while the
      // device is offline: it may (a reconnect of that device looks the same), but it cannot move the seq.
      victim.close();
      const attacker = await raw(tenant, key);
      attacker.send({ type: 'hello', client_id: id });
      await eventually(() => (attacker.messages[0]?.type === 'welcome' ? true : undefined));
      assert.equal(attacker.messages[0]!.last_seq, 3);
      assert.equal(attacker.messages[0]!.max_seq_jump, 1_000_000);
      for (const seq of [2 ** 53 - 1, 3 + 1_000_001]) attacker.send({ type: 'events', seq, events: batch() });
      await eventually(() => (attacker.messages.length >= 3 ? true : undefined));
      for (const [i, seq] of [2 ** 53 - 1, 3 + 1_000_001].entries()) {
        const m = attacker.messages[i + 1]!;
        assert.deepEqual({ type: m.type, seq: m.seq, code: m.code, retryable: m.retryable }, { type: 'error', seq, code: EDGE_ERROR.seqOutOfWindow, retryable: false });
      }
      attacker.ws.close();
      await attacker.closed;

      // The victim comes back: the server's last_seq is still its own, and its next events count.
      await victim.connect();
      assert.equal(victim.lastSeqFromServer, 3);
      const next = await victim.send(batch());
      assert.deepEqual({ seq: next.seq, accepted: next.accepted, duplicate: next.duplicate }, { seq: 4, accepted: 10, duplicate: undefined });
      await waitForSinkDrained(app.running);
      assert.equal(await eventually(async () => ((await rawTotal(tenant, campaign)) >= 40 ? rawTotal(tenant, campaign) : undefined), 30_000), 40);
    });
  });
}

// The embedded adapters: in-process bus, memory hot state, chDB.
edgeSecurityScenario('edge security embedded', () => ({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }));
// Real Kafka + Redis + NATS (deploy/local): the seq and the client_id binding live in Redis. Fails under CI without them.
edgeSecurityScenario('edge security on kafka+redis', realServicesEnv);
